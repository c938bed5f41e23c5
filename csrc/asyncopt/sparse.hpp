// Read-only CSR views of the training data. The Python side hands over canonical CSR
// (int64 indptr, int32 column indices sorted and unique within a row, float32|float64 values);
// check_csr re-checks the invariants the kernels rely on, in O(nnz), before any thread starts.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

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

    Row row(int64_t i) const noexcept {
        const int64_t b = indptr[i];
        return Row{indices + b, data + b, indptr[i + 1] - b};
    }
    int64_t nnz() const noexcept { return indptr[n_rows]; }
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

}  // namespace asyncopt
