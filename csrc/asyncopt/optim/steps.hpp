// Step sizes, and the closed-form "catch-up" that makes sparse updates exact.
//
// Notation (one coordinate j, global step counter k = 1, 2, ...):
//   eta_k   schedule: constant (eta), eta / sqrt(k) ("invsqrt"), or eta / (1 + alpha eta (k - 1))
//           ("optimal": Bottou's 1/t schedule for an alpha-strongly convex objective, the one
//           scikit-learn's SGDClassifier uses by default)
//   a_k     the AMSGrad step: eta_k, times sqrt(1 - beta2^k) / (1 - beta1^k) with bias_correction
//           (the "epsilon-hat" form of Adam, Kingma & Ba 2015 sec. 2: the correction is folded
//           into the step, so eps is added to sqrt(vhat) of the uncorrected moments)
//   rho_k   1 - eta_k * decay: the multiplicative shrink of one step. decay is alpha for SGD's
//           exact L2 (w <- w - eta (g + alpha w)) and for AMSGrad's decoupled weight decay
//           (AdamW: x <- (1 - eta alpha) x - a m / (sqrt(vhat) + eps)); otherwise rho_k = 1.
//
// A coordinate that no row of steps s+1..t touches still changes in the dense algorithm: its
// gradient there is zero, so (writing D = t - s)
//   SGD       w_t = P(s,t) w_s,                                 P(s,t) = prod_{i=s+1..t} rho_i
//   AMSGrad   m_t = beta1^D m_s,  v_t = beta2^D v_s,  vhat_t = vhat_s  (v only decays, so the max
//             keeps its old value), and with c = m_s / (sqrt(vhat_s) + eps)
//             x_t = P(s,t) x_s - c E(s,t),   E(s,t) = sum_{i=s+1..t} a_i beta1^(i-s) P(i,t).
//   AdaGrad   G_t = G_s, x_t = P(s,t) x_s.
//   Adam      m and v decay, and the drift is a sum with no closed form: see series_horizon below
//             and optim/adam.hpp.
// Kernels store per coordinate the step 'stamp' at which it was last brought up to date and apply
// these formulas when the coordinate is next read, so an update costs O(nnz of its rows).
//
// E has no closed form for varying a_i, but it splits through a suffix sum over the epoch's steps
// (the horizon N is known: every mini-batch is one update):
//   F(s) = sum_{i=s+1..N} a_i beta1^(i-s) / P(s,i)   satisfies  F(s) = beta1/rho_{s+1} (a_{s+1} + F(s+1)),
//   F(N) = 0, and  E(s,t) = P(s,t) F(s) - beta1^(t-s) F(t).
// F stays bounded because beta1 < rho (checked by the estimator: eta*decay < 1 - beta1), so the
// subtraction loses only a few ulps. With a constant step F is the constant a beta1 / (rho - beta1)
// and P = rho^D: ConstantSteps needs no tables; TabledSteps keeps logP and F per epoch
// (8 bytes each per step) for the decaying schedules and for bias correction.
//
// Stamps are relative to the first step of the current epoch (k0): at every epoch end the touched
// coordinates are caught up to the last step and their stamps reset to 0, so 32 bits suffice.
//
// Memory: every table of a segment lives in one flat buffer of doubles that StepTables owns; the
// Steps classes are small views over it (pointers and scalars, trivially copyable). The GPU path
// copies the buffer to the device and builds the same view over the device copy (steps_at), so
// one definition of P, E and the powers serves the CPU threads, the server and the kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "../core/shared.hpp"

