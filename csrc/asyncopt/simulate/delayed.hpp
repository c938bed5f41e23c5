// The delay simulator (issue 14): one writer applies mini-batch updates with the rules of optim/,
// exactly as one thread of the Hogwild! driver would (same shuffle, segments, step coefficients,
// lazy catch-up and O(nnz) writes), except that the gradient of the update at step k is computed
// at the iterate of d_k steps earlier: x_{k-1-d_k} instead of x_{k-1}. The delays come from a
// seeded delay model (python/asyncopt/simulate.py), one per update, capped so that no update reads
// before the fit's first step. d = 0 for every update is the one-thread threads fit, bit for bit.
//
// Picky SGD (Cohen, Daniely, Drori, Koren & Schain 2021, Alg. 1): with a threshold, an update is
// applied only if ||x_{k-1} - x_{k-1-d}|| <= threshold (the whole model, intercept included); a
// dropped update writes nothing (x_k = x_{k-1}) but still is an iteration: delays count
// iterations, as in the paper, and the schedule's k counts them too. The distance is exact in
// O(writes in the window) only when a coordinate changes just where it is written: SGD without a
// multiplicative shrink (the caller enforces it, as the MPI server's Picky SGD does).
//
// Iterate history. Storing x_{k-d} for every k would cost O(d) per step; instead a ring keeps, for
// each of the last D_max iterations, its sparse writes as (coordinate, the coordinate's whole state
// record just before the write), and the intercept's value after every iteration. The delayed read
// of feature j as of step r is then: the state record of the OLDEST event on j after step r (its
// pre-write record: j's state did not change between r and that event), or j's live record if
// nothing touched j since r, read "as of step r" by the rule's own read() with the tables of the
// segment holding r. Why whole records and read(): the stamped rules (AMSGrad, AdaGrad, Adam) and
// scaled SGD store a coordinate lazily (w at its stamp s, or u = w / S); the value a dense
// implementation holds at step r is the catch-up of that record from s to r, which read() computes
// and which a stored "value before the write" would not give for r > s. The replay walks the window
// backwards from the live model over the batch's own features (a dense slot array marks them), so a
// delayed read costs O(nnz of the batch + writes of the last d iterations), never O(n_features)
// (the slot array, and Picky SGD's scratch, are O(n_features) memory allocated once per fit).
//
// Segment ends (the rules' stamps and tables are relative to a segment start; finish() catches
// every active coordinate up and rebases it) are events too: before finishing, the simulator keeps
// the pre-finish records of the active features in a hash map of the ending segment, which stays
// (with its tables and rule) while a read can still reach back into it. So the oldest event after
// r is always expressed in the terms of r's own segment. That costs O(active) per segment end,
// which finish() costs anyway, and only when D_max > 0.
//
// Delay-adaptive SGD (Mishchenko, Bach, Even & Woodworth 2022): the step of an update with delay d
// is eta_k min(1, c / d), i.e. their gamma_k = min(gamma, 1 / (4 L d_k)) with c = 1 / (4 L gamma).
// Only the step coefficient of that one update changes, so it needs an additive rule whose
// coordinates move only where written (SGD without exact L2: no shrink table depends on eta).
// c = infinity is delayed SGD bit for bit.
//
// The sparse regulariser's share (n/d_j) alpha w_j and the exact-L2 shrink act at the written
// iterate, as in the threads backend (they belong to the step, not to the delayed gradient). The
// progressive loss sums every row's loss at the iterate its update read, dropped updates' included.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "../core/epoch_plan.hpp"
#include "../core/interrupt.hpp"
#include "../core/rng.hpp"
#include "../core/sparse.hpp"
#include "../optim/steps.hpp"
#include "../problems/logistic.hpp"
#include "../threads/logistic.hpp"

namespace asyncopt {

// What one simulated epoch reports: the applied updates' delays (staleness), the rows' progressive
// loss at the iterates they read, and how many updates Picky SGD dropped.
struct SimulateResult {
    EpochResult epoch;
    logistic::ProgressiveLoss progress;
    uint64_t dropped = 0;
};

template <class T, class Rule, class Steps>
class DelaySimulator {
public:
    using State = typename Rule::State;

