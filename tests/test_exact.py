"""Tier 1: one thread, native result == dense NumPy reference of the same algorithm."""
import itertools

import numpy as np
import pytest

import asyncopt
from asyncopt import optim
from conftest import sparse_problem
from reference import logistic_reference

def test_problem_leaves_coordinates_untouched_for_long_gaps():
    """The exact checks below are only meaningful if most features sit idle for many steps."""
    X, _ = sparse_problem()
    rows_per_feature = np.bincount(X.indices, minlength=X.shape[1])
    present = rows_per_feature[rows_per_feature > 0]
    assert present.size > 100 and np.median(present) <= 3 and X.shape[0] >= 80


SGD_CASES = [
    dict(alpha=0.0, regularization="auto"),
    dict(alpha=0.05, regularization="exact"),
    dict(alpha=0.05, regularization="sparse"),
]
AMS_CASES = [
    dict(alpha=0.0, regularization="auto"),
    dict(alpha=0.05, regularization="sparse"),
    dict(alpha=0.05, regularization="decoupled"),
]


def fit_both(optimizer, case, batch_size, schedule, dtype=np.float64, epochs=3, bias_correction=False,
             fit_intercept=True, learning_rate=None, problem=None, eps=None):
    X, y = problem or sparse_problem(dtype=dtype)
    lr = learning_rate or (0.5 if optimizer == "sgd" else 0.05)
    rule = optim.get(optimizer)  # its defaults (eps) for the reference
    clf = asyncopt.LogisticRegression(tol=None, optimizer=optimizer, learning_rate=lr, schedule=schedule, eps=eps,
                                      bias_correction=bias_correction, batch_size=batch_size, epochs=epochs,
                                      shuffle=False, n_threads=1, fit_intercept=fit_intercept, **case)
    scale = 0.01 if schedule == "optimal" else 1.0  # the estimator's intercept_scale=None
    clf.fit(X, y)
    reg = clf.regularization_
    w, b = logistic_reference(X, y, optimizer=optimizer, learning_rate=lr, schedule=schedule,
                              bias_correction=bias_correction, alpha=case["alpha"], regularization=reg,
                              batch_size=batch_size, epochs=epochs, fit_intercept=fit_intercept,
                              intercept_scale=scale, eps=eps or getattr(rule, "eps", 1e-8),
                              beta2=getattr(rule, "beta2", 0.999))
    return clf, w, b


def combos(*axes):
    """The product of the axes, less 'optimal' schedules without L2 (that schedule needs alpha > 0)."""
    return [c for c in itertools.product(*axes) if not (c[2] == "optimal" and c[0]["alpha"] == 0)]


SCHEDULES = ["constant", "invsqrt", "optimal"]


# Every rule under every regularisation mode it has, both batch sizes and every schedule; the moment
# rules with and without bias correction.
REFERENCE_CASES = (
    [("sgd", *c, False) for c in combos(SGD_CASES, [1, 8], SCHEDULES)]
    + [("adagrad", *c, False) for c in combos(AMS_CASES, [1, 8], SCHEDULES)]
    + [(rule, *c) for rule in ("amsgrad", "adam") for c in combos(AMS_CASES, [1, 8], SCHEDULES, [False, True])])


@pytest.mark.parametrize("optimizer,case,batch_size,schedule,bias_correction", REFERENCE_CASES)
def test_one_thread_matches_dense_reference(optimizer, case, batch_size, schedule, bias_correction):
    clf, w, b = fit_both(optimizer, case, batch_size, schedule, bias_correction=bias_correction)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("eps", [1e-8, 1e-4, 0.3])
@pytest.mark.parametrize("case,schedule,bias_correction", [(AMS_CASES[0], "constant", False),
                                                           (AMS_CASES[1], "invsqrt", True),
                                                           (AMS_CASES[2], "constant", True)])
