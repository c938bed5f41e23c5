"""Tier 2: with two threads the lock-free runs still reach the optimum of the objective on real
data (test log-loss within 1% of the batch solver's), which a broken update cannot.

Free-running threads overlap as the OS schedules them (two threads time-sliced on one busy core may
not overlap at all), so those tests assert only what scheduling cannot change: every update
counted once, the quality reached. The staleness the driver measures is checked exactly in
lockstep rounds (EpochConfig.lockstep, csrc/asyncopt/threads/hogwild.hpp), where it does not depend on
scheduling."""
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SklearnLR

import asyncopt
from asyncopt import _core
from asyncopt.datasets import load_libsvm, make_sparse_classification
from conftest import shared_data, sparse_problem

ALPHA = 1e-4


def mean_log_loss(X, y, coef, intercept):
    z = X @ coef + intercept
    return float(np.mean(np.logaddexp(0.0, -y * z)))


def optimum(X, y, Xt, yt):
    """Minimiser of mean log-loss + ALPHA/2 ||w||^2 by L-BFGS: sklearn minimises C sum(loss) + ||w||^2/2,
    the same objective times n C for C = 1 / (ALPHA n)."""
    n = X.shape[0]
    sk = SklearnLR(C=1.0 / (ALPHA * n), tol=1e-9, max_iter=10_000).fit(X.astype(np.float64), y)
    w, b = sk.coef_[0], sk.intercept_[0]
    objective = mean_log_loss(X, y, w, b) + ALPHA / 2 * w @ w
    return objective, mean_log_loss(Xt, yt, w, b)


@pytest.fixture(scope="module")
def a9a():
    X, y = load_libsvm(shared_data("libsvm", "a9a.xz"))
    Xt, yt = load_libsvm(shared_data("libsvm", "a9a.t.xz"), n_features=X.shape[1])
    return X, y, Xt, yt, optimum(X, y, Xt, yt)


@pytest.fixture(scope="module")
def news20():
    X, y = load_libsvm(shared_data("libsvm", "news20bydate_tfidf.binary.train.xz"))
    Xt, yt = load_libsvm(shared_data("libsvm", "news20bydate_tfidf.binary.test.xz"), n_features=X.shape[1])
    return X, y, Xt, yt, optimum(X, y, Xt, yt)


def check_near_optimum(clf, data):
    X, y, Xt, yt, (best_objective, best_test) = data
    test_loss = clf.log_loss(Xt, yt)
    assert abs(test_loss / best_test - 1) <= 0.01, (test_loss, best_test)
    objective = clf.log_loss(X, y) + 0.5 * clf.alpha * float(np.sum(clf.coef_.astype(np.float64) ** 2))
    assert objective <= best_objective * 1.02
    assert clf.history_[-1]["val_loss"] == pytest.approx(test_loss, rel=1e-5)
    check_counted(clf)


def check_counted(est):
    """What scheduling cannot change in a free-running fit: every update counted once, in the
    histogram too, and the run's max in the bin the histogram puts it in."""
    st = est.staleness_
    assert st.count == est.t_ and st.histogram.sum() == st.count
    assert 0 <= st.mean <= st.max and st.histogram[np.flatnonzero(st.histogram).max()] > 0
    assert np.flatnonzero(st.histogram).max() == (0 if st.max == 0 else int(st.max).bit_length())


@contextlib.contextmanager
def lockstep(name):
    """Within the block, the estimators' native epochs (asyncopt._core.<name>) run in lockstep
    rounds: the config they pass gets EpochConfig.lockstep = True."""
    real = getattr(_core, name)

    def run(*args, **kwargs):
        configs = [a for a in (*args, *kwargs.values()) if isinstance(a, _core.EpochConfig)]
        assert len(configs) == 1
        configs[0].lockstep = True
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_core, name, run)
        yield


