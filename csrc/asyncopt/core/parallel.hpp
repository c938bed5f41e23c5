// OpenMP helpers: thread counts and exceptions that must not escape a parallel region.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace asyncopt {

inline bool have_openmp() noexcept {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

// The most threads one native call may run. Why a bound at all: the OpenMP runtime does not fail
// softly when asked for absurd teams (libgomp segfaulted at num_threads(10^6) and calls exit(1) when
// pthread_create fails), and per-thread scratch (LDA's K x n_threads topic sums, each worker's
// buffers) grows with the count. Why 1024, fixed rather than a multiple of this machine's cores: a
// fitted estimator's n_threads must mean the same on every machine it is unpickled on, 1024 is
// above the hardware threads of any single node asyncopt targets (the largest dual-socket x86
// servers have 384-512), and oversubscribing cores several times, which staleness studies do on
// purpose, stays allowed. Beyond one node the MPI backend is the way to more workers.
inline constexpr int kMaxThreads = 1024;

// n_threads as a native call takes it: an integer in [1, kMaxThreads]. Taken as int64 so that a
// Python integer too large for int reaches this check (and a ValueError naming it) instead of
// pybind11's conversion TypeError.
inline int check_n_threads(std::int64_t n, const char* name = "n_threads") {
    if (n < 1 || n > kMaxThreads)
        throw std::invalid_argument(std::string(name) + " must be in [1, " + std::to_string(kMaxThreads) +
                                    "], got " + std::to_string(n));
    return static_cast<int>(n);
}

inline int thread_id() noexcept {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// An exception thrown inside an OpenMP region terminates the program. Each thread body runs under
// capture(); the first exception is kept, the other threads see failed() and stop early, and
// rethrow() raises it after the region (as LightGBM's openmp_wrapper.h and implicit do).
class ParallelExceptions {
public:
    template <class F>
    void capture(F&& f) noexcept {
        try {
            f();
        } catch (...) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!first_) first_ = std::current_exception();
            failed_.store(true, std::memory_order_relaxed);
        }
    }
    bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
    void rethrow() const {
        if (first_) std::rethrow_exception(first_);
    }

private:
    std::mutex mutex_;
    std::exception_ptr first_;
    std::atomic<bool> failed_{false};
};

}  // namespace asyncopt
