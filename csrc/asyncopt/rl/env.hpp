// What the built-in environments share: one step's outcome, the uniform draw of their resets, and
// the kinds the bindings name. An environment is a plain class with kObsDim, kActions, kMaxSteps,
// reset(rng, obs) and step(action, obs) (cartpole.hpp, acrobot.hpp); the learner is a template
// over it, so stepping costs no virtual call inside the per-step loop.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../core/rng.hpp"

namespace asyncopt::rl {

// gymnasium's (reward, terminated, truncated): terminated is the MDP's end (no bootstrap),
// truncated the time limit's (bootstrap with V of the last observation).
struct StepResult {
    double reward = 0;
    bool terminated = false;
    bool truncated = false;
};

// Uniform in [lo, hi) from the top 53 bits of one draw.
inline double uniform(Rng& rng, double lo, double hi) noexcept {
    const double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
    return lo + (hi - lo) * u;
}

enum class EnvKind : int { cartpole = 0, acrobot = 1 };

}  // namespace asyncopt::rl
