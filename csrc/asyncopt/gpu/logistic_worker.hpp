// What one worker of the GPU executor does for sparse logistic regression: the device analogue of
// LogisticWork (threads/logistic.hpp), with the same update rules (optim/) and the same arithmetic.
// Compiled by nvcc for the kernels (csrc/cuda) and by the host compiler for the emulator
// (host_exec.hpp); a worker is a team of lanes (team.hpp), a warp on the device.
//
// One update of worker w (mini-batch B of its slice, as in threads/hogwild.hpp):
//   read   claim step k; margins z_i = w.x_i + b of B's rows, the lanes splitting each row's
//          nonzeros and summing across the team
//   write  batch of one row: each lane applies the rule to its share of the row's features (a
//          canonical row holds each feature once); larger batches first sum the gradient per
//          distinct feature in the worker's hash table (scratch), as BatchAccumulator does on the
//          CPU (AMSGrad is not linear in g), then apply one update per feature
// Writes race between workers (Hogwild!). With Atomic (SGD only) a weight's step is one atomic add,
// so concurrent steps of a coordinate are never lost; otherwise load + store, as on the CPU.
// The intercept, which every update writes, is read and written in place by each team's leader
// (atomically with Atomic). The CPU's per-thread replicas (threads/intercept.hpp) are not used here: merged
// every 32 updates, W replicas give the intercept a delay of about 32 W updates, and in the
// emulator's lockstep rounds on a 20000-row synthetic set that took SGD's test loss from 0.646 to
// 2.74 at 9 workers; in place it was 0.675.
//
// read and write are separate so that the emulator can run every worker's read before any
// worker's write (lockstep rounds: the worst case of staleness for a given number of workers); the
// kernel runs them back to back (run_worker).
#pragma once

#include <cstdint>

#include "../core/epoch_plan.hpp"
#include "../optim/steps.hpp"
#include "../problems/logistic.hpp"
#include "../core/rng.hpp"
#include "../core/sparse.hpp"

namespace asyncopt {

// Per-worker scratch for mini-batches of more than one row: the rows' gradient coefficients and an
// open-addressing hash table of cap slots (twice the largest batch's nonzeros, a power of two).
struct GpuScratch {
    double* coef = nullptr;      // workers x batch_size
    int32_t* keys = nullptr;     // workers x cap, -1 = empty
    double* grads = nullptr;     // workers x cap
    uint32_t* counts = nullptr;  // workers x cap: rows of the batch holding the feature
    uint32_t* used = nullptr;    // workers x cap: occupied slots, in insertion order
    uint32_t* n_used = nullptr;  // workers
    uint32_t cap = 0;
    int shift = 32;  // Fibonacci hashing keeps the top log2(cap) bits
};

template <class T, class Rule, bool Atomic>
struct LogisticGpuWork {
    using State = typename Rule::State;

    // What an update carries from its read to its write.
    struct InFlight {
        uint64_t k;
        int64_t p, count;  // its rows: perm[p .. p + count)
        double coef_sum;   // sum of the rows' dloss / B: the intercept's gradient (and a one-row batch's coefficient)
        typename Rule::Context ctx;
    };

    CsrView<T> X;
    const double* y = nullptr;  // labels in {-1, +1}
    int64_t* perm = nullptr;    // the visiting order, n entries
    int64_t n = 0;
    State* state = nullptr;     // X.n_cols + 1 coordinates, the intercept last
    const T* reg_scale = nullptr;  // SGD's n/d_j of the sparse regulariser (AMSGrad keeps it in the state)
    const int32_t* active = nullptr;  // features to bring up to date at segment ends
    int64_t n_active = 0;
    Rule rule;
    StepConfig sc;
    int workers = 1;
    int64_t batch = 1;
    int64_t n_seg = 1, g = 0;  // this segment of the epoch's plan
    uint64_t k_base = 0;       // updates before this segment
    double sparse_alpha = 0, intercept_scale = 1;
    bool fit_intercept = true;
    uint64_t* clock = nullptr;   // the step clock, k_base at the segment start
    StalenessStats* stats = nullptr;
    GpuScratch scratch;

    // The epoch start: worker w reshuffles its slice with stream w of seed (threads/hogwild.hpp's order).
    ASYNCOPT_HD void shuffle_slice(int w, uint64_t seed) const {
        Rng rng(seed, static_cast<uint64_t>(w));
        const int64_t lo = slice_begin(n, workers, w);
        shuffle(perm + lo, static_cast<uint64_t>(slice_begin(n, workers, w + 1) - lo), rng);
    }

    ASYNCOPT_HD SliceRange items(int w) const { return segment_items(n, workers, batch, w, g, n_seg); }

    template <class Team>
    ASYNCOPT_HD void read(const Team& team, int w, int64_t p, int64_t count, InFlight& f) const {
        f.p = p;
        f.count = count;
        f.k = team.claim(clock) + 1;
        const uint32_t u = static_cast<uint32_t>(f.k - k_base);
        f.ctx = rule.context(u - 1, u, step_coeffs(sc, f.k, Rule::needs.moments));
        const double inv_b = 1.0 / static_cast<double>(count);
        // one racy read, broadcast: every lane must see the same margin
        const double b =
            fit_intercept ? team.broadcast(team.leader() ? rule.read_intercept(state + X.n_cols) : 0.0) : 0.0;
        double coef_sum = 0;
        for (int64_t q = 0; q < count; ++q) {
            const int64_t i = perm[p + q];
            const auto row = X.row(i);
            const double z = b + team.sum(rule.dot(state, row.idx, row.val, row.nnz, f.ctx, team.rank(), team.size()));
            const double coef = logistic::dloss(z, y[i]) * inv_b;
            if (count > 1 && team.leader()) scratch.coef[w * batch + q] = coef;
            coef_sum += coef;
        }
        f.coef_sum = coef_sum;
        team.sync();
    }

