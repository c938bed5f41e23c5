// Read-only CSR views of the training data. The Python side hands over canonical CSR
// (int64 indptr, int32 column indices sorted and unique within a row, float32|float64 values);
// check_csr re-checks the invariants the kernels rely on, in O(nnz), before any thread starts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "hd.hpp"

namespace asyncopt {

template <class T>
struct CsrView {
    const int64_t* indptr = nullptr;  // n_rows + 1 offsets
    const int32_t* indices = nullptr;  // column of each stored value
    const T* data = nullptr;
    int64_t n_rows = 0;
    int64_t n_cols = 0;

    struct Row {
        const int32_t* idx;
        const T* val;
        int64_t nnz;
    };

    ASYNCOPT_HD Row row(int64_t i) const noexcept {
        const int64_t b = indptr[i];
        return Row{indices + b, data + b, indptr[i + 1] - b};
    }
    ASYNCOPT_HD int64_t nnz() const noexcept { return indptr[n_rows]; }
};

// Throws std::invalid_argument (ValueError in Python) when the CSR arrays break an invariant that
// the unchecked inner loops depend on: monotone indptr, columns in range, strictly ascending
// columns within a row (a duplicate would be applied twice by a batch-1 update).
template <class T>
void check_csr(const CsrView<T>& X) {
    if (X.indptr[0] != 0) throw std::invalid_argument("CSR indptr must start at 0");
    for (int64_t i = 0; i < X.n_rows; ++i) {
        const int64_t b = X.indptr[i], e = X.indptr[i + 1];
        if (e < b) throw std::invalid_argument("CSR indptr decreases at row " + std::to_string(i));
        for (int64_t p = b; p < e; ++p) {
            const int32_t j = X.indices[p];
            if (j < 0 || j >= X.n_cols)
                throw std::invalid_argument("CSR column index " + std::to_string(j) + " out of range [0, " +
                                            std::to_string(X.n_cols) + ") in row " + std::to_string(i));
            if (p > b && j <= X.indices[p - 1])
                throw std::invalid_argument("CSR columns not strictly ascending in row " + std::to_string(i));
        }
    }
}

// Shuffled rows sit at random places in memory: each costs DRAM misses on indptr, then on its
// indices and values, which the core would otherwise wait out one row at a time. RowPrefetcher runs
// a two-stage software pipeline over the visiting order: the indptr entries of the row kFar ahead,
// and the index/value lines of the row kNear ahead (whose indptr arrived meanwhile).
template <class T>
class RowPrefetcher {
public:
    explicit RowPrefetcher(const CsrView<T>& X) : X_(X) {}

    // cur: the row about to be processed, in the visiting order that ends at end.
    void ahead_of(const int64_t* cur, const int64_t* end) const noexcept {
        if (end - cur > kFar) __builtin_prefetch(X_.indptr + cur[kFar]);
        if (end - cur > kNear) {
            const int64_t i = cur[kNear];
            const int64_t b = X_.indptr[i], e = X_.indptr[i + 1];
            const char* idx = reinterpret_cast<const char*>(X_.indices + b);
            const char* val = reinterpret_cast<const char*>(X_.data + b);
            const int64_t idx_bytes = (e - b) * static_cast<int64_t>(sizeof(int32_t));
            const int64_t val_bytes = (e - b) * static_cast<int64_t>(sizeof(T));
            for (int64_t o = 0; o < idx_bytes; o += 64) __builtin_prefetch(idx + o);
            for (int64_t o = 0; o < val_bytes; o += 64) __builtin_prefetch(val + o);
        }
    }

    // The model lines of the next row (its indices arrived with the previous call's prefetch): a
    // large model's state is in DRAM or L3, and these misses would otherwise be taken one row at a time.
    template <class State>
    void model_ahead_of(const int64_t* cur, const int64_t* end, const State* state) const noexcept {
        if (end - cur <= 1) return;
        const auto row = X_.row(cur[1]);
        for (int64_t a = 0; a < row.nnz; ++a) __builtin_prefetch(state + row.idx[a], 1);
    }

private:
    static constexpr int64_t kNear = 2, kFar = 6;
    const CsrView<T>& X_;
};

}  // namespace asyncopt
