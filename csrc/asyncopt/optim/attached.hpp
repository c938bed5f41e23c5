// An update rule attached to a parameter array the caller owns (python/asyncopt/optim.py, attach()).
//
// Layout. The drivers keep w inside each coordinate's State record (w, m, v, ..., stamp in one
// cache line). Here the caller owns W as a plain float array and reads it between steps, so W is
// the authority for w, and the rule's statistics live in a private array, compact: per coordinate
// only the words between w and reg of its State (AdaGrad's G; Adam's m, v; AMSGrad's m, v, vhat, d),
// row-major like W, and one stamp per row (every step, catch-up and rebase touches whole rows).
// An Adam row of 16 float32 coordinates is then 128 bytes of statistics, 2 cache lines, where a
// State per coordinate was 512 (w, reg and the stamp are unused or shared there): the traffic per
// row is what an embedding table's update costs. An update of coordinate j builds a local State
// from W[j], its statistics and its row's stamp, runs the rule's own apply() on it (stamped.hpp:
// catch-up from the stamp, then one real step), and stores W[j] and the statistics back, every
// word through shared_load / shared_store; the row's stamp is stored after its coordinates.
// So after a step every coordinate it touched holds in W its exact value at that step; a row no
// step touched holds its values as of its last update (its stamp), and catch_up() / finish()
// bring it to the current step in closed form. A private copy of w, synced back into W, would
// either leave W stale after every step or cost a second store per coordinate for nothing.
//
// SGD without a multiplicative shrink has no statistics and no lazy work at all. SGD with exact L2
// (rho_k < 1) is the one rule whose driver form keeps a scaled weight u = w / S_k (sgd.hpp); W must
// hold w itself, so here it keeps a per-coordinate stamp in a separate array instead and catches a
// coordinate up with w <- P(s, t) w before the rule's step, converting w to the rule's u and back
// around apply().
//
// Steps and segments. Every call of step() claims the next global step k (an atomic counter);
// stamps are 32-bit and relative to a segment of at most segment_steps() steps, as in the drivers.
// A step that would pass the segment's end waits for the steps in flight, brings every coordinate
// to the segment's last step, rebases stamps to 0 and opens the next segment (O(size) once per
// segment). A reader-writer lock separates steps (shared: any number at once, lock-free among
// themselves on W and the statistics) from those rebases and finish() (exclusive).
//
// Races (several threads calling step at once, Hogwild!): every word is read and written with
// relaxed atomics, so nothing is torn and nothing is undefined behaviour, but two steps that touch
// the same coordinate at the same time may lose one of the two updates to it, and a coordinate's
// w and statistics may come from different steps (each is some value a step wrote). Steps that
// touch disjoint coordinates never interfere. A step's gradient is whatever the caller computed
// from W when it read it: possibly stale by the steps other threads completed meanwhile. finish()
// and catch_up() are exact for the steps completed before them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <atomic>
#include <algorithm>
#include <type_traits>

#include "../core/shared.hpp"
#include "sgd.hpp"
#include "steps.hpp"

