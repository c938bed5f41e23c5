// OpenMP helpers: thread counts and exceptions that must not escape a parallel region.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>

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
