// Global-norm gradient clipping (Pascanu et al. 2013), as torch.nn.utils.clip_grad_norm_ does it
// and stable-baselines3's A2C applies it (max_grad_norm 0.5): when ||g||_2 > c the whole gradient is
// scaled by c / (||g||_2 + 1e-6), so its direction is kept. One norm over every parameter (not per
// layer): the policy and value heads share the trunk, so they are scaled together.
#pragma once

#include <cmath>
#include <cstdint>

namespace asyncopt::rl {

// Clips g in place when max_norm > 0; returns the norm before clipping.
inline double clip_global_norm(double* g, int64_t n, double max_norm) noexcept {
    double s = 0.0;
    for (int64_t j = 0; j < n; ++j) s += g[j] * g[j];
    const double norm = std::sqrt(s);
    if (max_norm > 0) {
        const double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (int64_t j = 0; j < n; ++j) g[j] *= coef;
    }
    return norm;
}

}  // namespace asyncopt::rl
