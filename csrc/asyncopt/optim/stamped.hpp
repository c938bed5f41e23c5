// The lazy skeleton that the stamped rules share (AMSGrad, AdaGrad, Adam). A coordinate keeps in
// its state the relative step `stamp` of its last update or catch-up (steps.hpp). Reading it
// computes its catch-up without storing it; a step first catches it up to the previous step; a
// segment end brings it to the last step and rebases the stamp to 0. Only the arithmetic differs
// between the rules, so each supplies it (CRTP, host-and-device like the rules themselves):
//   struct Moments; static Moments load(const State*); static void store(State*, const Moments&)
//   void step(Moments&, double g, double a, double rho)       one real step, a_k and rho_k given
//   void catch_up(Moments&, uint32_t s, uint32_t t)           steps s+1..t with zero gradient
//   double read_stale(const State*, uint32_t s, uint32_t u)   x as of step u > s, nothing stored
// State has w, reg (n/d_j of the sparse regulariser) and stamp.
#pragma once

#include <cstdint>

#include "../core/shared.hpp"
#include "steps.hpp"

namespace asyncopt {

template <class Rule, class T, class State>
class StampedRule {
public:
    struct Context {
        uint32_t u_read, u_write;
        double a, rho;  // a_k (eta_k for a rule without moments) and the shrink rho_k
    };

    ASYNCOPT_HD static double reg_scale(const State* p, const T*, int32_t) noexcept { return shared_load(&p->reg); }

    ASYNCOPT_HD Context context(uint32_t u_read, uint32_t u_write, const StepCoeffs& c) const noexcept {
        return Context{u_read, u_write, c.a, c.rho};
    }

    // x_j as of the step the update reads; a stale coordinate's catch-up is computed, not stored
    // (apply() repeats it, which saves the stores here).
    ASYNCOPT_HD double read(const State* p, const Context& ctx) const noexcept {
        const uint32_t s = shared_load(&p->stamp);
        if (s >= ctx.u_read) return shared_load(&p->w);
        return rule().read_stale(p, s, ctx.u_read);
    }

    // w.x of a row as of the update's read step (one GPU lane's share with first/stride).
    ASYNCOPT_HD double dot(const State* state, const int32_t* idx, const T* val, int64_t nnz, const Context& ctx,
                           int64_t first = 0, int64_t stride = 1) const noexcept {
        double z = 0;
        for (int64_t a = first; a < nnz; a += stride) z += static_cast<double>(val[a]) * read(state + idx[a], ctx);
        return z;
    }

    // One step with data gradient g; regc * x_j is the sparse regulariser's share (0 when off). A
    // stamp ahead of the previous step means another thread already wrote a later step (a Hogwild!
    // race): nothing to catch up, and the later stamp is kept.
    ASYNCOPT_HD void apply(State* p, const Context& ctx, double g, double regc) const noexcept {
        const uint32_t s = shared_load(&p->stamp);
        auto q = Rule::load(p);
        if (s + 1 < ctx.u_write) rule().catch_up(q, s, ctx.u_write - 1);
        rule().step(q, g + regc * static_cast<double>(q.w), ctx.a, ctx.rho);
        Rule::store(p, q);
        shared_store(&p->stamp, s > ctx.u_write ? s : ctx.u_write);
    }

    // The intercept: touched by every update, never regularised or decayed, never caught up; its
    // step is step_scale times a_k.
    ASYNCOPT_HD void apply_intercept(State* p, const Context& ctx, double g, double step_scale) const noexcept {
        auto q = Rule::load(p);
        rule().step(q, g, step_scale * ctx.a, 1.0);
        Rule::store(p, q);
    }
    ASYNCOPT_HD double read_intercept(const State* p) const noexcept { return shared_load(&p->w); }

    // Segment end (no thread running): bring the coordinate to step n and rebase its stamp to 0.
    ASYNCOPT_HD void finish(State* p, uint32_t n) const noexcept {
        if (p->stamp < n) {
            auto q = Rule::load(p);
            rule().catch_up(q, p->stamp, n);
            Rule::store(p, q);
        }
        p->stamp = 0;
    }

private:
    ASYNCOPT_HD const Rule& rule() const noexcept { return static_cast<const Rule&>(*this); }
};

}  // namespace asyncopt
