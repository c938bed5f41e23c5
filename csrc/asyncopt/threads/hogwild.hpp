// The Hogwild! driver (Niu et al. 2011; AsySG-incon of Lian et al. 2015): one epoch of lock-free
// mini-batch updates from n_threads OpenMP threads on a shared model, for any problem. The problem
// (threads/logistic.hpp; later LDA) says what one mini-batch does; the driver says who runs which
// mini-batch when, numbers the updates and measures their staleness.
//
// Work split (epoch_plan.hpp): the epoch's item order lives in `perm` (kept across epochs by the
// caller). It is cut into T contiguous slices [n t / T, n (t+1) / T); slice t is reshuffled with
// RNG stream t at the start of the epoch and walked in mini-batches. The caller shuffles `perm`
// once globally at the start of a fit, so slices are random samples of the items. Free-running,
// thread t starts on slice t and then helps with the others (hogwild_free_running: the threads
// are an elastic team of core/thread_pool.hpp, and one that the OS has not scheduled yet must
// not hold the others up); in lockstep thread t walks exactly slice t.
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
// thread is running; each segment is one job of the team (in lockstep, one OpenMP region) framed by
// the problem's begin_segment / end_segment.
//
// Lockstep (EpochConfig::lockstep; for tests and controlled studies of staleness, never on in the
// estimators): the free-running loop's staleness is whatever the OS's scheduling made it (two
// threads time-sliced on one busy core may not overlap at all). In lockstep the threads run a
// segment in rounds; round r holds the r-th mini-batch of every thread that has one (A_r threads):
//   claim    each of them advances the clock by one; its step number is fixed by thread order,
//            k = (updates of the earlier rounds) + 1 + (threads before it in this round)
//   barrier  every claim of the round is made before any read
//   update   all A_r updates run at once, racing on the model as in the free loop
//   clock    each reads the clock after its write, as the free loop does: tau = A_r - 1 - (threads
//            before it in this round), the round's later claims
//   barrier  every write and clock read of the round is done before the next round's claims
// so a round's taus are exactly {0, 1, ..., A_r - 1}, whatever the scheduling (2 threads with
// equal slices: max 1, mean 1/2), and one thread runs the free loop's updates in the same order.
// A thread whose mini-batches are all done still takes part in every barrier. The barriers are
// spin/yield on atomics and give up once a thread has failed (ParallelExceptions), so an
// exception in one update cannot leave the others waiting.
//
// A problem ("Work") supplies:
//   uint64_t max_segment_updates() const
//   void begin_segment(uint64_t k_base, uint32_t n_updates)   serial, before the threads start
//   Worker worker(int thread)            per-thread scratch (thread: the slot, 0 .. n_threads - 1;
//                                        a slot may do no update at all); Worker has
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
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../core/epoch_plan.hpp"
#include "../core/interrupt.hpp"
#include "../core/parallel.hpp"
#include "../core/thread_pool.hpp"
#include "../core/rng.hpp"

namespace asyncopt {

struct EpochConfig {
    int n_threads = 1;
    int64_t batch_size = 1;
    bool shuffle = true;
    uint64_t seed = 0;  // this epoch's seed; thread t draws stream t from it
    uint64_t k0 = 0;    // updates applied before this epoch (the global step clock)
    bool lockstep = false;  // rounds with exactly determined staleness (see above); for tests and studies
    // Staleness record (record_staleness=True; the delay simulator's trace_of replays it): update k's
    // tau at staleness_record[k - k0 - 1], room for one entry per row visited (a mini-batch holds at
    // least one). Every step number is claimed once, so each entry has one writer: no race.
    bool record_staleness = false;
    int64_t* staleness_record = nullptr;
};

// The step clock on a cache line of its own: it is the one word every update writes.
struct alignas(64) StepClock {
    std::atomic<uint64_t> value;
};

// The barrier of lockstep rounds: the last of n arrivals opens the next generation; the others
// yield until it does, or give up (false) once a thread has failed. Not #pragma omp barrier: a
// thread whose update threw has left its capture() body and would never arrive. acq_rel on the
// arrival count and release/acquire on the generation order every thread's writes before the
// barrier ahead of every thread's reads after it.
class RoundBarrier {
public:
    explicit RoundBarrier(int n) : n_(n) {}
    bool arrive_and_wait(const ParallelExceptions& errors) noexcept {
        const uint64_t gen = generation_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            arrived_.store(0, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);
            return true;
        }
        while (generation_.load(std::memory_order_acquire) == gen) {
            if (errors.failed()) return false;
            std::this_thread::yield();  // lockstep is for measurements, not speed: leave the core
        }
        return true;
    }

private:
    alignas(64) std::atomic<int> arrived_{0};
    alignas(64) std::atomic<uint64_t> generation_{0};
    const int n_;
};

