"""sample_weight, class_weight and scikit-learn's C and max_iter on LogisticRegression: one thread
equals the dense NumPy reference with the same weights; class weights are sample weights; C is
alpha = 1 / (C n); every bad value is refused with a message naming it."""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler

import asyncopt
from asyncopt.datasets import make_sparse_classification
from conftest import sparse_problem
from reference import logistic_reference, multiclass_reference


def weights(n, seed=0):
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[::7] = 0.0  # rows that must teach nothing
    return w


@pytest.mark.parametrize("case", [
    dict(optimizer="sgd", learning_rate=0.3, schedule="constant", alpha=0.01, regularization="exact", batch_size=1),
    dict(optimizer="sgd", learning_rate=0.3, schedule="invsqrt", alpha=0.05, regularization="sparse", batch_size=4),
    dict(optimizer="amsgrad", learning_rate=0.05, schedule="constant", alpha=0.01, regularization="sparse",
         batch_size=3, bias_correction=False),
], ids=["sgd-exact", "sgd-sparse", "amsgrad"])
def test_one_thread_equals_the_weighted_reference(case):
    X, y = sparse_problem(n=80, d=60, seed=1)
    sw = weights(80)
    est = asyncopt.LogisticRegression(**case, epochs=3, shuffle=False, tol=None, n_threads=1).fit(X, y, sample_weight=sw)
    w, b = logistic_reference(X, y, **case, epochs=3, sample_weight=sw)
    np.testing.assert_allclose(est.coef_[0], w, rtol=1e-9, atol=1e-12)
    assert est.intercept_[0] == pytest.approx(b, rel=1e-9, abs=1e-12)


