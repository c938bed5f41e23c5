// RMSProp update rule on the shared model (Tieleman & Hinton 2012), the optimizer of A3C (Mnih et
// al. 2016, sec. 4 "Optimization"), whose "shared RMSProp" keeps ONE set of statistics G next to the
// shared parameters, updated lock-free by every thread like the parameters themselves:
//     G_k = alpha G_{k-1} + (1 - alpha) g_k^2
//     x_k = rho_k x_{k-1} - eta_k g_k / (sqrt(G_k) + eps)
// alpha is StepConfig::beta2 (the decay of a second moment, as in AMSGrad and Adam), and eps is
// added to sqrt(G) as in PyTorch's and stable-baselines3's RMSprop (A3C's paper writes sqrt(G + eps);
// the two agree up to the size of eps). rho_k is the decoupled weight decay of steps.hpp.
// An untouched coordinate has g = 0: G only decays, G_t = alpha^(t - s) G_s, and x only shrinks,
// x_t = P(s, t) x_s, so the lazy catch-up from the stamp is exact and costs two table lookups.
//
// Host-and-device like the other rules; its step divides by sqrt(G), so it is not an addition.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../core/shared.hpp"
#include "adagrad.hpp"
#include "stamped.hpp"
#include "steps.hpp"

namespace asyncopt {

// One coordinate: AdaGrad's words (adagrad.hpp), G holding the running mean of squared gradients
// instead of their sum: weight, G, n/d_j of the sparse regulariser and the stamp; 16 bytes (float)
// / 32 (double). One layout, so the Python state dtype and the attached optimizer's compact
// statistics are the same code for both.
template <class T>
using RmspropState = AdagradState<T>;

template <class T, class Steps>
class RmspropRule : public StampedRule<RmspropRule<T, Steps>, T, RmspropState<T>>, public AdagradWords<T> {
    friend class StampedRule<RmspropRule<T, Steps>, T, RmspropState<T>>;

public:
    using State = RmspropState<T>;
    // Capabilities (optim/rules.hpp): not additive; n/d_j in the state; no Adam-family step a_k (no
    // bias correction: a_k is eta_k), no drift, no series; the catch-up reads beta2's power table,
    // which every Steps class fills.
    static constexpr bool additive = false;
    static constexpr bool reg_in_state = true;
    static constexpr StepNeeds needs{};

    RmspropRule(const Steps& steps, const StepConfig& c)
        : steps_(steps), alpha_(static_cast<T>(c.beta2)), eps_t_(static_cast<T>(c.eps)) {}
    RmspropRule() = default;

    static uint64_t max_segment_updates(const StepConfig&) { return std::numeric_limits<uint32_t>::max() - 1; }

    // read, dot, apply, apply_intercept, finish: the stamped skeleton (stamped.hpp); snapshot, load,
    // store: the state's words (AdagradWords).

    // Merge a worker's private replica (threads/intercept.hpp), `steps` steps after it copied `base`:
    // x takes the replica's change; G decays by alpha^steps and takes what the replica's gradients
    // added, G_r - alpha^steps G_base (the same reasoning as AMSGrad's v in amsgrad.hpp).
    ASYNCOPT_HD void merge(State* shared, const State& replica, const State& base, uint32_t steps) const noexcept {
        const T a = static_cast<T>(steps_.beta2_pow()(steps));
        shared_store(&shared->w, static_cast<T>(shared_load(&shared->w) + (replica.w - base.w)));
        shared_store(&shared->G, static_cast<T>(a * shared_load(&shared->G) + (replica.G - a * base.G)));
    }

private:
    using Moments = typename AdagradWords<T>::Moments;

    // In the model's precision, as AMSGrad: a float32 state cannot hold more.
    ASYNCOPT_HD void step(Moments& q, double g_in, double eta, double rho) const noexcept {
        const T g = static_cast<T>(g_in);
        q.G = alpha_ * q.G + (T(1) - alpha_) * g * g;
        q.w = static_cast<T>(rho) * q.w - static_cast<T>(eta) * g / (std::sqrt(q.G) + eps_t_);
    }

    // Idle steps s+1..t: G decays, x only shrinks.
    ASYNCOPT_HD void catch_up(Moments& q, uint32_t s, uint32_t t) const noexcept {
        q.w = static_cast<T>(steps_.P(s, t) * q.w);
        q.G = static_cast<T>(q.G * steps_.beta2_pow()(t - s));
    }
    ASYNCOPT_HD double read_stale(const State* p, uint32_t s, uint32_t u) const noexcept {
        return steps_.P(s, u) * static_cast<double>(shared_load(&p->w));
    }

    Steps steps_;
    T alpha_{}, eps_t_{};
};

}  // namespace asyncopt
