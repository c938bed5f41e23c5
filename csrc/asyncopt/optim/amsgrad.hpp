// AMSGrad update rule on the shared model: APAM, asynchronous AMSGrad (Xu et al. 2020, Alg. 1),
// with Reddi et al.'s max on the second moment:
//     m_k = beta1 m_{k-1} + (1 - beta1) g_k
//     v_k = beta2 v_{k-1} + (1 - beta2) g_k^2
//     vhat_k = max(vhat_{k-1}, v_k)
//     x_k = rho_k x_{k-1} - a_k m_k / (sqrt(vhat_k) + eps)
// a_k and rho_k (decoupled weight decay) are defined in steps.hpp. Untouched coordinates still
// move in the dense algorithm (m decays and keeps pushing x); read() and apply() apply the skipped
// steps in closed form from the coordinate's stamp, so the result equals dense AMSGrad with zero
// gradient on untouched coordinates while an update costs O(nnz).
//
// The state also keeps the last direction d = m / (sqrt(vhat) + eps). Over skipped steps vhat is
// constant and m decays by beta1 per step, so d does too: the catch-up is then a few multiplies
// and table lookups, with no square root or division (those are left to the one real step).
//
// The rule holds its Steps view by value and its methods are host-and-device: the GPU kernels
// (csrc/cuda) run this same rule. AMSGrad's step is not an addition, so it has no atomic form; on
// the GPU as on the CPU, concurrent writers of one coordinate race (Hogwild!).
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

// One coordinate's whole state in one cache line: read and written together, so interleaving costs
// one miss per nonzero instead of six (DESIGN.md, performance notes). 32 bytes (float) / 64 (double);
// the Python side allocates the array 64-byte aligned so no state straddles two lines.
// reg holds n/d_j of the frequency-scaled sparse regulariser, a constant of the fit written by the
// estimator: in the line that is loaded anyway it costs nothing, in an array of its own it cost a
// cache miss per nonzero (27% of an epoch on 2^20 features).
template <class T>
struct AmsgradState {
    T w, m, v, vhat, d, reg;
    uint32_t stamp;  // relative step of the last update or catch-up (steps.hpp)
    char pad[(sizeof(T) == 4 ? 32 : 64) - 6 * sizeof(T) - sizeof(uint32_t)];
    // The words Python's structured dtype mirrors (bindings/bind_logistic.cpp, state_layout).
    static std::array<StateField, 7> fields() {
        return {{{"w", offsetof(AmsgradState<T>, w), true},
                 {"m", offsetof(AmsgradState<T>, m), true},
                 {"v", offsetof(AmsgradState<T>, v), true},
                 {"vhat", offsetof(AmsgradState<T>, vhat), true},
                 {"d", offsetof(AmsgradState<T>, d), true},
                 {"reg", offsetof(AmsgradState<T>, reg), true},
                 {"stamp", offsetof(AmsgradState<T>, stamp), false}}};
    }
};
static_assert(sizeof(AmsgradState<float>) == 32, "AMSGrad float state is half a cache line");
static_assert(sizeof(AmsgradState<double>) == 64, "AMSGrad double state is one cache line");

template <class T, class Steps>
class AmsgradRule : public StampedRule<AmsgradRule<T, Steps>, T, AmsgradState<T>> {
    friend class StampedRule<AmsgradRule<T, Steps>, T, AmsgradState<T>>;

public:
    using State = AmsgradState<T>;
    // Capabilities (optim/rules.hpp): a step is not an addition; n/d_j sits in the state line; the
    // moments' step a_k (bias correction) and the closed-form drift E of steps.hpp.
    static constexpr bool additive = false;
    static constexpr bool reg_in_state = true;
    static constexpr StepNeeds needs{true, true, false};

    AmsgradRule(const Steps& steps, const StepConfig& c)
        : steps_(steps), b1_(static_cast<T>(c.beta1)), b2_(static_cast<T>(c.beta2)), eps_t_(static_cast<T>(c.eps)) {}
    AmsgradRule() = default;

    // Stamps are 32-bit and relative to the segment start.
    static uint64_t max_segment_updates(const StepConfig&) { return std::numeric_limits<uint32_t>::max() - 1; }

    // read, dot, apply, apply_intercept, finish: the stamped skeleton (stamped.hpp).

