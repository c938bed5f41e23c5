// n-step returns with bootstrapping (Mnih et al. 2016, Alg. S3), over a rollout of T steps of E
// environments, sample i = t E + e:
//     G_T = V(s_T)                                   the value of the observation after the rollout
//     G_t = r_t                                      if step t terminated the episode (no future)
//     G_t = r_t + gamma V(s'_t)                      if step t was truncated by the time limit: the
//                                                    episode would have gone on, so its future is
//                                                    estimated by V of the last observation s'_t
//                                                    (Pardo et al. 2018, "Time limits in RL")
//     G_t = r_t + gamma G_{t+1}                      otherwise
// A step both terminated and truncated (CartPole failing on step 500) counts as terminated.
#pragma once

#include <cstdint>

namespace asyncopt::rl {

inline void n_step_returns(int T, int E, double gamma, const double* rewards, const uint8_t* terminated,
                           const uint8_t* truncated, const double* truncation_value, const double* last_value,
                           double* returns) noexcept {
    for (int e = 0; e < E; ++e) {
        double G = last_value[e];
        for (int t = T - 1; t >= 0; --t) {
            const int64_t i = static_cast<int64_t>(t) * E + e;
            if (terminated[i]) G = rewards[i];
            else if (truncated[i]) G = rewards[i] + gamma * truncation_value[i];
            else G = rewards[i] + gamma * G;
            returns[i] = G;
        }
    }
}

}  // namespace asyncopt::rl
