// Logistic regression: the loss of one row and its derivative with respect to the margin.
//
// Objective (what history_ reports and what the exact-L2 path minimises):
//     F(w, b) = (1/n) sum_i log(1 + exp(-y_i (w.x_i + b))) + (alpha/2) ||w||^2,   y_i in {-1, +1}.
// The gradient of row i with respect to w is  dloss(z_i, y_i) * x_i  with z_i = w.x_i + b, so one
// row costs O(nnz of the row); a mini-batch step uses the mean of its rows' gradients.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/shared.hpp"
#include "../core/sparse.hpp"

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

// dloss(z, y), and loss(z, y) in *row_loss, from one exp: both need e = exp(-|y z|)
// (softplus(u) = max(u, 0) + log1p(e) and sigmoid(u) with u = -y z), so the progressive training
// loss costs a log1p per row on top of the gradient. The derivative is bit-identical to dloss().
ASYNCOPT_HD inline double dloss_and_loss(double z, double y, double* row_loss) noexcept {
    const double u = -y * z;
    const double e = std::exp(u >= 0 ? -u : u);
    *row_loss = (u > 0 ? u : 0.0) + std::log1p(e);
    return -y * (u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e));
}

// What an epoch learns of the model as it trains, at no extra pass over the data (progressive
// validation, Blum, Kalai & Langford 1999; scikit-learn's SGD stops on the same sum): the loss and
// the correctness of every row at the model its update read, before that update's write.
struct ProgressiveLoss {
    double loss = 0;
    int64_t correct = 0;
    int64_t rows = 0;
    void merge(const ProgressiveLoss& o) noexcept {
        loss += o.loss;
        correct += o.correct;
        rows += o.rows;
    }
};

 // The sparse regulariser's coefficient on w_j in a mini-batch's mean gradient: each of the
// rows_with_j rows of the batch holding j adds (n/d_j) alpha w_j, and the batch averages over its
// rows (inv_b = 1 / batch size). Every driver (threads, MPI worker, GPU) takes it from here.
ASYNCOPT_HD inline double sparse_reg_coef(double alpha, double n_over_d, uint32_t rows_with_j, double inv_b) noexcept {
    return alpha * n_over_d * static_cast<double>(rows_with_j) * inv_b;
}

}  // namespace logistic

// Per-thread accumulator for mini-batches of more than one row: a feature that several rows of the
// batch share gets one update with its summed gradient (AMSGrad is not linear in g). An
// open-addressing hash table sized to twice the batch's nonzeros stays in L1/L2 whatever the
// number of features (a dense d-sized array would add a cache miss per nonzero and O(d) memory).
// Features come out in order of first occurrence, so one-thread runs stay deterministic.
class BatchAccumulator {
public:
    void reserve(int64_t nnz) {
        size_t cap = 16;
        while (cap < 2 * static_cast<size_t>(nnz)) cap *= 2;
        if (cap <= key_.size()) return;
        key_.assign(cap, -1);
        grad_.assign(cap, 0.0);
        count_.assign(cap, 0);
        shift_ = 32;
        for (size_t c = cap; c > 1; c >>= 1) --shift_;
    }
    void add(int32_t j, double g) {
        // Fibonacci hashing: the top bits of j * 2^32/phi spread consecutive ids apart.
        size_t h = (static_cast<uint32_t>(j) * 2654435769u) >> shift_;
        const size_t mask = key_.size() - 1;
        while (key_[h] != j) {
            if (key_[h] < 0) {
                key_[h] = j;
                used_.push_back(static_cast<uint32_t>(h));
                break;
            }
            h = (h + 1) & mask;
        }
        grad_[h] += g;
        count_[h] += 1;
    }
    template <class F>
    void drain(F&& f) {
        for (uint32_t h : used_) {
            f(key_[h], grad_[h], count_[h]);
            key_[h] = -1;
            grad_[h] = 0;
            count_[h] = 0;
        }
        used_.clear();
    }

private:
    std::vector<int32_t> key_;
    std::vector<double> grad_;
    std::vector<uint32_t> count_;
    std::vector<uint32_t> used_;
    int shift_ = 32;
};

template <class T>
int64_t batch_nnz(const CsrView<T>& X, const int64_t* rows, int64_t count) noexcept {
    int64_t nnz = 0;
    for (int64_t q = 0; q < count; ++q) nnz += X.indptr[rows[q] + 1] - X.indptr[rows[q]];
    return nnz;
}

