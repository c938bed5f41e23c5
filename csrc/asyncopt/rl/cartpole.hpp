// CartPole-v1 exactly as gymnasium defines it (gymnasium/envs/classic_control/cartpole.py, Barto,
// Sutton & Anderson 1983): the same constants, the same explicit Euler step in double precision, the
// same termination thresholds, reward 1 on every step including the terminating one, and the
// TimeLimit wrapper's truncation after 500 steps (gymnasium's registration of v1). The state is
// double as in gymnasium; the observation is its float32 cast, which is what a policy sees there.
// The reset draws the state uniformly from [-0.05, 0.05)^4 with our own stream (gymnasium draws
// from numpy's PCG64, which we do not reproduce: tests compare steps from the same states).
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/rng.hpp"
#include "env.hpp"

namespace asyncopt::rl {

class CartPole {
public:
    static constexpr int kObsDim = 4;
    static constexpr int kActions = 2;
    static constexpr int kMaxSteps = 500;        // CartPole-v1's max_episode_steps
    static constexpr double kSolvedReturn = 475;  // its reward_threshold

    static constexpr double gravity = 9.8, masscart = 1.0, masspole = 0.1, total_mass = masspole + masscart;
    static constexpr double length = 0.5;  // half the pole's length
    static constexpr double polemass_length = masspole * length, force_mag = 10.0, tau = 0.02;
    // 12 degrees, computed as gymnasium does (12 * 2 * pi / 360), so the threshold is the same double
    static constexpr double theta_threshold = 12 * 2 * M_PI / 360, x_threshold = 2.4;

    void reset(Rng& rng, float* obs) {
        for (double& s : state_) s = uniform(rng, -0.05, 0.05);
        elapsed_ = 0;
        observe(obs);
    }

    StepResult step(int action, float* obs) {
        const double x = state_[0], x_dot = state_[1], theta = state_[2], theta_dot = state_[3];
        const double force = action == 1 ? force_mag : -force_mag;
        const double costheta = std::cos(theta), sintheta = std::sin(theta);
        // the same expression trees as gymnasium's numpy code, so every rounding is the same
        const double temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass;
        const double thetaacc = (gravity * sintheta - costheta * temp) /
                                (length * (4.0 / 3.0 - masspole * (costheta * costheta) / total_mass));
        const double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
        state_[0] = x + tau * x_dot;
        state_[1] = x_dot + tau * xacc;
        state_[2] = theta + tau * theta_dot;
        state_[3] = theta_dot + tau * thetaacc;
        ++elapsed_;
        observe(obs);
        StepResult r;
        r.reward = 1.0;
        r.terminated = state_[0] < -x_threshold || state_[0] > x_threshold || state_[2] < -theta_threshold ||
                       state_[2] > theta_threshold;
        r.truncated = elapsed_ >= kMaxSteps;  // TimeLimit: both flags may be set on the same step
        return r;
    }

    // For tests (and the Python twin): the internal state and the step count since reset.
    const double* state() const noexcept { return state_; }
    void set_state(const double* s, int elapsed) noexcept {
        for (int i = 0; i < 4; ++i) state_[i] = s[i];
        elapsed_ = elapsed;
    }
    void observe(float* obs) const noexcept {
        for (int i = 0; i < 4; ++i) obs[i] = static_cast<float>(state_[i]);
    }

private:
    double state_[4] = {0, 0, 0, 0};
    int elapsed_ = 0;
};

}  // namespace asyncopt::rl
