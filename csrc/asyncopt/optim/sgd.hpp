// SGD update rule on the shared model (Hogwild!, Niu et al. 2011, Alg. 1):
//     w_k = rho_k w_{k-1} - eta_k g_k,     rho_k = 1 - eta_k alpha with exact L2, else 1.
// With exact L2 every coordinate shrinks at every step; Lazy=true keeps a per-coordinate stamp and
// applies the shrink of the skipped steps in closed form (steps.hpp) when the coordinate is next
// read, so the result equals dense SGD while a step costs O(nnz). Lazy=false (no L2, or the
// frequency-scaled sparse regulariser, which touches only a row's own features) skips the stamps.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../shared.hpp"
#include "steps.hpp"

namespace asyncopt {

// One coordinate's state: 8 bytes (float) or 16 (double), so a state never straddles cache lines.
template <class T>
struct SgdState {
    T w;
    uint32_t stamp;  // relative step of the last catch-up (see steps.hpp); unused without L2
};

template <class T, class Steps, bool Lazy>
class SgdRule {
public:
    using State = SgdState<T>;
    static constexpr bool amsgrad = false;

    explicit SgdRule(const Steps& steps) : steps_(steps) {}

    // Read phase: w_j as of relative step u (the clock when the mini-batch began). A stale value is
    // caught up and written back, so the write phase that follows finds it current.
    T read(State* p, uint32_t u) const noexcept {
        T w = shared_load(&p->w);
        if (Lazy) {
            const uint32_t s = shared_load(&p->stamp);
            if (s < u) {
                w = static_cast<T>(steps_.P(s, u) * w);
                shared_store(&p->w, w);
                shared_store(&p->stamp, u);
            }
        }
        return w;
    }

    // Write phase of update k (relative u): gradient g of the data term; regc * w_j is the sparse
    // regulariser's share (0 when off). A stamp ahead of u-1 means another thread already wrote a
    // later step (a Hogwild! race): nothing to catch up, keep the later stamp.
    void apply(State* p, uint32_t u, double g, double regc, const StepCoeffs& c) const noexcept {
        double w = shared_load(&p->w);
        uint32_t s = 0;
        if (Lazy) {
            s = shared_load(&p->stamp);
            if (s + 1 < u) w *= steps_.P(s, u - 1);
        }
        const double rho = Lazy ? c.rho : 1.0;
        w = rho * w - c.eta * (g + regc * w);
        shared_store(&p->w, static_cast<T>(w));
        if (Lazy) shared_store(&p->stamp, std::max(s, u));
    }

    // The intercept: touched by every update, never regularised, never caught up.
    void apply_intercept(State* p, double g, const StepCoeffs& c) const noexcept {
        const double w = shared_load(&p->w);
        shared_store(&p->w, static_cast<T>(w - c.eta * g));
    }

    // Epoch end: bring the coordinate to step n (the epoch's last) and rebase its stamp to 0.
    void finish(State* p, uint32_t n) const noexcept {
        if (Lazy) {
            read(p, n);
            shared_store(&p->stamp, uint32_t{0});
        }
    }

private:
    const Steps& steps_;
};

}  // namespace asyncopt