def lockstep_staleness(n, n_threads, batch_size):
    """count, sum, max and histogram of tau in one segment of lockstep rounds over n items (hogwild.hpp):
    thread t owns [n t / T, n (t + 1) / T) in ceil(len / B) mini-batches; round r holds the r-th
    of every thread that has one, A_r threads, whose taus are 0, 1, ..., A_r - 1."""
    bounds = [n * t // n_threads for t in range(n_threads + 1)]
    batches = [-(-(hi - lo) // batch_size) for lo, hi in zip(bounds, bounds[1:])]
    taus = [tau for r in range(max(batches)) for tau in range(sum(b > r for b in batches))]
    hist = np.zeros(_core.STALENESS_BINS, dtype=np.int64)
    np.add.at(hist, [int(tau).bit_length() for tau in taus], 1)
    return {"count": len(taus), "sum": sum(taus), "max": max(taus), "histogram": hist}


def check_staleness(st, expected):
    assert (st.count, st.total, st.max) == (expected["count"], expected["sum"], expected["max"])
    np.testing.assert_array_equal(st.histogram, expected["histogram"])


@pytest.mark.parametrize("optimizer,learning_rate,schedule", [
    ("sgd", 0.5, "invsqrt"), ("amsgrad", 0.03, "invsqrt"), ("adagrad", None, "constant"), ("adam", 0.03, "invsqrt")])
def test_two_threads_reach_optimum_on_a9a(a9a, optimizer, learning_rate, schedule):
    X, y, Xt, yt, _ = a9a
    clf = asyncopt.LogisticRegression(tol=None, optimizer=optimizer, learning_rate=learning_rate, schedule=schedule,
                                      alpha=ALPHA, epochs=10, n_threads=2, random_state=0)
    clf.fit(X, y, eval_set=(Xt, yt))
    check_near_optimum(clf, a9a)


def test_two_threads_sgd_reach_optimum_on_news20(news20):
    X, y, Xt, yt, _ = news20
    # a constant step, then a smaller one from where it stopped (step decay by warm start)
    clf = asyncopt.LogisticRegression(tol=None, learning_rate=0.3, schedule="constant", alpha=ALPHA, epochs=8,
                                      n_threads=2, random_state=0)
    clf.fit(X, y)
    clf.set_params(learning_rate=0.03, epochs=4, warm_start=True).fit(X, y, eval_set=(Xt, yt))
    check_near_optimum(clf, news20)


@pytest.mark.parametrize("optimizer,learning_rate,epochs", [("amsgrad", 0.002, 10), ("adagrad", 0.2, 10),
                                                            ("adam", 0.001, 15)])
def test_two_threads_adaptive_rules_reach_optimum_on_news20(news20, optimizer, learning_rate, epochs):
    """Measured over 6 two-thread fits (random_state 0-5) each: AdaGrad test loss -0.23 to -0.55 %
    from the optimum's, objective +0.12 to +0.14 %; Adam test +0.10 to +0.37 %, objective +1.33 to
    +1.49 % (a constant step's noise floor, against the 2 % bar)."""
    X, y, Xt, yt, _ = news20
    clf = asyncopt.LogisticRegression(tol=None, optimizer=optimizer, learning_rate=learning_rate, alpha=ALPHA, epochs=epochs,
                                      n_threads=2, random_state=0)
    clf.fit(X, y, eval_set=(Xt, yt))
    check_near_optimum(clf, news20)


@pytest.mark.parametrize("optimizer", ["sgd", "amsgrad"])
def test_staleness_zero_with_one_thread_counted_with_two(optimizer):
    X, y = make_sparse_classification(n_samples=200_000, n_features=2 ** 16, nnz_per_row=20, random_state=0)
    one = asyncopt.LogisticRegression(tol=None, optimizer=optimizer, n_threads=1, epochs=1, random_state=0).fit(X, y)
    assert one.staleness_.count == one.t_ == 200_000
    assert one.staleness_.max == 0 and one.staleness_.mean == 0
    assert one.staleness_.histogram[0] == one.t_
    # free-running threads: how much they overlap is the OS's doing; every update is counted
    two = asyncopt.LogisticRegression(tol=None, optimizer=optimizer, n_threads=2, epochs=1, random_state=0).fit(X, y)
    assert two.t_ == 200_000
    check_counted(two)
    rec = two.history_[-1]
    assert rec["staleness_max"] == two.staleness_.max and rec["staleness_mean"] == pytest.approx(two.staleness_.mean)


@pytest.mark.parametrize("optimizer,learning_rate", [("sgd", 0.5), ("amsgrad", 0.03)])
def test_lockstep_rounds_give_exact_staleness_and_still_learn(optimizer, learning_rate):
    """Lockstep rounds (hogwild.hpp): with one thread the free loop's run, bit for bit; with two
    (20,000 rows: 10,000 each, batch 1) 10,000 rounds whose two updates have tau 1 and 0, so
    max 1 and mean exactly 1/2 whatever the scheduling; with three (rows 6,666 / 6,667 / 6,667,
    batch 2: 3,333 / 3,334 / 3,334 mini-batches) 3,333 rounds of taus 0, 1, 2 and a last one of
    0, 1 in which thread 0, done, only takes part in the barriers. The racing updates of a round
    still train the model: the training loss ends within 2% of the one-thread run's with the same
    batch size (measured: within 0.5% with two threads, 1.2% with three)."""
    X, y = sparse_problem(n=20_000, d=2000, nnz_per_row=20)
    kw = dict(optimizer=optimizer, learning_rate=learning_rate, schedule="invsqrt", alpha=1e-5, epochs=2,
              random_state=0)
    free = asyncopt.LogisticRegression(tol=None, **kw, n_threads=1).fit(X, y)
    free_b2 = asyncopt.LogisticRegression(tol=None, **kw, n_threads=1, batch_size=2).fit(X, y)
    with lockstep("logistic_epoch"):
        one = asyncopt.LogisticRegression(tol=None, **kw, n_threads=1).fit(X, y)
        two = asyncopt.LogisticRegression(tol=None, **kw, n_threads=2).fit(X, y)
        three = asyncopt.LogisticRegression(tol=None, **kw, n_threads=3, batch_size=2).fit(X, y)
    np.testing.assert_array_equal(one.coef_, free.coef_)
    assert one.intercept_[0] == free.intercept_[0] and one.staleness_.max == 0

    per_epoch = lockstep_staleness(20_000, 2, 1)
    assert (per_epoch["count"], per_epoch["sum"], per_epoch["max"]) == (10_000 * 2, 10_000, 1)
    assert two.t_ == 2 * 20_000
    check_staleness(two.staleness_, {k: 2 * v if k != "max" else v for k, v in per_epoch.items()})
    assert two.staleness_.mean == 0.5
    assert [r["staleness_mean"] for r in two.history_] == [0.5, 0.5]
    assert [r["staleness_max"] for r in two.history_] == [1, 1]

    per_epoch = lockstep_staleness(20_000, 3, 2)
    assert (per_epoch["count"], per_epoch["sum"], per_epoch["max"]) == (3 * 3333 + 2, 3 * 3333 + 1, 2)
    check_staleness(three.staleness_, {k: 2 * v if k != "max" else v for k, v in per_epoch.items()})

    start = np.log(2.0)  # the loss of the zero model
    for clf, ref in ((two, free), (three, free_b2)):
        loss, best = clf.history_[-1]["train_loss"], ref.history_[-1]["train_loss"]
        assert loss < 0.7 * start and loss <= best * 1.02, (loss, best)


@pytest.mark.skipif(not asyncopt.build_info()["openmp"], reason="one thread without OpenMP: no barrier to wait at")
def test_lockstep_raises_rather_than_waits_when_openmp_starts_fewer_threads():
    """Every lockstep barrier waits for all n_threads: under a thread limit OpenMP starts fewer,
    and the epoch must raise (each thread throws before its first barrier) instead of waiting
    forever for threads that do not exist."""
    code = """if True:
        import asyncopt
        from conftest import sparse_problem
        from test_statistical import lockstep
        X, y = sparse_problem(n=200, d=50)
        with lockstep("logistic_epoch"):
            try:
                asyncopt.LogisticRegression(tol=None, n_threads=2).fit(X, y)
            except RuntimeError as e:
                print(e)
        """
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).parent, env=dict(os.environ, OMP_THREAD_LIMIT="1"))
    assert proc.returncode == 0, proc.stderr
    assert "lockstep epoch: OpenMP started 1 of the 2 threads" in proc.stdout


@pytest.mark.parametrize("optimizer", ["sgd", "amsgrad"])
def test_mini_batches_with_threads_learn(optimizer):
    """batch_size > 1 with several threads: the batch accumulator path under races."""
    X, y = sparse_problem(n=4000, d=2000, nnz_per_row=20)
    clf = asyncopt.LogisticRegression(tol=None, optimizer=optimizer, batch_size=16, learning_rate=1.0 if optimizer == "sgd" else 0.03,
                                      n_threads=2, epochs=10, random_state=0, alpha=1e-5).fit(X, y)
    # Constant-step SGD at lr 1 ends wherever its last steps threw it: 40 free-running 2-thread fits
    # scored 0.900-0.949 (one thread 0.952, AMSGrad 0.996), so 0.9 failed by scheduling now and
    # then. A zero or broken model scores about 0.5-0.6 on this balanced problem.
    assert clf.score(X, y) > (0.85 if optimizer == "sgd" else 0.98)
    assert clf.t_ == 10 * (2 * np.ceil(2000 / 16))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_threads_with_many_segments_reach_optimum(dtype):
    """Strong exact L2 cuts every epoch into many segments (csrc/asyncopt/optim/sgd.hpp); two racing
    threads must still land at the L-BFGS optimum of the same objective."""
    alpha = 0.02
    X, y = make_sparse_classification(n_samples=20_000, n_features=500, nnz_per_row=10, random_state=1, dtype=dtype)
    clf = asyncopt.LogisticRegression(tol=None, learning_rate=0.5, schedule="invsqrt", alpha=alpha, epochs=15, n_threads=2,
                                      random_state=0).fit(X, y)
    n = X.shape[0]
    sk = SklearnLR(C=1.0 / (alpha * n), tol=1e-10, max_iter=1000).fit(X.astype(np.float64), y)
    best = mean_log_loss(X, y, sk.coef_[0], sk.intercept_[0]) + alpha / 2 * sk.coef_[0] @ sk.coef_[0]
    assert clf.history_[-1]["objective"] <= best * 1.01