    // state: n_cols + 1 records (the intercept last), settled at step k0 (the fit's first step is
    // k0 + 1). active: every feature the model has (features outside it are zero). reg_scale: n/d_j
    // for a rule that keeps it outside the state (or null). picky_threshold < 0: no filter.
    DelaySimulator(State* state, int64_t n_cols, const StepConfig& sc, const LogisticConfig& cfg,
                   const int32_t* active, int64_t n_active, const T* reg_scale, uint32_t max_delay,
                   double picky_threshold, uint64_t k0,
                   double adaptive_c = std::numeric_limits<double>::infinity())
        : state_(state), n_cols_(n_cols), sc_(sc), cfg_(cfg), active_(active, active + n_active),
          reg_scale_(reg_scale), max_delay_(max_delay), ring_(uint64_t{max_delay} + 1),
          threshold_(picky_threshold), adaptive_c_(adaptive_c), k_(k0), fit_k0_(k0), slot_(static_cast<size_t>(n_cols), -1),
          writes_(static_cast<size_t>(ring_)), intercept_at_(static_cast<size_t>(ring_), 0.0) {
        if (picky() && (!Rule::additive || sc.decay != 0))
            throw std::invalid_argument("Picky SGD needs SGD without exact L2 (the distance follows the sparse writes)");
        if (!(adaptive_c > 0)) throw std::invalid_argument("the delay-adaptive constant c must be > 0");
        if (adaptive_c < std::numeric_limits<double>::infinity() && (!Rule::additive || sc.decay != 0))
            throw std::invalid_argument("delay-adaptive SGD needs SGD without exact L2 (one update's step changes)");
        if (picky()) {
            mark_.assign(static_cast<size_t>(n_cols), 0);
            old_.assign(static_cast<size_t>(n_cols), 0.0);
        }
        intercept_at_[k0 % ring_] = static_cast<double>(state_[n_cols_].w);
    }

    bool picky() const noexcept { return threshold_ >= 0; }
    uint64_t steps() const noexcept { return k_; }

    // Every later step times s (StepConfig::scale: the epoch loop's plateau drops), between epochs.
    // The finished segments keep the tables of the steps they ran, which is what their reads need.
    void set_step_scale(double s) noexcept { sc_.scale = s; }

    // One epoch over the rows in perm (reshuffled first when cfg.shuffle, with the seed's stream 0:
    // the one-thread threads epoch's order), in mini-batches of cfg.batch_size. delays: one per
    // update of the epoch, as the model drew them; out_delay / out_accepted: the delay each update
    // was given (after the cap) and whether it was applied.
    SimulateResult epoch(const CsrView<T>& X, const double* y, const double* weight, int64_t* perm, int64_t n,
                         const int64_t* delays, int64_t* out_delay, uint8_t* out_accepted, uint64_t seed,
                         int64_t batch_size) {
        SimulateResult res;
        if (cfg_.shuffle) {
            Rng rng(seed, 0);
            shuffle(perm, static_cast<uint64_t>(n), rng);
        }
        const EpochPlan plan(n, 1, batch_size, Rule::max_segment_updates(sc_));
        const uint64_t start = k_;
        int64_t it = 0;
        for (int64_t g = 0; g < plan.segments(); ++g) {
            begin_segment(plan.segment_updates(g));
            const SliceRange r = plan.items(0, g);
            for (int64_t p = r.first; p < r.last && !stop_requested(); p += batch_size, ++it) {
                ++k_;
                const uint64_t cap = k_ - 1 - fit_k0_;
                const uint64_t d = std::min<uint64_t>(static_cast<uint64_t>(std::max<int64_t>(delays[it], 0)), cap);
                const bool applied = update(X, y, weight, perm + p, std::min(batch_size, r.last - p), d, res);
                out_delay[it] = static_cast<int64_t>(d);
                out_accepted[it] = applied;
                if (applied) {
                    res.epoch.staleness.add(d);
                } else {
                    ++res.dropped;
                }
            }
            end_segment();
            if (stop_requested()) break;  // interrupt.hpp: the segment ran the steps it took, all settled
        }
        res.epoch.updates = k_ - start;
        return res;
    }

private:
    struct Write {
        int32_t j;
        State before;
    };
    // Steps (base, end] run with one rule and its tables; once finished, the pre-finish records of
    // the active features (kept only when a delayed read may reach back into the segment).
    struct Segment {
        uint64_t base, end;
        bool finished = false;
        std::unique_ptr<StepTables<Steps>> tables;
        std::optional<Rule> rule;
        std::unordered_map<int32_t, State> before_finish;
    };
    struct Pending {
        int32_t j;
        double g, regc;
    };

