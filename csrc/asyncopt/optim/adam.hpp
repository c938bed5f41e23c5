// Adam update rule on the shared model (Kingma & Ba 2015, Alg. 1; the rule Efficient-Adam's
// workers run):
//     m_k = beta1 m_{k-1} + (1 - beta1) g_k
//     v_k = beta2 v_{k-1} + (1 - beta2) g_k^2
//     x_k = rho_k x_{k-1} - a_k m_k / (sqrt(v_k) + eps)
// with a_k (bias correction folded into the step, the "epsilon-hat" form) and rho_k (decoupled
// weight decay, AdamW) from steps.hpp: AMSGrad without the max.
//
// Lazy and exact. An untouched coordinate still moves in the dense algorithm: m and v decay, and
// over D skipped steps after step s
//     x_t = P(s, t) (x_s - m_s sum_{j=1..D} w_j / (sqrt(v_s) beta2^(j/2) + eps)),
//     w_j = a_{s+j} beta1^j / P(s, s+j).
// Unlike AMSGrad (whose vhat stays put, so its direction decays geometrically and the sum has a
// closed form), v decays here and eps keeps the sum from being geometric. Its terms shrink at
// least geometrically, though (steps.hpp, series_horizon), so the first min(D, horizon) of them give
// the sum to double precision: about 430 terms for beta1 = 0.9, beta2 = 0.999 with bias correction,
// whatever D. Expanded in powers of eps / sqrt(v), the sum becomes a few order sums that do not
// depend on the coordinate (tables of the segment, steps.hpp): a catch-up then costs a handful of
// lookups, and only coordinates with sqrt(v) within a few hundred eps sum their terms one by one (a
// vectorised loop). The alternative of skipping the catch-up (PyTorch's SparseAdam, moments of
// untouched coordinates frozen) is a different algorithm, whose result depends on the data's
// sparsity pattern.
//
// The rule holds its Steps view by value and its methods are host-and-device: the GPU kernels run
// it too. Its step is not an addition, so it has no atomic form.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../core/shared.hpp"
#include "stamped.hpp"
#include "steps.hpp"

namespace asyncopt {

// One coordinate in one line: 32 bytes (float) / 64 (double), 64-byte aligned by the Python side.
// reg: n/d_j of the sparse regulariser, as in AmsgradState.
template <class T>
struct AdamState {
    T w, m, v, reg;
    uint32_t stamp;  // relative step of the last update or catch-up (steps.hpp)
    char pad[(sizeof(T) == 4 ? 32 : 64) - 4 * sizeof(T) - sizeof(uint32_t)];
    // The words Python's structured dtype mirrors (bindings/bind_logistic.cpp, state_layout).
    static std::array<StateField, 5> fields() {
        return {{{"w", offsetof(AdamState<T>, w), true},
                 {"m", offsetof(AdamState<T>, m), true},
                 {"v", offsetof(AdamState<T>, v), true},
                 {"reg", offsetof(AdamState<T>, reg), true},
                 {"stamp", offsetof(AdamState<T>, stamp), false}}};
    }
};
static_assert(sizeof(AdamState<float>) == 32, "Adam float state is half a cache line");
static_assert(sizeof(AdamState<double>) == 64, "Adam double state is one cache line");

template <class T, class Steps>
class AdamRule : public StampedRule<AdamRule<T, Steps>, T, AdamState<T>> {
    friend class StampedRule<AdamRule<T, Steps>, T, AdamState<T>>;

public:
    using State = AdamState<T>;
    // Capabilities (optim/rules.hpp): not additive; n/d_j in the state; the moments' step a_k and
    // the series tables of steps.hpp.
    static constexpr bool additive = false;
    static constexpr bool reg_in_state = true;
    static constexpr StepNeeds needs{true, false, true};

    AdamRule(const Steps& steps, const StepConfig& c)
        : steps_(steps), b1_(static_cast<T>(c.beta1)), b2_(static_cast<T>(c.beta2)), eps_(c.eps),
          eps_t_(static_cast<T>(c.eps)) {}
    AdamRule() = default;

    // Stamps are 32-bit; with decay, the weights a_u / S_u of TabledSteps need S far from underflow.
    static uint64_t max_segment_updates(const StepConfig& c) {
        return std::min<uint64_t>(std::numeric_limits<uint32_t>::max() - 1, max_updates_for_scale(c, 600.0));
    }

    // read, dot, apply, apply_intercept, finish: the stamped skeleton (stamped.hpp).

    ASYNCOPT_HD static State snapshot(const State* p) noexcept {
        State s{};
        s.w = shared_load(&p->w);
        s.m = shared_load(&p->m);
        s.v = shared_load(&p->v);
        s.reg = shared_load(&p->reg);
        s.stamp = shared_load(&p->stamp);
        return s;
    }

    // Merge a worker's replica `steps` steps after it copied `base`, as AMSGrad's merge: x takes the
    // replica's change; m and v decay by beta^steps and take the part the replica's gradients added.
    ASYNCOPT_HD void merge(State* shared, const State& replica, const State& base, uint32_t steps) const noexcept {
        const T b1 = static_cast<T>(steps_.beta1_pow()(steps)), b2 = static_cast<T>(steps_.beta2_pow()(steps));
        Moments q = load(shared);
        q.w += replica.w - base.w;
        q.m = b1 * q.m + (replica.m - b1 * base.m);
        q.v = b2 * q.v + (replica.v - b2 * base.v);
        store(shared, q);
    }

