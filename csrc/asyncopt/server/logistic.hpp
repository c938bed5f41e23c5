// The parameter server's model (AsySG-con, Lian et al. 2015; distributed APAM, Xu et al. 2020;
// Picky SGD, Cohen et al. 2021): the update rules of optim/ applied one message at a time.
//
// The server is the only writer, so its steps are sequential: step k applies one (averaged)
// gradient with the rule's step coefficients for k, exactly as one thread of the Hogwild! driver
// would. The state array has the layout of the threads backend (one State per feature, then the
// intercept), so the estimator's model, its coef_ and its evaluation are the same objects under
// every backend. The rules' lazy catch-up is kept: a message costs O(its nonzeros), whatever the
// number of features, and read() returns a coordinate as of the latest step.
//
// Segments, as in threads/hogwild.hpp: the rules' stamps and tables are relative to a segment start k_base.
// The server opens a new segment when the current one is full or when asked to settle (before the
// estimator reads the state directly: evaluation, the end of a fit); settling brings every touched
// coordinate up to step k.
//
// Picky SGD's filter needs ||x_t - x_{t-d}||, the distance the model moved since a worker read it.
// Scanning the model per message would cost O(d); instead each tracked worker ("slot") keeps the
// sparse difference delta_s = x_t - x_read and its squared norm, updated with every applied change:
//     ||delta + c||^2 = ||delta||^2 + sum_j (2 delta_j c_j + c_j^2)   over the changed coordinates j,
// so an applied message costs O(nnz x slots) more and a distance query O(1). Tracking needs the
// change of every coordinate to be the sparse one the message writes: SGD without exact L2 (exact
// L2 and AMSGrad's momentum move every coordinate at every step). The caller enforces that.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "../optim/steps.hpp"

namespace asyncopt {

// delta_s = x_now - x_read for each tracked worker s, and its squared norm.
class MoveTracker {
public:
    MoveTracker(int n_slots, int64_t n_coords)
        : delta_(static_cast<size_t>(n_slots)), marked_(static_cast<size_t>(n_slots)),
          touched_(static_cast<size_t>(n_slots)), sq_(static_cast<size_t>(n_slots), 0.0) {
        for (int s = 0; s < n_slots; ++s) {
            delta_[s].assign(static_cast<size_t>(n_coords), 0.0);
            marked_[s].assign(static_cast<size_t>(n_coords), 0);
        }
    }
    int slots() const noexcept { return static_cast<int>(sq_.size()); }

    // coordinate j moved by c (x_j <- x_j + c)
    void moved(int64_t j, double c) noexcept {
        if (c == 0) return;
        for (size_t s = 0; s < sq_.size(); ++s) {
            double& d = delta_[s][j];
            sq_[s] += (2.0 * d + c) * c;
            d += c;
            if (!marked_[s][j]) {
                marked_[s][j] = 1;
                touched_[s].push_back(j);
            }
        }
    }
    // ||x_now - x_read|| for slot s; the incremental sum can drift a few ulps below 0
    double distance(int s) const noexcept { return std::sqrt(std::max(sq_[s], 0.0)); }
    // slot s has just read the model
    void reset(int s) noexcept {
        for (int64_t j : touched_[s]) {
            delta_[s][j] = 0;
            marked_[s][j] = 0;
        }
        touched_[s].clear();
        sq_[s] = 0;
    }

private:
    std::vector<std::vector<double>> delta_;
    std::vector<std::vector<uint8_t>> marked_;
    std::vector<std::vector<int64_t>> touched_;
    std::vector<double> sq_;
};

template <class T, class Rule, class Steps>
class ServerModel {
public:
    using State = typename Rule::State;

    // state: n_cols + 1 States (the last is the intercept), holding the model as of step k0 (settled).
    // active: the features that may be nonzero already (a warm start's); n_slots > 0 tracks moves.
    ServerModel(State* state, int64_t n_cols, const StepConfig& sc, uint64_t k0, bool fit_intercept,
                double intercept_scale, const int32_t* active, int64_t n_active, int n_slots)
        : state_(state), n_cols_(n_cols), sc_(sc), fit_intercept_(fit_intercept), intercept_scale_(intercept_scale),
          seen_(static_cast<size_t>(n_cols), 0), k_(k0), k_base_(k0) {
        for (int64_t a = 0; a < n_active; ++a) mark(active[a]);
        // Tables cost 24 bytes per step of a segment: a server segment is short when they are needed
        // (settling is O(touched features), cheap next to 2^16 messages); otherwise as long as the
        // rule allows.
        const uint64_t table_cap = std::is_same_v<Steps, TabledSteps> ? (uint64_t{1} << 16) : (uint64_t{1} << 31);
        seg_len_ = static_cast<uint32_t>(std::max<uint64_t>(1, std::min(Rule::max_segment_updates(sc), table_cap)));
        if (n_slots > 0) {
            if (!Rule::additive || sc.decay != 0)
                throw std::invalid_argument("move tracking (Picky SGD) needs SGD without exact L2");
            tracker_.emplace(n_slots, n_cols + 1);
        }
        begin_segment();
    }

