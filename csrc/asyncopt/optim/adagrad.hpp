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
#include "stamped.hpp"
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

// The words of an AdagradState that the rules on it read and write (AdaGrad here, RMSProp in
// rmsprop.hpp, which keeps the same words): the drivers' snapshot, and the (w, G) pair a step or a
// catch-up changes (stamped.hpp's Moments, load, store).
template <class T>
struct AdagradWords {
    using State = AdagradState<T>;
    struct Moments {
        T w, G;
    };
    ASYNCOPT_HD static State snapshot(const State* p) noexcept {
        State s{};
        s.w = shared_load(&p->w);
        s.G = shared_load(&p->G);
        s.reg = shared_load(&p->reg);
        s.stamp = shared_load(&p->stamp);
        return s;
    }
    ASYNCOPT_HD static Moments load(const State* p) noexcept { return Moments{shared_load(&p->w), shared_load(&p->G)}; }
    ASYNCOPT_HD static void store(State* p, const Moments& q) noexcept {
        shared_store(&p->w, q.w);
        shared_store(&p->G, q.G);
    }
};

template <class T, class Steps>
class AdagradRule : public StampedRule<AdagradRule<T, Steps>, T, AdagradState<T>>, public AdagradWords<T> {
    friend class StampedRule<AdagradRule<T, Steps>, T, AdagradState<T>>;

public:
    using State = AdagradState<T>;
    // Capabilities (optim/rules.hpp): not additive; n/d_j in the state; no moments (no bias
    // correction, so the context's a_k is eta_k), no drift, no series: the catch-up is the shrink P.
    static constexpr bool additive = false;
    static constexpr bool reg_in_state = true;
    static constexpr StepNeeds needs{};
    // An idle coordinate moves only by the shrink rho (decoupled decay): without it, never
    // (optim/attached.hpp skips its catch-ups then).
    static constexpr bool idle_moves_by_shrink_only = true;

    AdagradRule(const Steps& steps, const StepConfig& c) : steps_(steps), eps_t_(static_cast<T>(c.eps)) {}
    AdagradRule() = default;

    static uint64_t max_segment_updates(const StepConfig&) { return std::numeric_limits<uint32_t>::max() - 1; }

    // read, dot, apply, apply_intercept, finish: the stamped skeleton (stamped.hpp); snapshot, load,
    // store: the state's words (AdagradWords).

    // Merge a worker's private replica (threads/intercept.hpp): x and G take the replica's changes (G is a
    // plain sum of squares, so the steps' contributions add).
    ASYNCOPT_HD void merge(State* shared, const State& replica, const State& base, uint32_t /*steps*/) const noexcept {
        shared_store(&shared->w, static_cast<T>(shared_load(&shared->w) + (replica.w - base.w)));
        shared_store(&shared->G, static_cast<T>(shared_load(&shared->G) + (replica.G - base.G)));
    }

private:
    using Moments = typename AdagradWords<T>::Moments;

    // In the model's precision, as AMSGrad: a float32 state cannot hold more.
    ASYNCOPT_HD void step(Moments& q, double g_in, double eta, double rho) const noexcept {
        const T g = static_cast<T>(g_in);
        q.G += g * g;
        q.w = static_cast<T>(rho) * q.w - static_cast<T>(eta) * g / (std::sqrt(q.G) + eps_t_);
    }

    // An idle coordinate only shrinks: G stays, x_t = P(s, t) x_s.
    ASYNCOPT_HD void catch_up(Moments& q, uint32_t s, uint32_t t) const noexcept {
        q.w = static_cast<T>(steps_.P(s, t) * q.w);
    }
    ASYNCOPT_HD double read_stale(const State* p, uint32_t s, uint32_t u) const noexcept {
        return steps_.P(s, u) * static_cast<double>(shared_load(&p->w));
    }

    Steps steps_;
    T eps_t_{};
};

}  // namespace asyncopt
