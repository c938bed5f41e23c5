// Training sparse logistic regression with the Hogwild! driver: what one mini-batch does.
//
// One update (mini-batch B, step k):
//   read   margins z_i = w.x_i + b of B's rows from the shared model as of step k - 1
//   write  for each feature j in B: w_j <- rule(w_j, mean gradient of B at j), lock-free
// The update rule (optim/sgd.hpp, optim/amsgrad.hpp) supplies: State (one coordinate), Context
// (what an update computes once, not per nonzero), dot (a row's margin) / read / apply / apply_intercept /
// read_intercept, finish (bring a coordinate up to date at a segment end), merge (fold a thread's
// intercept replica back), max_segment_updates, reg_scale.
//
// The intercept, touched by every update, is updated through a per-thread replica (intercept.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "hogwild.hpp"
#include "intercept.hpp"
#include "problems/logistic.hpp"
#include "shared.hpp"
#include "sparse.hpp"
#include "optim/steps.hpp"

namespace asyncopt {

struct LogisticConfig : EpochConfig {
    double sparse_alpha = 0;  // alpha of the frequency-scaled sparse L2 (0 = off), see LogisticWork
    bool fit_intercept = true;
    double intercept_scale = 1;  // the intercept's step is this times the weights' step
};

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

template <class T>
int64_t batch_nnz(const CsrView<T>& X, const int64_t* rows, int64_t count) noexcept {
    int64_t nnz = 0;
    for (int64_t q = 0; q < count; ++q) nnz += X.indptr[rows[q] + 1] - X.indptr[rows[q]];
    return nnz;
}

// One epoch of logistic-regression training, Rule and Steps as in optim/. state has n_cols + 1
// entries (the last is the intercept). With sparse_alpha > 0 the Hogwild! paper's frequency-scaled
// regulariser puts (n/d_j) alpha w_j on each row's own features (d_j = rows containing feature j),
// an unbiased estimate of the dense alpha w; the rule finds n/d_j in reg_scale[j] or, for AMSGrad,
// in the coordinate's own state line. active lists the features to bring up to date at segment
// ends (every feature this model has ever seen; the others are zero).
template <class T, class Rule, class Steps>
class LogisticWork {
public:
    using State = typename Rule::State;

    LogisticWork(const CsrView<T>& X, const double* y, const T* reg_scale, State* state, const StepConfig& sc,
                 const LogisticConfig& cfg, const int32_t* active, int64_t n_active)
        : X_(X), y_(y), reg_scale_(reg_scale), state_(state), sc_(sc), cfg_(cfg), active_(active),
          n_active_(n_active),
          // Prefetching the model's lines pays only when the model does not sit in the core's own
          // caches (measured on 2^20 features: AMSGrad's 32 MiB state faster, SGD's 4 MiB slower).
          prefetch_model_(static_cast<double>(X.n_cols) * sizeof(State) > 8.0 * (1 << 20)) {}

    uint64_t max_segment_updates() const { return Rule::max_segment_updates(sc_); }

    void begin_segment(uint64_t k_base, uint32_t n_updates) {
        rule_.reset();
        tables_.reset();
        tables_.emplace(sc_, k_base, n_updates, Rule::amsgrad);
        rule_.emplace(tables_->steps(), sc_);
    }

    // Segment end: every coordinate this model can have moved is brought to the last step.
    void end_segment(uint32_t n_updates, int n_threads) {
        (void)n_threads;
        const Rule& rule = *rule_;
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t a = 0; a < n_active_; ++a) rule.finish(state_ + active_[a], n_updates);
    }

    class Worker {
    public:
        Worker(const LogisticWork& w, int n_threads)
            : w_(w), rule_(*w.rule_), prefetch_(w.X_), intercept_(rule_, w.state_ + w.X_.n_cols, n_threads == 1),
              coef_(static_cast<size_t>(w.cfg_.batch_size)) {}

