// The Hogwild! driver (Niu et al. 2011; AsySG-incon of Lian et al. 2015): one epoch of lock-free
// mini-batch updates from n_threads OpenMP threads on a shared model.
//
// Work split: the epoch's row order lives in `perm` (kept across epochs by the caller). Thread t
// owns the contiguous slice [n t / T, n (t+1) / T) of it, reshuffles that slice with its own RNG
// stream at the start of the epoch, and walks it in mini-batches. The caller shuffles `perm` once
// globally at the start of a fit, so slices are random samples of the rows.
//
// One update (mini-batch B):
//   claim  k = ++clock: the update's global step number (its step size, its stamps); the model
//          it reads is the one as of step k - 1
//   read   margins z_i = w.x_i + b of B's rows from the shared model
//   write  for each feature j in B: w_j <- rule(w_j, mean gradient of B at j), lock-free
// Staleness tau: the number of updates other threads began between this update's read and its
// write (Lian et al.'s delay; 0 with one thread). A thread's next claim follows its write at once,
// so tau = k_next - 1 - k comes out of that claim: one atomic operation per update, on one
// contended cache line. Each thread keeps its own counters, merged after the epoch.
//
// The intercept is touched by every update, so with several threads its cache line would move
// between cores twice per update and cap the speedup. Each thread therefore updates a private
// replica and merges it into the shared intercept every kInterceptSync updates (InterceptReplica):
// the intercept's own staleness grows by up to kInterceptSync updates per other thread. With one
// thread the shared intercept is updated directly, so a one-thread run is the plain algorithm.
//
// The number of updates of an epoch is known before it starts (each slice gives ceil(len / B)
// mini-batches), which fixes the horizon of the catch-up tables (optim/steps.hpp).
//
// A rule (optim/sgd.hpp, optim/amsgrad.hpp) supplies: State (one coordinate), Context (what an
// update computes once, not per nonzero), read / apply / apply_intercept / read_intercept, finish
// (bring a coordinate up to date at a segment end), merge (fold a thread's intercept replica back),
// max_segment_updates.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <vector>

#include "parallel.hpp"
#include "problems/logistic.hpp"
#include "rng.hpp"
#include "shared.hpp"
#include "sparse.hpp"
#include "optim/steps.hpp"

namespace asyncopt {

struct EpochConfig {
    int n_threads = 1;
    int64_t batch_size = 1;
    bool shuffle = true;
    uint64_t seed = 0;         // this epoch's seed; thread t draws stream t from it
    uint64_t k0 = 0;           // updates applied before this epoch (the global step clock)
    double sparse_alpha = 0;   // alpha of the frequency-scaled sparse L2 (0 = off), see below
    bool fit_intercept = true;
};

// Staleness histogram: bin 0 holds tau = 0, bin b >= 1 holds tau in [2^(b-1), 2^b).
constexpr int kStalenessBins = 48;

struct StalenessStats {
    uint64_t count = 0, sum = 0, max = 0;
    uint64_t hist[kStalenessBins] = {};