def test_adam_catch_up_beyond_its_horizon_is_exact(case, schedule, bias_correction, eps):
    """Adam's lazy catch-up sums at most series_horizon terms (430 with the default betas and bias
    correction): features idle for thousands of steps must still land on the dense result. With the
    default eps most catch-ups take the expansion in orders of eps / sqrt(v) (steps.hpp), where the
    orders past the first change the result by less than rtol; with eps = 1e-4, eps / sqrt(v) is
    about 1e-2, so every order counts (a sign error in them fails here) and some coordinates fall
    back to summing terms; with eps = 0.3, larger than any sqrt(v) here, every catch-up does."""
    X, y = sparse_problem(n=3000, d=3000, nnz_per_row=3, seed=5)
    csc = X.tocsc()  # rows holding each feature, sorted: the longest idle stretch within an epoch
    longest = max(np.diff(np.r_[-1, csc.indices[csc.indptr[j]:csc.indptr[j + 1]], X.shape[0]]).max()
                  for j in range(X.shape[1]) if csc.indptr[j + 1] > csc.indptr[j])
    sc = optim.Adam(learning_rate=0.05, bias_correction=bias_correction).step_config(0.0, "none")
    assert longest > 2 * asyncopt._core.series_horizon(sc), "the problem must leave features idle past the horizon"
    clf, w, b = fit_both("adam", case, 1, schedule, bias_correction=bias_correction, epochs=2, problem=(X, y), eps=eps)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)


def test_adam_series_horizon_bounds_the_truncated_tail():
    """The horizon is the least n whose tail bound falls below 2^-54, and it grows with beta1/sqrt(beta2)."""
    from asyncopt import _core

    def horizon(**kw):
        return _core.series_horizon(optim.Adam(learning_rate=0.01, **kw).step_config(0.0, "none"))

    r = 0.9 / np.sqrt(0.999)
    n = horizon(bias_correction=False)
    assert r ** n / (1 - r) < 2.0 ** -54 <= r ** (n - 1) / (1 - r)
    assert horizon(bias_correction=True) > n
    assert horizon(beta1=0.5, bias_correction=False) < n / 3
    sc = optim.Adam(learning_rate=0.01).step_config(0.0, "none")
    sc.beta1 = 0.9999
    with pytest.raises(ValueError, match="sqrt\\(beta2\\)"):
        _core.series_horizon(sc)


ALL_RULES = list(optim.names())


@pytest.mark.parametrize("optimizer", ALL_RULES)
def test_without_intercept_matches_reference(optimizer):
    case = dict(alpha=0.05, regularization="auto")
    clf, w, b = fit_both(optimizer, case, 4, "constant", fit_intercept=False)
    assert clf.intercept_[0] == 0
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("optimizer", ALL_RULES)
def test_float32_stays_float32_and_close_to_reference(optimizer):
    case = dict(alpha=0.05, regularization="auto")
    clf, w, b = fit_both(optimizer, case, 1, "constant", dtype=np.float32)
    assert clf.coef_.dtype == np.float32
    np.testing.assert_allclose(clf.coef_[0], w, rtol=2e-3, atol=2e-5)


def test_beta1_zero_matches_reference():
    X, y = sparse_problem()
    clf = asyncopt.LogisticRegression(tol=None, optimizer="amsgrad", learning_rate=0.05, beta1=0.0, alpha=0.05,
                                      regularization="decoupled", epochs=2, shuffle=False, n_threads=1).fit(X, y)
    w, b = logistic_reference(X, y, optimizer="amsgrad", learning_rate=0.05, beta1=0.0, alpha=0.05,
                              regularization="decoupled", epochs=2)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("optimizer", ALL_RULES)