    uint64_t steps() const noexcept { return k_; }
    int64_t n_cols() const noexcept { return n_cols_; }

    // x_j as of step k for each key (keys in [0, n_cols)); the intercept is read_intercept().
    void read(const int32_t* keys, int64_t n, double* out) const noexcept {
        const auto ctx = read_context();
        for (int64_t a = 0; a < n; ++a) out[a] = rule_->read(state_ + keys[a], ctx);
    }
    double read_intercept() const noexcept { return fit_intercept_ ? rule_->read_intercept(state_ + n_cols_) : 0.0; }

    // Step k + 1 with gradient g (at features idx, distinct) and intercept gradient g0.
    void apply(const int32_t* idx, const double* g, int64_t nnz, double g0) {
        if (k_ - k_base_ >= seg_len_) settle();
        ++k_;
        const uint32_t u = static_cast<uint32_t>(k_ - k_base_);
        const auto ctx = rule_->context(u - 1, u, step_coeffs(sc_, k_, Rule::needs.moments));
        for (int64_t a = 0; a < nnz; ++a) {
            State* p = state_ + idx[a];
            mark(idx[a]);
            if (tracker_) {
                const double before = p->w;
                rule_->apply(p, ctx, g[a], 0.0);
                tracker_->moved(idx[a], static_cast<double>(p->w) - before);
            } else {
                rule_->apply(p, ctx, g[a], 0.0);
            }
        }
        if (fit_intercept_) {
            State* p = state_ + n_cols_;
            const double before = p->w;
            rule_->apply_intercept(p, ctx, g0, intercept_scale_);
            if (tracker_) tracker_->moved(n_cols_, static_cast<double>(p->w) - before);
        }
    }

    // DPSGD: add a worker's model change x <- x + delta (its local Hogwild! steps, n_steps of them,
    // which advance the step clock). Plain SGD without exact L2 only: the sum of two changes is
    // then the change of the two runs, and the state holds x itself.
    void add(const int32_t* idx, const double* delta, int64_t nnz, double delta0, uint64_t n_steps) {
        if (!Rule::additive || sc_.decay != 0)
            throw std::invalid_argument("adding model changes (DPSGD) needs SGD without exact L2");
        if (k_ - k_base_ + n_steps > seg_len_) settle();
        k_ += n_steps;
        for (int64_t a = 0; a < nnz; ++a) {
            State* p = state_ + idx[a];
            mark(idx[a]);
            p->w = static_cast<T>(p->w + delta[a]);
            if (tracker_) tracker_->moved(idx[a], delta[a]);
        }
        if (fit_intercept_) {
            State* p = state_ + n_cols_;
            p->w = static_cast<T>(p->w + delta0);
            if (tracker_) tracker_->moved(n_cols_, delta0);
        }
    }

    // Picky SGD: how far the model moved since slot s last read it; reset when it reads again.
    double distance(int s) const { return tracker().distance(s); }
    void reset(int s) { tracker().reset(s); }
    bool tracking() const noexcept { return tracker_.has_value(); }

    // Bring every touched coordinate up to step k (the state then holds x_k) and open a new segment.
    void settle() {
        const uint32_t u = static_cast<uint32_t>(k_ - k_base_);
        for (int32_t j : touched_) rule_->finish(state_ + j, u);
        k_base_ = k_;
        begin_segment();
    }

    // Every later step times s (StepConfig::scale; the epoch loop's plateau drops). Settles first:
    // the current segment's tables were built with the old steps.
    void set_step_scale(double s) {
        settle();
        sc_.scale = s;
        begin_segment();
    }

    // Every feature any step has touched (plus the initial active ones), in first-touch order.
    const std::vector<int32_t>& touched() const noexcept { return touched_; }

private:
    void begin_segment() {
        rule_.reset();
        tables_.reset();
        tables_.emplace(sc_, k_base_, seg_len_, Rule::needs);
        rule_.emplace(tables_->steps(), sc_);
    }
    typename Rule::Context read_context() const noexcept {
        const uint32_t u = static_cast<uint32_t>(k_ - k_base_);
        return rule_->context(u, u, step_coeffs(sc_, k_ + 1, Rule::needs.moments));
    }
    void mark(int32_t j) {
        if (!seen_[j]) {
            seen_[j] = 1;
            touched_.push_back(j);
        }
    }
    const MoveTracker& tracker() const {
        if (!tracker_) throw std::logic_error("this server model does not track moves");
        return *tracker_;
    }
    MoveTracker& tracker() {
        if (!tracker_) throw std::logic_error("this server model does not track moves");
        return *tracker_;
    }

    State* state_;
    int64_t n_cols_;
    StepConfig sc_;
    bool fit_intercept_;
    double intercept_scale_;
    std::vector<uint8_t> seen_;
    std::vector<int32_t> touched_;
    uint64_t k_, k_base_;
    uint32_t seg_len_ = 1;
    std::optional<StepTables<Steps>> tables_;
    std::optional<Rule> rule_;
    std::optional<MoveTracker> tracker_;
};

}  // namespace asyncopt
