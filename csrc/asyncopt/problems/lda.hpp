// Latent Dirichlet allocation: the local (per-document) part of stochastic variational inference
// (Hoffman, Blei, Bach 2010, Alg. 2; Hoffman, Blei, Wang, Paisley 2013, Alg. 1). No threads here:
// threads/lda.hpp runs these functions inside the Hogwild! driver, and the read-only transform and
// bound functions run them in parallel over documents.
//
// Notation (K topics, one document with distinct words n = 1..N_d, counts c_n, word ids w_n):
//   gamma_k                   variational Dirichlet parameter of the document's topic proportions
//   E[log theta_k]            = psi(gamma_k) - psi(sum_j gamma_j)
//   E[log beta_kw]            = psi(lambda_kw) - psi(sum_v lambda_kv)
//   phinorm_n                 = sum_k exp(E[log theta_k]) exp(E[log beta_kw_n])  (+ machine eps)
//   gamma_k                  <- alpha + exp(E[log theta_k]) sum_n c_n exp(E[log beta_kw_n]) / phinorm_n
//   sstats_kw_n              += exp(E[log theta_k]) c_n exp(E[log beta_kw_n]) / phinorm_n
// The loop stops when mean_k |gamma_k - gamma_k_previous| < mean_change_tol or after
// max_doc_update_iter iterations, exactly as scikit-learn's _update_doc_distribution does
// (including its eps in phinorm), so its numbers and ours compare side by side.
//
// gamma starts at 1 for every topic (scikit-learn's choice when it transforms; the 2010 paper
// draws Gamma(100, 1/100)): a deterministic start keeps one-thread training reproducible to the bit
// without an RNG draw per document, and a run does not depend on which thread handled a document.
//
// The E-step reads exp(E[log beta]) for its words from a table the caller fills: rows of K
// contiguous values (word-major), one per distinct word of the mini-batch (training) or of the
// documents being transformed; `row[n]` names the row of the document's n-th word.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "../core/shared.hpp"

// The E-step is K-wide multiply-adds (a dot product and an axpy per word per iteration). A portable
// build targets baseline x86-64 (SSE2: two doubles per instruction); GCC's function multiversioning
// adds an AVX2+FMA clone chosen at load time on CPUs that have it, without -march=native.
// (FMA rounds differently from mul+add, so runs are bit-reproducible per machine, not across.)
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(ASYNCOPT_NO_CLONES)
#define ASYNCOPT_SIMD_CLONES __attribute__((target_clones("arch=haswell", "default")))
#else
#define ASYNCOPT_SIMD_CLONES
#endif