// The epoch's segments, in order: begin_segment, run(g, k_base, clock) (one job of the threads,
// which starts the clock at k_base: the updates before the segment), end_segment. Returns the
// epoch's update count.
template <class Work, class Run>
uint64_t run_segments(const EpochPlan& plan, uint64_t k0, int nt, Work& work, Run&& run) {
    uint64_t k_base = k0;
    for (int64_t g = 0; g < plan.segments(); ++g) {
        const uint64_t seg_updates = plan.segment_updates(g);
        work.begin_segment(k_base, static_cast<uint32_t>(seg_updates));
        StepClock clock;
        clock.value.store(k_base);
        run(g, k_base, clock);
        // Interrupted (interrupt.hpp): the segment ran only the steps its threads claimed, every
        // one of them applied; the coordinates are brought to the last of those and no later
        // segment starts, so the model and the returned count agree.
        const bool interrupted = stop_requested();
        const uint64_t done = interrupted ? clock.value.load() - k_base : seg_updates;
        work.end_segment(static_cast<uint32_t>(done), nt);
        k_base += done;
        if (interrupted) break;
    }
    return k_base - k0;
}

// One slice's claim counter, on a cache line of its own (its owner claims from it; others only
// once they have run out of work).
struct alignas(64) SliceCursor {
    std::atomic<int64_t> next{0};
    int64_t last = 0;
    std::atomic<int> shuffled{0};  // 0: not yet, 1: being shuffled, 2: ready (segment 0 of a shuffled epoch)
};

// The free-running epoch on an elastic team (core/thread_pool.hpp). No mini-batch belongs to a
// thread: slot s starts on slice s and, when it is done, claims chunks of the other slices, so a
// thread the OS has not scheduled delays nobody and the team's last thread to arrive is one that
// is running. With every thread running, each walks its own slice exactly as the static split
// did and only the tail is shared; with one thread the run is the same sequence of updates.
// A slice is reshuffled (its own stream, as before) by the first thread to reach it.
template <class Work>
void hogwild_free_running(int64_t n, int64_t* perm, const EpochConfig& cfg, Work& work, const EpochPlan& plan,
                          int nt, EpochResult& res) {
    const int64_t B = cfg.batch_size;
    ParallelExceptions errors;
    std::mutex merge;
    std::vector<SliceCursor> cursors(static_cast<size_t>(nt));
    res.updates = run_segments(plan, cfg.k0, nt, work, [&](int64_t g, uint64_t k_base, StepClock& clock) {
        int64_t most_batches = 1;
        for (int t = 0; t < nt; ++t) {
            const SliceRange r = plan.items(t, g);
            cursors[static_cast<size_t>(t)].next.store(r.first, std::memory_order_relaxed);
            cursors[static_cast<size_t>(t)].last = r.last;
            cursors[static_cast<size_t>(t)].shuffled.store(cfg.shuffle && g == 0 ? 0 : 2, std::memory_order_relaxed);
            most_batches = std::max(most_batches, (r.last - r.first + B - 1) / B);
        }
        // Claims of 1/32 of a slice (at most 64 mini-batches): one atomic per chunk on the owner's
        // own line, and a tail short enough that no thread waits long for another's last chunk.
        const int64_t chunk = B * std::max<int64_t>(1, std::min<int64_t>(64, most_batches / 32));

        ThreadPool::instance().run(nt, [&](int s) {
            StalenessStats st;  // thread-local: no false sharing on the per-update counters
            errors.capture([&] {
                auto worker = work.worker(s);
                for (int i = 0; i < nt && !errors.failed() && !stop_requested(); ++i) {
                    const int u = (s + i) % nt;
                    SliceCursor& c = cursors[static_cast<size_t>(u)];
                    if (c.shuffled.load(std::memory_order_acquire) != 2) {
                        int expected = 0;
                        if (c.shuffled.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
                            Rng rng(cfg.seed, static_cast<uint64_t>(u));
                            const int64_t lo = slice_begin(n, nt, u);
                            shuffle(perm + lo, static_cast<uint64_t>(slice_begin(n, nt, u + 1) - lo), rng);
                            c.shuffled.store(2, std::memory_order_release);
                        } else {
                            while (c.shuffled.load(std::memory_order_acquire) != 2) std::this_thread::yield();
                        }
                    }
                    for (int64_t p0; !stop_requested() &&
                                     (p0 = c.next.fetch_add(chunk, std::memory_order_relaxed)) < c.last;) {
                        const int64_t p1 = std::min(c.last, p0 + chunk);
                        for (int64_t p = p0; p < p1; p += B) {
                            if (errors.failed() || stop_requested()) break;
                            // claim: the step number (the model it reads is the one as of step k - 1)
                            const uint64_t k = clock.value.fetch_add(1, std::memory_order_relaxed) + 1;
                            worker.update(perm + p, std::min(B, p1 - p), perm + c.last, k,
                                          static_cast<uint32_t>(k - k_base), clock);
                            // the clock after the write: claims by other threads in between are the delay
                            const uint64_t tau = clock.value.load(std::memory_order_relaxed) - k;
                            st.add(tau);
                            if (cfg.staleness_record) cfg.staleness_record[k - cfg.k0 - 1] = static_cast<int64_t>(tau);
                        }
                    }
                }
                worker.done();
            });
            std::lock_guard<std::mutex> lock(merge);
            res.staleness.merge(st);
        });
        errors.rethrow();
    });
}