    void begin_segment(uint64_t n_updates) {
        // a later read reaches back to step k_ - max_delay at the earliest
        while (segs_.size() > 1 && segs_.front().end + max_delay_ < k_) segs_.pop_front();
        Segment s;
        s.base = s.end = k_;
        s.tables = std::make_unique<StepTables<Steps>>(sc_, k_, static_cast<uint32_t>(n_updates), Rule::needs);
        s.rule.emplace(s.tables->steps(), sc_);
        segs_.push_back(std::move(s));
    }

    void end_segment() {
        Segment& s = segs_.back();
        s.end = k_;
        const uint32_t n = static_cast<uint32_t>(k_ - s.base);
        if (max_delay_ > 0) {
            s.before_finish.reserve(active_.size());
            for (int32_t j : active_) s.before_finish.emplace(j, state_[j]);
        }
        for (int32_t j : active_) s.rule->finish(state_ + j, n);
        s.finished = true;
    }

    // The segment whose rule reads "as of step r", and r relative to its base: the one with
    // base < r <= end (the fit's first step reads the first segment at 0).
    const Segment& segment_of(uint64_t r, uint32_t* u) const {
        for (size_t q = segs_.size(); q-- > 0;) {
            if (segs_[q].base < r) {
                *u = static_cast<uint32_t>(r - segs_[q].base);
                return segs_[q];
            }
        }
        *u = 0;
        return segs_.front();
    }

    // value_[slot_[j]] = x_j as of step r for every feature j of the batch (see the header comment).
    void delayed_read(const CsrView<T>& X, const int64_t* rows, int64_t count, uint64_t r) {
        feats_.clear();
        for (int64_t q = 0; q < count; ++q) {
            const auto row = X.row(rows[q]);
            for (int64_t a = 0; a < row.nnz; ++a) {
                const int32_t j = row.idx[a];
                if (slot_[j] < 0) {
                    slot_[j] = static_cast<int32_t>(feats_.size());
                    feats_.push_back(j);
                }
            }
        }
        cand_.resize(feats_.size());
        for (size_t s = 0; s < feats_.size(); ++s) cand_[s] = state_ + feats_[s];
        // backwards from now: the segment end after step i (if any), then iteration i's writes
        int64_t q = static_cast<int64_t>(segs_.size()) - 2;  // the last finished segment
        for (uint64_t i = k_ - 1;; --i) {
            while (q >= 0 && segs_[static_cast<size_t>(q)].end == i) {
                const auto& snap = segs_[static_cast<size_t>(q)].before_finish;
                for (size_t s = 0; s < feats_.size(); ++s) {
                    const auto at = snap.find(feats_[s]);
                    cand_[s] = at != snap.end() ? &at->second : &zero_;
                }
                --q;
            }
            if (i == r) break;
            for (const Write& w : writes_[i % ring_]) {
                const int32_t s = slot_[w.j];
                if (s >= 0) cand_[static_cast<size_t>(s)] = &w.before;
            }
        }
        uint32_t u;
        const Segment& seg = segment_of(r, &u);
        const auto ctx = seg.rule->context(u, u, step_coeffs(sc_, r + 1, Rule::needs.moments));
        value_.resize(feats_.size());
        for (size_t s = 0; s < feats_.size(); ++s) value_[s] = seg.rule->read(cand_[s], ctx);
    }

    // ||x_{k-1} - x_r||^2 for an additive rule without shrink: only the coordinates written since r moved.
    double squared_move(uint64_t r) {
        touched_.clear();
        for (uint64_t i = k_ - 1; i > r; --i) {
            for (const Write& w : writes_[i % ring_]) {
                if (!mark_[w.j]) {
                    mark_[w.j] = 1;
                    touched_.push_back(w.j);
                }
                old_[w.j] = static_cast<double>(w.before.w);  // later in the walk = older
            }
        }
        double sq = 0;
        for (int32_t j : touched_) {
            const double c = static_cast<double>(state_[j].w) - old_[j];
            sq += c * c;
            mark_[j] = 0;
        }
        if (cfg_.fit_intercept) {
            const double c = static_cast<double>(state_[n_cols_].w) - intercept_at_[r % ring_];
            sq += c * c;
        }
        return sq;
    }

