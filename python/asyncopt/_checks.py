"""Input validation at the Python edge: every problem gets a clear error before native code runs."""
from __future__ import annotations

import math
import numbers
import os
import warnings

import numpy as np
import scipy.sparse as sp

from . import _core

_INT32_MAX = np.iinfo(np.int32).max

# The most threads one native call runs; csrc/asyncopt/core/parallel.hpp (kMaxThreads) says why
# there is a bound and why it is a fixed 1024 rather than a multiple of this machine's cores.
MAX_THREADS = _core.MAX_THREADS


def check_int(name, value, low=None, allow_none=False, high=None):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return int(value)


def check_n_threads(n_threads, name="n_threads"):
    """None (all usable cores) or an integer in [1, MAX_THREADS]."""
    return check_int(name, n_threads, low=1, allow_none=True, high=MAX_THREADS)


def check_real(name, value, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """A finite real number within [low, high] (open ends on request) as float; None if allowed."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return float(value)


def check_matrix(X, name="X", n_features=None, whom="it"):
    """Canonical CSR (sorted unique indices) in float32 or float64.

    float32 and float64 inputs keep their dtype (float32 is never upcast); integer and boolean
    inputs become float64, as do object arrays of numbers (a pandas frame of mixed columns).
    Duplicate entries of a sparse input are summed, as scipy defines them. The messages follow
    scikit-learn's check_array where it has one, so a scikit-learn user reads the error they
    know; ``whom`` names the estimator in the one about a changed number of features.
    """
    if sp.issparse(X):
        X = X.tocsr()
    else:
        X = np.asarray(X)
        if X.dtype == object:
            # numbers held as Python objects are numbers; anything else raises numpy's own
            # TypeError/ValueError, naming the value's type
            try:
                X = X.astype(np.float64)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{name}: an object array must hold numbers only ({e})") from None
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional (n_samples, n_features), got shape {X.shape}. Reshape "
                             "your data: X.reshape(-1, 1) if it has a single feature, X.reshape(1, -1) if it is a "
                             "single sample")
    if X.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name}: dtype {X.dtype} is not numeric")
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    if not sp.issparse(X):
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinity")
        X = sp.csr_matrix(X.astype(dtype, copy=False))
    n, d = X.shape
    if n == 0:
        raise ValueError(f"{name} has 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if d == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features is not None and d != n_features:
        raise ValueError(f"{name} has {d} features, but {whom} is expecting {n_features} features as input")
    if d > _INT32_MAX:
        raise ValueError(f"{name} has {d} features; at most 2^31 - 1 are supported")
    if X.dtype != dtype:
        X = X.astype(dtype)
    if not all(a.flags.c_contiguous for a in (X.data, X.indices, X.indptr)):
        # scipy keeps the arrays it is given, strided views included (csr_matrix((data[::2], ...)));
        # the native core reads raw pointers and takes contiguous arrays only. One copy of the
        # strided arrays here, at the boundary: the caller's matrix is only read.
        X = sp.csr_matrix((np.ascontiguousarray(X.data), np.ascontiguousarray(X.indices),
                           np.ascontiguousarray(X.indptr)), shape=X.shape)
    if not np.isfinite(X.data).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()  # sorts indices and merges duplicates
    return X


def native_csr(X):
    """(indptr int64, indices int32, data) of a checked CSR matrix, as the native core takes them.
    scipy picks int32 or int64 index arrays by size; only what differs is converted (O(n_rows))."""
    return (np.asarray(X.indptr, dtype=np.int64), np.asarray(X.indices, dtype=np.int32), X.data)


def check_classification_target(y, whom):
    """Before anything else of a classifier's fit: y is given, and is not a continuous (regression)
    target, whose 'classes' would be every distinct value. Messages as scikit-learn's."""
    if y is None:
        raise ValueError(f"{whom} requires y to be passed, but the target y is None")
    a = np.asarray(y)
    if a.dtype.kind == "f" and np.isfinite(a).all() and np.any(a != np.round(a)):
        raise ValueError(f"Unknown label type: continuous. {whom} is a classifier: y must hold class labels, not "
                         "continuous values (round or bin them first)")


def check_labels(y, n_samples, name="y"):
    """Class labels of n_samples rows, 1-d (a column vector is raveled with scikit-learn's
    DataConversionWarning)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        from sklearn.exceptions import DataConversionWarning

        warnings.warn(f"A column-vector {name} was passed when a 1d array was expected; it is raveled to shape "
                      f"({y.shape[0]},)", DataConversionWarning, stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels but X has {n_samples} rows")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if y.dtype == object and any(v is None for v in y):
        raise ValueError(f"{name} contains None")
    return y


def fit_rng(random_state, updates):
    """The generator of one training call's shuffles and thread seeds, from random_state and the
    number of updates applied so far, so successive partial_fit calls shuffle differently yet
    reproducibly."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2 ** 31))
    return np.random.default_rng([check_int("random_state", random_state, low=0), updates])


def resolve_n_threads(n_threads):
    """None = all usable cores (at most MAX_THREADS), honouring OMP_NUM_THREADS; a build without
    OpenMP runs one thread."""
    if n_threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
        if env:
            try:
                n_threads = max(1, int(env))
            except ValueError:
                raise ValueError(f"OMP_NUM_THREADS={env!r} is not an integer") from None
            if n_threads > MAX_THREADS:
                raise ValueError(f"OMP_NUM_THREADS={env} asks for more than the {MAX_THREADS} threads asyncopt "
                                 "runs at most; set it lower or pass n_threads")
        else:
            try:
                n_threads = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                n_threads = os.cpu_count() or 1
            # the default must work on any machine: a node with more cores than the bound uses MAX_THREADS
            n_threads = min(n_threads, MAX_THREADS)
    n_threads = check_n_threads(n_threads)
    if n_threads > 1 and not _core.build_info()["openmp"]:
        warnings.warn(f"asyncopt was built without OpenMP: running 1 thread instead of {n_threads} "
                      "(reinstall with a compiler that has OpenMP, e.g. gcc, or clang with libomp: "
                      "pip install --force-reinstall --no-cache-dir .)",
                      RuntimeWarning, stacklevel=4)
        n_threads = 1
    return n_threads
