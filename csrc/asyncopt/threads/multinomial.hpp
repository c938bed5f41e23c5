// Training multiclass (softmax or one-vs-rest) logistic regression with the Hogwild! driver: what
// one mini-batch does, as threads/logistic.hpp does for two classes.
//
// One update (mini-batch B, step k):
//   read   the K margins of each of B's rows from the shared model as of step k - 1
//   write  for each feature j in B and class c: w_jc <- rule(w_jc, mean gradient), lock-free
// The state holds (n_cols + 1) K coordinate records, feature-major (j K + c; the K intercepts
// last), so a nonzero's K records are adjacent: K reads and K writes in one or two cache lines.
// The rule is the binary model's, coordinate by coordinate; each class's intercept has its own
// per-thread replica (intercept.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "hogwild.hpp"
#include "intercept.hpp"
#include "logistic.hpp"
#include "work_parts.hpp"
#include "../problems/multinomial.hpp"
#include "../core/shared.hpp"
#include "../core/sparse.hpp"
#include "../core/thread_pool.hpp"
#include "../optim/steps.hpp"

namespace asyncopt {

template <class T, class Rule, class Steps>
class MultinomialWork {
public:
    using State = typename Rule::State;

    // y: class indices in [0, K); reg_scale: n/d_j per feature (rules that keep it in the state
    // read it from each of the feature's K records instead); active: the features to settle at
    // segment ends.
    MultinomialWork(const CsrView<T>& X, const int32_t* y, int K, multinomial::Loss loss, const T* reg_scale,
                    State* state, const StepConfig& sc, const LogisticConfig& cfg, const int32_t* active,
                    int64_t n_active, const double* weight = nullptr)
        : X_(X), y_(y), weight_(weight), K_(K), loss_(loss), reg_scale_(reg_scale), state_(state), sc_(sc), cfg_(cfg),
          active_(active), n_active_(n_active), progress_(cfg.n_threads), rule_(sc) {}

    logistic::ProgressiveLoss progress() const { return progress_.total(); }

    uint64_t max_segment_updates() const { return rule_.max_segment_updates(); }

    void begin_segment(uint64_t k_base, uint32_t n_updates) { rule_.begin(k_base, n_updates); }

    void end_segment(uint32_t n_updates, int n_threads) {
        const Rule& rule = *rule_;
        const int64_t K = K_;
        ThreadPool::instance().parallel_for(n_threads, n_active_ * K, 1 << 14, [&](int64_t a) {
            rule.finish(state_ + static_cast<int64_t>(active_[a / K]) * K + a % K, n_updates);
        });
    }

    class Worker {
    public:
        Worker(const MultinomialWork& w, int thread, int n_threads)
            : w_(w), rule_(*w.rule_), prefetch_(w.X_), b_(static_cast<size_t>(w.K_)),
              coef_sum_(static_cast<size_t>(w.K_)),
              scratch_(static_cast<size_t>((w.cfg_.batch_size + 1) * w.K_)), thread_(thread) {
            intercepts_.reserve(static_cast<size_t>(w.K_));
            for (int c = 0; c < w.K_; ++c)
                intercepts_.emplace_back(rule_, w.state_ + static_cast<int64_t>(w.X_.n_cols) * w.K_ + c, n_threads == 1);
        }

