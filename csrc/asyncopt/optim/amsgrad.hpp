// AMSGrad update rule on the shared model: APAM, asynchronous AMSGrad (Xu et al. 2020, Alg. 1),
// with Reddi et al.'s max on the second moment:
//     m_k = beta1 m_{k-1} + (1 - beta1) g_k
//     v_k = beta2 v_{k-1} + (1 - beta2) g_k^2
//     vhat_k = max(vhat_{k-1}, v_k)
//     x_k = rho_k x_{k-1} - a_k m_k / (sqrt(vhat_k) + eps)
// a_k and rho_k (decoupled weight decay) are defined in steps.hpp. Untouched coordinates still
// move in the dense algorithm (m decays and keeps pushing x); read() and apply() apply those skipped
// steps in closed form from the coordinate's stamp, so the result equals dense AMSGrad with zero
// gradient on untouched coordinates while an update costs O(nnz).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../shared.hpp"
#include "steps.hpp"

namespace asyncopt {

// One coordinate's whole state in one cache line: w, m, v, vhat and the stamp are read and written
// together, so interleaving them costs one miss per nonzero instead of five (DESIGN.md, perf notes).
// Padded to 32 bytes (float) / 64 bytes (double); the Python side allocates the array 64-byte aligned.
template <class T>
struct AmsgradState {
    T w, m, v, vhat;
    uint32_t stamp;
    char pad[(sizeof(T) == 4 ? 32 : 64) - 4 * sizeof(T) - sizeof(uint32_t)];
};
static_assert(sizeof(AmsgradState<float>) == 32, "AMSGrad float state is half a cache line");
static_assert(sizeof(AmsgradState<double>) == 64, "AMSGrad double state is one cache line");

template <class T, class Steps>
class AmsgradRule {
public:
    using State = AmsgradState<T>;
    static constexpr bool amsgrad = true;

    AmsgradRule(const Steps& steps, const StepConfig& c)
        : steps_(steps), beta1_(c.beta1), beta2_(c.beta2), eps_(c.eps), beta1_pow_(c.beta1), beta2_pow_(c.beta2) {}

    // Read phase: x_j as of relative step u; a stale coordinate is caught up and written back.
    T read(State* p, uint32_t u) const noexcept {
        const uint32_t s = shared_load(&p->stamp);
        if (s >= u) return shared_load(&p->w);
        Moments q = load(p);
        catch_up(q, s, u);
        store(p, q);
        shared_store(&p->stamp, u);
        return static_cast<T>(q.w);
    }

    // Write phase of update k (relative u) with data gradient g; regc * x_j is the sparse
    // regulariser's share of the gradient (0 when off).
    void apply(State* p, uint32_t u, double g, double regc, const StepCoeffs& c) const noexcept {
        const uint32_t s = shared_load(&p->stamp);
        Moments q = load(p);
        if (s + 1 < u) catch_up(q, s, u - 1);
        step(q, g + regc * q.w, c.a, c.rho);
        store(p, q);
        shared_store(&p->stamp, std::max(s, u));
    }

    // The intercept: touched by every update, never regularised or decayed, never caught up.
    void apply_intercept(State* p, double g, const StepCoeffs& c) const noexcept {
        Moments q = load(p);
        step(q, g, c.a, 1.0);
        store(p, q);
    }

    // Epoch end: bring the coordinate to step n (the epoch's last) and rebase its stamp to 0.
    void finish(State* p, uint32_t n) const noexcept {
        read(p, n);
        shared_store(&p->stamp, uint32_t{0});
    }

private:
    struct Moments {
        double w, m, v, vhat;
    };

    static Moments load(const State* p) noexcept {
        return Moments{shared_load(&p->w), shared_load(&p->m), shared_load(&p->v), shared_load(&p->vhat)};
    }
    static void store(State* p, const Moments& q) noexcept {
        shared_store(&p->w, static_cast<T>(q.w));
        shared_store(&p->m, static_cast<T>(q.m));
        shared_store(&p->v, static_cast<T>(q.v));
        shared_store(&p->vhat, static_cast<T>(q.vhat));
    }

    void step(Moments& q, double g, double a, double rho) const noexcept {
        q.m = beta1_ * q.m + (1.0 - beta1_) * g;
        q.v = beta2_ * q.v + (1.0 - beta2_) * g * g;
        q.vhat = std::max(q.vhat, q.v);
        q.w = rho * q.w - a * q.m / (std::sqrt(q.vhat) + eps_);
    }

    // Steps s+1..t with zero gradient, in closed form (steps.hpp).
    void catch_up(Moments& q, uint32_t s, uint32_t t) const noexcept {
        const double c = q.m / (std::sqrt(q.vhat) + eps_);
        q.w = steps_.P(s, t) * q.w - c * steps_.E(s, t);
        q.m *= beta1_pow_(t - s);
        q.v *= beta2_pow_(t - s);
    }

    const Steps& steps_;
    double beta1_, beta2_, eps_;
    PowerOf beta1_pow_, beta2_pow_;
};

}  // namespace asyncopt