    // A copy of a coordinate's shared state, read through shared_load.
    ASYNCOPT_HD static State snapshot(const State* p) noexcept {
        State s{};
        s.w = shared_load(&p->w);
        s.m = shared_load(&p->m);
        s.v = shared_load(&p->v);
        s.vhat = shared_load(&p->vhat);
        s.d = shared_load(&p->d);
        s.reg = shared_load(&p->reg);
        s.stamp = shared_load(&p->stamp);
        return s;
    }

    // Merge a worker's private replica of a coordinate (threads/intercept.hpp), which took `steps` steps since
    // it copied `base`: as if those steps were applied to the shared state now. x takes the replica's
    // change, as Hogwild! adds updates; m and v decay by beta^steps (each of the steps decays them
    // once) and take the part the replica's gradients added, m_r - beta1^steps m_base; vhat, a
    // running max, takes the max; d follows from the merged m and vhat. Adding m_r - m_base instead
    // would subtract the decay (1 - beta1^steps) m_base once per merging worker: with W workers
    // merging a snapshot of the same m, m -> (1 - W (1 - beta1^steps)) m, which grows without bound
    // for W >= 3 (the GPU emulator's lockstep rounds showed it).
    ASYNCOPT_HD void merge(State* shared, const State& replica, const State& base, uint32_t steps) const noexcept {
        const T b1 = static_cast<T>(steps_.beta1_pow()(steps)), b2 = static_cast<T>(steps_.beta2_pow()(steps));
        Moments q = load(shared);
        q.w += replica.w - base.w;
        q.m = b1 * q.m + (replica.m - b1 * base.m);
        q.v = b2 * q.v + (replica.v - b2 * base.v);
        q.vhat = q.vhat > replica.vhat ? q.vhat : replica.vhat;
        q.vhat = q.vhat > q.v ? q.vhat : q.v;
        q.d = q.m / (std::sqrt(q.vhat) + eps_t_);
        store(shared, q);
    }

private:
    // Arithmetic in the model's own precision: float32 square roots and divisions are cheaper, and
    // a float32 state cannot hold more precision anyway. Catch-up factors come in double.
    struct Moments {
        T w, m, v, vhat, d;
    };

    ASYNCOPT_HD static Moments load(const State* p) noexcept {
        return Moments{shared_load(&p->w), shared_load(&p->m), shared_load(&p->v), shared_load(&p->vhat),
                       shared_load(&p->d)};
    }
    ASYNCOPT_HD static void store(State* p, const Moments& q) noexcept {
        shared_store(&p->w, q.w);
        shared_store(&p->m, q.m);
        shared_store(&p->v, q.v);
        shared_store(&p->vhat, q.vhat);
        shared_store(&p->d, q.d);
    }

    ASYNCOPT_HD void step(Moments& q, double g_in, double a, double rho) const noexcept {
        const T g = static_cast<T>(g_in);
        q.m = b1_ * q.m + (T(1) - b1_) * g;
        q.v = b2_ * q.v + (T(1) - b2_) * g * g;
        q.vhat = q.vhat > q.v ? q.vhat : q.v;
        q.d = q.m / (std::sqrt(q.vhat) + eps_t_);
        q.w = static_cast<T>(rho) * q.w - static_cast<T>(a) * q.d;
    }

    // x as of step u > s, in closed form: the direction d decays with m while vhat stays (steps.hpp).
    ASYNCOPT_HD double read_stale(const State* p, uint32_t s, uint32_t u) const noexcept {
        return steps_.P(s, u) * static_cast<double>(shared_load(&p->w)) -
               static_cast<double>(shared_load(&p->d)) * steps_.E(s, u);
    }

    // Steps s+1..t with zero gradient, in closed form (steps.hpp).
    ASYNCOPT_HD void catch_up(Moments& q, uint32_t s, uint32_t t) const noexcept {
        const double b1 = steps_.beta1_pow()(t - s);
        q.w = static_cast<T>(steps_.P(s, t) * q.w - q.d * steps_.E(s, t, b1));
        q.m = static_cast<T>(q.m * b1);
        q.d = static_cast<T>(q.d * b1);
        q.v = static_cast<T>(q.v * steps_.beta2_pow()(t - s));
    }

    Steps steps_;
    T b1_{}, b2_{}, eps_t_{};
};

}  // namespace asyncopt