    // Step k_ with delay d; returns whether it was applied.
    bool update(const CsrView<T>& X, const double* y, const double* weight, const int64_t* rows, int64_t count,
                uint64_t d, SimulateResult& res) {
        const Segment& cur = segs_.back();
        const Rule& rule = *cur.rule;
        const uint32_t u = static_cast<uint32_t>(k_ - cur.base);
        StepCoeffs coeffs = step_coeffs(sc_, k_, Rule::needs.moments);
        if (static_cast<double>(d) > adaptive_c_) {  // delay-adaptive: eta_k c / d (see the header)
            const double f = adaptive_c_ / static_cast<double>(d);
            coeffs.eta *= f;
            coeffs.a *= f;
        }
        const auto ctx = rule.context(u - 1, u, coeffs);
        const uint64_t r = k_ - 1 - d;
        coef_.resize(static_cast<size_t>(count));
        pending_.clear();
        auto reg = [&](int32_t j) { return static_cast<double>(rule.reg_scale(state_ + j, reg_scale_, j)); };
        auto emit = [&](int32_t j, double g, double regc) { pending_.push_back(Pending{j, g, regc}); };
        logistic::ProgressiveLoss* progress = cfg_.progressive_loss ? &res.progress : nullptr;
        double coef_sum;
        if (d == 0) {  // the current model: the threads' own dot, so d = 0 is their fit bit for bit
            const double b = cfg_.fit_intercept ? rule.read_intercept(state_ + n_cols_) : 0.0;
            coef_sum = logistic::minibatch_gradient(
                X, y, rows, count, b, cfg_.sparse_alpha, acc_, coef_.data(),
                [&](int64_t, const typename CsrView<T>::Row& row) {
                    return rule.dot(state_, row.idx, row.val, row.nnz, ctx);
                },
                reg, emit, progress, weight);
        } else {
            delayed_read(X, rows, count, r);
            const double b = cfg_.fit_intercept ? intercept_at_[r % ring_] : 0.0;
            coef_sum = logistic::minibatch_gradient(
                X, y, rows, count, b, cfg_.sparse_alpha, acc_, coef_.data(),
                [&](int64_t, const typename CsrView<T>::Row& row) {
                    double z = 0;
                    for (int64_t a = 0; a < row.nnz; ++a)
                        z += static_cast<double>(row.val[a]) * value_[static_cast<size_t>(slot_[row.idx[a]])];
                    return z;
                },
                reg, emit, progress, weight);
            for (int32_t j : feats_) slot_[j] = -1;
        }
        std::vector<Write>& log = writes_[k_ % ring_];
        log.clear();  // iteration k_ - ring_'s: no read reaches that far back any more
        bool applied = true;
        if (picky() && d > 0) applied = std::sqrt(squared_move(r)) <= threshold_;
        if (applied) {
            for (const Pending& p : pending_) {
                State* s = state_ + p.j;
                if (max_delay_ > 0) log.push_back(Write{p.j, *s});
                rule.apply(s, ctx, p.g, p.regc);
            }
            if (cfg_.fit_intercept) rule.apply_intercept(state_ + n_cols_, ctx, coef_sum, cfg_.intercept_scale);
        }
        intercept_at_[k_ % ring_] = static_cast<double>(state_[n_cols_].w);
        return applied;
    }

    State* state_;
    int64_t n_cols_;
    StepConfig sc_;
    LogisticConfig cfg_;
    std::vector<int32_t> active_;
    const T* reg_scale_;
    uint32_t max_delay_;
    uint64_t ring_;  // iterations the history keeps: max_delay + 1
    double threshold_, adaptive_c_;
    uint64_t k_, fit_k0_;
    std::deque<Segment> segs_;
    std::vector<int32_t> slot_;           // feature -> its index in feats_, -1 outside the batch
    std::vector<std::vector<Write>> writes_;  // iteration i's writes at i % ring_
    std::vector<double> intercept_at_;    // the intercept as of step s at s % ring_
    std::vector<int32_t> feats_;
    std::vector<const State*> cand_;
    std::vector<double> value_, coef_, old_;
    std::vector<uint8_t> mark_;
    std::vector<int32_t> touched_;
    std::vector<Pending> pending_;
    BatchAccumulator acc_;
    State zero_{};
};

}  // namespace asyncopt