    // A catch-up over the steps s+1..t prepared once for every coordinate stamped s (an attached
    // optimizer's row shares one stamp, optim/attached.hpp): the shrink P, the moments' decays and
    // the series' order sums do not depend on the coordinate, and the tabled steps' P is an exp().
    // finish(p, prepared) gives the bits finish(p, t) gives for a coordinate stamped s.
    struct Prepared {
        uint32_t s, D;
        double P, beta1_pow, beta2_pow, root_beta2_n;
        double order_sum[kMaxSeriesOrders];
    };
    ASYNCOPT_HD Prepared prepare(uint32_t s, uint32_t t) const noexcept {
        Prepared c{};
        c.s = s;
        c.D = t - s;
        c.P = steps_.P(s, t);
        c.beta1_pow = steps_.beta1_pow()(c.D);
        c.beta2_pow = steps_.beta2_pow()(c.D);
        const uint32_t n = c.D < steps_.horizon() ? c.D : steps_.horizon();
        c.root_beta2_n = steps_.root_beta2(n);
        for (int q = 0; q < steps_.orders(); ++q) c.order_sum[q] = steps_.order_sum(q, s, n);
        return c;
    }
    ASYNCOPT_HD void finish(State* p, const Prepared& c) const noexcept {
        Moments q = load(p);
        const double m = q.m, x = q.w;
        q.w = static_cast<T>(c.P * (m == 0 ? x : x - m * series(q.v, c.s, c.D, &c)));
        q.m = static_cast<T>(m * c.beta1_pow);
        q.v = static_cast<T>(q.v * c.beta2_pow);
        store(p, q);
        p->stamp = 0;
    }
    using StampedRule<AdamRule<T, Steps>, T, AdamState<T>>::finish;

private:
    struct Moments {
        T w, m, v;
    };

    ASYNCOPT_HD static Moments load(const State* p) noexcept {
        return Moments{shared_load(&p->w), shared_load(&p->m), shared_load(&p->v)};
    }
    ASYNCOPT_HD static void store(State* p, const Moments& q) noexcept {
        shared_store(&p->w, q.w);
        shared_store(&p->m, q.m);
        shared_store(&p->v, q.v);
    }

    // In the model's precision, as AMSGrad's step; the catch-up's sum runs in double.
    ASYNCOPT_HD void step(Moments& q, double g_in, double a, double rho) const noexcept {
        const T g = static_cast<T>(g_in);
        q.m = b1_ * q.m + (T(1) - b1_) * g;
        q.v = b2_ * q.v + (T(1) - b2_) * g * g;
        q.w = static_cast<T>(rho) * q.w - static_cast<T>(a) * q.m / (std::sqrt(q.v) + eps_t_);
    }

    // sum_{j=1..min(D, horizon)} w_j / (sqrt(v) beta2^(j/2) + eps): the drift of D skipped steps per
    // unit of m, before the shrink P (see the top of this file). By orders of eps from the segment's
    // tables when eps / (sqrt(v) beta2^(n/2)) is small enough for them to reach 2^-54 (steps.hpp),
    // else term by term.
    // pre: the order sums and root_beta2(n) prepared for (s, D) (the same values), or null.
    ASYNCOPT_HD double series(double v, uint32_t s, uint32_t D, const Prepared* pre = nullptr) const noexcept {
        const uint32_t n = D < steps_.horizon() ? D : steps_.horizon();
        const double root_v = std::sqrt(v);
        const int orders = steps_.orders();
        if (root_v > 0 && orders > 0) {
            // the largest x_j, j <= n
            const double x = eps_ / (root_v * (pre ? pre->root_beta2_n : steps_.root_beta2(n)));
            double bound = x, f = 1.0 / root_v, sum = 0;
            const double r = -eps_ / root_v;
            for (int q = 0; q < orders; ++q, f *= r, bound *= x) {
                sum += f * (pre ? pre->order_sum[q] : steps_.order_sum(q, s, n));
                if (bound <= 0x1p-54) return sum;  // the rest is at most x^(q+1) of the sum
            }
        }
        double sum = 0;
        ASYNCOPT_SIMD_SUM(sum)
        for (uint32_t j = 1; j <= n; ++j) sum += steps_.weight(s, j) / (root_v * steps_.root_beta2(j) + eps_);
        return sum;
    }

    // x as of step u > s; the catch-up is computed, not stored (apply() repeats it).
    // m = 0 (a coordinate no gradient has reached yet, or whose gradients were all 0) drifts by
    // nothing: only the shrink P applies, and the series (whose v = 0 case is the slow term-by-term
    // one) is not evaluated.
    ASYNCOPT_HD double read_stale(const State* p, uint32_t s, uint32_t u) const noexcept {
        const double x = shared_load(&p->w), m = shared_load(&p->m), v = shared_load(&p->v);
        return steps_.P(s, u) * (m == 0 ? x : x - m * series(v, s, u - s));
    }

    // Steps s+1..t with zero gradient.
    ASYNCOPT_HD void catch_up(Moments& q, uint32_t s, uint32_t t) const noexcept {
        const double m = q.m;
        const double x = q.w;
        q.w = static_cast<T>(steps_.P(s, t) * (m == 0 ? x : x - m * series(q.v, s, t - s)));
        q.m = static_cast<T>(m * steps_.beta1_pow()(t - s));
        q.v = static_cast<T>(q.v * steps_.beta2_pow()(t - s));
    }

    Steps steps_;
    T b1_{}, b2_{};
    double eps_ = 0;
    T eps_t_{};
};

}  // namespace asyncopt