def test_one_thread_multiclass_equals_the_weighted_reference():
    rng = np.random.default_rng(3)
    X = sp.random(90, 40, density=0.15, random_state=3, format="csr", data_rvs=lambda s: rng.normal(size=s))
    y = rng.integers(0, 4, 90)
    sw = weights(90, seed=4)
    case = dict(optimizer="amsgrad", learning_rate=0.05, schedule="constant", alpha=0.01, regularization="sparse",
                batch_size=2, bias_correction=False)
    est = asyncopt.LogisticRegression(**case, epochs=2, shuffle=False, tol=None, n_threads=1).fit(X, y, sample_weight=sw)
    W, b = multiclass_reference(X, y, 4, **case, epochs=2, sample_weight=sw)
    np.testing.assert_allclose(est.coef_, W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(est.intercept_, b, rtol=1e-9, atol=1e-12)


def test_unit_weights_are_no_weights_and_the_records_are_weighted():
    X, y = sparse_problem(n=200, d=80, seed=2)
    kw = dict(n_threads=1, random_state=0, epochs=3, tol=None)
    a = asyncopt.LogisticRegression(**kw).fit(X, y)
    b = asyncopt.LogisticRegression(**kw).fit(X, y, sample_weight=np.ones(200))
    assert np.array_equal(a.coef_, b.coef_)
    sw = weights(200)
    c = asyncopt.LogisticRegression(**kw, train_loss="exact").fit(X, y, sample_weight=sw)
    z = X @ c.coef_[0] + c.intercept_[0]
    weighted = np.sum(sw * np.logaddexp(0.0, -y * z)) / 200
    assert c.history_[-1]["train_loss"] == pytest.approx(weighted, rel=1e-9)


def test_class_weight_is_a_sample_weight_per_class():
    X, y = sparse_problem(n=300, d=80, seed=5)
    kw = dict(n_threads=1, random_state=0, epochs=3, tol=None)
    a = asyncopt.LogisticRegression(**kw, class_weight={-1.0: 0.5, 1.0: 3.0}).fit(X, y)
    b = asyncopt.LogisticRegression(**kw).fit(X, y, sample_weight=np.where(y > 0, 3.0, 0.5))
    assert np.array_equal(a.coef_, b.coef_)
    # balanced: n / (K count_c), multiplied into given sample weights
    sw = weights(300)
    counts = {c: np.sum(y == c) for c in (-1.0, 1.0)}
    balanced = np.array([300 / (2 * counts[v]) for v in y])
    c = asyncopt.LogisticRegression(**kw, class_weight="balanced").fit(X, y, sample_weight=sw)
    d = asyncopt.LogisticRegression(**kw).fit(X, y, sample_weight=sw * balanced)
    np.testing.assert_array_equal(c.coef_, d.coef_)


def test_balanced_class_weight_helps_the_rare_class():
    X, y = make_sparse_classification(n_samples=20000, n_features=2000, random_state=3)
    rare = np.flatnonzero(y > 0)[::10]  # keep a tenth of the positives
    keep = np.sort(np.r_[np.flatnonzero(y < 0), rare])
    X, y = X[keep], y[keep]
    kw = dict(n_threads=2, random_state=0)
    plain = asyncopt.LogisticRegression(**kw).fit(X, y)
    balanced = asyncopt.LogisticRegression(**kw, class_weight="balanced").fit(X, y)
    recall = lambda est: np.mean(est.predict(X[y > 0]) > 0)  # noqa: E731
    # unweighted, the rare class is mostly predicted away; weighted, most of it is found
    assert recall(plain) < 0.35 < 0.6 < recall(balanced)


def test_bad_weights_are_refused_by_name():
    X, y = sparse_problem(n=50, d=20, seed=0)
    est = asyncopt.LogisticRegression(n_threads=1, epochs=1)
    for sw, message in [(np.ones(49), "sample_weight.shape"), (-np.ones(50), "Negative values in sample_weight"),
                        (np.full(50, np.nan), "NaN"), (np.zeros(50), "zero for every row"),
                        (np.array(["a"] * 50), "must be numbers")]:
        with pytest.raises(ValueError, match=message):
            est.fit(X, y, sample_weight=sw)
    with pytest.raises(ValueError, match="class_weight must be"):
        asyncopt.LogisticRegression(class_weight="heavy").fit(X, y)
    with pytest.raises(ValueError, match="not in class_weight|classes"):
        asyncopt.LogisticRegression(class_weight={5: 1.0}).fit(X, y)
    with pytest.raises(ValueError, match="'balanced' needs the class counts"):
        asyncopt.LogisticRegression(class_weight="balanced").partial_fit(X, y, classes=[-1.0, 1.0])
    from asyncopt.backends import Run, common
    for backend in ("cuda", "mpi"):
        with pytest.raises(ValueError, match=f"sample_weight is not available with backend='{backend}'"):
            common.refuse_weights(Run(n_threads=1, random_state=0, new_model=None, sample_weight=np.ones(3)), backend)


# ------------------------------------------------------------------ scikit-learn's C and max_iter
def test_C_is_alpha_over_the_rows():
    X, y = sparse_problem(n=120, d=40, seed=6)
    kw = dict(n_threads=1, random_state=0, epochs=3, tol=None)
    a = asyncopt.LogisticRegression(C=2.0, **kw).fit(X, y)
    b = asyncopt.LogisticRegression(alpha=1.0 / (2.0 * 120), **kw).fit(X, y)
    assert np.array_equal(a.coef_, b.coef_)
    with pytest.raises(ValueError, match="C=2.0 and alpha=0.1 are the same setting"):
        asyncopt.LogisticRegression(C=2.0, alpha=0.1).fit(X, y)
    with pytest.raises(ValueError, match="C must be > 0"):
        asyncopt.LogisticRegression(C=0.0).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit sees chunks"):
        asyncopt.LogisticRegression(C=1.0).partial_fit(X, y, classes=[-1.0, 1.0])


def test_max_iter_is_epochs():
    X, y = sparse_problem(n=60, d=30, seed=7)
    a = asyncopt.LogisticRegression(max_iter=3, tol=None, n_threads=1, random_state=0).fit(X, y)
    b = asyncopt.LogisticRegression(epochs=3, tol=None, n_threads=1, random_state=0).fit(X, y)
    assert a.n_iter_ == 3 and np.array_equal(a.coef_, b.coef_)
    with pytest.raises(ValueError, match="max_iter=2 and epochs=3 disagree"):
        asyncopt.LogisticRegression(epochs=3, max_iter=2).fit(X, y)


def test_grid_search_over_C_in_a_pipeline_and_cross_validation():
    X, y = make_sparse_classification(n_samples=3000, n_features=500, random_state=1)
    pipe = make_pipeline(MaxAbsScaler(), asyncopt.LogisticRegression(n_threads=1, random_state=0))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 10.0]}, cv=3, n_jobs=2).fit(X, y)
    assert search.best_params_["logisticregression__C"] in (0.1, 10.0) and search.best_score_ > 0.6
    scores = cross_val_score(asyncopt.LogisticRegression(n_threads=1, class_weight="balanced"), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.6


def test_feature_names_of_a_dataframe(tmp_path):
    pd = pytest.importorskip("pandas")
    X, y = sparse_problem(n=120, d=5, seed=8)
    frame = pd.DataFrame(X.toarray(), columns=["a", "b", "c", "d", "e"])
    est = asyncopt.LogisticRegression(n_threads=1, epochs=2).fit(frame, y)
    assert list(est.feature_names_in_) == ["a", "b", "c", "d", "e"]
    assert list(asyncopt.load(est.save(tmp_path / "m.npz")).feature_names_in_) == list(est.feature_names_in_)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        est.predict(frame.values)
    with pytest.raises(ValueError, match="feature names"):
        est.predict(frame.rename(columns={"a": "z"}))
    assert not hasattr(asyncopt.LogisticRegression(n_threads=1, epochs=1).fit(X, y), "feature_names_in_")
