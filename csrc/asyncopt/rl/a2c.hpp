// The advantage actor-critic loss of one rollout and its gradient (Mnih et al. 2016, A3C's
// per-thread update; Alg. S3 there), over B = T E samples (T steps of E environments):
//     L = 1/B sum_i [ -A_i log pi(a_i | s_i) + c_v (G_i - V(s_i))^2 - c_H H(pi(. | s_i)) ]
//     A_i = G_i - V(s_i)      held constant (no gradient flows through the advantage or the target)
// with G_i the n-step returns of returns.hpp and H the policy's entropy. The value loss is the
// squared error (stable-baselines3's mse with vf_coef = c_v), so dL/dV_i = 2 c_v (V_i - G_i) / B.
// With p = softmax(z):  d(-A log p_a)/dz_k = -A (1[k = a] - p_k),   dH/dz_k = -p_k (log p_k + H).
//
// This is the learner's step: a pure function of the parameters read and a recorded rollout, so the
// threads driver (threads/actor_critic.hpp), the Python-stepped path (bindings/bind_rl.cpp) and a
// future parameter-server worker all call the same code.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "clip.hpp"
#include "mlp.hpp"
#include "returns.hpp"

namespace asyncopt::rl {

struct A2cConfig {
    double gamma = 0.99;
    double value_coef = 0.5;     // c_v
    double entropy_coef = 0.0;   // c_H
    double max_grad_norm = 0.5;  // <= 0: no clipping
};

// One rollout as the actor recorded it: per sample the observation, the network's activations
// (forward() of the parameters the update read), the action, reward and flags; per truncated
// sample V of its last observation; per environment V of the observation after the rollout.
struct Rollout {
    int T = 0, E = 0;
    std::vector<float> obs;               // B x obs_dim
    std::vector<double> act;              // B x activation_size
    std::vector<int32_t> actions;         // B
    std::vector<double> rewards;          // B
    std::vector<uint8_t> terminated, truncated;  // B
    std::vector<double> truncation_value;  // B (read where truncated and not terminated)
    std::vector<double> last_value;        // E
    std::vector<double> returns;           // B, filled by a2c_gradient

    void resize(const Mlp& net, int T_, int E_) {
        T = T_;
        E = E_;
        const size_t B = static_cast<size_t>(T) * static_cast<size_t>(E);
        obs.resize(B * static_cast<size_t>(net.obs_dim()));
        act.resize(B * static_cast<size_t>(net.activation_size()));
        actions.resize(B);
        rewards.resize(B);
        terminated.resize(B);
        truncated.resize(B);
        truncation_value.resize(B);
        last_value.resize(static_cast<size_t>(E));
        returns.resize(B);
    }
};

struct LossStats {
    double policy_loss = 0, value_loss = 0, entropy = 0, grad_norm = 0;
};

// grad <- the clipped gradient of L at theta (n_params doubles); scratch: 2 max_width() doubles.
inline LossStats a2c_gradient(const Mlp& net, const double* theta, Rollout& r, const A2cConfig& cfg, double* grad,
                              double* scratch) {
    const int64_t B = static_cast<int64_t>(r.T) * r.E, S = net.activation_size(), D = net.obs_dim();
    const int A = net.n_actions();
    n_step_returns(r.T, r.E, cfg.gamma, r.rewards.data(), r.terminated.data(), r.truncated.data(),
                   r.truncation_value.data(), r.last_value.data(), r.returns.data());
    for (int64_t j = 0; j < net.n_params(); ++j) grad[j] = 0.0;
    LossStats st;
    const double inv_b = 1.0 / static_cast<double>(B);
    double dlogits[64];
    for (int64_t i = 0; i < B; ++i) {
        const double* act = r.act.data() + i * S;
        const double* logp = net.log_probs(act);
        const double v = net.value(act), G = r.returns[static_cast<size_t>(i)];
        const double adv = G - v;
        const int a = r.actions[static_cast<size_t>(i)];
        double H = 0.0;
        for (int k = 0; k < A; ++k) H -= std::exp(logp[k]) * logp[k];
        for (int k = 0; k < A; ++k) {
            const double p = std::exp(logp[k]);
            dlogits[k] = (-adv * ((k == a ? 1.0 : 0.0) - p) + cfg.entropy_coef * p * (logp[k] + H)) * inv_b;
        }
        const double dv = 2.0 * cfg.value_coef * (v - G) * inv_b;
        net.backward(theta, r.obs.data() + i * D, act, dlogits, dv, grad, scratch);
        st.policy_loss -= adv * logp[a] * inv_b;
        st.value_loss += adv * adv * inv_b;
        st.entropy += H * inv_b;
    }
    st.grad_norm = clip_global_norm(grad, net.n_params(), cfg.max_grad_norm);
    return st;
}

// An action drawn from pi = exp(log pi) with one uniform u in [0, 1): the first k whose cumulative
// probability exceeds u (the last action if rounding leaves the sum just below u).
inline int sample_action(const double* logp, int A, double u) noexcept {
    double c = 0.0;
    for (int k = 0; k < A - 1; ++k) {
        c += std::exp(logp[k]);
        if (u < c) return k;
    }
    return A - 1;
}

}  // namespace asyncopt::rl
