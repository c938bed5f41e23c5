// Array checks shared by the bindings: every raw pointer handed to the native core comes from here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "asyncopt/core/epoch_plan.hpp"
#include "asyncopt/core/sparse.hpp"

namespace asyncopt_bindings {

namespace py = pybind11;

// numpy's dtype equality, not object identity: an unpickled array carries an equal but distinct
// dtype object; a byte-swapped or different type still fails.
template <class T>
bool is_dtype(const py::dtype& dt) {
    return py::dtype::of<T>().attr("__eq__")(dt).template cast<bool>();
}

// A raw pointer into a numpy array after checking what the kernels assume: exact item type (never a
// converting copy: a copy of an in-place argument would leave the caller's model as it was), or for
// kind 'V' a structured item of exactly sizeof(T) bytes (an optimizer state whose layout the
// caller built from state_layout); C-contiguous; the expected shape (-1: any length on that axis);
// writable when written.
template <class T>
T* checked(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape, bool writable,
           char kind = 0) {
    const py::dtype dt = a.dtype();
    const bool type_ok = kind ? (dt.kind() == kind && dt.itemsize() == static_cast<py::ssize_t>(sizeof(T)))
                              : is_dtype<T>(dt);
    if (!type_ok)
        throw py::value_error(std::string(name) + ": wrong dtype " + std::string(py::str(dt)) + " (itemsize " +
                              std::to_string(dt.itemsize()) + "), expected " +
                              (kind ? "a structured item of " + std::to_string(sizeof(T)) + " bytes"
                                    : std::string(py::str(py::dtype::of<T>()))));
    if (a.ndim() != static_cast<py::ssize_t>(shape.size()))
        throw py::value_error(std::string(name) + ": expected a " + std::to_string(shape.size()) + "-d array, got " +
                              std::to_string(a.ndim()) + "-d");
    if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + ": expected a C-contiguous array");
    int i = 0;
    for (py::ssize_t want : shape) {
        if (want >= 0 && a.shape(i) != want)
            throw py::value_error(std::string(name) + ": expected length " + std::to_string(want) + " along axis " +
                                  std::to_string(i) + ", got " + std::to_string(a.shape(i)));
        ++i;
    }
    if (writable && !a.writeable()) throw py::value_error(std::string(name) + ": array is read-only");
    return static_cast<T*>(const_cast<void*>(a.data()));
}

// A CSR view of (indptr int64, indices int32, data T) with n_cols columns. deep: also the O(nnz)
// content check (asyncopt::check_csr); an estimator runs it once per fit and skips it per epoch.
template <class T>
asyncopt::CsrView<T> csr_view(const py::array& indptr, const py::array& indices, const py::array& data, int64_t n_cols,
                              bool deep = true) {
    if (indptr.ndim() != 1 || indptr.shape(0) < 1) throw py::value_error("indptr: expected a non-empty 1-d array");
    if (n_cols < 1 || n_cols > std::numeric_limits<int32_t>::max())
        throw py::value_error("n_features must be in [1, 2^31 - 1]");
    asyncopt::CsrView<T> X;
    X.n_rows = indptr.shape(0) - 1;
    X.n_cols = n_cols;
    X.indptr = checked<int64_t>(indptr, "indptr", {-1}, false);
    X.indices = checked<int32_t>(indices, "indices", {-1}, false);
    X.data = checked<T>(data, "data", {indices.shape(0)}, false);
    if (X.indptr[X.n_rows] != indices.shape(0)) throw py::value_error("indptr[-1] must equal len(indices)");
    if (deep) asyncopt::check_csr(X);
    return X;
}

// Per-row weights of the losses (sample_weight x class_weight): float64, one per row, finite and >= 0
// (Python checks them with messages naming the parameter; this guards the native entry points).
inline const double* checked_weights(const py::array& w, int64_t n_rows) {
    const double* p = checked<double>(w, "sample_weight", {n_rows}, false);
    for (int64_t i = 0; i < n_rows; ++i)
        if (!(p[i] >= 0) || !std::isfinite(p[i])) throw py::value_error("sample_weight must be finite and >= 0");
    return p;
}

// The rows an epoch visits (int64; writable where the driver shuffles them in place), each checked
// against n_rows when check is set; never empty.
struct Visit {
    int64_t* rows;
    int64_t count;
};
inline Visit checked_perm(const py::array& perm, int64_t n_rows, bool check, bool writable = true) {
    int64_t* p = checked<int64_t>(perm, "perm", {-1}, writable);
    const int64_t n = perm.shape(0);
    if (n < 1) throw py::value_error("perm must not be empty");
    if (check)
        for (int64_t i = 0; i < n; ++i)
            if (p[i] < 0 || p[i] >= n_rows) throw py::value_error("perm holds an out-of-range row");
    return {p, n};
}

// The features a model brings up to date at segment ends (int32), each in [0, n_cols).
struct Features {
    const int32_t* ids;
    int64_t count;
};
inline Features checked_active(const py::array& active, int64_t n_cols) {
    const int32_t* p = checked<int32_t>(active, "active", {-1}, false);
    const int64_t n = active.shape(0);
    for (int64_t i = 0; i < n; ++i)
        if (p[i] < 0 || p[i] >= n_cols) throw py::value_error("active holds an out-of-range feature");
    return {p, n};
}

// f(float{}) or f(double{}) by the dtype of a data array; anything else is an error naming it.
template <class F>
auto with_precision(const py::array& data, F&& f) {
    const py::dtype dt = data.dtype();
    if (is_dtype<float>(dt)) return f(float{});
    if (is_dtype<double>(dt)) return f(double{});
    throw py::value_error("data: dtype must be float32 or float64, got " + std::string(py::str(dt)));
}

// An epoch's update count and staleness statistics, as every backend's epoch returns them.
inline py::dict staleness_dict(const asyncopt::EpochResult& r) {
    py::dict d;
    d["updates"] = r.updates;
    d["count"] = r.staleness.count;
    d["sum"] = r.staleness.sum;
    d["max"] = r.staleness.max;
    py::array_t<uint64_t> hist(asyncopt::kStalenessBins);
    std::copy(r.staleness.hist, r.staleness.hist + asyncopt::kStalenessBins, hist.mutable_data());
    d["hist"] = hist;
    return d;
}

// staleness_dict plus, when the epoch summed it, the progressive loss (loss_sum, correct, rows).
template <class Progress>
py::dict epoch_dict(const asyncopt::EpochResult& r, bool progressive, const Progress& p) {
    py::dict d = staleness_dict(r);
    if (progressive) {
        d["loss_sum"] = p.loss;
        d["correct"] = p.correct;
        d["rows"] = p.rows;
    }
    return d;
}

}  // namespace asyncopt_bindings
