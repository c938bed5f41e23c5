import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts):
    """Path to a file of the shared real datasets (../shared/data), or skip the test."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared dataset {p} not present")
    return p


def sparse_problem(n=80, d=300, nnz_per_row=4, seed=0, dtype=np.float64):
    """A small problem where most features are rare: Zipf-like feature draws, so the lazy
    catch-up is exercised over long gaps. No explicit zeros."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, d + 1) ** 1.1
    p /= p.sum()
    perm = rng.permutation(d)
    rows, cols = [], []
    for i in range(n):
        k = rng.integers(1, 2 * nnz_per_row)
        c = np.unique(perm[rng.choice(d, size=k, p=p)])
        rows += [i] * len(c)
        cols += list(c)
    vals = rng.uniform(0.2, 1.5, size=len(rows))
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, d), dtype=dtype)
    w = rng.normal(size=d) * 2
    y = np.where(X @ w + 0.3 * rng.normal(size=n) > 0, 1.0, -1.0)
    return X, y


@pytest.fixture(scope="session")
def a9a_optimum():
    """(objective, test log-loss) of the L-BFGS minimiser of a9a, alpha = 1e-4 (the MPI tests'
    target), computed once per session."""
    from test_statistical import optimum

    from asyncopt.datasets import load_libsvm

    X, y = load_libsvm(shared_data("libsvm", "a9a.xz"))
    Xt, yt = load_libsvm(shared_data("libsvm", "a9a.t.xz"), n_features=X.shape[1])
    return optimum(X, y, Xt, yt)