namespace asyncopt {

enum class Schedule : int { constant = 0, invsqrt = 1, optimal = 2 };

struct StepConfig {
    double learning_rate = 0.1;   // eta, the first step's size
    Schedule schedule = Schedule::constant;
    double schedule_alpha = 0.0;  // alpha of the "optimal" schedule
    bool bias_correction = false;  // rules with moments (AMSGrad, Adam) only
    double beta1 = 0.9;           // rules with moments only
    double beta2 = 0.999;         // rules with moments only
    double eps = 1e-8;            // the adaptive rules' denominator guard
    double decay = 0.0;           // see rho_k above; 0 = no multiplicative shrink
    // Multiplies every eta_k, in (0, 1]: the epoch loop's plateau drops (python/asyncopt/training.py)
    // lower it between epochs. Never above 1, so learning_rate stays the bound on every step that
    // the tables' sizing below relies on.
    double scale = 1.0;
};

// What a rule reads from the step tables, declared by each rule as `static constexpr StepNeeds needs`:
//   moments  an Adam-family step a_k (bias correction applies; beta1 and beta2 power tables)
//   drift    AMSGrad's closed-form drift E(s, t) (the suffix sums F)
//   series   Adam's catch-up, a sum of per-step terms (a_u / S_u, and the powers of series.hpp)
struct StepNeeds {
    bool moments = false;
    bool drift = false;
    bool series = false;
};

// Coefficients of one update, computed once per mini-batch (not per nonzero).
struct StepCoeffs {
    double eta;  // schedule value eta_k
    double a;    // AMSGrad step a_k (= eta for SGD)
    double rho;  // shrink of this step, 1 - eta_k * decay
};

// eta_k for k >= 1; every schedule starts at learning_rate (times scale) and never grows.
ASYNCOPT_HD inline double schedule_eta(const StepConfig& c, uint64_t k) noexcept {
    switch (c.schedule) {
        case Schedule::invsqrt:
            return c.scale * c.learning_rate / std::sqrt(static_cast<double>(k));
        case Schedule::optimal:
            return c.scale * c.learning_rate / (1.0 + c.schedule_alpha * c.learning_rate * static_cast<double>(k - 1));
        default:
            return c.scale * c.learning_rate;
    }
}

ASYNCOPT_HD inline StepCoeffs step_coeffs(const StepConfig& c, uint64_t k, bool moments) noexcept {
    const double eta = schedule_eta(c, k);
    double a = eta;
    if (moments && c.bias_correction) {
        const double kd = static_cast<double>(k);
        a *= std::sqrt(1.0 - std::pow(c.beta2, kd)) / (1.0 - std::pow(c.beta1, kd));
    }
    return StepCoeffs{eta, a, 1.0 - eta * c.decay};
}

// beta^D for an integer D >= 0 without pow() or exp() in the common case: beta^D = lo[D mod 1024] *
// hi[D / 1024] from two 1024-entry tables (16 KiB, cache-resident), exp(D log beta) beyond 2^20.
// The catch-up evaluates this once per stale nonzero, so it sits on the hot path. A view: the
// 2048 doubles (lo, then hi) live in a StepTables buffer.
class PowerTable {
public:
    static constexpr uint32_t kSize = 1024;
    static constexpr size_t kDoubles = 2 * kSize;

    PowerTable() = default;
    PowerTable(double base, const double* table) noexcept
        : t_(table), log_base_(base > 0 ? std::log(base) : 0.0), zero_(base <= 0) {}

    // Writes the 2048 entries of base's table to out (host side, once per segment).
    static void fill(double base, double* out) {
        for (uint32_t i = 0; i < kSize; ++i) {
            out[i] = std::pow(base, static_cast<double>(i));
            out[kSize + i] = std::pow(base, static_cast<double>(i) * kSize);
        }
    }

