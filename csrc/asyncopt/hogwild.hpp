// The Hogwild! driver (Niu et al. 2011; AsySG-incon of Lian et al. 2015): one epoch of lock-free
// mini-batch updates from n_threads OpenMP threads on a shared model, for any problem. The problem
// (train_logistic.hpp; later LDA) says what one mini-batch does; the driver says who runs which
// mini-batch when, numbers the updates and measures their staleness.
//
// Work split (epoch_plan.hpp): the epoch's item order lives in `perm` (kept across epochs by the
// caller). Thread t owns the contiguous slice [n t / T, n (t+1) / T) of it, reshuffles that slice
// with its own RNG stream at the start of the epoch, and walks it in mini-batches. The caller
// shuffles `perm` once globally at the start of a fit, so slices are random samples of the items.
//
// One update (mini-batch B):
//   claim  k = ++clock: the update's global step number (its step size, its stamps); the model
//          it reads is the one as of step k - 1
//   read / write   the problem's work on B, reading and writing the shared model without locks
// Staleness tau: the number of updates other threads began between this update's read and its
// write (Lian et al.'s delay; 0 with one thread): the clock read right after the write, minus k.
// That read of the contended clock line cost nothing measurable next to the claim (A/B on 2
// threads, SGD and AMSGrad, 2^20 features); an earlier version took tau from the thread's next
// claim instead, which counted any time the OS descheduled the thread between two updates.
// Each thread keeps its own counters, merged after the epoch.
//
// Segments (epoch_plan.hpp): the problem may cap how many updates run between two points where no
// thread is running; each segment is one parallel region framed by the problem's begin_segment /
// end_segment.
//
// A problem ("Work") supplies:
//   uint64_t max_segment_updates() const
//   void begin_segment(uint64_t k_base, uint32_t n_updates)   serial, before the threads start
//   Worker worker(int thread)            per-thread scratch; Worker has
//       void update(const int64_t* items, int64_t count, const int64_t* items_end, uint64_t k, uint32_t u,
//                   const StepClock& clock)
//                                        u = k - k_base; items_end: end of the thread's items in this
//                                        segment, for look-ahead (prefetching); clock: the step clock,
//                                        for a problem that needs the latest claimed step when it reads
//       void done()                      after the thread's last update of the segment
//   void end_segment(uint32_t n_updates, int n_threads)      no thread running
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "epoch_plan.hpp"
#include "parallel.hpp"
#include "rng.hpp"

namespace asyncopt {

struct EpochConfig {
    int n_threads = 1;
    int64_t batch_size = 1;
    bool shuffle = true;
    uint64_t seed = 0;  // this epoch's seed; thread t draws stream t from it
    uint64_t k0 = 0;    // updates applied before this epoch (the global step clock)
};

// The step clock on a cache line of its own: it is the one word every update writes.
struct alignas(64) StepClock {
    std::atomic<uint64_t> value;
};

template <class Work>
EpochResult hogwild_epoch(int64_t n, int64_t* perm, const EpochConfig& cfg, Work& work) {
    const int nt = have_openmp() ? std::max(1, cfg.n_threads) : 1;
    const int64_t B = cfg.batch_size;
    ParallelExceptions errors;
    EpochResult res;

    const EpochPlan plan(n, nt, B, work.max_segment_updates());

    if (cfg.shuffle) {
#pragma omp parallel num_threads(nt)
        {
            const int t = thread_id();
            Rng rng(cfg.seed, static_cast<uint64_t>(t));
            const int64_t lo = slice_begin(n, nt, t);
            shuffle(perm + lo, static_cast<uint64_t>(slice_begin(n, nt, t + 1) - lo), rng);
        }
    }

    uint64_t k_base = cfg.k0;  // updates before this segment
    for (int64_t g = 0; g < plan.segments(); ++g) {
        const uint64_t seg_updates = plan.segment_updates(g);
        work.begin_segment(k_base, static_cast<uint32_t>(seg_updates));
        StepClock clock;
        clock.value.store(k_base);

#pragma omp parallel num_threads(nt)
        {
            const int t = thread_id();
            StalenessStats st;  // thread-local: no false sharing on the per-update counters
            errors.capture([&] {
                const SliceRange r = plan.items(t, g);
                const int64_t first = r.first, last = r.last;
                auto worker = work.worker(t);
                for (int64_t p = first; p < last; p += B) {
                    if (errors.failed()) break;
                    // claim: the step number (the model it reads is the one as of step k - 1)
                    const uint64_t k = clock.value.fetch_add(1, std::memory_order_relaxed) + 1;
                    worker.update(perm + p, std::min(B, last - p), perm + last, k, static_cast<uint32_t>(k - k_base),
                                  clock);
                    // the clock after the write: claims by other threads in between are the delay
                    st.add(clock.value.load(std::memory_order_relaxed) - k);
                }
                worker.done();
            });
#pragma omp critical(asyncopt_staleness_merge)
            res.staleness.merge(st);
        }
        errors.rethrow();
        work.end_segment(static_cast<uint32_t>(seg_updates), nt);
        k_base += seg_updates;
    }
    res.updates = k_base - cfg.k0;
    return res;
}

}  // namespace asyncopt
