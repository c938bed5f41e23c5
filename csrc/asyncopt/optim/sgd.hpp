// SGD update rule on the shared model (Hogwild!, Niu et al. 2011, Alg. 1):
//     w_k = rho_k w_{k-1} - eta_k g_k,     rho_k = 1 - eta_k alpha with exact L2, else 1.
//
// Exact L2 shrinks every coordinate at every step. Scaled=true makes that O(1) per step: the shared
// array holds u with w = S_k u, where S_k = prod_{i<=k} rho_i = P(0, k) (steps.hpp) is a function of
// the step number alone, so no thread ever writes a shared scale (a global scale variable would be
// one more cache line bouncing between cores at every update):
//     read at step r:    w_j = S_r u_j
//     write at step k:   u_j <- u_j - (eta_k / S_k) g_j          (since S_k = rho_k S_{k-1})
// S shrinks geometrically, so the driver cuts an epoch into segments short enough that S stays
// far from underflow (max_segment_updates) and folds S into u at every segment end (finish).
// Without L2, or with the frequency-scaled sparse regulariser (which touches only a row's own
// features), S = 1 and Scaled=false drops the multiplications.
//
// The rule holds its Steps view by value and every per-coordinate method is host-and-device, so the
// GPU kernels (csrc/cuda) run this same rule; apply_atomic / apply_intercept_atomic are its
// atomic-add form.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../core/shared.hpp"
#include "steps.hpp"

namespace asyncopt {

// One coordinate's state: just the (scaled) weight.
template <class T>
struct SgdState {
    T w;
    // The words Python's structured dtype mirrors (bindings/bind_logistic.cpp, state_layout).
    static std::array<StateField, 1> fields() {
        return {{{"w", offsetof(SgdState<T>, w), true}}};
    }
};

template <class T, class Steps, bool Scaled>
class SgdRule {
public:
    using State = SgdState<T>;
    // Capabilities (optim/rules.hpp): a step is one addition to w (the GPU's atomic write mode, and
    // the parameter server can add a DPSGD worker's change or track moves); n/d_j of the sparse
    // regulariser lives in a separate array; no moments, no series catch-up.
    static constexpr bool additive = true;
    static constexpr bool reg_in_state = false;
    static constexpr StepNeeds needs{};

    // What one update needs, computed once per mini-batch rather than per nonzero.
    struct Context {
        double scale_read;   // S at the step the update reads (k - 1)
        double step_write;   // eta_k / S_k
        double eta;          // eta_k, for the unscaled intercept
    };

    SgdRule(const Steps& steps, const StepConfig&) : steps_(steps) {}
    SgdRule() = default;

    // Longest segment over which S = prod rho_i stays >= 2^-40 (float) / 2^-600 (double): u = w / S
    // then stays representable with room to spare for any weight the loss can produce.
    static uint64_t max_segment_updates(const StepConfig& c) {
        if (!Scaled) return std::numeric_limits<uint32_t>::max();
        return max_updates_for_scale(c, sizeof(T) == 4 ? 40.0 : 600.0);
    }

    ASYNCOPT_HD Context context(uint32_t u_read, uint32_t u_write, const StepCoeffs& c) const noexcept {
        if (!Scaled) return Context{1.0, c.eta, c.eta};
        return Context{steps_.scale(u_read), c.eta / steps_.scale(u_write), c.eta};
    }

    // n/d_j of the frequency-scaled sparse regulariser: a separate array (4 more bytes per
    // feature in the state would double SGD's memory traffic when the regulariser is off).
    ASYNCOPT_HD static double reg_scale(const State*, const T* scale, int32_t j) noexcept { return scale[j]; }

    ASYNCOPT_HD double read(const State* p, const Context& ctx) const noexcept {
        const double u = shared_load(&p->w);
        return Scaled ? ctx.scale_read * u : u;
    }

    // w.x of a row: S_r (u.x), one multiply by the scale per row rather than per nonzero. With
    // first/stride, the share of one lane of a GPU team (nonzeros first, first + stride, ...).
    ASYNCOPT_HD double dot(const State* state, const int32_t* idx, const T* val, int64_t nnz, const Context& ctx,
                           int64_t first = 0, int64_t stride = 1) const noexcept {
        double z = 0;
        for (int64_t a = first; a < nnz; a += stride) z += static_cast<double>(val[a]) * shared_load(&state[idx[a]].w);
        return Scaled ? ctx.scale_read * z : z;
    }

    // g: the data gradient at j; regc * w_j: the sparse regulariser's share (0 when off).
    ASYNCOPT_HD void apply(State* p, const Context& ctx, double g, double regc) const noexcept {
        const double u = shared_load(&p->w);
        if (regc != 0) g += regc * (Scaled ? ctx.scale_read * u : u);
        shared_store(&p->w, static_cast<T>(u - ctx.step_write * g));
    }
    // The same step as one atomic add: a concurrent update of the coordinate is never lost (only
    // the regulariser's share reads a possibly older u).
    ASYNCOPT_HD void apply_atomic(State* p, const Context& ctx, double g, double regc) const noexcept {
        if (regc != 0) {
            const double u = shared_load(&p->w);
            g += regc * (Scaled ? ctx.scale_read * u : u);
        }
        shared_add(&p->w, static_cast<T>(-ctx.step_write * g));
    }

    // The intercept: never regularised, so never scaled; its step is step_scale times eta_k.
    ASYNCOPT_HD void apply_intercept(State* p, const Context& ctx, double g, double step_scale) const noexcept {
        shared_store(&p->w, static_cast<T>(shared_load(&p->w) - step_scale * ctx.eta * g));
    }
    // The same as one atomic add (the GPU's atomic write mode).
    ASYNCOPT_HD void apply_intercept_atomic(State* p, const Context& ctx, double g, double step_scale) const noexcept {
        shared_add(&p->w, static_cast<T>(-step_scale * ctx.eta * g));
    }
    ASYNCOPT_HD double read_intercept(const State* p) const noexcept { return shared_load(&p->w); }

    // Segment end (no thread running): fold S_n into u, so the state holds w again.
    ASYNCOPT_HD void finish(State* p, uint32_t n) const noexcept {
        if (Scaled) p->w = static_cast<T>(steps_.scale(n) * p->w);
    }

    // A copy of a coordinate's shared state, read through shared_load.
    ASYNCOPT_HD static State snapshot(const State* p) noexcept { return State{shared_load(&p->w)}; }

    // Merge a worker's private replica of a coordinate (threads/intercept.hpp), `steps` steps after it was
    // taken: add the replica's change since then to the shared value.
    ASYNCOPT_HD void merge(State* shared, const State& replica, const State& base, uint32_t /*steps*/) const noexcept {
        shared_store(&shared->w, static_cast<T>(shared_load(&shared->w) + (replica.w - base.w)));
    }

private:
    Steps steps_;
};

}  // namespace asyncopt