namespace asyncopt {

// What Python holds: one attached optimizer, whatever its precision, rule and steps.
class AttachedOptimizer {
public:
    virtual ~AttachedOptimizer() = default;
    // One step at the next global step, whose number k it returns. rows: n_rows distinct row
    // indices (null: all rows, in order); grad: n_rows x dim values of W's type.
    virtual uint64_t step(const int64_t* rows, int64_t n_rows, const void* grad) = 0;
    // Bring the given rows (null: all) to the latest step begun, in W and the statistics; returns
    // that step's number k (the model version the caller then reads: its staleness origin).
    virtual uint64_t catch_up(const int64_t* rows, int64_t n_rows) = 0;
    // Every coordinate to the last completed step, stamps rebased (a new segment starts there).
    virtual void finish() = 0;
    virtual uint64_t steps() const = 0;          // global steps begun (k of the latest; all done when idle)
    virtual uint64_t segment_steps() const = 0;  // steps per segment
    virtual uint64_t rebases() const = 0;        // segments closed so far (by a step or finish())
};

namespace attached_detail {

template <class S, class = void>
struct has_stamp : std::false_type {};
template <class S>
struct has_stamp<S, std::void_t<decltype(std::declval<S&>().stamp)>> : std::true_type {};

// Rules whose idle coordinates move only by the multiplicative shrink declare
// idle_moves_by_shrink_only (adagrad.hpp); without a shrink their catch-ups are identities.
template <class R, class = void>
struct shrink_only_idle : std::false_type {};
template <class R>
struct shrink_only_idle<R, std::enable_if_t<R::idle_moves_by_shrink_only>> : std::true_type {};

// Rules that prepare a catch-up once for all coordinates of one stamp (adam.hpp: prepare, and
// finish(p, prepared)); the others catch each coordinate up by itself.
template <class R, class = void>
struct prepares_catch_up : std::false_type {};
template <class R>
struct prepares_catch_up<R, std::void_t<decltype(std::declval<const R&>().prepare(0u, 0u))>> : std::true_type {};

template <class R>
struct is_scaled_sgd : std::false_type {};
template <class T, class Steps>
struct is_scaled_sgd<SgdRule<T, Steps, true>> : std::true_type {};

// Statistics words of a stamped State: those after w and before reg (0 for an unstamped one).
template <class State, class T>
constexpr int64_t stat_words() {
    if constexpr (has_stamp<State>::value) {
        static_assert(offsetof(State, w) == 0 && offsetof(State, reg) % sizeof(T) == 0 &&
                          offsetof(State, stamp) == offsetof(State, reg) + sizeof(T),
                      "a stamped State is w, its statistics, reg, stamp");
        return static_cast<int64_t>(offsetof(State, reg) / sizeof(T)) - 1;
    } else {
        return 0;
    }
}

// 64-byte aligned, zeroed storage (no record straddles a cache line when records divide 64).
template <class V>
struct AlignedArray {
    struct Free {
        void operator()(V* p) const noexcept { std::free(p); }
    };
    std::unique_ptr<V, Free> p;
    explicit AlignedArray(int64_t n) {
        size_t bytes = static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(V);
        bytes = (bytes + 63) / 64 * 64;
        void* raw = std::aligned_alloc(64, bytes);
        if (!raw) throw std::bad_alloc();
        std::memset(raw, 0, bytes);
        p.reset(static_cast<V*>(raw));
    }
    V* get() const noexcept { return p.get(); }
};

}  // namespace attached_detail

template <class T, class Rule, class Steps>
class Attached final : public AttachedOptimizer {
    using State = typename Rule::State;
    static constexpr bool kStamped = attached_detail::has_stamp<State>::value;
    static constexpr bool kScaledSgd = attached_detail::is_scaled_sgd<Rule>::value;
    // Statistics words per coordinate: those between w and reg in the State (w leads, reg and the
    // stamp close every stamped State: adagrad.hpp, adam.hpp, amsgrad.hpp).
    static constexpr int64_t kStats = attached_detail::stat_words<State, T>();
    // The default segment of tabled steps: their tables take a few doubles per step.
    static constexpr uint64_t kTabledSegment = 1u << 16;

public:
    // W: n_rows x dim values the caller owns (it must outlive this object). segment: steps per
    // segment, 0 for the default (capped by the rule's max_segment_updates either way).
    Attached(T* W, int64_t n_rows, int64_t dim, const StepConfig& sc, uint64_t segment)
        : W_(W), n_rows_(n_rows), dim_(dim), n_(n_rows * dim), sc_(sc), stats_(n_ * kStats),
          row_stamps_(kStamped ? n_rows : 0), stamps_(kScaledSgd ? n_ : 0),
          idle_static_((!kStamped && !kScaledSgd) || (attached_detail::shrink_only_idle<Rule>::value && sc.decay == 0)) {
        uint64_t cap = Rule::max_segment_updates(sc);
        if (cap > UINT32_MAX - 1) cap = UINT32_MAX - 1;
        const bool tabled = std::is_same<Steps, TabledSteps>::value;
        L_ = segment ? std::min<uint64_t>(segment, cap) : (tabled ? std::min<uint64_t>(cap, kTabledSegment) : cap);
        if (L_ < 1) L_ = 1;
        open_segment(1);
    }