    ASYNCOPT_HD double operator()(uint32_t d) const noexcept {
        if (d < kSize * kSize) return t_[d % kSize] * t_[kSize + d / kSize];
        return zero_ ? 0.0 : std::exp(static_cast<double>(d) * log_base_);
    }

private:
    const double* t_ = nullptr;
    double log_base_ = 0.0;
    bool zero_ = false;
};

// Adam's catch-up (optim/adam.hpp) sums, over the skipped steps j = 1..D after step s, the terms
//   w_j / (sqrt(v_s) beta2^(j/2) + eps),   w_j = a_{s+j} beta1^j / P(s, s+j).
// They have one sign, and each is at most r = beta1 / (sqrt(beta2) rho_min) times the one before it
// (the denominator falls by at most sqrt(beta2) per step, rho_i >= rho_min = 1 - eta decay, a_i never
// grows), except that bias correction can grow a_i: a_{s+j} / a_{s+1} <= sqrt(j), since
// sqrt(1 - beta2^k) is concave in k and 1 / (1 - beta1^k) falls. So the terms after the n-th add up
// to at most r^n / (1 - r) of the sum, or r^n sqrt(n + 1) / (1 - r)^2 with bias correction.
// series_horizon is the least n that makes this below 2^-54: summing min(D, n) terms gives the sum
// to double precision whatever D, in bounded work. Needs r < 1 (the estimator checks it).
inline uint32_t series_horizon(const StepConfig& c) {
    const double rho_min = 1.0 - c.learning_rate * c.decay;
    const double r = c.beta1 / (std::sqrt(c.beta2) * rho_min);
    if (c.beta1 == 0) return 1;
    if (!(r < 1.0) || !(rho_min > 0))
        throw std::invalid_argument("the series catch-up needs beta1 < sqrt(beta2) (1 - learning_rate * decay)");
    const double target = std::ldexp(1.0, -54);
    for (uint32_t n = 1; n < (1u << 24); ++n) {
        double tail = std::pow(r, n) / (1.0 - r);
        if (c.bias_correction) tail *= std::sqrt(n + 1.0) / (1.0 - r);
        if (tail < target) return n;
    }
    throw std::invalid_argument("the series catch-up's horizon exceeds 2^24 steps: beta1 too close to sqrt(beta2)");
}

// The same sum by orders of eps. With A = sqrt(v_s) > 0 and x_j = eps / (A beta2^(j/2)), exactly
//   1 / (A beta2^(j/2) + eps) = (1 / (A beta2^(j/2))) (sum_{q<N} (-x_j)^q + (-x_j)^N / (1 + x_j)),
// so the sum over j = 1..n is  sum_{q<N} (-eps)^q A^-(q+1) Q_q(s, n) + R,  with the order sums
//   Q_q(s, n) = sum_{j=1..n} w_j beta2^(-j(q+1)/2)
// and, as x_j <= x_n for j <= n, |R| <= x_n^N times the sum itself. Q_q does not depend on the
// coordinate: it is a table of the segment (a prefix sum for constant steps, a difference of suffix
// sums for tabled ones), so a catch-up costs N lookups instead of n terms. It applies when x_n is
// small enough for N <= series_orders(c) orders to reach 2^-54 (for the default eps, whenever
// sqrt(v) is above about 5e-7); otherwise the rule sums the n terms one by one.
// series_orders caps N where the suffix sums of tabled steps would amplify rounding: each order's
// ratio z_q = beta1 beta2^(-(q+1)/2) must stay below 0.95 rho_min.
constexpr int kMaxSeriesOrders = 10;
inline int series_orders(const StepConfig& c) {
    const double rho_min = 1.0 - c.learning_rate * c.decay;
    int n = 0;
    while (n < kMaxSeriesOrders && c.beta1 * std::pow(c.beta2, -0.5 * (n + 1)) <= 0.95 * rho_min) ++n;
    return n;
}

// The tables of the series that do not depend on the segment, j = 0..horizon: the weights scale0
// ratio^j (the terms' numerators: a (beta1 / rho)^j for constant steps, beta1^j for tabled ones),
// sqrt(beta2)^j, and per order q < series_orders(c) either the prefix sums of
// weight_j beta2^(-j(q+1)/2) (prefix = true, constant steps) or the powers z_q^j (tabled steps).
inline size_t series_doubles(const StepConfig& c) {
    return (2 + static_cast<size_t>(series_orders(c))) * (static_cast<size_t>(series_horizon(c)) + 1);
}
inline void fill_series(const StepConfig& c, double scale0, double ratio, bool prefix, double* out) {
    const uint32_t n = series_horizon(c);
    const int orders = series_orders(c);
    const double root_b2 = std::sqrt(c.beta2);
    double* w = out;
    double* r = out + n + 1;
    for (uint32_t j = 0; j <= n; ++j) {
        w[j] = scale0 * std::pow(ratio, static_cast<double>(j));
        r[j] = std::pow(root_b2, static_cast<double>(j));
    }
    for (int q = 0; q < orders; ++q) {
        double* t = out + (2 + static_cast<size_t>(q)) * (n + 1);
        if (prefix) {
            t[0] = 0.0;
            for (uint32_t j = 1; j <= n; ++j)
                t[j] = t[j - 1] + w[j] * std::pow(root_b2, -static_cast<double>(j) * (q + 1));
        } else {
            const double z = c.beta1 * std::pow(root_b2, -static_cast<double>(q + 1));
            for (uint32_t j = 0; j <= n; ++j) t[j] = std::pow(z, static_cast<double>(j));
        }
    }
}

// Whether a rule's steps need per-segment tables (TabledSteps) rather than closed forms.
inline bool tabled_steps(const StepConfig& c, const StepNeeds& needs) noexcept {
    return c.schedule != Schedule::constant || (needs.moments && c.bias_correction);
}

// Longest segment over which S = P(0, u) stays >= 2^-bits: a rule that divides by S (SGD's scaled
// weights, Adam's a_u / S_u) keeps its values representable with room to spare.
inline uint64_t max_updates_for_scale(const StepConfig& c, double bits) {
    if (c.decay == 0) return UINT32_MAX;
    const double worst_log_rho = -std::log1p(-c.learning_rate * c.decay);  // eta_k <= learning_rate
    const double n = std::floor(bits * std::log(2.0) / worst_log_rho);
    return n < 1 ? 1 : (n > 4e9 ? UINT32_MAX : static_cast<uint64_t>(n));
}

// Constant a_k and rho_k: closed forms; its buffer holds only the power tables of rho, beta1, beta2.
class ConstantSteps {
public:
    static size_t table_doubles(const StepConfig& c, uint32_t /*n_steps*/, const StepNeeds& needs) {
        return 3 * PowerTable::kDoubles + (needs.series ? series_doubles(c) : 0);
    }
    static void fill(const StepConfig& c, uint64_t /*k0*/, uint32_t /*n_steps*/, const StepNeeds& needs, double* out) {
        const StepCoeffs k1 = step_coeffs(c, 1, needs.moments);
        PowerTable::fill(k1.rho, out);
        PowerTable::fill(c.beta1, out + PowerTable::kDoubles);
        PowerTable::fill(c.beta2, out + 2 * PowerTable::kDoubles);
        // the series' weights a (beta1 / rho)^j, sqrt(beta2)^j and the orders' prefix sums
        if (needs.series) fill_series(c, k1.a, c.beta1 / k1.rho, true, out + 3 * PowerTable::kDoubles);
    }