    template <class Team>
    ASYNCOPT_HD void write(const Team& team, int w, const InFlight& f, StalenessStats& local) const {
        const double inv_b = 1.0 / static_cast<double>(f.count);
        if (f.count == 1) {
            const auto row = X.row(perm[f.p]);
            for (int64_t a = team.rank(); a < row.nnz; a += team.size()) {
                const int32_t j = row.idx[a];
                const double regc =
                    sparse_alpha > 0 ? logistic::sparse_reg_coef(sparse_alpha, rule.reg_scale(state + j, reg_scale, j), 1, 1.0)
                                     : 0.0;
                apply(state + j, f.ctx, f.coef_sum * static_cast<double>(row.val[a]), regc);
            }
        } else {
            for (int64_t q = 0; q < f.count; ++q) {
                const auto row = X.row(perm[f.p + q]);
                const double coef = scratch.coef[w * batch + q];
                for (int64_t a = team.rank(); a < row.nnz; a += team.size())
                    accumulate(team, w, row.idx[a], coef * static_cast<double>(row.val[a]));
            }
            team.sync();
            const size_t base = static_cast<size_t>(w) * scratch.cap;
            const uint32_t n_used = scratch.n_used[w];
            for (uint32_t i = static_cast<uint32_t>(team.rank()); i < n_used; i += static_cast<uint32_t>(team.size())) {
                const size_t h = base + scratch.used[base + i];
                const int32_t j = scratch.keys[h];
                const double regc = sparse_alpha > 0 ? logistic::sparse_reg_coef(sparse_alpha,
                                                                                  rule.reg_scale(state + j, reg_scale, j),
                                                                                  scratch.counts[h], inv_b)
                                                     : 0.0;
                apply(state + j, f.ctx, scratch.grads[h], regc);
                scratch.keys[h] = -1;
                scratch.grads[h] = 0;
                scratch.counts[h] = 0;
            }
            team.sync();
            if (team.leader()) scratch.n_used[w] = 0;
            team.sync();
        }
        if (team.leader()) {
            if (fit_intercept) {
                if constexpr (Atomic)
                    rule.apply_intercept_atomic(state + X.n_cols, f.ctx, f.coef_sum, intercept_scale);
                else
                    rule.apply_intercept(state + X.n_cols, f.ctx, f.coef_sum, intercept_scale);
            }
            // the clock after the write: steps other workers claimed in between are the delay
            local.add(team.clock(clock) - f.k);
        }
    }

    // A worker's whole share of the segment, each update's read followed by its write: the kernel.
    template <class Team>
    ASYNCOPT_HD void run_worker(const Team& team, int w) const {
        StalenessStats local;
        InFlight f;
        const SliceRange r = items(w);
        for (int64_t p = r.first; p < r.last; p += batch) {
            const int64_t count = r.last - p < batch ? r.last - p : batch;
            read(team, w, p, count, f);
            write(team, w, f, local);
        }
        if (team.leader()) team.merge(stats, local);
    }

    // Segment end: coordinate a of the active list brought to the segment's last step.
    ASYNCOPT_HD void finish(int64_t a, uint32_t n_updates) const { rule.finish(state + active[a], n_updates); }

private:
    ASYNCOPT_HD void apply(State* p, const typename Rule::Context& ctx, double g, double regc) const {
        if constexpr (Atomic)
            rule.apply_atomic(p, ctx, g, regc);
        else
            rule.apply(p, ctx, g, regc);
    }

    template <class Team>
    ASYNCOPT_HD void accumulate(const Team& team, int w, int32_t j, double g) const {
        const size_t base = static_cast<size_t>(w) * scratch.cap;
        const uint32_t mask = scratch.cap - 1;
        uint32_t h = (static_cast<uint32_t>(j) * 2654435769u) >> scratch.shift;
        for (;;) {
            const int32_t prev = team.cas(scratch.keys + base + h, -1, j);
            if (prev == -1) {
                scratch.used[base + team.add(scratch.n_used + w, 1u)] = h;
                break;
            }
            if (prev == j) break;
            h = (h + 1) & mask;
        }
        team.add(scratch.grads + base + h, g);
        team.add(scratch.counts + base + h, 1u);
    }
};

// Log-loss sum and correct predictions of the model (state, settled) on (X, y): team w of n_teams
// takes rows w, w + n_teams, ...; the leader adds the team's totals to *loss / *correct.
template <class T, class State>
struct LogisticGpuEval {
    CsrView<T> X;
    const double* y = nullptr;
    const State* state = nullptr;
    bool fit_intercept = true;
    double* loss = nullptr;
    unsigned long long* correct = nullptr;

    template <class Team>
    ASYNCOPT_HD void rows(const Team& team, int64_t w, int64_t n_teams) const {
        const double b = fit_intercept ? static_cast<double>(state[X.n_cols].w) : 0.0;
        double l = 0;
        unsigned long long ok = 0;
        for (int64_t i = w; i < X.n_rows; i += n_teams) {
            const auto row = X.row(i);
            double z = 0;
            for (int64_t a = team.rank(); a < row.nnz; a += team.size())
                z += static_cast<double>(row.val[a]) * static_cast<double>(state[row.idx[a]].w);
            z = b + team.sum(z);
            l += logistic::loss(z, y[i]);
            ok += ((z > 0 ? 1.0 : -1.0) == y[i]);
        }
        if (team.leader()) {
            team.add(loss, l);
            team.add(correct, ok);
        }
    }
};

}  // namespace asyncopt