template <class Work>
EpochResult hogwild_epoch(int64_t n, int64_t* perm, const EpochConfig& cfg, Work& work) {
    const int nt = have_openmp() ? std::max(1, cfg.n_threads) : 1;
    const int64_t B = cfg.batch_size;
    ParallelExceptions errors;
    EpochResult res;

    const EpochPlan plan(n, nt, B, work.max_segment_updates());
    if (!cfg.lockstep) {
        hogwild_free_running(n, perm, cfg, work, plan, nt, res);
        return res;
    }

    if (cfg.shuffle) {
#pragma omp parallel num_threads(nt)
        {
            const int t = thread_id();
            Rng rng(cfg.seed, static_cast<uint64_t>(t));
            const int64_t lo = slice_begin(n, nt, t);
            shuffle(perm + lo, static_cast<uint64_t>(slice_begin(n, nt, t + 1) - lo), rng);
        }
    }

    res.updates = run_segments(plan, cfg.k0, nt, work, [&](int64_t g, uint64_t k_base, StepClock& clock) {
        // each thread's mini-batches in this segment, and the rounds they take
        std::vector<int64_t> batches(static_cast<size_t>(nt));
        for (size_t t = 0; t < batches.size(); ++t) {
            const SliceRange r = plan.items(static_cast<int>(t), g);
            batches[t] = (r.last - r.first + B - 1) / B;
        }
        const int64_t rounds = *std::max_element(batches.begin(), batches.end());
        RoundBarrier barrier(nt);

#pragma omp parallel num_threads(nt)
        {
            const int t = thread_id();
            StalenessStats st;  // thread-local: no false sharing on the per-update counters
            errors.capture([&] {
                const SliceRange r = plan.items(t, g);
                const int64_t first = r.first, last = r.last;
                auto worker = work.worker(t);
#ifdef _OPENMP
                // every barrier waits for nt threads: a smaller team would wait forever
                if (omp_get_num_threads() != nt)
                    throw std::runtime_error("lockstep epoch: OpenMP started " +
                                             std::to_string(omp_get_num_threads()) + " of the " +
                                             std::to_string(nt) + " threads asked for (OMP_DYNAMIC or a "
                                             "thread limit?); lockstep needs all of them");
#endif
                uint64_t k_round = k_base;  // updates of the segment's earlier rounds
                for (int64_t round = 0; round < rounds; ++round) {
                    int before = 0, active = 0;
                    for (int u = 0; u < nt; ++u) {
                        if (batches[static_cast<size_t>(u)] <= round) continue;
                        ++active;
                        before += u < t;
                    }
                    const bool mine = batches[static_cast<size_t>(t)] > round;
                    const uint64_t k = k_round + 1 + static_cast<uint64_t>(before);
                    if (mine) clock.value.fetch_add(1, std::memory_order_relaxed);  // claim
                    if (!barrier.arrive_and_wait(errors)) break;
                    if (mine) {
                        const int64_t p = first + round * B;
                        worker.update(perm + p, std::min(B, last - p), perm + last, k,
                                      static_cast<uint32_t>(k - k_base), clock);
                        const uint64_t tau = clock.value.load(std::memory_order_relaxed) - k;
                        st.add(tau);
                        if (cfg.staleness_record) cfg.staleness_record[k - cfg.k0 - 1] = static_cast<int64_t>(tau);
                    }
                    if (!barrier.arrive_and_wait(errors)) break;
                    k_round += static_cast<uint64_t>(active);
                }
                worker.done();
            });
#pragma omp critical(asyncopt_staleness_merge)
            res.staleness.merge(st);
        }
        errors.rethrow();
    });
    return res;
}

}  // namespace asyncopt
