// The process-wide pool of sleeping threads that runs the Hogwild! epochs, and its elastic team.
//
// Why not an OpenMP parallel region: a region's end waits for every thread of its team, including
// one the OS has not yet scheduled. In a real user's process the cores are shared: scikit-learn's
// vendored OpenMP runtime, OpenBLAS's threads and other programs all want them, and on a 2-core
// machine a 2-thread region then waits a scheduler time slice for its second thread, twice per
// epoch (measured: a 2-thread fit of the rcv1 sample took 160-330 ms after a scikit-learn fit in
// the same process, against 5 ms at one thread; issue 11).
//
// An elastic team never waits for a thread that has not started: run(n, body) runs body(0) on the
// caller at once and wakes up to n - 1 pool threads; each takes the next slot when it wakes, but
// only while the job is still open. The caller closes the job when its own body returns (the body
// claims its work dynamically, so by then every piece of work is claimed) and waits only for the
// threads that joined, which are running. A late thread finds the job closed and goes back to
// sleep. Pool threads sleep on a condition variable between jobs, so an idle pool costs nothing.
//
// Bodies must therefore take their work from shared counters (hogwild.hpp's slice cursors), never
// from their slot number alone: a slot may never run.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace asyncopt {

class ThreadPool {
public:
    // The process's pool (created on first use). After fork() the child starts an empty one: the
    // parent's threads do not exist there, and its mutex may have been held by one of them.
    static ThreadPool& instance() {
        static ThreadPool* pool = [] {
            pthread_atfork(nullptr, nullptr, [] { current() = new ThreadPool(); });  // the old one leaks
            return current() = new ThreadPool();
        }();
        (void)pool;
        return *current();
    }

    // body(slot) on the caller (slot 0) and on the pool threads that wake while the job is open
    // (slots 1 .. n-1, in order of arrival; each slot at most once per job, so a body may index
    // per-slot data by it). Returns once every body that started has returned.
    // Jobs from several Python threads are serialised, so a body must not start a job itself.
    // body must not throw (wrap it in ParallelExceptions::capture).
    void run(int n, const std::function<void(int)>& body) {
        if (n <= 1) {
            body(0);
            return;
        }
        std::lock_guard<std::mutex> one_job(job_mutex_);
        {
            std::unique_lock<std::mutex> lock(mutex_);
            // The team is elastic, so a thread the system refuses to create (std::system_error: a
            // process or memory limit) only makes it smaller: the caller and the threads that exist
            // still do all the work. The bindings bound n by kMaxThreads (core/parallel.hpp) before.
            while (static_cast<int>(threads_.size()) < n - 1) {
                try {
                    threads_.emplace_back([this] { serve(); });
                } catch (const std::system_error&) {
                    break;
                }
            }
            body_ = &body;
            slots_ = n;
            next_slot_ = 1;  // the caller has slot 0
            joined_ = 1;     // the caller
            open_ = true;
            ++generation_;
        }
        wake_.notify_all();
        body(0);
        std::unique_lock<std::mutex> lock(mutex_);
        open_ = false;
        --joined_;
        if (late_joiners_) wake_.notify_all();  // the held-back threads may look now
        done_.wait(lock, [this] { return joined_ == 0; });
        body_ = nullptr;
    }

    // Pool threads started so far (they sleep between jobs).
    int size() {
        std::lock_guard<std::mutex> lock(mutex_);
        return static_cast<int>(threads_.size());
    }

    // For tests of the mechanism, deterministically: every pool thread arrives only after the
    // caller has closed the job (as if the OS never scheduled it in time), so a job must be done
    // by the caller alone, and no body may wait for another slot.
    void hold_joiners_for_testing(bool on) {
        std::lock_guard<std::mutex> lock(mutex_);
        late_joiners_ = on;
    }

    // f(c, lo, hi) for the chunks [lo, hi) = [c chunk, (c + 1) chunk) of [0, n), claimed by an
    // elastic team of up to n_threads. Which thread runs a chunk is up to the scheduler, so a
    // reduction that must not depend on it keeps one partial per chunk c.
    template <class F>
    void parallel_chunks(int n_threads, int64_t n, int64_t chunk, F&& f) {
        if (n_threads <= 1 || n <= chunk) {
            for (int64_t lo = 0, c = 0; lo < n; lo += chunk, ++c) f(c, lo, std::min(n, lo + chunk));
            return;
        }
        std::atomic<int64_t> next{0};
        run(n_threads, [&](int) {
            for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) * chunk < n;)
                f(c, c * chunk, std::min(n, (c + 1) * chunk));
        });
    }

    // f(i) for i in [0, n), in chunks of `chunk` over an elastic team of up to n_threads.
    template <class F>
    void parallel_for(int n_threads, int64_t n, int64_t chunk, F&& f) {
        parallel_chunks(n_threads, n, chunk, [&](int64_t, int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) f(i);
        });
    }

private:
    ThreadPool() = default;
    static ThreadPool*& current() {
        static ThreadPool* p = nullptr;
        return p;
    }

    void serve() {
        uint64_t seen = 0;
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return generation_ != seen; });
            seen = generation_;
            if (late_joiners_) {  // arrive after the close: never join
                wake_.wait(lock, [&] { return !open_ || generation_ != seen; });
                continue;
            }
            if (!open_ || next_slot_ >= slots_) continue;  // too late for this job: sleep again
            // The slot comes from its own counter, not from joined_: joined_ falls as bodies return,
            // so numbering by it handed a slot that a running body still held to a later joiner (two
            // threads in slot 2 at once: found by ThreadSanitizer, tools/tsan.sh, as a race on
            // LogisticWork's per-slot progressive loss).
            const int slot = next_slot_++;
            ++joined_;
            const std::function<void(int)>* body = body_;
            lock.unlock();
            (*body)(slot);
            lock.lock();
            if (--joined_ == 0) done_.notify_one();
        }
    }

    std::mutex job_mutex_;  // one job at a time
    std::mutex mutex_;      // guards everything below
    std::condition_variable wake_, done_;
    std::vector<std::thread> threads_;  // detached in effect: the pool lives as long as the process
    const std::function<void(int)>* body_ = nullptr;
    int slots_ = 0;
    int next_slot_ = 0;  // the next slot to hand out: each of 1 .. slots_ - 1 at most once per job
    int joined_ = 0;     // bodies of the current job still running (the caller's included)
    bool open_ = false;
    bool late_joiners_ = false;
    uint64_t generation_ = 0;
};

}  // namespace asyncopt