namespace asyncopt {
namespace lda {

// Digamma psi(x) for x > 0, absolute error < 1e-11: the recurrence psi(x) = psi(x + 1) - 1/x lifts
// x to >= 6, where the asymptotic series log x - 1/(2x) - sum B_2j / (2j x^2j) is truncated after
// x^-10 (the first omitted term is 691/32760 x^-12 < 1e-11). scikit-learn's own psi stops at x^-6
// (error ~1e-7); here the tests hold the native code to scipy.special.psi at rtol 1e-6 after
// thousands of dependent steps, so the extra two terms are worth their two multiplications.
inline double digamma(double x) noexcept {
    // sum_{i<n} 1/(x+i) as one fraction num/den: one division instead of up to six (the read of a
    // mini-batch evaluates K digammas per distinct word, mostly of small lambda, so this matters)
    double num = 0.0, den = 1.0;
    while (x < 6.0) {
        num = num * x + den;
        den *= x;
        x += 1.0;
    }
    const double r = 1.0 / x;
    const double r2 = r * r;
    return std::log(x) - 0.5 * r - num / den -
           r2 * (1.0 / 12 - r2 * (1.0 / 120 - r2 * (1.0 / 252 - r2 * (1.0 / 240 - r2 * (1.0 / 132)))));
}

// sum_k a_k b_k with four partial sums: the order is fixed (bit-reproducible), and the compiler can
// keep four independent FMA chains in flight (a single chain cannot vectorise without -ffast-math).
inline double dot(const double* a, const double* b, int K) noexcept {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < K; ++k) s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

// exp(E[log theta]) of a Dirichlet(gamma): out_k = exp(psi(gamma_k) - psi(sum_j gamma_j)).
inline void exp_dirichlet_expectation(const double* gamma, int K, double* out) noexcept {
    double total = 0;
    for (int k = 0; k < K; ++k) total += gamma[k];
    const double psi_total = digamma(total);
    for (int k = 0; k < K; ++k) out[k] = std::exp(digamma(gamma[k]) - psi_total);
}

// The global side of E[log beta], written once for every driver (the threads' read, a DPSVI
// worker's, the read-only transform): lambda_kw = eta + S mu_wk and lambda's topic sums
// V eta + S mass_k, S the model's pending scale (1 for a settled model or a worker's copy). The
// model may be the threads' shared words, so it is read through shared_load.
//   psi_topic_totals: psi(V eta + S mass_k) for each topic
//   elog_beta:        E[log beta_kw] = psi(eta + S mu_wk) - psi_total_k
inline void psi_topic_totals(const double* mass, double S, double eta, int64_t V, int K, double* out) noexcept {
    const double V_eta = eta * static_cast<double>(V);
    for (int k = 0; k < K; ++k) out[k] = digamma(V_eta + S * shared_load(mass + k));
}
inline double elog_beta(const double* mu_wk, double S, double eta, double psi_total_k) noexcept {
    return digamma(eta + S * shared_load(mu_wk)) - psi_total_k;
}

// Scratch of one E-step: 3 K-vectors and one value per distinct word of the longest document.
struct EStepScratch {
    double* exp_elog_theta;  // K
    double* last_gamma;      // K
    double* phinorm;         // >= N_d
};

// The local step of one document with lambda fixed (the loop in the header comment). On return
// gamma holds the document's variational parameter and s.exp_elog_theta = exp(E[log theta]) of it;
// s.phinorm holds phinorm at that final theta, so sstats can be accumulated right away (the
// statistics use the converged theta, as scikit-learn's and Hoffman's code do). Returns the number
// of iterations run.
//   row[n]       row of exp_elog_beta holding word n (K contiguous values)
//   cnt[n]       count c_n of word n
ASYNCOPT_SIMD_CLONES inline int e_step(const int32_t* row, const double* cnt, int64_t n_words, const double* exp_elog_beta, int K,
                  double alpha, int max_iter, double mean_change_tol, double* gamma, EStepScratch& s) noexcept {
    constexpr double eps = std::numeric_limits<double>::epsilon();
    double* const etheta = s.exp_elog_theta;
    double* const last = s.last_gamma;
    for (int k = 0; k < K; ++k) gamma[k] = 1.0;
    exp_dirichlet_expectation(gamma, K, etheta);

    int it = 0;
    while (it < max_iter) {
        ++it;
        for (int k = 0; k < K; ++k) {
            last[k] = gamma[k];
            gamma[k] = 0.0;
        }
        // gamma_k <- exp(E[log theta_k]) sum_n (c_n / phinorm_n) exp(E[log beta_kn]) + alpha
        for (int64_t n = 0; n < n_words; ++n) {
            const double* b = exp_elog_beta + static_cast<int64_t>(row[n]) * K;
            const double coef = cnt[n] / (dot(etheta, b, K) + eps);
            for (int k = 0; k < K; ++k) gamma[k] += coef * b[k];
        }
        double change = 0;
        for (int k = 0; k < K; ++k) {
            gamma[k] = etheta[k] * gamma[k] + alpha;
            change += std::fabs(gamma[k] - last[k]);
        }
        exp_dirichlet_expectation(gamma, K, etheta);
        if (change / K < mean_change_tol) break;
    }
    for (int64_t n = 0; n < n_words; ++n)
        s.phinorm[n] = dot(etheta, exp_elog_beta + static_cast<int64_t>(row[n]) * K, K) + eps;
    return it;
}

// Adds the document's sufficient statistics *without* the exp(E[log beta]) factor:
// acc[row[n]][k] += exp(E[log theta_k]) c_n / phinorm_n. The caller multiplies each row by its
// exp(E[log beta]) once per mini-batch (a word shared by many documents costs K multiplications
// once, not once per document), as scikit-learn's _e_step does.
ASYNCOPT_SIMD_CLONES inline void accumulate_sstats(const int32_t* row, const double* cnt, int64_t n_words, int K,
                              const EStepScratch& s, double* acc) noexcept {
    for (int64_t n = 0; n < n_words; ++n) {
        double* a = acc + static_cast<int64_t>(row[n]) * K;
        const double coef = cnt[n] / s.phinorm[n];
        for (int k = 0; k < K; ++k) a[k] += coef * s.exp_elog_theta[k];
    }
}

// The document's expected log-likelihood term of the bound (scikit-learn's _approx_bound):
//   sum_n c_n log sum_k exp(E[log theta_k] + E[log beta_kw_n])
// evaluated as log(sum_k exp(E[log theta_k]) exp(E[log beta_kw_n])). Where that sum underflows
// (exp(E[log beta]) of a word can reach 0 for tiny lambda), elog_beta(row[n], k) gives the exact
// E[log beta_kw_n] and the term is taken by log-sum-exp with the maximum factored out.
//   row[n]       row of exp_elog_beta holding word n (as for e_step)
template <class ElogBeta>
double doc_loglik(const int32_t* row, const double* cnt, int64_t n_words, const double* exp_elog_beta, int K,
                  const double* gamma, double* etheta, double* elog_theta, ElogBeta&& elog_beta) noexcept {
    exp_dirichlet_expectation(gamma, K, etheta);
    double total = 0;
    bool have_log = false;
    for (int64_t n = 0; n < n_words; ++n) {
        const double p = dot(etheta, exp_elog_beta + static_cast<int64_t>(row[n]) * K, K);
        if (p > 1e-280) {
            total += cnt[n] * std::log(p);
            continue;
        }
        if (!have_log) {
            double g = 0;
            for (int k = 0; k < K; ++k) g += gamma[k];
            const double psi_g = digamma(g);
            for (int k = 0; k < K; ++k) elog_theta[k] = digamma(gamma[k]) - psi_g;
            have_log = true;
        }
        double m = -std::numeric_limits<double>::infinity();
        for (int k = 0; k < K; ++k) m = std::fmax(m, elog_theta[k] + elog_beta(row[n], k));
        double s = 0;
        for (int k = 0; k < K; ++k) s += std::exp(elog_theta[k] + elog_beta(row[n], k) - m);
        total += cnt[n] * (m + std::log(s));
    }
    return total;
}

}  // namespace lda
}  // namespace asyncopt