        void update(const int64_t* rows, int64_t count, const int64_t* rows_end, uint64_t k, uint32_t u,
                    const StepClock& /*clock*/) {
            const int K = w_.K_;
            State* const state = w_.state_;
            const auto ctx = rule_.context(u - 1, u, step_coeffs(w_.sc_, k, Rule::needs.moments));
            for (int c = 0; c < K; ++c) b_[static_cast<size_t>(c)] = w_.cfg_.fit_intercept ? intercepts_[static_cast<size_t>(c)].value() : 0.0;
            multinomial::minibatch_gradient(
                w_.X_, w_.y_, rows, count, K, b_.data(), w_.cfg_.sparse_alpha, w_.loss_, acc_, scratch_.data(),
                coef_sum_.data(),
                [&](int64_t q, const typename CsrView<T>::Row& row, double* z) {
                    prefetch_.ahead_of(rows + q, rows_end);
                    for (int64_t a = 0; a < row.nnz; ++a) {
                        const State* p = state + static_cast<int64_t>(row.idx[a]) * K;
                        const double v = static_cast<double>(row.val[a]);
                        for (int c = 0; c < K; ++c) z[c] += v * rule_.read(p + c, ctx);
                    }
                },
                [&](int32_t j) {
                    return static_cast<double>(rule_.reg_scale(state + static_cast<int64_t>(j) * K, w_.reg_scale_, j));
                },
                [&](int32_t j, const double* g, double regc) {
                    State* p = state + static_cast<int64_t>(j) * K;
                    for (int c = 0; c < K; ++c) rule_.apply(p + c, ctx, g[c], regc);
                },
                w_.cfg_.progressive_loss ? &progress_ : nullptr, w_.weight_);
            if (w_.cfg_.fit_intercept) {
                for (int c = 0; c < K; ++c) {
                    InterceptReplica<Rule>& r = intercepts_[static_cast<size_t>(c)];
                    rule_.apply_intercept(r.target(), ctx, coef_sum_[static_cast<size_t>(c)], w_.cfg_.intercept_scale);
                    r.updated();
                }
            }
        }
        void done() {
            for (InterceptReplica<Rule>& r : intercepts_) r.sync();
            w_.progress_.merge(thread_, progress_);
        }

    private:
        const MultinomialWork& w_;
        const Rule& rule_;
        RowPrefetcher<T> prefetch_;
        std::vector<InterceptReplica<Rule>> intercepts_;
        multinomial::VectorAccumulator acc_;
        std::vector<double> b_, coef_sum_, scratch_;
        logistic::ProgressiveLoss progress_;
        int thread_;
    };

    Worker worker(int thread) const { return Worker(*this, thread, have_openmp() ? std::max(1, cfg_.n_threads) : 1); }

private:
    const CsrView<T>& X_;
    const int32_t* y_;
    const double* weight_;  // per-row weights, or null
    int K_;
    multinomial::Loss loss_;
    const T* reg_scale_;
    State* state_;
    const StepConfig& sc_;
    const LogisticConfig& cfg_;
    const int32_t* active_;
    int64_t n_active_;
    ProgressSlots progress_;
    SegmentRule<Rule, Steps> rule_;
};

// Summed loss (of the kind `loss`) and correct predictions (argmax) of the current model; read-only
// and deterministic (evaluate_rows, work_parts.hpp).
template <class T, class State>
void evaluate_multinomial(const CsrView<T>& X, const int32_t* y, const State* state, int K, multinomial::Loss loss,
                          bool fit_intercept, int n_threads, double* loss_sum, int64_t* correct,
                          const double* weight = nullptr) {
    const State* intercepts = state + static_cast<int64_t>(X.n_cols) * K;
    evaluate_rows(n_threads, X.n_rows, loss_sum, correct, [&](int64_t i, double* l, int64_t* k) {
        thread_local std::vector<double> z;  // the row's K margins, reused across rows and calls
        z.assign(static_cast<size_t>(K), 0.0);
        for (int c = 0; c < K; ++c) z[static_cast<size_t>(c)] = fit_intercept ? static_cast<double>(intercepts[c].w) : 0.0;
        const auto row = X.row(i);
        for (int64_t a = 0; a < row.nnz; ++a) {
            const State* p = state + static_cast<int64_t>(row.idx[a]) * K;
            const double v = static_cast<double>(row.val[a]);
            for (int c = 0; c < K; ++c) z[static_cast<size_t>(c)] += v * static_cast<double>(p[c].w);
        }
        bool right;
        const double row_loss = multinomial::row_coefficients(z.data(), K, y[i], loss, 1.0, z.data(), &right);
        *l += weight ? weight[i] * row_loss : row_loss;
        *k += right;
    });
}

}  // namespace asyncopt