namespace logistic {

// One mini-batch's mean gradient, the arithmetic the CPU drivers share (the threads' update in
// threads/logistic.hpp, the MPI worker's batch_gradient; the GPU worker splits the same steps over
// its team's lanes). First every row's margin: z_q = b + margin(q, row), coef_q = dloss(z_q, y) / B,
// all read before anything is written. Then each distinct feature j of the batch, in
// first-occurrence order, goes once to emit(j, g_j, regc_j): its data gradient sum_q coef_q x_qj
// and the sparse regulariser's coefficient (0 when sparse_alpha is 0; reg_scale(j) = n/d_j). A
// feature several rows share gets one emit with the summed gradient (the adaptive rules are not
// linear in g). Returns the intercept's gradient, sum_q coef_q. coef: `count` doubles of scratch.
// progress, when not null, gains every row's loss and correctness at the margin read. weight, when
// not null, holds a weight per row (sample_weight times class_weight): row i's loss, and so its
// gradient, is multiplied by weight[i]; the sparse regulariser's share is not (it estimates the
// penalty, which no row owns).
template <class T, class Margin, class RegScale, class Emit>
double minibatch_gradient(const CsrView<T>& X, const double* y, const int64_t* rows, int64_t count, double b,
                          double sparse_alpha, BatchAccumulator& acc, double* coef, Margin&& margin,
                          RegScale&& reg_scale, Emit&& emit, ProgressiveLoss* progress = nullptr,
                          const double* weight = nullptr) {
    const double inv_b = 1.0 / static_cast<double>(count);
    double coef_sum = 0;
    for (int64_t q = 0; q < count; ++q) {
        const auto row = X.row(rows[q]);
        const double z = b + margin(q, row), yq = y[rows[q]];
        if (progress) {
            double row_loss;
            coef[q] = dloss_and_loss(z, yq, &row_loss) * inv_b;
            progress->loss += weight ? weight[rows[q]] * row_loss : row_loss;
            progress->correct += (z > 0 ? 1.0 : -1.0) == yq;
        } else {
            coef[q] = dloss(z, yq) * inv_b;
        }
        if (weight) coef[q] *= weight[rows[q]];
        coef_sum += coef[q];
    }
    if (progress) progress->rows += count;
    if (count == 1) {  // no accumulator: every feature of a canonical row is distinct
        const auto row = X.row(rows[0]);
        for (int64_t a = 0; a < row.nnz; ++a) {
            const int32_t j = row.idx[a];
            emit(j, coef[0] * static_cast<double>(row.val[a]),
                 sparse_alpha > 0 ? sparse_reg_coef(sparse_alpha, reg_scale(j), 1, inv_b) : 0.0);
        }
        return coef_sum;
    }
    acc.reserve(batch_nnz(X, rows, count));
    for (int64_t q = 0; q < count; ++q) {
        const auto row = X.row(rows[q]);
        for (int64_t a = 0; a < row.nnz; ++a) acc.add(row.idx[a], coef[q] * static_cast<double>(row.val[a]));
    }
    acc.drain([&](int32_t j, double gj, uint32_t rows_with_j) {
        emit(j, gj, sparse_alpha > 0 ? sparse_reg_coef(sparse_alpha, reg_scale(j), rows_with_j, inv_b) : 0.0);
    });
    return coef_sum;
}

}  // namespace logistic

// A distributed worker's share of one update (backends/mpi/worker.py): the mean gradient of the
// mini-batch `rows` at a model copy w (dense float64, n_cols + 1 entries, the intercept last), with
// the arithmetic of the threads' update (minibatch_gradient), the sparse
// regulariser's (n/d_j) alpha w_j share included (evaluated at the copy: the read point x_{t-d}).
// Writes the batch's distinct features in first-occurrence order to idx and their gradients to g;
// returns how many, and the intercept's gradient in *g0 (0 without an intercept).
template <class T>
int64_t batch_gradient(const CsrView<T>& X, const double* y, const int64_t* rows, int64_t count, const double* w,
                       const T* reg_scale, double sparse_alpha, bool fit_intercept, BatchAccumulator& acc,
                       int32_t* idx, double* g, double* g0) {
    thread_local std::vector<double> coef;
    coef.resize(static_cast<size_t>(count));
    int64_t n = 0;
    const double coef_sum = logistic::minibatch_gradient(
        X, y, rows, count, fit_intercept ? w[X.n_cols] : 0.0, sparse_alpha, acc, coef.data(),
        [&](int64_t, const typename CsrView<T>::Row& row) {
            double z = 0;
            for (int64_t a = 0; a < row.nnz; ++a) z += static_cast<double>(row.val[a]) * w[row.idx[a]];
            return z;
        },
        [&](int32_t j) { return static_cast<double>(reg_scale[j]); },
        [&](int32_t j, double gj, double regc) {
            idx[n] = j;
            g[n] = gj + regc * w[j];
            ++n;
        });
    *g0 = fit_intercept ? coef_sum : 0.0;
    return n;
}

// The distinct features of the mini-batch `rows`, in first-occurrence order (the keys a worker
// pulls before computing its gradient); returns how many were written to out.
template <class T>
int64_t batch_features(const CsrView<T>& X, const int64_t* rows, int64_t count, BatchAccumulator& acc, int32_t* out) {
    acc.reserve(batch_nnz(X, rows, count));
    for (int64_t q = 0; q < count; ++q) {
        const auto row = X.row(rows[q]);
        for (int64_t a = 0; a < row.nnz; ++a) acc.add(row.idx[a], 0.0);
    }
    int64_t n = 0;
    acc.drain([&](int32_t j, double, uint32_t) { out[n++] = j; });
    return n;
}

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
