// The Hogwild! driver (Niu et al. 2011; AsySG-incon of Lian et al. 2015): one epoch of lock-free
// mini-batch updates from n_threads OpenMP threads on a shared model.
//
// Work split: the epoch's row order lives in `perm` (kept across epochs by the caller). Thread t
// owns the contiguous slice [n t / T, n (t+1) / T) of it, reshuffles that slice with its own RNG
// stream at the start of the epoch, and walks it in mini-batches. The caller shuffles `perm` once
// globally at the start of a fit, so slices are random samples of the rows.
//
// One update (mini-batch B):
//   read   r = clock; margins z_i = w.x_i + b of B's rows from the shared model as of step r
//   claim  k = ++clock (the update's global step number: its step size, its stamps)
//   write  for each feature j in B: w_j <- rule(w_j, mean gradient of B at j), lock-free
// Staleness tau = k - 1 - r: the number of updates other threads claimed between this update's
// read and its write (Lian et al.'s delay); 0 with one thread. Each thread keeps its own counters,
// merged after the epoch.
//
// The number of updates of an epoch is known before it starts (each slice gives ceil(len / B)
// mini-batches), which fixes the horizon of the catch-up tables (optim/steps.hpp).
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

// Updates in one epoch: the sum over thread slices of ceil(slice length / batch size).
inline uint64_t updates_per_epoch(int64_t n, int n_threads, int64_t batch) noexcept {
    uint64_t total = 0;
    for (int t = 0; t < n_threads; ++t) {
        const int64_t len = slice_begin(n, n_threads, t + 1) - slice_begin(n, n_threads, t);
        total += static_cast<uint64_t>((len + batch - 1) / batch);
    }
    return total;
}

// Per-thread dense accumulator for mini-batches of more than one row: a feature that several rows
// of the batch share gets one update with its summed gradient (AMSGrad is not linear in g).
// calloc'd, so only the pages of features that occur are ever touched: O(d) address space, not O(d)
// work, which keeps a 2^24-feature model as cheap as a 2^14 one.
class BatchAccumulator {
public:
    explicit BatchAccumulator(int64_t d)
        : grad_(static_cast<double*>(std::calloc(static_cast<size_t>(d), sizeof(double)))),
          count_(static_cast<uint32_t*>(std::calloc(static_cast<size_t>(d), sizeof(uint32_t)))) {
        if (!grad_ || !count_) throw std::bad_alloc();
    }
    void add(int32_t j, double g) {
        if (count_.get()[j]++ == 0) touched_.push_back(j);
        grad_.get()[j] += g;
    }
    template <class F>
    void drain(F&& f) {
        for (int32_t j : touched_) {
            f(j, grad_.get()[j], count_.get()[j]);
            grad_.get()[j] = 0;
            count_.get()[j] = 0;
        }
        touched_.clear();
    }

private:
    struct Free {
        void operator()(void* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<double, Free> grad_;
    std::unique_ptr<uint32_t, Free> count_;
    std::vector<int32_t> touched_;
};

// One epoch of logistic-regression training. state has n_cols + 1 entries (the last is the
// intercept). reg_scale[j] = n / d_j (d_j = rows containing feature j) when sparse_alpha > 0: the
// Hogwild! paper's frequency-scaled regulariser puts (n/d_j) alpha w_j on each row's own features,
// an unbiased estimate of the dense alpha w. active lists the features to catch up at the end.
template <class T, class Rule>
EpochResult hogwild_epoch(const CsrView<T>& X, const double* y, int64_t* perm, const T* reg_scale,
                          typename Rule::State* state, const Rule& rule, const StepConfig& sc,
                          const EpochConfig& cfg, const int32_t* active, int64_t n_active) {
    using State = typename Rule::State;
    const int64_t n = X.n_rows;
    const int nt = have_openmp() ? std::max(1, cfg.n_threads) : 1;
    const int64_t B = cfg.batch_size;
    const uint64_t k0 = cfg.k0;
    State* const bias = state + X.n_cols;

    std::atomic<uint64_t> clock{k0};
    ParallelExceptions errors;
    std::vector<StalenessStats> stats(nt);

#pragma omp parallel num_threads(nt)
    {
        const int t = thread_id();
        errors.capture([&] {
            const int64_t lo = slice_begin(n, nt, t), hi = slice_begin(n, nt, t + 1);
            Rng rng(cfg.seed, static_cast<uint64_t>(t));
            if (cfg.shuffle) shuffle(perm + lo, static_cast<uint64_t>(hi - lo), rng);
            std::unique_ptr<BatchAccumulator> acc;
            if (B > 1) acc.reset(new BatchAccumulator(X.n_cols));
            std::vector<double> coef(static_cast<size_t>(B));
            StalenessStats& st = stats[t];

            for (int64_t p = lo; p < hi; p += B) {
                if (errors.failed()) return;
                const int64_t e = std::min(p + B, hi);
                const double inv_b = 1.0 / static_cast<double>(e - p);

                // read: margins of the batch's rows at the model as of step r
                const uint64_t r = clock.load(std::memory_order_relaxed);
                const uint32_t ur = static_cast<uint32_t>(r - k0);
                double coef_sum = 0;
                for (int64_t q = p; q < e; ++q) {
                    const int64_t i = perm[q];
                    const auto row = X.row(i);
                    double z = cfg.fit_intercept ? static_cast<double>(shared_load(&bias->w)) : 0.0;
                    for (int64_t a = 0; a < row.nnz; ++a)
                        z += static_cast<double>(row.val[a]) * rule.read(state + row.idx[a], ur);
                    coef[q - p] = logistic::dloss(z, y[i]) * inv_b;
                    coef_sum += coef[q - p];
                }

                // claim the update's step number
                const uint64_t k = clock.fetch_add(1, std::memory_order_relaxed) + 1;
                st.add(k - 1 - r);
                const StepCoeffs c = step_coeffs(sc, k, Rule::amsgrad);
                const uint32_t uk = static_cast<uint32_t>(k - k0);

                // write: one lock-free update per distinct feature of the batch
                if (e - p == 1) {
                    const auto row = X.row(perm[p]);
                    for (int64_t a = 0; a < row.nnz; ++a) {
                        const int32_t j = row.idx[a];
                        const double regc = cfg.sparse_alpha > 0 ? cfg.sparse_alpha * reg_scale[j] : 0.0;
                        rule.apply(state + j, uk, coef[0] * static_cast<double>(row.val[a]), regc, c);
                    }
                } else {
                    for (int64_t q = p; q < e; ++q) {
                        const auto row = X.row(perm[q]);
                        for (int64_t a = 0; a < row.nnz; ++a)
                            acc->add(row.idx[a], coef[q - p] * static_cast<double>(row.val[a]));
                    }
                    acc->drain([&](int32_t j, double g, uint32_t rows_with_j) {
                        const double regc =
                            cfg.sparse_alpha > 0 ? cfg.sparse_alpha * reg_scale[j] * rows_with_j * inv_b : 0.0;
                        rule.apply(state + j, uk, g, regc, c);
                    });
                }
                if (cfg.fit_intercept) rule.apply_intercept(bias, coef_sum, c);
            }
        });
    }
    errors.rethrow();

    EpochResult res;
    const uint64_t end = clock.load();
    res.updates = end - k0;
    // Epoch end: every coordinate this fit can have moved is brought to the last step, stamps reset.
    const uint32_t last = static_cast<uint32_t>(res.updates);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t a = 0; a < n_active; ++a) rule.finish(state + active[a], last);
    for (const auto& s : stats) res.staleness.merge(s);
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
