// The parameter server's LDA model: DPSVI's process level (Mohamad et al. 2022), i.e. SVI's global
// step (Hoffman et al. 2013, Alg. 1 lines 10-12) applied by rank 0 one worker message at a time:
//     lambda <- (1 - rho_t) lambda + rho_t (eta + D/|B| sstats),   rho_t = (tau0 + t)^-kappa
// with the workers' E-steps (lda_batch_stats in threads/lda.hpp) supplying sstats x exp(E[log beta])
// for the distinct words of their mini-batches.
//
// The representation is the threads backend's (threads/lda.hpp): lambda_kw = eta + S_t mu~_wk with
// S_t = prod (1 - rho_i) over the current segment, so a step costs O(K x the message's words) and
// never an O(K V) pass; settle() folds S into mu~ (an O(K V) pass, at segment ends and before the
// estimator evaluates). The arithmetic of a step and of a read is the threads backend's own, so a
// one-worker synchronous run is the one-thread fit to the bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../threads/lda.hpp"

namespace asyncopt {

class LdaServerModel {
public:
    // model: mu~ (V x K) and its topic sums, holding lambda - eta as of step k0 (settled).
    LdaServerModel(const LdaModel& model, const LdaConfig& cfg, uint64_t k0)
        : m_(model), c_(cfg), mass_inc_(static_cast<size_t>(model.n_topics)), k_(k0), k_base_(k0) {
        begin_segment();
    }

    uint64_t steps() const noexcept { return k_; }

    // mu_wk = S mu~_wk (lambda - eta) for each word, K values per word, and the topic sums S M~_k.
    void read(const int32_t* words, int64_t n, double* out, double* mass) const noexcept {
        const int K = m_.n_topics;
        const double S = scale_[k_ - k_base_];
        for (int64_t r = 0; r < n; ++r) {
            const double* src = m_.mu + static_cast<int64_t>(words[r]) * K;
            for (int k = 0; k < K; ++k) out[r * K + k] = S * src[k];
        }
        for (int k = 0; k < K; ++k) mass[k] = S * m_.topic_mass[k];
    }

    // Global step k + 1 from a mini-batch of n_docs documents: stats holds sstats_kw exp(E[log beta_kw])
    // for its distinct words (K per word).
    void apply(const int32_t* words, const double* stats, int64_t n, double n_docs) {
        if (k_ - k_base_ >= seg_len_) settle();
        ++k_;
        const uint32_t u = static_cast<uint32_t>(k_ - k_base_);
        const int K = m_.n_topics;
        const double coef = rho_[u] * c_.total_samples / n_docs / scale_[u];
        std::fill(mass_inc_.begin(), mass_inc_.end(), 0.0);
        for (int64_t r = 0; r < n; ++r) {
            double* dst = m_.mu + static_cast<int64_t>(words[r]) * K;
            const double* ss = stats + r * K;
            for (int k = 0; k < K; ++k) {
                const double inc = coef * ss[k];
                dst[k] += inc;
                mass_inc_[k] += inc;
            }
        }
        for (int k = 0; k < K; ++k) m_.topic_mass[k] += mass_inc_[k];
    }

    // Fold S into mu~ and recompute the topic sums from it; returns their relative drift (rounding
    // only: the server is the one writer). Opens a new segment at step k.
    double settle() {
        const double S = scale_[k_ - k_base_];
        const int K = m_.n_topics;
        const int64_t V = m_.n_words;
        std::vector<double> total(static_cast<size_t>(K), 0.0);
        for (int64_t w = 0; w < V; ++w) {
            double* row = m_.mu + w * K;
            for (int k = 0; k < K; ++k) {
                row[k] *= S;
                total[k] += row[k];
            }
        }
        double drift = 0;
        for (int k = 0; k < K; ++k) {
            const double kept = S * m_.topic_mass[k];
            const double denom = std::fabs(total[k]) + c_.topic_word_prior * static_cast<double>(V);
            drift = std::max(drift, std::fabs(kept - total[k]) / denom);
            m_.topic_mass[k] = total[k];
        }
        k_base_ = k_;
        begin_segment();
        return drift;
    }

private:
    // rho and S over the segment's steps; S >= 2^-500 throughout, as LdaWork::max_segment_updates, and
    // at most 2^16 steps (16 bytes of tables per step).
    void begin_segment() {
        const double worst = -std::log1p(-lda_rho(c_, k_base_ + 1));
        double n = worst > 0 ? std::floor(500.0 * std::log(2.0) / worst) : 1e18;
        seg_len_ = static_cast<uint32_t>(std::max(1.0, std::min(n, 65536.0)));
        rho_.assign(static_cast<size_t>(seg_len_) + 1, 0.0);
        scale_.assign(static_cast<size_t>(seg_len_) + 1, 1.0);
        for (uint32_t u = 1; u <= seg_len_; ++u) {
            rho_[u] = lda_rho(c_, k_base_ + u);
            scale_[u] = scale_[u - 1] * (1.0 - rho_[u]);
        }
    }

    LdaModel m_;
    LdaConfig c_;
    std::vector<double> mass_inc_, rho_, scale_;
    uint64_t k_, k_base_;
    uint32_t seg_len_ = 1;
};

}  // namespace asyncopt
