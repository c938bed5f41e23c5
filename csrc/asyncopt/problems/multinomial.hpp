// Multiclass logistic regression over K > 2 classes: the loss of one row and its derivatives with
// respect to the row's K margins z_c = w_c.x + b_c.
//
//   softmax (multinomial):  loss = log sum_c exp(z_c) - z_y,       d loss / d z_c = p_c - [c = y]
//   ovr (one-vs-rest):      loss = sum_c log(1 + exp(-s_c z_c)),   d loss / d z_c = dloss(z_c, s_c),
//                           s_c = +1 for c = y, else -1: K binary problems trained together
// with p = softmax(z). The model stores a feature's K weights adjacently (coordinate j K + c, the
// K intercepts last), so one nonzero x_j reads and writes one run of K optimizer-state records.
// Every coordinate is an ordinary coordinate of the update rule: the lazy catch-up, its stamps and
// the regularisation modes are those of the binary model, unchanged.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/sparse.hpp"
#include "logistic.hpp"

namespace asyncopt {
namespace multinomial {

enum class Loss : int { softmax = 0, ovr = 1 };

// The predicted class: the first of the largest margins (numpy's argmax).
inline int argmax(const double* z, int K) noexcept {
    int best = 0;
    for (int c = 1; c < K; ++c)
        if (z[c] > z[best]) best = c;
    return best;
}

// A row's loss at margins z (K of them) for class y; d loss / d z_c times inv_b into coef[c] (coef
// may alias z: every z is read before the first write). *right: whether argmax z is y.
inline double row_coefficients(const double* z, int K, int32_t y, Loss loss, double inv_b, double* coef,
                               bool* right) noexcept {
    *right = argmax(z, K) == y;
    if (loss == Loss::ovr) {
        double total = 0;
        for (int c = 0; c < K; ++c) {
            double row_loss;
            coef[c] = logistic::dloss_and_loss(z[c], c == y ? 1.0 : -1.0, &row_loss) * inv_b;
            total += row_loss;
        }
        return total;
    }
    // log-sum-exp shifted by the largest margin: no overflow, and the largest term is exp(0) = 1
    double m = z[0];
    for (int c = 1; c < K; ++c) m = z[c] > m ? z[c] : m;
    double s = 0;
    for (int c = 0; c < K; ++c) s += std::exp(z[c] - m);
    const double row_loss = m + std::log(s) - z[y];
    const double inv_s = 1.0 / s;
    for (int c = 0; c < K; ++c) coef[c] = (std::exp(z[c] - m) * inv_s - (c == y ? 1.0 : 0.0)) * inv_b;
    return row_loss;
}

// Per-thread accumulator of a mini-batch's gradient as K-vectors per distinct feature, in
// first-occurrence order (one-thread runs stay deterministic): the multiclass BatchAccumulator.
class VectorAccumulator {
public:
    void reserve(int64_t nnz, int K) {
        K_ = K;
        size_t cap = 16;
        while (cap < 2 * static_cast<size_t>(nnz)) cap *= 2;
        if (cap > slot_of_.size()) {
            key_.assign(cap, -1);
            slot_of_.assign(cap, 0);
            shift_ = 32;
            for (size_t c = cap; c > 1; c >>= 1) --shift_;
        }
        features_.clear();
        counts_.clear();
        grads_.clear();
    }
    // The K gradient sums of feature j (zero on its first occurrence); counts the row.
    double* add(int32_t j) {
        size_t h = (static_cast<uint32_t>(j) * 2654435769u) >> shift_;
        const size_t mask = key_.size() - 1;
        while (key_[h] != j) {
            if (key_[h] < 0) {
                key_[h] = j;
                slot_of_[h] = static_cast<uint32_t>(features_.size());
                features_.push_back(j);
                used_.push_back(static_cast<uint32_t>(h));
                counts_.push_back(0);
                grads_.resize(grads_.size() + static_cast<size_t>(K_), 0.0);
                break;
            }
            h = (h + 1) & mask;
        }
        const uint32_t s = slot_of_[h];
        counts_[s] += 1;
        return grads_.data() + static_cast<size_t>(s) * static_cast<size_t>(K_);
    }
    template <class F>
    void drain(F&& f) {
        for (size_t s = 0; s < features_.size(); ++s) f(features_[s], grads_.data() + s * static_cast<size_t>(K_), counts_[s]);
        for (uint32_t h : used_) key_[h] = -1;
        used_.clear();
    }

private:
    std::vector<int32_t> key_;
    std::vector<uint32_t> slot_of_, used_, counts_;
    std::vector<int32_t> features_;
    std::vector<double> grads_;
    int K_ = 1;
    int shift_ = 32;
};

// One mini-batch's mean gradient, as logistic::minibatch_gradient for K classes: first every row's K
// margins z_q = b + margins(q, row) (margins adds w_c.x into its K-vector), read before anything is
// written; then each distinct feature j, in first-occurrence order, goes once to emit(j, g, regc):
// g the K data-gradient sums sum_q coef_qc x_qj, regc the sparse regulariser's coefficient. Adds
// the intercepts' gradients sum_q coef_qc to coef_sum[c]. scratch: count K + K doubles.
// weight: per-row weights or null, as in logistic::minibatch_gradient.
template <class T, class Margins, class RegScale, class Emit>
void minibatch_gradient(const CsrView<T>& X, const int32_t* y, const int64_t* rows, int64_t count, int K,
                        const double* b, double sparse_alpha, Loss loss, VectorAccumulator& acc, double* scratch,
                        double* coef_sum, Margins&& margins, RegScale&& reg_scale, Emit&& emit,
                        logistic::ProgressiveLoss* progress = nullptr, const double* weight = nullptr) {
    const double inv_b = 1.0 / static_cast<double>(count);
    double* g1 = scratch + count * K;  // one feature's K gradients when the batch is one row
    for (int c = 0; c < K; ++c) coef_sum[c] = 0;
    for (int64_t q = 0; q < count; ++q) {
        double* zq = scratch + q * K;
        for (int c = 0; c < K; ++c) zq[c] = b[c];
        margins(q, X.row(rows[q]), zq);
        bool right;
        const double wq = weight ? weight[rows[q]] : 1.0;
        const double row_loss = row_coefficients(zq, K, y[rows[q]], loss, inv_b * wq, zq, &right);
        if (progress) {
            progress->loss += wq * row_loss;
            progress->correct += right;
        }
        for (int c = 0; c < K; ++c) coef_sum[c] += zq[c];
    }
    if (progress) progress->rows += count;
    if (count == 1) {  // every feature of a canonical row is distinct
        const auto row = X.row(rows[0]);
        for (int64_t a = 0; a < row.nnz; ++a) {
            const int32_t j = row.idx[a];
            const double v = static_cast<double>(row.val[a]);
            for (int c = 0; c < K; ++c) g1[c] = scratch[c] * v;
            emit(j, g1, sparse_alpha > 0 ? logistic::sparse_reg_coef(sparse_alpha, reg_scale(j), 1, inv_b) : 0.0);
        }
        return;
    }
    acc.reserve(batch_nnz(X, rows, count), K);
    for (int64_t q = 0; q < count; ++q) {
        const auto row = X.row(rows[q]);
        const double* cq = scratch + q * K;
        for (int64_t a = 0; a < row.nnz; ++a) {
            double* g = acc.add(row.idx[a]);
            const double v = static_cast<double>(row.val[a]);
            for (int c = 0; c < K; ++c) g[c] += cq[c] * v;
        }
    }
    acc.drain([&](int32_t j, const double* g, uint32_t rows_with_j) {
        emit(j, g, sparse_alpha > 0 ? logistic::sparse_reg_coef(sparse_alpha, reg_scale(j), rows_with_j, inv_b) : 0.0);
    });
}

}  // namespace multinomial
}  // namespace asyncopt