    void add(uint64_t tau) noexcept {
        ++count;
        sum += tau;
        max = std::max(max, tau);
        int b = tau == 0 ? 0 : 64 - __builtin_clzll(tau);
        hist[std::min(b, kStalenessBins - 1)] += 1;
    }
    void merge(const StalenessStats& o) noexcept {
        count += o.count;
        sum += o.sum;
        max = std::max(max, o.max);
        for (int b = 0; b < kStalenessBins; ++b) hist[b] += o.hist[b];
    }
};

struct EpochResult {
    uint64_t updates = 0;
    StalenessStats staleness;
};

inline int64_t slice_begin(int64_t n, int n_threads, int t) noexcept {
    return static_cast<int64_t>(static_cast<__int128>(n) * t / n_threads);
}

// Per-thread accumulator for mini-batches of more than one row: a feature that several rows of the
// batch share gets one update with its summed gradient (AMSGrad is not linear in g). An
// open-addressing hash table sized to twice the batch's nonzeros stays in L1/L2 whatever the
// number of features (a dense d-sized array would add a cache miss per nonzero and O(d) memory).
// Features come out in order of first occurrence, so one-thread runs stay deterministic.
class BatchAccumulator {
public:
    void reserve(int64_t nnz) {
        size_t cap = 16;
        while (cap < 2 * static_cast<size_t>(nnz)) cap *= 2;
        if (cap <= key_.size()) return;
        key_.assign(cap, -1);
        grad_.assign(cap, 0.0);
        count_.assign(cap, 0);
        shift_ = 32;
        for (size_t c = cap; c > 1; c >>= 1) --shift_;
    }
    void add(int32_t j, double g) {
        // Fibonacci hashing: the top bits of j * 2^32/phi spread consecutive ids apart.
        size_t h = (static_cast<uint32_t>(j) * 2654435769u) >> shift_;
        const size_t mask = key_.size() - 1;
        while (key_[h] != j) {
            if (key_[h] < 0) {
                key_[h] = j;
                used_.push_back(static_cast<uint32_t>(h));
                break;
            }
            h = (h + 1) & mask;
        }
        grad_[h] += g;
        count_[h] += 1;
    }
    template <class F>
    void drain(F&& f) {
        for (uint32_t h : used_) {
            f(key_[h], grad_[h], count_[h]);
            key_[h] = -1;
            grad_[h] = 0;
            count_[h] = 0;
        }
        used_.clear();
    }

private:
    std::vector<int32_t> key_;
    std::vector<double> grad_;
    std::vector<uint32_t> count_;
    std::vector<uint32_t> used_;
    int shift_ = 32;
};

constexpr int kInterceptSync = 32;

// A thread's view of the intercept (see the header comment). direct: operate on the shared state.
template <class Rule>
class InterceptReplica {
public:
    using State = typename Rule::State;
    InterceptReplica(const Rule& rule, State* shared, bool direct) : rule_(rule), shared_(shared), direct_(direct) {
        refresh();
    }
    State* target() noexcept { return direct_ ? shared_ : &replica_; }
    double value() noexcept { return rule_.read_intercept(target()); }
    void updated() noexcept {
        if (!direct_ && ++pending_ == kInterceptSync) sync();
    }
    void sync() noexcept {
        if (direct_ || pending_ == 0) return;
        rule_.merge(shared_, replica_, base_);
        refresh();
    }

private:
    void refresh() noexcept {
        pending_ = 0;
        if (direct_) return;
        // A racy snapshot: another thread may be merging; Hogwild! tolerates it.
        replica_ = *shared_;
        base_ = replica_;
    }
    const Rule& rule_;
    State* shared_;
    bool direct_;
    State replica_{}, base_{};
    int pending_ = 0;
};

// The step clock on a cache line of its own: it is the one word every update writes.
struct alignas(64) StepClock {
    std::atomic<uint64_t> value;
};

// Shuffled rows sit at random places in memory: each costs DRAM misses on indptr, then on its
// indices and values, which the core would otherwise wait out one row at a time. RowPrefetcher runs
// a two-stage software pipeline over the visiting order: the indptr entries of the row `far` ahead,
// and the index/value lines of the row `near` ahead (whose indptr arrived meanwhile).
template <class T>
class RowPrefetcher {
public:
    RowPrefetcher(const CsrView<T>& X, const int64_t* perm, int64_t end) : X_(X), perm_(perm), end_(end) {}

    // The model lines of the next row (its indices arrived with the previous call's prefetch): a
    // large model's state is in DRAM or L3, and these misses would otherwise be taken one row at a time.
    template <class State>
    void model_ahead_of(int64_t q, const State* state) const noexcept {
        if (q + 1 >= end_) return;
        const auto row = X_.row(perm_[q + 1]);
        for (int64_t a = 0; a < row.nnz; ++a) __builtin_prefetch(state + row.idx[a], 1);
    }

