// The GPU executor emulated on the host: the kernels' per-worker code (logistic_worker.hpp) run by
// one host thread with one-lane teams, so every line of it is tested on machines without a GPU.
//
// Workers run in lockstep rounds: every worker with rows left makes its update's read, then every
// such worker makes its write, in worker order. Each round's updates therefore all read the model
// as of the round's start: the delay of the i-th write of a round of W is W - 1 - i, the worst a
// GPU running W workers at the same pace would see. With one worker it is the plain sequential
// algorithm, the CPU's one-thread run.
#pragma once

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "../core/epoch_plan.hpp"
#include "../problems/logistic.hpp"
#include "team.hpp"

namespace asyncopt {

struct HostExec {
    static void* alloc(size_t bytes) {
        void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!p) throw std::bad_alloc();
        return p;
    }
    static void release(void* p) noexcept { std::free(p); }
    static void zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }
    static void upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
    static void download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
    static void synchronize() noexcept {}

    template <class Work>
    static void shuffle(const Work& work, uint64_t seed) {
        for (int w = 0; w < work.workers; ++w) work.shuffle_slice(w, seed);
    }

    template <class Work>
    static void segment(const Work& work) {
        const HostTeam team;
        const int W = work.workers;
        std::vector<typename Work::InFlight> flight(W);
        std::vector<StalenessStats> local(W);
        std::vector<int64_t> pos(W), last(W);
        for (int w = 0; w < W; ++w) {
            const SliceRange r = work.items(w);
            pos[w] = r.first;
            last[w] = r.last;
        }
        for (bool any = true; any;) {
            any = false;
            for (int w = 0; w < W; ++w)
                if (pos[w] < last[w]) {
                    work.read(team, w, pos[w], std::min(work.batch, last[w] - pos[w]), flight[w]);
                    any = true;
                }
            for (int w = 0; w < W; ++w)
                if (pos[w] < last[w]) {
                    work.write(team, w, flight[w], local[w]);
                    pos[w] += work.batch;
                }
        }
        for (int w = 0; w < W; ++w) team.merge(work.stats, local[w]);
    }

    template <class Work>
    static void finish(const Work& work, uint32_t n_updates) {
        for (int64_t a = 0; a < work.n_active; ++a) work.finish(a, n_updates);
    }

    template <class Eval>
    static void evaluate(const Eval& ev) {
        ev.rows(HostTeam{}, 0, 1);
    }

    static void column_counts(const int32_t* indices, int64_t nnz, int32_t* counts) {
        for (int64_t p = 0; p < nnz; ++p) counts[indices[p]] += 1;
    }

    template <class State>
    static double squared_norm(const State* state, const int32_t* active, int64_t n_active) {
        return ::asyncopt::squared_norm(state, active, n_active);
    }
};

}  // namespace asyncopt