    uint64_t step(const int64_t* rows, int64_t n_rows, const void* grad_v) override {
        const T* grad = static_cast<const T*>(grad_v);
        for (;;) {
            {
                std::shared_lock<std::shared_mutex> lk(mu_);
                const uint64_t u = claimed_.fetch_add(1, std::memory_order_relaxed) + 1;
                if (u <= L_) {
                    run_step(rows, n_rows, grad, static_cast<uint32_t>(u));
                    return k_base_ - 1 + u;
                }
            }
            // past the segment's end: close it (once, by whichever thread gets here first) and retry
            std::unique_lock<std::shared_mutex> ex(mu_);
            if (claimed_.load(std::memory_order_relaxed) > L_) rebase(static_cast<uint32_t>(L_));
        }
    }

    uint64_t catch_up(const int64_t* rows, int64_t n_rows) override {
        std::shared_lock<std::shared_mutex> lk(mu_);
        const uint32_t c = completed_step();
        if (c == 0 || idle_static_) return k_base_ - 1 + c;  // nothing to bring: W is current
        for (int64_t r = 0; r < n_rows; ++r) bring(rows ? rows[r] : r, c, false);
        return k_base_ - 1 + c;
    }

    void finish() override {
        std::unique_lock<std::shared_mutex> ex(mu_);
        rebase(completed_step());
    }

    uint64_t steps() const override {
        std::shared_lock<std::shared_mutex> lk(mu_);
        return k_base_ - 1 + completed_step();
    }
    uint64_t segment_steps() const override { return L_; }
    uint64_t rebases() const override { return rebases_; }

private:
    // Steps of this segment that have run or are running (a claim past L_ is not a step); under the
    // exclusive lock, all of them have run.
    uint32_t completed_step() const {
        return static_cast<uint32_t>(std::min<uint64_t>(claimed_.load(std::memory_order_relaxed), L_));
    }

    // Segment whose relative step u is global step k_first - 1 + u.
    void open_segment(uint64_t k_first) {
        rule_.reset();
        tables_.reset();
        k_base_ = k_first;
        tables_.emplace(sc_, k_first - 1, static_cast<uint32_t>(L_), Rule::needs);
        rule_.emplace(tables_->steps(), sc_);
        claimed_.store(0, std::memory_order_relaxed);
    }

    // Exclusive: every coordinate to relative step n (all of them completed), stamps to 0, and the
    // next segment opens after it.
    void rebase(uint32_t n) {
        // (idle_static_: the stamps matter to no catch-up, all being identities, so they stay)
        if ((kStamped && !idle_static_) || kScaledSgd)
            for (int64_t r = 0; r < n_rows_; ++r) bring(r, n, true);
        ++rebases_;
        open_segment(k_base_ + n);
    }

    // Row `row` to relative step c (closed-form catch-up); rebase: then stamp 0.
    void bring(int64_t row, uint32_t c, bool rebase) {
        if constexpr (kStamped) {
            uint32_t* st = row_stamps_.get() + row;
            const uint32_t s = shared_load(st);
            if (s < c) {
                if constexpr (attached_detail::prepares_catch_up<Rule>::value) {
                    const auto prepared = rule_->prepare(s, c);  // the row's coordinates share s
                    for (int64_t j = row * dim_; j < (row + 1) * dim_; ++j) {
                        State q = load(j, s);
                        rule_->finish(&q, prepared);
                        store(j, q);
                    }
                } else {
                    for (int64_t j = row * dim_; j < (row + 1) * dim_; ++j) {
                        State q = load(j, s);
                        rule_->finish(&q, c);  // the rule's segment-end step: catch up to c
                        store(j, q);
                    }
                }
            }
            // a stamp past c mid-segment: a racing step wrote a later one, which stays
            if (s < c || rebase) shared_store(st, rebase ? 0u : c);
        } else if constexpr (kScaledSgd) {
            for (int64_t j = row * dim_; j < (row + 1) * dim_; ++j) {
                uint32_t* st = stamps_.get() + j;
                const uint32_t s = shared_load(st);
                if (s < c) shared_store(W_ + j, static_cast<T>(tables_->steps().P(s, c) * shared_load(W_ + j)));
                shared_store(st, rebase ? 0u : std::max(s, c));
            }
        } else {
            (void)row, (void)c, (void)rebase;
        }
    }