    ConstantSteps() = default;
    ConstantSteps(const StepConfig& c, uint64_t /*k0*/, uint32_t /*n_steps*/, const StepNeeds& needs,
                  const double* tables)
        : rho_(step_coeffs(c, 1, needs.moments).rho),
          rho_pow_(rho_, tables),
          beta1_pow_(c.beta1, tables + PowerTable::kDoubles),
          beta2_pow_(c.beta2, tables + 2 * PowerTable::kDoubles) {
        const double a = step_coeffs(c, 1, needs.moments).a;
        F_ = (needs.drift && c.beta1 > 0) ? a * c.beta1 / (rho_ - c.beta1) : 0.0;
        if (needs.series) {
            horizon_ = series_horizon(c);
            orders_ = series_orders(c);
            series_w_ = tables + 3 * PowerTable::kDoubles;
            series_c_ = series_w_ + horizon_ + 1;
            order_sums_ = series_c_ + horizon_ + 1;
        }
    }
    ASYNCOPT_HD double P(uint32_t s, uint32_t t) const noexcept { return rho_ == 1.0 ? 1.0 : rho_pow_(t - s); }
    ASYNCOPT_HD double scale(uint32_t u) const noexcept { return P(0, u); }  // S_u = P(0, u), SGD's scale
    ASYNCOPT_HD double E(uint32_t s, uint32_t t) const noexcept { return E(s, t, beta1_pow_(t - s)); }
    // E given beta1^(t-s), which the caller often has at hand already.
    ASYNCOPT_HD double E(uint32_t s, uint32_t t, double beta1_pow) const noexcept { return F_ * (P(s, t) - beta1_pow); }
    // The series catch-up's term j after step s: weight(s, j) / (sqrt(v_s) root_beta2(j) + eps).
    ASYNCOPT_HD uint32_t horizon() const noexcept { return horizon_; }
    ASYNCOPT_HD double weight(uint32_t /*s*/, uint32_t j) const noexcept { return series_w_[j]; }
    ASYNCOPT_HD double root_beta2(uint32_t j) const noexcept { return series_c_[j]; }
    // Q_q(s, n) for n <= horizon (the expansion by orders of eps above series_orders).
    ASYNCOPT_HD int orders() const noexcept { return orders_; }
    ASYNCOPT_HD double order_sum(int q, uint32_t /*s*/, uint32_t n) const noexcept {
        return order_sums_[static_cast<size_t>(q) * (horizon_ + 1) + n];
    }
    ASYNCOPT_HD const PowerTable& beta1_pow() const noexcept { return beta1_pow_; }
    ASYNCOPT_HD const PowerTable& beta2_pow() const noexcept { return beta2_pow_; }

private:
    double rho_ = 1.0, F_ = 0.0;
    PowerTable rho_pow_, beta1_pow_, beta2_pow_;
    uint32_t horizon_ = 0;
    int orders_ = 0;
    const double* series_w_ = nullptr;
    const double* series_c_ = nullptr;
    const double* order_sums_ = nullptr;
};

// Varying a_k or rho_k: per-segment tables over relative steps u = 0..N (absolute k = k0 + u), after
// the power tables of beta1 and beta2: log P(0, u), S_u = P(0, u), then F(u) for a drift rule
// (AMSGrad) and a_u / S_u for a series rule (Adam).
class TabledSteps {
public:
    static size_t table_doubles(const StepConfig& c, uint32_t n_steps, const StepNeeds& needs) {
        const size_t n1 = static_cast<size_t>(n_steps) + 1;
        return 2 * PowerTable::kDoubles + (2 + needs.drift) * n1 +
               (needs.series ? (1 + static_cast<size_t>(series_orders(c))) * n1 + series_doubles(c) : 0);
    }
    static void fill(const StepConfig& c, uint64_t k0, uint32_t n_steps, const StepNeeds& needs, double* out) {
        PowerTable::fill(c.beta1, out);
        PowerTable::fill(c.beta2, out + PowerTable::kDoubles);
        const size_t n1 = static_cast<size_t>(n_steps) + 1;
        double* log_P = out + 2 * PowerTable::kDoubles;
        double* scale = log_P + n1;
        std::vector<StepCoeffs> coeffs(n1);
        log_P[0] = 0.0;
        scale[0] = 1.0;
        for (uint32_t u = 1; u <= n_steps; ++u) {
            coeffs[u] = step_coeffs(c, k0 + u, needs.moments);
            log_P[u] = log_P[u - 1] + std::log(coeffs[u].rho);
            scale[u] = std::exp(log_P[u]);
        }
        double* next = scale + n1;
        if (needs.drift) {
            double* F = next;
            F[n_steps] = 0.0;
            for (uint32_t u = n_steps; u-- > 0;) F[u] = c.beta1 / coeffs[u + 1].rho * (coeffs[u + 1].a + F[u + 1]);
            next += n1;
        }
        if (needs.series) {
            double* a_over_S = next;
            a_over_S[0] = 0.0;
            for (uint32_t u = 1; u <= n_steps; ++u) a_over_S[u] = coeffs[u].a / scale[u];
            // per order q the suffix sums G_q(u) = sum_{i=u+1..N} (a_i / S_i) z_q^(i-u):
            // Q_q(s, n) = S_s (G_q(s) - z_q^n G_q(s + n))
            const int orders = series_orders(c);
            for (int q = 0; q < orders; ++q) {
                double* G = a_over_S + (1 + static_cast<size_t>(q)) * n1;
                const double z = c.beta1 * std::pow(c.beta2, -0.5 * (q + 1));
                G[n_steps] = 0.0;
                for (uint32_t u = n_steps; u-- > 0;) G[u] = z * (a_over_S[u + 1] + G[u + 1]);
            }
            // then beta1^j, sqrt(beta2)^j and the orders' z_q^j, j = 0..horizon
            fill_series(c, 1.0, c.beta1, false, a_over_S + (1 + static_cast<size_t>(orders)) * n1);
        }
    }