    void ahead_of(int64_t q) const noexcept {
        if (q + kFar < end_) __builtin_prefetch(X_.indptr + perm_[q + kFar]);
        if (q + kNear < end_) {
            const int64_t i = perm_[q + kNear];
            const int64_t b = X_.indptr[i], e = X_.indptr[i + 1];
            const char* idx = reinterpret_cast<const char*>(X_.indices + b);
            const char* val = reinterpret_cast<const char*>(X_.data + b);
            const int64_t idx_bytes = (e - b) * static_cast<int64_t>(sizeof(int32_t));
            const int64_t val_bytes = (e - b) * static_cast<int64_t>(sizeof(T));
            for (int64_t o = 0; o < idx_bytes; o += 64) __builtin_prefetch(idx + o);
            for (int64_t o = 0; o < val_bytes; o += 64) __builtin_prefetch(val + o);
        }
    }

private:
    static constexpr int64_t kNear = 2, kFar = 6;
    const CsrView<T>& X_;
    const int64_t* perm_;
    int64_t end_;
};

template <class T>
int64_t batch_nnz(const CsrView<T>& X, const int64_t* perm, int64_t p, int64_t e) noexcept {
    int64_t nnz = 0;
    for (int64_t q = p; q < e; ++q) nnz += X.indptr[perm[q] + 1] - X.indptr[perm[q]];
    return nnz;
}

// One epoch of logistic-regression training, Rule and Steps as in optim/. state has n_cols + 1
// entries (the last is the intercept). With sparse_alpha > 0 the Hogwild! paper's frequency-scaled
// regulariser puts (n/d_j) alpha w_j on each row's own features (d_j = rows containing feature j),
// an unbiased estimate of the dense alpha w; the rule finds n/d_j in reg_scale[j] or, for AMSGrad,
// in the coordinate's own state line. active lists the features to
// bring up to date at the end (every feature this model has ever seen; the others are zero).
//
// The epoch runs as one or more segments (Rule::max_segment_updates: SGD's scale must not
// underflow, stamps must fit 32 bits). Each thread's batches are split evenly over the segments; a
// segment is one parallel region, built with its own step tables, and ends with every active
// coordinate brought up to date, so stamps and scales restart from 0 and 1.
template <class T, class Rule, class Steps>
EpochResult hogwild_epoch(const CsrView<T>& X, const double* y, int64_t* perm, const T* reg_scale,
                          typename Rule::State* state, const StepConfig& sc, const EpochConfig& cfg,
                          const int32_t* active, int64_t n_active) {
    using State = typename Rule::State;
    const int64_t n = X.n_rows;
    const int nt = have_openmp() ? std::max(1, cfg.n_threads) : 1;
    const int64_t B = cfg.batch_size;
    State* const bias = state + X.n_cols;
    ParallelExceptions errors;
    EpochResult res;

    // batches per thread, and how many segments the epoch needs
    std::vector<int64_t> lo(nt + 1), n_batches(nt);
    uint64_t total = 0;
    for (int t = 0; t <= nt; ++t) lo[t] = slice_begin(n, nt, t);
    for (int t = 0; t < nt; ++t) {
        n_batches[t] = (lo[t + 1] - lo[t] + B - 1) / B;
        total += static_cast<uint64_t>(n_batches[t]);
    }
    const uint64_t max_seg = std::max<uint64_t>(1, Rule::max_segment_updates(sc));
    // Prefetching the model's lines pays only when the model does not sit in the core's own caches
    // (measured on 2^20 features: AMSGrad's 32 MiB state 30% faster, SGD's 4 MiB 6% slower).
    const bool prefetch_model = static_cast<double>(X.n_cols) * sizeof(State) > 8.0 * (1 << 20);
    const int64_t n_seg = static_cast<int64_t>(std::max<uint64_t>(1, (total + max_seg - 1) / max_seg));
    auto seg_batch = [&](int t, int64_t g) { return n_batches[t] * g / n_seg; };  // thread t's first batch of g

    if (cfg.shuffle) {
#pragma omp parallel num_threads(nt)
        {
            const int t = thread_id();
            Rng rng(cfg.seed, static_cast<uint64_t>(t));
            shuffle(perm + lo[t], static_cast<uint64_t>(lo[t + 1] - lo[t]), rng);
        }
    }

    uint64_t k_base = cfg.k0;  // updates before this segment
    for (int64_t g = 0; g < n_seg; ++g) {
        uint64_t seg_updates = 0;
        for (int t = 0; t < nt; ++t) seg_updates += static_cast<uint64_t>(seg_batch(t, g + 1) - seg_batch(t, g));
        const Steps steps(sc, k_base, static_cast<uint32_t>(seg_updates), Rule::amsgrad);
        const Rule rule(steps, sc);
        StepClock clock;
        clock.value.store(k_base);

#pragma omp parallel num_threads(nt)
        {
            const int t = thread_id();
            StalenessStats st;  // thread-local: no false sharing on the per-update counters
            errors.capture([&] {
                const int64_t first = lo[t] + seg_batch(t, g) * B;
                const int64_t last = std::min(lo[t + 1], lo[t] + seg_batch(t, g + 1) * B);
                BatchAccumulator acc;
                RowPrefetcher<T> prefetch(X, perm, last);
                InterceptReplica<Rule> intercept(rule, bias, nt == 1);
                std::vector<double> coef(static_cast<size_t>(B));
                uint64_t prev_k = 0;  // the previous update's step number (0: none yet)

                for (int64_t p = first; p < last; p += B) {
                    if (errors.failed()) break;
                    const int64_t e = std::min(p + B, last);
                    const double inv_b = 1.0 / static_cast<double>(e - p);

                    // claim: the step number; the claim also closes the previous update's delay window
                    const uint64_t k = clock.value.fetch_add(1, std::memory_order_relaxed) + 1;
                    if (prev_k) st.add(k - 1 - prev_k);
                    prev_k = k;
                    const uint32_t u = static_cast<uint32_t>(k - k_base);
                    const auto ctx = rule.context(u - 1, u, step_coeffs(sc, k, Rule::amsgrad));

                    // read: margins of the batch's rows at the model as of step k - 1
                    double coef_sum = 0;
                    const double b = cfg.fit_intercept ? intercept.value() : 0.0;
                    for (int64_t q = p; q < e; ++q) {
                        prefetch.ahead_of(q);
                        if (prefetch_model) prefetch.model_ahead_of(q, state);
                        const int64_t i = perm[q];
                        const auto row = X.row(i);
                        double z = b;
                        for (int64_t a = 0; a < row.nnz; ++a)
                            z += static_cast<double>(row.val[a]) * rule.read(state + row.idx[a], ctx);
                        coef[q - p] = logistic::dloss(z, y[i]) * inv_b;
                        coef_sum += coef[q - p];
                    }

                    // write: one lock-free update per distinct feature of the batch
                    if (e - p == 1) {
                        const auto row = X.row(perm[p]);
                        for (int64_t a = 0; a < row.nnz; ++a) {
                            const int32_t j = row.idx[a];
                            const double regc =
                                cfg.sparse_alpha > 0 ? cfg.sparse_alpha * rule.reg_scale(state + j, reg_scale, j) : 0.0;
                            rule.apply(state + j, ctx, coef[0] * static_cast<double>(row.val[a]), regc);
                        }
                    } else {
                        acc.reserve(batch_nnz(X, perm, p, e));
                        for (int64_t q = p; q < e; ++q) {
                            const auto row = X.row(perm[q]);
                            for (int64_t a = 0; a < row.nnz; ++a)
                                acc.add(row.idx[a], coef[q - p] * static_cast<double>(row.val[a]));
                        }
                        acc.drain([&](int32_t j, double gj, uint32_t rows_with_j) {
                            const double regc = cfg.sparse_alpha > 0 ? cfg.sparse_alpha *
                                                                           rule.reg_scale(state + j, reg_scale, j) *
                                                                           rows_with_j * inv_b
                                                                     : 0.0;
                            rule.apply(state + j, ctx, gj, regc);
                        });
                    }
                    if (cfg.fit_intercept) {
                        rule.apply_intercept(intercept.target(), ctx, coef_sum);
                        intercept.updated();
                    }
                }
                intercept.sync();
                if (prev_k) st.add(clock.value.load(std::memory_order_relaxed) - prev_k);
            });
#pragma omp critical(asyncopt_staleness_merge)
            res.staleness.merge(st);
        }
        errors.rethrow();

        // Segment end: every coordinate this model can have moved is brought to the last step.
        const uint32_t end = static_cast<uint32_t>(seg_updates);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t a = 0; a < n_active; ++a) rule.finish(state + active[a], end);
        k_base += seg_updates;
    }
    res.updates = k_base - cfg.k0;
    return res;
}

