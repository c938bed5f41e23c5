// Acrobot-v1 as gymnasium defines it (gymnasium/envs/classic_control/acrobot.py; Sutton 1996, with
// the dynamics of Sutton & Barto's book, gymnasium's default book_or_nips="book"): one RK4 step of
// dt = 0.2 over the augmented state (theta1, theta2, dtheta1, dtheta2, torque), the angles wrapped
// into [-pi, pi] and the velocities clipped to 4 pi and 9 pi, terminated when the tip is one link
// length above the pivot (-cos t1 - cos(t1 + t2) > 1), reward -1 per step and 0 on the terminating
// one, truncated after 500 steps (TimeLimit). No torque noise (gymnasium's torque_noise_max = 0).
// The reset state is uniform in [-0.1, 0.1)^4 cast to float32, as gymnasium stores it.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/rng.hpp"
#include "env.hpp"

namespace asyncopt::rl {

class Acrobot {
public:
    static constexpr int kObsDim = 6;
    static constexpr int kActions = 3;
    static constexpr int kMaxSteps = 500;
    static constexpr double kSolvedReturn = -100;  // its reward_threshold

    static constexpr double dt = 0.2, l1 = 1.0, m1 = 1.0, m2 = 1.0, lc1 = 0.5, lc2 = 0.5, I1 = 1.0, I2 = 1.0;
    static constexpr double g = 9.8, max_vel_1 = 4 * M_PI, max_vel_2 = 9 * M_PI;

    void reset(Rng& rng, float* obs) {
        for (double& s : state_) s = static_cast<float>(uniform(rng, -0.1, 0.1));
        elapsed_ = 0;
        observe(obs);
    }

    StepResult step(int action, float* obs) {
        const double torque = static_cast<double>(action) - 1.0;  // AVAIL_TORQUE = [-1, 0, +1]
        // gymnasium's rk4(derivs, y0, [0, dt]): one step over the 5-vector (the torque's derivative is 0)
        double y0[5] = {state_[0], state_[1], state_[2], state_[3], torque};
        double k1[5], k2[5], k3[5], k4[5], y[5];
        const double dt2 = dt / 2.0;
        dsdt(y0, k1);
        for (int i = 0; i < 5; ++i) y[i] = y0[i] + dt2 * k1[i];
        dsdt(y, k2);
        for (int i = 0; i < 5; ++i) y[i] = y0[i] + dt2 * k2[i];
        dsdt(y, k3);
        for (int i = 0; i < 5; ++i) y[i] = y0[i] + dt * k3[i];
        dsdt(y, k4);
        double ns[4];
        for (int i = 0; i < 4; ++i) ns[i] = y0[i] + dt / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
        ns[0] = wrap(ns[0], -M_PI, M_PI);
        ns[1] = wrap(ns[1], -M_PI, M_PI);
        ns[2] = std::fmin(std::fmax(ns[2], -max_vel_1), max_vel_1);
        ns[3] = std::fmin(std::fmax(ns[3], -max_vel_2), max_vel_2);
        for (int i = 0; i < 4; ++i) state_[i] = ns[i];
        ++elapsed_;
        observe(obs);
        StepResult r;
        r.terminated = -std::cos(state_[0]) - std::cos(state_[1] + state_[0]) > 1.0;
        r.reward = r.terminated ? 0.0 : -1.0;
        r.truncated = elapsed_ >= kMaxSteps;
        return r;
    }

    const double* state() const noexcept { return state_; }
    void set_state(const double* s, int elapsed) noexcept {
        for (int i = 0; i < 4; ++i) state_[i] = s[i];
        elapsed_ = elapsed;
    }
    void observe(float* obs) const noexcept {
        obs[0] = static_cast<float>(std::cos(state_[0]));
        obs[1] = static_cast<float>(std::sin(state_[0]));
        obs[2] = static_cast<float>(std::cos(state_[1]));
        obs[3] = static_cast<float>(std::sin(state_[1]));
        obs[4] = static_cast<float>(state_[2]);
        obs[5] = static_cast<float>(state_[3]);
    }

private:
    // gymnasium's _dsdt, term by term in the same order (book dynamics).
    static void dsdt(const double* s, double* out) noexcept {
        const double a = s[4], theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
        const double d1 = m1 * (lc1 * lc1) + m2 * ((l1 * l1) + (lc2 * lc2) + 2 * l1 * lc2 * std::cos(theta2)) + I1 + I2;
        const double d2 = m2 * ((lc2 * lc2) + l1 * lc2 * std::cos(theta2)) + I2;
        const double phi2 = m2 * lc2 * g * std::cos(theta1 + theta2 - M_PI / 2.0);
        const double phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * std::sin(theta2) -
                            2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * std::sin(theta2) +
                            (m1 * lc1 + m2 * l1) * g * std::cos(theta1 - M_PI / 2) + phi2;
        const double ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * std::sin(theta2) - phi2) /
                                (m2 * (lc2 * lc2) + I2 - (d2 * d2) / d1);
        const double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
        out[0] = dtheta1;
        out[1] = dtheta2;
        out[2] = ddtheta1;
        out[3] = ddtheta2;
        out[4] = 0.0;
    }
    static double wrap(double x, double m, double M) noexcept {
        const double diff = M - m;
        while (x > M) x = x - diff;
        while (x < m) x = x + diff;
        return x;
    }

    double state_[4] = {0, 0, 0, 0};
    int elapsed_ = 0;
};

}  // namespace asyncopt::rl
