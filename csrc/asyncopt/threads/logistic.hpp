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
#include "work_parts.hpp"
#include "../problems/logistic.hpp"
#include "../core/shared.hpp"
#include "../core/sparse.hpp"
#include "../core/thread_pool.hpp"
#include "../optim/steps.hpp"

namespace asyncopt {

struct LogisticConfig : EpochConfig {
    double sparse_alpha = 0;  // alpha of the frequency-scaled sparse L2 (0 = off), see LogisticWork
    bool fit_intercept = true;
    double intercept_scale = 1;  // the intercept's step is this times the weights' step
    bool progressive_loss = true;  // sum each row's loss at the model its update read (progress())
};

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

    // weight: a weight per row (sample_weight times class_weight), or null for all ones.
    LogisticWork(const CsrView<T>& X, const double* y, const T* reg_scale, State* state, const StepConfig& sc,
                 const LogisticConfig& cfg, const int32_t* active, int64_t n_active, const double* weight = nullptr)
        : X_(X), y_(y), weight_(weight), reg_scale_(reg_scale), state_(state), sc_(sc), cfg_(cfg), active_(active),
          n_active_(n_active),
          // Prefetching the model's lines pays only when the model does not sit in the core's own
          // caches (measured on 2^20 features: AMSGrad's 32 MiB state faster, SGD's 4 MiB slower).
          prefetch_model_(static_cast<double>(X.n_cols) * sizeof(State) > 8.0 * (1 << 20)),
          progress_(cfg.n_threads), rule_(sc) {}

    // The epoch's progressive loss so far (work_parts.hpp: reproducible to the bit with one thread).
    logistic::ProgressiveLoss progress() const { return progress_.total(); }

    uint64_t max_segment_updates() const { return rule_.max_segment_updates(); }

    void begin_segment(uint64_t k_base, uint32_t n_updates) { rule_.begin(k_base, n_updates); }

    // Segment end: every coordinate this model can have moved is brought to the last step.
    // On the elastic team, as the updates (core/thread_pool.hpp): no waiting for an unscheduled thread.
    void end_segment(uint32_t n_updates, int n_threads) {
        const Rule& rule = *rule_;
        ThreadPool::instance().parallel_for(n_threads, n_active_, 1 << 14,
                                            [&](int64_t a) { rule.finish(state_ + active_[a], n_updates); });
    }

    class Worker {
    public:
        Worker(const LogisticWork& w, int thread, int n_threads)
            : w_(w), rule_(*w.rule_), prefetch_(w.X_), intercept_(rule_, w.state_ + w.X_.n_cols, n_threads == 1),
              coef_(static_cast<size_t>(w.cfg_.batch_size)), thread_(thread) {}

        void update(const int64_t* rows, int64_t count, const int64_t* rows_end, uint64_t k, uint32_t u,
                    const StepClock& /*clock*/) {
            const CsrView<T>& X = w_.X_;
            State* const state = w_.state_;
            const auto ctx = rule_.context(u - 1, u, step_coeffs(w_.sc_, k, Rule::needs.moments));
            // read the margins at the model as of step k - 1, then one lock-free write per distinct
            // feature of the batch (problems/logistic.hpp)
            const double b = w_.cfg_.fit_intercept ? intercept_.value() : 0.0;
            const double coef_sum = logistic::minibatch_gradient(
                X, w_.y_, rows, count, b, w_.cfg_.sparse_alpha, acc_, coef_.data(),
                [&](int64_t q, const typename CsrView<T>::Row& row) {
                    prefetch_.ahead_of(rows + q, rows_end);
                    if (w_.prefetch_model_) prefetch_.model_ahead_of(rows + q, rows_end, state);
                    return rule_.dot(state, row.idx, row.val, row.nnz, ctx);
                },
                [&](int32_t j) { return static_cast<double>(rule_.reg_scale(state + j, w_.reg_scale_, j)); },
                [&](int32_t j, double g, double regc) { rule_.apply(state + j, ctx, g, regc); },
                w_.cfg_.progressive_loss ? &progress_ : nullptr, w_.weight_);
            if (w_.cfg_.fit_intercept) {
                rule_.apply_intercept(intercept_.target(), ctx, coef_sum, w_.cfg_.intercept_scale);
                intercept_.updated();
            }
        }
        void done() {
            intercept_.sync();
            w_.progress_.merge(thread_, progress_);  // the thread's own slot
        }

    private:
        const LogisticWork& w_;
        const Rule& rule_;
        RowPrefetcher<T> prefetch_;
        InterceptReplica<Rule> intercept_;
        BatchAccumulator acc_;
        std::vector<double> coef_;
        logistic::ProgressiveLoss progress_;  // this segment's rows of this thread
        int thread_;
    };

    Worker worker(int thread) const { return Worker(*this, thread, have_openmp() ? std::max(1, cfg_.n_threads) : 1); }

private:
    const CsrView<T>& X_;
    const double* y_;
    const double* weight_;
    const T* reg_scale_;
    State* state_;
    const StepConfig& sc_;
    const LogisticConfig& cfg_;
    const int32_t* active_;
    int64_t n_active_;
    bool prefetch_model_;
    ProgressSlots progress_;
    SegmentRule<Rule, Steps> rule_;
};

// Summed log-loss and correct predictions of the current model on (X, y); read-only and
// deterministic (evaluate_rows, work_parts.hpp). weight: per-row weights of the losses (null: all ones).
template <class T, class State>
void evaluate_logistic(const CsrView<T>& X, const double* y, const State* state, bool fit_intercept,
                       int n_threads, double* loss_sum, int64_t* correct, const double* weight = nullptr) {
    const double b = fit_intercept ? static_cast<double>(state[X.n_cols].w) : 0.0;
    evaluate_rows(n_threads, X.n_rows, loss_sum, correct, [&](int64_t i, double* l, int64_t* k) {
        const auto row = X.row(i);
        double z = b;
        for (int64_t a = 0; a < row.nnz; ++a) z += static_cast<double>(row.val[a]) * state[row.idx[a]].w;
        *l += weight ? weight[i] * logistic::loss(z, y[i]) : logistic::loss(z, y[i]);
        *k += ((z > 0 ? 1.0 : -1.0) == y[i]);
    });
}

}  // namespace asyncopt
