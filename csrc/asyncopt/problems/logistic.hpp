// Logistic regression: the loss of one row and its derivative with respect to the margin.
//
// Objective (what history_ reports and what the exact-L2 path minimises):
//     F(w, b) = (1/n) sum_i log(1 + exp(-y_i (w.x_i + b))) + (alpha/2) ||w||^2,   y_i in {-1, +1}.
// The gradient of row i with respect to w is  dloss(z_i, y_i) * x_i  with z_i = w.x_i + b, so one
// row costs O(nnz of the row); a mini-batch step uses the mean of its rows' gradients.
#pragma once

#include <cmath>
#include <cstdint>

#include "../shared.hpp"

namespace asyncopt {
namespace logistic {

// log(1 + exp(u)) without overflow for large u or loss of precision for very negative u.
ASYNCOPT_HD inline double softplus(double u) noexcept {
    return u > 0 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u));
}

// 1 / (1 + exp(-u)), stable in both tails.
ASYNCOPT_HD inline double sigmoid(double u) noexcept {
    if (u >= 0) return 1.0 / (1.0 + std::exp(-u));
    const double e = std::exp(u);
    return e / (1.0 + e);
}

// log(1 + exp(-y z)): the log-loss of margin z for label y in {-1, +1}.
ASYNCOPT_HD inline double loss(double z, double y) noexcept { return softplus(-y * z); }

// d loss / d z = -y * sigmoid(-y z).
ASYNCOPT_HD inline double dloss(double z, double y) noexcept { return -y * sigmoid(-y * z); }

}  // namespace logistic

// sum_j w_j^2 over the listed features (all others are zero): the L2 term of F is alpha/2 times it.
template <class State>
double squared_norm(const State* state, const int32_t* active, int64_t n_active) {
    double s = 0;
    for (int64_t a = 0; a < n_active; ++a) {
        const double w = state[active[a]].w;
        s += w * w;
    }
    return s;
}

}  // namespace asyncopt