// Mean log-loss and accuracy of the current model on (X, y); read-only, parallel over rows.
template <class T, class State>
void evaluate_logistic(const CsrView<T>& X, const double* y, const State* state, bool fit_intercept,
                       int n_threads, double* loss_sum, int64_t* correct) {
    const double b = fit_intercept ? static_cast<double>(state[X.n_cols].w) : 0.0;
    double loss = 0;
    int64_t ok = 0;
    const int nt = have_openmp() ? std::max(1, n_threads) : 1;
    (void)nt;  // unused without OpenMP
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : loss, ok)
    for (int64_t i = 0; i < X.n_rows; ++i) {
        const auto row = X.row(i);
        double z = b;
        for (int64_t a = 0; a < row.nnz; ++a) z += static_cast<double>(row.val[a]) * state[row.idx[a]].w;
        loss += logistic::loss(z, y[i]);
        ok += ((z > 0 ? 1.0 : -1.0) == y[i]);
    }
    *loss_sum = loss;
    *correct = ok;
}

// sum_j w_j^2 over the listed features (all others are zero).
template <class State>
double squared_norm(const State* state, const int32_t* active, int64_t n_active) {
    double s = 0;
    for (int64_t a = 0; a < n_active; ++a) {
        const double w = state[active[a]].w;
        s += w * w;
    }
    return s;
}

}  // namespace asyncopt