def test_partial_fit_continues_exactly(optimizer):
    """Three partial_fit calls == one three-epoch fit: the step clock and the state carry over."""
    X, y = sparse_problem()
    kw = dict(optimizer=optimizer, schedule="invsqrt", alpha=0.05, shuffle=False, n_threads=1, batch_size=3)
    full = asyncopt.LogisticRegression(tol=None, epochs=3, **kw).fit(X, y)
    inc = asyncopt.LogisticRegression(tol=None, **kw)
    for _ in range(3):
        inc.partial_fit(X, y, classes=[-1.0, 1.0])
    assert inc.t_ == full.t_
    np.testing.assert_allclose(inc.coef_, full.coef_, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("optimizer", ALL_RULES)
def test_one_thread_is_bit_reproducible_with_shuffling(optimizer):
    X, y = sparse_problem()
    kw = dict(optimizer=optimizer, epochs=3, n_threads=1, random_state=42, alpha=0.01)
    a = asyncopt.LogisticRegression(tol=None, **kw).fit(X, y)
    b = asyncopt.LogisticRegression(tol=None, **kw).fit(X, y)
    assert np.array_equal(a.coef_, b.coef_) and np.array_equal(a.intercept_, b.intercept_)
    c = asyncopt.LogisticRegression(tol=None, **{**kw, "random_state": 43}).fit(X, y)
    assert not np.array_equal(a.coef_, c.coef_)


def test_objective_in_history_matches_numpy():
    X, y = sparse_problem()
    clf = asyncopt.LogisticRegression(tol=None, alpha=0.05, epochs=2, n_threads=1, random_state=0,
                                      train_loss="exact").fit(X, y)
    z = X @ clf.coef_[0] + clf.intercept_[0]
    obj = np.mean(np.logaddexp(0, -y * z)) + 0.025 * np.sum(clf.coef_ ** 2)
    assert clf.history_[-1]["objective"] == pytest.approx(obj, rel=1e-10)
    assert clf.history_[-1]["train_loss_kind"] == "exact"


@pytest.mark.parametrize("optimizer,batch_size", [("sgd", 1), ("sgd", 3), ("amsgrad", 1), ("adam", 2)])
def test_progressive_loss_is_each_rows_loss_at_the_model_its_update_read(optimizer, batch_size):
    """The default record: every row's loss at the model before its update, summed during the epoch.
    With one thread and rows in order, the model before the update of batch q is the fit of the rows
    before q, so the reference is a fit per prefix, entirely outside the epoch being checked."""
    X, y = sparse_problem(n=30, d=12, seed=3)
    # exact L2 for SGD; none for the adaptive rules, whose default (sparse) L2 depends on the rows fit
    alpha = 0.05 if optimizer == "sgd" else 0.0
    kw = dict(optimizer=optimizer, alpha=alpha, shuffle=False, n_threads=1, batch_size=batch_size)
    clf = asyncopt.LogisticRegression(tol=None, epochs=1, **kw).fit(X, y)
    rec = clf.history_[-1]
    losses, correct = [], []
    for start in range(0, X.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        if start == 0:
            w, b = np.zeros(X.shape[1]), 0.0
        else:
            prefix = asyncopt.LogisticRegression(tol=None, **kw).partial_fit(X[:start], y[:start], classes=[-1.0, 1.0])
            w, b = prefix.coef_[0], prefix.intercept_[0]
        z = X[rows] @ w + b
        losses += list(np.logaddexp(0, -y[rows] * z))
        correct += list(np.where(z > 0, 1, -1) == y[rows])
    assert rec["train_loss_kind"] == "progressive"
    assert rec["train_loss"] == pytest.approx(np.mean(losses), rel=1e-10)
    assert rec["train_accuracy"] == np.mean(correct)
    assert rec["objective"] == pytest.approx(np.mean(losses) + 0.5 * alpha * np.sum(clf.coef_ ** 2), rel=1e-10)


@pytest.mark.parametrize("dtype,schedule", [(np.float32, "constant"), (np.float32, "invsqrt"), (np.float32, "optimal"),
                                            (np.float64, "constant")])
def test_sgd_exact_l2_across_many_segments(dtype, schedule):
    """Strong L2 makes the step-indexed scale S_k shrink fast, so the driver cuts each epoch into
    segments (fold S into w at each end); the result must still be the dense algorithm's."""
    X, y = sparse_problem(n=400, dtype=dtype)
    lr, alpha = 0.6, 0.5 if dtype == np.float32 else 0.9
    clf = asyncopt.LogisticRegression(tol=None, learning_rate=lr, alpha=alpha, schedule=schedule, epochs=2,
                                      shuffle=False, n_threads=1).fit(X, y)
    w, b = logistic_reference(X, y, learning_rate=lr, alpha=alpha, schedule=schedule, regularization="exact",
                              epochs=2, intercept_scale=0.01 if schedule == "optimal" else 1.0)
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.coef_[0], w, **tol)
    np.testing.assert_allclose(clf.intercept_[0], b, **tol)