        void update(const int64_t* rows, int64_t count, const int64_t* rows_end, uint64_t k, uint32_t u,
                    const StepClock& /*clock*/) {
            const CsrView<T>& X = w_.X_;
            State* const state = w_.state_;
            const double sparse_alpha = w_.cfg_.sparse_alpha;
            const double inv_b = 1.0 / static_cast<double>(count);
            const auto ctx = rule_.context(u - 1, u, step_coeffs(w_.sc_, k, Rule::amsgrad));

            // read: margins of the batch's rows at the model as of step k - 1
            double coef_sum = 0;
            const double b = w_.cfg_.fit_intercept ? intercept_.value() : 0.0;
            for (int64_t q = 0; q < count; ++q) {
                prefetch_.ahead_of(rows + q, rows_end);
                if (w_.prefetch_model_) prefetch_.model_ahead_of(rows + q, rows_end, state);
                const auto row = X.row(rows[q]);
                const double z = b + rule_.dot(state, row.idx, row.val, row.nnz, ctx);
                coef_[q] = logistic::dloss(z, w_.y_[rows[q]]) * inv_b;
                coef_sum += coef_[q];
            }

            // write: one lock-free update per distinct feature of the batch
            if (count == 1) {
                const auto row = X.row(rows[0]);
                for (int64_t a = 0; a < row.nnz; ++a) {
                    const int32_t j = row.idx[a];
                    const double regc =
                        sparse_alpha > 0 ? sparse_alpha * rule_.reg_scale(state + j, w_.reg_scale_, j) : 0.0;
                    rule_.apply(state + j, ctx, coef_[0] * static_cast<double>(row.val[a]), regc);
                }
            } else {
                acc_.reserve(batch_nnz(X, rows, count));
                for (int64_t q = 0; q < count; ++q) {
                    const auto row = X.row(rows[q]);
                    for (int64_t a = 0; a < row.nnz; ++a)
                        acc_.add(row.idx[a], coef_[q] * static_cast<double>(row.val[a]));
                }
                acc_.drain([&](int32_t j, double gj, uint32_t rows_with_j) {
                    const double regc =
                        sparse_alpha > 0
                            ? sparse_alpha * rule_.reg_scale(state + j, w_.reg_scale_, j) * rows_with_j * inv_b
                            : 0.0;
                    rule_.apply(state + j, ctx, gj, regc);
                });
            }
            if (w_.cfg_.fit_intercept) {
                rule_.apply_intercept(intercept_.target(), ctx, coef_sum, w_.cfg_.intercept_scale);
                intercept_.updated();
            }
        }
        void done() { intercept_.sync(); }

    private:
        const LogisticWork& w_;
        const Rule& rule_;
        RowPrefetcher<T> prefetch_;
        InterceptReplica<Rule> intercept_;
        BatchAccumulator acc_;
        std::vector<double> coef_;
    };

    Worker worker(int /*thread*/) const { return Worker(*this, have_openmp() ? std::max(1, cfg_.n_threads) : 1); }

private:
    const CsrView<T>& X_;
    const double* y_;
    const T* reg_scale_;
    State* state_;
    const StepConfig& sc_;
    const LogisticConfig& cfg_;
    const int32_t* active_;
    int64_t n_active_;
    bool prefetch_model_;
    std::optional<StepTables<Steps>> tables_;
    std::optional<Rule> rule_;
};

// A distributed worker's share of one update (backends/mpi/worker.py): the mean gradient of the
// mini-batch `rows` at a model copy w (dense float64, n_cols + 1 entries, the intercept last), with
// the arithmetic of LogisticWork::update's read and of the gradient it hands the rule, the sparse
// regulariser's (n/d_j) alpha w_j share included (evaluated at the copy: the read point x_{t-d}).
// Writes the batch's distinct features in first-occurrence order to idx and their gradients to g;
// returns how many, and the intercept's gradient in *g0 (0 without an intercept).
template <class T>
int64_t batch_gradient(const CsrView<T>& X, const double* y, const int64_t* rows, int64_t count, const double* w,
                       const T* reg_scale, double sparse_alpha, bool fit_intercept, BatchAccumulator& acc,
                       int32_t* idx, double* g, double* g0) {
    const double inv_b = 1.0 / static_cast<double>(count);
    const double b = fit_intercept ? w[X.n_cols] : 0.0;
    double coef_sum = 0;
    acc.reserve(batch_nnz(X, rows, count));
    for (int64_t q = 0; q < count; ++q) {
        const auto row = X.row(rows[q]);
        double z = 0;
        for (int64_t a = 0; a < row.nnz; ++a) z += static_cast<double>(row.val[a]) * w[row.idx[a]];
        const double coef = logistic::dloss(b + z, y[rows[q]]) * inv_b;
        coef_sum += coef;
        for (int64_t a = 0; a < row.nnz; ++a) acc.add(row.idx[a], coef * static_cast<double>(row.val[a]));
    }
    int64_t n = 0;
    acc.drain([&](int32_t j, double gj, uint32_t rows_with_j) {
        if (sparse_alpha > 0) {
            const double regc = count == 1 ? sparse_alpha * static_cast<double>(reg_scale[j])
                                           : sparse_alpha * static_cast<double>(reg_scale[j]) * rows_with_j * inv_b;
            gj += regc * w[j];
        }
        idx[n] = j;
        g[n] = gj;
        ++n;
    });
    *g0 = fit_intercept ? coef_sum : 0.0;
    return n;
}

// The distinct features of the mini-batch `rows`, in first-occurrence order (the keys a worker
// pulls before computing its gradient); returns how many were written to out.
template <class T>
int64_t batch_features(const CsrView<T>& X, const int64_t* rows, int64_t count, BatchAccumulator& acc, int32_t* out) {
    acc.reserve(batch_nnz(X, rows, count));
    for (int64_t q = 0; q < count; ++q) {
        const auto row = X.row(rows[q]);
        for (int64_t a = 0; a < row.nnz; ++a) acc.add(row.idx[a], 0.0);
    }
    int64_t n = 0;
    acc.drain([&](int32_t j, double, uint32_t) { out[n++] = j; });
    return n;
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

}  // namespace asyncopt