    void run_step(const int64_t* rows, int64_t n_rows, const T* grad, uint32_t u) {
        const Rule& rule = *rule_;
        const auto ctx = rule.context(u - 1, u, step_coeffs(sc_, k_base_ - 1 + u, Rule::needs.moments));
        for (int64_t r = 0; r < n_rows; ++r) {
            const int64_t row = rows ? rows[r] : r;
            const T* g = grad + r * dim_;
            if constexpr (kStamped) {
                uint32_t* st = row_stamps_.get() + row;
                const uint32_t s = shared_load(st);
                for (int64_t q = 0; q < dim_; ++q) {
                    State rec = load(row * dim_ + q, s);
                    rule.apply(&rec, ctx, static_cast<double>(g[q]), 0.0);
                    store(row * dim_ + q, rec);
                }
                // a stamp ahead of u: a racing thread wrote a later step; keep it (as stamped.hpp)
                shared_store(st, s > u ? s : u);
            } else {
                for (int64_t q = 0; q < dim_; ++q) update(rule, ctx, row * dim_ + q, static_cast<double>(g[q]), u);
            }
        }
    }

    // The unstamped rules' step of coordinate j.
    template <class Ctx>
    void update(const Rule& rule, const Ctx& ctx, int64_t j, double g, uint32_t u) {
        if constexpr (kScaledSgd) {
            // catch w up to step u - 1, then the rule's step on u = w / S_{u-1}; W gets w = S_u u
            const Steps& steps = tables_->steps();
            uint32_t* st = stamps_.get() + j;
            const uint32_t s = shared_load(st);
            double w = static_cast<double>(shared_load(W_ + j));
            if (s + 1 < u) w *= steps.P(s, u - 1);
            State q{static_cast<T>(w / steps.scale(u - 1))};
            rule.apply(&q, ctx, g, 0.0);
            shared_store(W_ + j, static_cast<T>(steps.scale(u) * static_cast<double>(q.w)));
            shared_store(st, std::max(s, u));
        } else {
            State q{shared_load(W_ + j)};
            rule.apply(&q, ctx, g, 0.0);
            shared_store(W_ + j, q.w);
        }
    }

    // Coordinate j as the rule's State: w from W, its statistics, stamp the row's s (reg: 0, the
    // sparse regulariser is not offered here).
    State load(int64_t j, uint32_t s) const noexcept {
        State q{};
        q.w = shared_load(W_ + j);
        T* words = reinterpret_cast<T*>(&q) + 1;
        const T* src = stats_.get() + j * kStats;
        for (int64_t i = 0; i < kStats; ++i) words[i] = shared_load(src + i);
        q.stamp = s;
        return q;
    }

    // W[j] and the statistics back, each word in one relaxed store (never torn).
    void store(int64_t j, const State& q) noexcept {
        shared_store(W_ + j, q.w);
        const T* words = reinterpret_cast<const T*>(&q) + 1;
        T* dst = stats_.get() + j * kStats;
        for (int64_t i = 0; i < kStats; ++i) shared_store(dst + i, words[i]);
    }

    T* W_;
    int64_t n_rows_, dim_, n_;
    StepConfig sc_;
    attached_detail::AlignedArray<T> stats_;            // kStats words per coordinate, row-major
    attached_detail::AlignedArray<uint32_t> row_stamps_;  // stamped rules: one stamp per row
    attached_detail::AlignedArray<uint32_t> stamps_;      // scaled SGD: one stamp per coordinate
    // No idle coordinate ever moves (unstamped rules but scaled SGD, AdaGrad without decay): W is
    // always current, and catch_up and the rebases have nothing to do.
    bool idle_static_;
    uint64_t L_ = 1;
    uint64_t k_base_ = 1;  // the global step of relative step 1
    uint64_t rebases_ = 0;
    std::atomic<uint64_t> claimed_{0};
    mutable std::shared_mutex mu_;
    std::optional<StepTables<Steps>> tables_;
    std::optional<Rule> rule_;
};

}  // namespace asyncopt
