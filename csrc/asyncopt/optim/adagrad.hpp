// AdaGrad update rule on the shared model (Duchi, Hazan & Singer 2011, diagonal form):
//     G_k = G_{k-1} + g_k^2
//     x_k = rho_k x_{k-1} - eta_k g_k / (sqrt(G_k) + eps)
// per coordinate, with rho_k the decoupled weight decay of steps.hpp (1 without it). An untouched
// coordinate has g = 0: G stays, and x only shrinks, x_t = P(s, t) x_s, so the lazy catch-up from
// the coordinate's stamp is exact and costs one lookup (an untouched coordinate never moves without
// decay). The sparse regulariser's share regc * x enters g, as for the other rules.
//
// The rule holds its Steps view by value and its methods are host-and-device, so the GPU kernels run
// it too. Its step divides by sqrt(G), so it is not an addition: no atomic form.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../core/shared.hpp"
#include "steps.hpp"

namespace asyncopt {

// One coordinate: weight, sum of squared gradients, n/d_j of the sparse regulariser (a constant of
// the fit, as in AmsgradState) and the stamp. 16 bytes (float) / 32 (double).
template <class T>
struct AdagradState {
    T w, G, reg;
    uint32_t stamp;
    char pad[(sizeof(T) == 4 ? 16 : 32) - 3 * sizeof(T) - sizeof(uint32_t)];
    // The words Python's structured dtype mirrors (bindings/bind_logistic.cpp, state_layout).
    static std::array<StateField, 4> fields() {
        return {{{"w", offsetof(AdagradState<T>, w), true},
                 {"G", offsetof(AdagradState<T>, G), true},
                 {"reg", offsetof(AdagradState<T>, reg), true},
                 {"stamp", offsetof(AdagradState<T>, stamp), false}}};
    }
};
static_assert(sizeof(AdagradState<float>) == 16, "AdaGrad float state is a quarter cache line");
static_assert(sizeof(AdagradState<double>) == 32, "AdaGrad double state is half a cache line");

template <class T, class Steps>
class AdagradRule {
public:
    using State = AdagradState<T>;
    // Capabilities (optim/rules.hpp): not additive; n/d_j in the state; no moments (no bias
    // correction), no drift, no series: the catch-up is the shrink P alone.
    static constexpr bool additive = false;
    static constexpr bool reg_in_state = true;
    static constexpr StepNeeds needs{};

    struct Context {
        uint32_t u_read, u_write;
        double eta, rho;
    };

    AdagradRule(const Steps& steps, const StepConfig& c) : steps_(steps), eps_t_(static_cast<T>(c.eps)) {}
    AdagradRule() = default;

    static uint64_t max_segment_updates(const StepConfig&) { return std::numeric_limits<uint32_t>::max() - 1; }

    ASYNCOPT_HD static double reg_scale(const State* p, const T*, int32_t) noexcept { return shared_load(&p->reg); }

    ASYNCOPT_HD Context context(uint32_t u_read, uint32_t u_write, const StepCoeffs& c) const noexcept {
        return Context{u_read, u_write, c.eta, c.rho};
    }

    ASYNCOPT_HD double read(const State* p, const Context& ctx) const noexcept {
        const uint32_t s = shared_load(&p->stamp);
        const double x = shared_load(&p->w);
        return s >= ctx.u_read ? x : steps_.P(s, ctx.u_read) * x;
    }

    ASYNCOPT_HD double dot(const State* state, const int32_t* idx, const T* val, int64_t nnz, const Context& ctx,
                           int64_t first = 0, int64_t stride = 1) const noexcept {
        double z = 0;
        for (int64_t a = first; a < nnz; a += stride) z += static_cast<double>(val[a]) * read(state + idx[a], ctx);
        return z;
    }

    // One step; a stamp ahead of the previous step means another thread wrote a later one (a
    // Hogwild! race): nothing to catch up, and the later stamp is kept.
    ASYNCOPT_HD void apply(State* p, const Context& ctx, double g, double regc) const noexcept {
        const uint32_t s = shared_load(&p->stamp);
        T w = shared_load(&p->w), G = shared_load(&p->G);
        if (s + 1 < ctx.u_write) w = static_cast<T>(steps_.P(s, ctx.u_write - 1) * w);
        step(w, G, g + regc * static_cast<double>(w), ctx.eta, ctx.rho);
        shared_store(&p->w, w);
        shared_store(&p->G, G);
        shared_store(&p->stamp, s > ctx.u_write ? s : ctx.u_write);
    }

    // The intercept: never regularised, decayed or caught up; its step is step_scale times eta_k.
    ASYNCOPT_HD void apply_intercept(State* p, const Context& ctx, double g, double step_scale) const noexcept {
        T w = shared_load(&p->w), G = shared_load(&p->G);
        step(w, G, g, step_scale * ctx.eta, 1.0);
        shared_store(&p->w, w);
        shared_store(&p->G, G);
    }
    ASYNCOPT_HD double read_intercept(const State* p) const noexcept { return shared_load(&p->w); }

    ASYNCOPT_HD void finish(State* p, uint32_t n) const noexcept {
        if (p->stamp < n) p->w = static_cast<T>(steps_.P(p->stamp, n) * p->w);
        p->stamp = 0;
    }

    ASYNCOPT_HD static State snapshot(const State* p) noexcept {
        State s{};
        s.w = shared_load(&p->w);
        s.G = shared_load(&p->G);
        s.reg = shared_load(&p->reg);
        s.stamp = shared_load(&p->stamp);
        return s;
    }

    // Merge a worker's private replica (threads/intercept.hpp): x and G take the replica's changes (G is a
    // plain sum of squares, so the steps' contributions add).
    ASYNCOPT_HD void merge(State* shared, const State& replica, const State& base, uint32_t /*steps*/) const noexcept {
        shared_store(&shared->w, static_cast<T>(shared_load(&shared->w) + (replica.w - base.w)));
        shared_store(&shared->G, static_cast<T>(shared_load(&shared->G) + (replica.G - base.G)));
    }

private:
    // In the model's precision, as AMSGrad: a float32 state cannot hold more.
    ASYNCOPT_HD void step(T& w, T& G, double g_in, double eta, double rho) const noexcept {
        const T g = static_cast<T>(g_in);
        G += g * g;
        w = static_cast<T>(rho) * w - static_cast<T>(eta) * g / (std::sqrt(G) + eps_t_);
    }

    Steps steps_;
    T eps_t_{};
};

}  // namespace asyncopt