    TabledSteps() = default;
    TabledSteps(const StepConfig& c, uint64_t /*k0*/, uint32_t n_steps, const StepNeeds& needs, const double* tables)
        : beta1_pow_(c.beta1, tables),
          beta2_pow_(c.beta2, tables + PowerTable::kDoubles),
          log_P_(tables + 2 * PowerTable::kDoubles),
          scale_(log_P_ + (static_cast<size_t>(n_steps) + 1)),
          F_(needs.drift ? scale_ + (static_cast<size_t>(n_steps) + 1) : nullptr),
          a_over_S_(needs.series ? scale_ + (1 + needs.drift) * (static_cast<size_t>(n_steps) + 1) : nullptr) {
        if (needs.series) {
            const size_t n1 = static_cast<size_t>(n_steps) + 1;
            horizon_ = series_horizon(c);
            orders_ = series_orders(c);
            suffix_ = a_over_S_ + n1;
            n1_ = static_cast<uint32_t>(n1);
            series_b_ = a_over_S_ + (1 + static_cast<size_t>(orders_)) * n1;
            series_c_ = series_b_ + horizon_ + 1;
            z_pow_ = series_c_ + horizon_ + 1;
        }
    }
    ASYNCOPT_HD double P(uint32_t s, uint32_t t) const noexcept { return std::exp(log_P_[t] - log_P_[s]); }
    // S_u = P(0, u) from a table: SGD reads it twice per update, an exp() each time otherwise.
    ASYNCOPT_HD double scale(uint32_t u) const noexcept { return scale_[u]; }
    ASYNCOPT_HD double E(uint32_t s, uint32_t t) const noexcept { return E(s, t, beta1_pow_(t - s)); }
    ASYNCOPT_HD double E(uint32_t s, uint32_t t, double beta1_pow) const noexcept {
        return P(s, t) * F_[s] - beta1_pow * F_[t];
    }
    // The series catch-up's term j after step s: weight(s, j) / (sqrt(v_s) root_beta2(j) + eps), with
    // weight a_{s+j} beta1^j / P(s, s+j) = S_s (a_{s+j} / S_{s+j}) beta1^j (the rule keeps segments
    // short enough that S stays far from underflow, max_updates_for_scale).
    ASYNCOPT_HD uint32_t horizon() const noexcept { return horizon_; }
    ASYNCOPT_HD double weight(uint32_t s, uint32_t j) const noexcept {
        return scale_[s] * a_over_S_[s + j] * series_b_[j];
    }
    ASYNCOPT_HD double root_beta2(uint32_t j) const noexcept { return series_c_[j]; }
    ASYNCOPT_HD int orders() const noexcept { return orders_; }
    ASYNCOPT_HD double order_sum(int q, uint32_t s, uint32_t n) const noexcept {
        const double* G = suffix_ + static_cast<size_t>(q) * n1_;
        return scale_[s] * (G[s] - z_pow_[static_cast<size_t>(q) * (horizon_ + 1) + n] * G[s + n]);
    }
    ASYNCOPT_HD const PowerTable& beta1_pow() const noexcept { return beta1_pow_; }
    ASYNCOPT_HD const PowerTable& beta2_pow() const noexcept { return beta2_pow_; }

private:
    PowerTable beta1_pow_, beta2_pow_;
    const double* log_P_ = nullptr;
    const double* scale_ = nullptr;
    const double* F_ = nullptr;
    const double* a_over_S_ = nullptr;
    uint32_t horizon_ = 0, n1_ = 0;
    int orders_ = 0;
    const double* suffix_ = nullptr;
    const double* series_b_ = nullptr;
    const double* series_c_ = nullptr;
    const double* z_pow_ = nullptr;
};

// The buffer of one segment's tables and the Steps view over it. steps_at builds the same view
// over a copy of buffer() elsewhere (the GPU path's device copy).
template <class Steps>
class StepTables {
public:
    StepTables(const StepConfig& c, uint64_t k0, uint32_t n_steps, const StepNeeds& needs)
        : c_(c), k0_(k0), n_steps_(n_steps), needs_(needs), buf_(Steps::table_doubles(c, n_steps, needs)) {
        Steps::fill(c, k0, n_steps, needs, buf_.data());
        steps_ = steps_at(buf_.data());
    }
    StepTables(const StepTables&) = delete;  // steps() points into buf_
    StepTables& operator=(const StepTables&) = delete;

    const Steps& steps() const noexcept { return steps_; }
    Steps steps_at(const double* copy) const { return Steps(c_, k0_, n_steps_, needs_, copy); }
    const std::vector<double>& buffer() const noexcept { return buf_; }

private:
    StepConfig c_;
    uint64_t k0_;
    uint32_t n_steps_;
    StepNeeds needs_;
    std::vector<double> buf_;
    Steps steps_;
};

}  // namespace asyncopt
