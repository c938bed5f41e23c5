"""Bad input gets a clear error before native code runs; the estimator API behaves like scikit-learn's."""
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import asyncopt
from asyncopt import _core
from conftest import sparse_problem


@pytest.fixture
def data():
    return sparse_problem(n=200, d=50, nnz_per_row=5)


def fit(X, y, **kw):
    kw.setdefault("n_threads", 1)
    kw.setdefault("random_state", 0)
    kw.setdefault("epochs", 1)
    return asyncopt.LogisticRegression(**kw).fit(X, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_rejected(data, bad):
    X, y = data
    Xs = X.copy()
    Xs.data[3] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        fit(Xs, y)
    Xd = X.toarray()
    Xd[0, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinity"):
        fit(Xd, y)


def test_bad_labels_rejected(data):
    X, y = data
    with pytest.raises(ValueError, match="NaN or infinity"):
        fit(X, np.where(np.arange(200) == 5, np.nan, y))
    with pytest.raises(ValueError, match="200 rows"):
        fit(X, y[:-1])
    with pytest.raises(ValueError, match="at least two classes"):
        fit(X, np.ones(200))
    with pytest.raises(ValueError, match="1-dimensional"):
        fit(X, np.ones((200, 2)))


@pytest.mark.parametrize("X,match", [
    (np.zeros(5), "2-dimensional"),
    (np.zeros((0, 3)), r"0 sample\(s\) \(shape=\(0, 3\)\)"),
    (np.zeros((3, 0)), r"0 feature\(s\) \(shape=\(3, 0\)\)"),
    (np.ones((3, 2), dtype=complex), "Complex data not supported"),
    (np.array([[object()]]), "object array must hold numbers only"),
])
def test_malformed_X_rejected(X, match):
    with pytest.raises((ValueError, TypeError), match=match):
        fit(X, np.arange(X.shape[0] if X.ndim else 1) % 2)


@pytest.mark.parametrize("params,match", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=-3), "batch_size"), (dict(batch_size=2.5), "batch_size"),
    (dict(n_threads=0), "n_threads"), (dict(n_threads=-1), "n_threads"), (dict(epochs=0), "epochs"),
    (dict(learning_rate=0.0), "learning_rate"), (dict(learning_rate=-1.0), "learning_rate"),
    (dict(learning_rate=np.nan), "learning_rate"), (dict(optimizer="lbfgs"), "optimizer"), (dict(optimizer="adam", beta1=0.9995), "sqrt\\(beta2\\)"),
    (dict(schedule="1/t"), "schedule"), (dict(schedule="optimal", alpha=0.0), "needs alpha > 0"),
    (dict(optimizer="amsgrad", beta1=1.0), "beta1"),
    (dict(optimizer="amsgrad", beta2=-0.1), "beta2"), (dict(optimizer="amsgrad", eps=0.0), "eps"),
    (dict(optimizer="amsgrad", bias_correction="yes"), "bias_correction"),
    (dict(alpha=-1.0), "alpha"), (dict(alpha=np.inf), "alpha"), (dict(regularization="l1"), "regularization"),
    (dict(optimizer="amsgrad", regularization="exact"), "no closed-form"),
    (dict(optimizer="sgd", regularization="decoupled"), "same as exact"),
    (dict(learning_rate=10.0, alpha=0.5), "learning_rate \\* alpha"),
    (dict(optimizer="amsgrad", regularization="decoupled", learning_rate=0.5, alpha=0.5), "beta1"),
    (dict(tol=-1.0), "tol"), (dict(n_iter_no_change=0), "n_iter_no_change"), (dict(shuffle=1), "shuffle"),
    (dict(plateau_drops=-1), "plateau_drops"), (dict(plateau_drops=1.5), "plateau_drops"),
    (dict(train_loss="approximate"), "train_loss must be 'progressive' or 'exact'"),
    (dict(callback=3), "callback"), (dict(verbose=-1), "verbose"), (dict(intercept_scale=0.0), "intercept_scale"),
])
def test_impossible_parameters_rejected(data, params, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        fit(X, y, **params)


def test_a_step_scale_outside_0_1_is_refused_by_the_core():
    """The plateau drops only ever lower the steps: learning_rate stays the bound the step tables
    are sized by (optim/steps.hpp), so the core refuses a scale above 1 or not above 0."""
    from asyncopt import _core

    sc = _core.StepConfig()
    for bad in (0.0, -0.5, 1.5, np.nan):
        with pytest.raises(ValueError, match="scale must be in"):
            sc.scale = bad
    sc.scale = 0.01
    assert sc.scale == 0.01


def test_eval_set_checked(data):
    X, y = data
    with pytest.raises(ValueError, match="features"):
        fit(X, y).fit(X, y, eval_set=(X[:, :10], y))
    with pytest.raises(ValueError, match="outside the classes"):
        fit(X, y).fit(X, y, eval_set=(X, np.full(200, 7.0)))
    with pytest.raises(ValueError, match="pair"):
        fit(X, y).fit(X, y, eval_set=X)


def test_predict_checks(data):
    X, y = data
    with pytest.raises(NotFittedError):
        asyncopt.LogisticRegression().predict(X)
    clf = fit(X, y)
    with pytest.raises(ValueError, match="50"):
        clf.predict(X[:, :20])


def test_partial_fit_needs_classes_and_keeps_them(data):
    X, y = data
    clf = asyncopt.LogisticRegression(n_threads=1)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[-1.0, 1.0])
    clf.partial_fit(X[y > 0], y[y > 0])  # one class in a later chunk is fine
    with pytest.raises(ValueError, match="outside the model's classes"):
        clf.partial_fit(X, np.full(200, 3.0))
    with pytest.raises(ValueError, match="dtype"):
        clf.partial_fit(X.astype(np.float32), y)
    assert clf.n_iter_ == 1 and len(clf.history_) == 2


def test_any_two_labels_and_proba_order(data):
    X, y = data
    labels = np.where(y > 0, "spam", "ham")
    clf = fit(X, labels, epochs=5, learning_rate=0.5)
    assert list(clf.classes_) == ["ham", "spam"]
    assert set(clf.predict(X)) <= {"ham", "spam"}
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(clf.predict(X), clf.classes_[(proba[:, 1] > 0.5).astype(int)])
    assert clf.score(X, labels) > 0.8


def test_dtypes_kept_and_inputs_equivalent(data):
    X, y = data
    a = fit(X.astype(np.float32), y)
    assert a.coef_.dtype == np.float32 and a.coef_.shape == (1, 50) and a.intercept_.shape == (1,)
    b = fit(X, y)
    assert b.coef_.dtype == np.float64
    c = fit(X.toarray(), y)  # dense numpy
    d = fit(X.tocoo(), y)  # any scipy.sparse format
    assert np.array_equal(b.coef_, c.coef_) and np.array_equal(b.coef_, d.coef_)
    e = fit((X.toarray() > 0).astype(np.int64), y)  # integers become float64
    assert e.coef_.dtype == np.float64


def test_duplicate_sparse_entries_are_summed(data):
    X, y = data
    coo = X.tocoo()
    dup = sp.coo_matrix((np.r_[coo.data, coo.data], (np.r_[coo.row, coo.row], np.r_[coo.col, coo.col])), shape=X.shape)
    a = fit(dup.tocsr(), y, shuffle=False)
    b = fit(2 * X, y, shuffle=False)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-12)


def test_divergence_raises_with_advice(data):
    X, y = data
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        fit(X * 1e154, y, learning_rate=1e3, alpha=0.0)


def test_callback_tol_verbose(data, capsys):
    X, y = data
    seen = []
    clf = fit(X, y, epochs=10, callback=lambda rec: seen.append(rec["epoch"]) or rec["epoch"] == 3)
    assert seen == [1, 2, 3] and clf.n_iter_ == 3
    # the first epoch sets the best objective; no later one improves it by 10: stop 2 epochs later
    clf = fit(X, y, epochs=50, tol=10.0, n_iter_no_change=2, plateau_drops=0)
    assert clf.n_iter_ == 3
    # with plateau drops, each of the first two stalls cuts the step tenfold instead of stopping
    clf = fit(X, y, epochs=50, tol=10.0, n_iter_no_change=1, plateau_drops=2)
    assert clf.n_iter_ == 4 and clf.history_.column("step_scale").tolist() == pytest.approx([1, 1, 0.1, 0.01])
    fit(X, y, epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert out.count("epoch") == 2 and "objective" in out


def test_history_records(data):
    X, y = data
    clf = asyncopt.LogisticRegression(epochs=3, n_threads=1).fit(X, y, eval_set=(X, y))
    assert len(clf.history_) == 3 and clf.history_.column("epoch").tolist() == [1, 2, 3]
    rec = clf.history_[-1]
    for key in asyncopt.history.HISTORY_FIELDS:
        assert key in rec
    assert rec["updates"] == 600 and rec["val_accuracy"] == pytest.approx(clf.score(X, y))
    assert np.all(np.diff(clf.history_.column("time")) > 0)


def test_sklearn_clone_and_pickle(data):
    X, y = data
    clf = fit(X, y, epochs=2, random_state=3)
    c2 = clone(clf)
    assert c2.get_params() == clf.get_params() and not hasattr(c2, "coef_")
    restored = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(restored.predict_proba(X), clf.predict_proba(X))
    restored.partial_fit(X, y)  # continues, re-aligning the unpickled state
    assert restored.t_ == clf.t_ + 200


def test_omp_num_threads_honoured(data, monkeypatch):
    X, y = data
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert asyncopt.LogisticRegression(epochs=1).fit(X, y).n_threads_ == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        asyncopt.LogisticRegression(epochs=1).fit(X, y)


def test_native_layer_refuses_converting_copies(data):
    """In-place arguments must never be silently converted (the caller's model would not change)."""
    X, y = data
    clf = fit(X, y)
    Xn = (np.asarray(X.indptr, np.int64), np.asarray(X.indices, np.int32), X.data)
    common = dict(n_features=50, y=np.where(y > 0, 1.0, -1.0), reg_scale=None,
                  active=np.arange(50, dtype=np.int32), rule=_core.Rule.sgd, steps=_core.StepConfig(),
                  config=_core.LogisticConfig())
    with pytest.raises((ValueError, TypeError)):
        _core.logistic_epoch(*Xn, perm=np.arange(200, dtype=np.int32), state=clf._model.array, **common)
    with pytest.raises(ValueError, match="state"):
        _core.logistic_epoch(*Xn, perm=np.arange(200, dtype=np.int64), state=np.zeros(51), **common)
    bad = Xn[1].copy()
    bad[3] = 50
    with pytest.raises(ValueError, match="out of range"):
        _core.logistic_epoch(Xn[0], bad, Xn[2], perm=np.arange(200, dtype=np.int64), state=clf._model.array, **common)


def test_state_layout_matches_native_struct():
    # itemsize in units of the precision: SGD one weight; the stamped rules a power of two of them so
    # that a state never straddles two cache lines
    for opt, fields, words in [("sgd", ["w"], 1), ("amsgrad", ["w", "m", "v", "vhat", "d", "reg", "stamp"], 8),
                               ("adagrad", ["w", "G", "reg", "stamp"], 4), ("adam", ["w", "m", "v", "reg", "stamp"], 8)]:
        for dt, size in [("float32", 4), ("float64", 8)]:
            lay = _core.state_layout(getattr(_core.Rule, opt), dt)
            assert lay["names"] == fields
            assert lay["itemsize"] == words * size
            assert lay["formats"][-1] == ("<u4" if opt != "sgd" else f"<f{size}")


def test_build_info():
    import importlib.util

    info = asyncopt.build_info()
    assert info["openmp"] in (True, False) and info["cuda"] in (True, False)
    assert bool(info["cuda_architectures"]) == info["cuda"]
    has_mpi4py = importlib.util.find_spec("mpi4py") is not None
    assert sorted(info["backends"]) == sorted(["threads", "simulate"] + (["mpi"] if has_mpi4py else []) +
                                              (["cuda"] if info["cuda"] else []))
    assert info["version"] == asyncopt.__version__


def test_coef_in_callback_is_the_current_model(data):
    X, y = data
    snapshots = []
    clf = asyncopt.LogisticRegression(n_threads=1, epochs=3, random_state=0)
    clf.set_params(callback=lambda rec: snapshots.append(clf.coef_.copy()))
    clf.fit(X, y)
    assert len(snapshots) == 3 and not np.array_equal(snapshots[0], snapshots[2])
    assert np.array_equal(snapshots[-1], clf.coef_)


def test_validate_csr_catches_what_the_kernels_rely_on(data):
    X, _ = data
    indptr, indices = np.asarray(X.indptr, np.int64), np.asarray(X.indices, np.int32)
    _core.validate_csr(indptr, indices, X.data, 50)
    assert indptr[1] >= 2  # row 0 has two entries to swap
    unsorted = indices.copy()
    unsorted[[0, 1]] = unsorted[[1, 0]]
    with pytest.raises(ValueError, match="ascending"):
        _core.validate_csr(indptr, unsorted, X.data, 50)
    with pytest.raises(ValueError, match="out of range"):
        _core.validate_csr(indptr, indices, X.data, 10)
    with pytest.raises(ValueError, match="dtype"):
        _core.validate_csr(indptr, indices, X.data.astype(np.float16), 50)


# ---------------------------------------------------------------------- backend='mpi' settings
class TestMpiSettings:
    """Checked before any MPI call (and before mpi4py is imported): a bad setting fails on every rank
    alike instead of leaving the others waiting."""

    def fit(self, **kw):
        X, y = sparse_problem(n=20, d=30)
        return asyncopt.LogisticRegression(**kw).fit(X, y)

    @pytest.mark.parametrize("kw,match", [
        (dict(backend="gpu"), "backend must be"),
        (dict(mpi={"method": "sync"}), "backend is 'threads'"),
        (dict(backend="mpi", mpi={"method": "hogwild"}), "method must be one of"),
        (dict(backend="mpi", mpi={"methd": "sync"}), "unknown MPI option"),
        (dict(backend="mpi", mpi="sync"), "mpi must be None, a dict"),
        (dict(backend="mpi", mpi={"timeout": 0}), "timeout must be >"),
        (dict(backend="mpi", mpi={"exit_timeout": 0}), "exit_timeout must be >"),
        (dict(backend="mpi", mpi={"on_failure": "ignore"}), "on_failure must be"),
        (dict(backend="mpi", mpi={"picky_threshold": -1.0}), "picky_threshold must be >="),
        (dict(backend="mpi", mpi={"local_updates": 0}), "local_updates must be >="),
        (dict(backend="mpi", mpi={"delays": {0: 3.0}}), "delays rank must be >="),
        (dict(backend="mpi", mpi={"delays": {1: 0.5}}), r"delays\[1\] must be >="),
        (dict(backend="mpi", mpi={"delays": [3.0]}), "delays must be a dict"),
        (dict(backend="mpi", mpi={"sharding": "rows"}), "sharding must be"),
        (dict(backend="mpi", mpi={"eval_every": 0}), "eval_every must be >"),
        (dict(backend="mpi", optimizer="amsgrad", mpi={"method": "picky"}), "runs SGD"),
        (dict(backend="mpi", optimizer="amsgrad", mpi={"method": "dpsgd"}), "runs SGD"),
        (dict(backend="mpi", regularization="exact", mpi={"method": "picky"}), "cannot use regularization='exact'"),
        (dict(backend="mpi", regularization="exact", mpi={"method": "dpsgd"}), "cannot use regularization='exact'"),
        (dict(backend="mpi", n_threads=2, mpi={"method": "async"}), "is method='dpsgd'"),
        (dict(backend="mpi", n_threads=0, mpi={"method": "dpsgd"}), "n_threads must be >= 1"),
    ])
    def test_bad_settings(self, kw, match):
        with pytest.raises(ValueError, match=match):
            self.fit(**kw)

    def test_delay_checks_its_fields(self):
        from asyncopt.distributed import Delay

        with pytest.raises(ValueError, match="factor must be >="):
            Delay(factor=0.5)
        with pytest.raises(ValueError, match="pareto_shape must be >"):
            Delay(pareto_shape=0.0)
        rng = np.random.default_rng(0)
        assert Delay(factor=3.0).seconds(0.01, rng) == pytest.approx(0.02)
        assert Delay(pareto_shape=1.5).seconds(0.01, rng) >= 0

    def test_server_model_checks_what_it_dereferences(self):
        clf = asyncopt.LogisticRegression(epochs=1, n_threads=1).fit(*sparse_problem(n=20, d=30))
        sc = _core.StepConfig()
        sc.learning_rate = 0.1
        m = _core.ServerModel(clf._model.array, 30, _core.Rule.sgd, "float64", sc, 0, True, 1.0, np.zeros(0, np.int32), n_slots=2)
        with pytest.raises(ValueError, match=r"slot must be in \[0, 2\)"):
            m.reset(2)
        with pytest.raises(ValueError, match="out-of-range feature"):
            m.apply(np.array([30], np.int32), np.ones(1), 0.0)
        with pytest.raises(ValueError, match="out-of-range feature"):
            m.read(np.array([-1], np.int32), np.zeros(1))
        with pytest.raises(ValueError, match="needs an additive rule"):
            sc.decay = 0.01
            _core.ServerModel(clf._model.array, 30, _core.Rule.sgd, "float64", sc, 0, True, 1.0, np.zeros(0, np.int32), n_slots=2)

    def test_partial_fit_is_refused(self):
        X, y = sparse_problem(n=20, d=30)
        with pytest.raises(ValueError, match="partial_fit is not available with backend='mpi'"):
            asyncopt.LogisticRegression(backend="mpi").partial_fit(X, y, classes=[-1.0, 1.0])

    def test_dpsgd_refuses_plateau_drops_it_cannot_apply(self):
        """DPSGD's steps run on the workers, which the epoch loop's step drops do not reach: the
        default stopping rule is refused by name rather than silently ignored."""
        pytest.importorskip("mpi4py")
        X, y = sparse_problem(n=20, d=30)
        with pytest.raises(ValueError, match="pass plateau_drops=0"):
            asyncopt.LogisticRegression(backend="mpi", mpi={"method": "dpsgd"}).fit(X, y)

    def test_one_rank_is_not_enough(self):
        pytest.importorskip("mpi4py")
        with pytest.raises(ValueError, match="at least 2 ranks"):
            self.fit(backend="mpi")

    def test_importing_asyncopt_does_not_import_mpi4py(self):
        import subprocess
        import sys

        code = ("import sys, asyncopt, asyncopt.distributed; "
                "assert 'mpi4py' not in sys.modules, 'imported mpi4py'; print(asyncopt.build_info()['backends'])")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "threads" in out.stdout


# ------------------------------------------------------------------ issue 13: impossible parameters
# and inputs that crashed, exhausted memory or merged silently before.

@pytest.mark.parametrize("n_threads", [asyncopt._checks.MAX_THREADS + 1, 10 ** 6, 2 ** 31, 2 ** 70])
def test_n_threads_beyond_the_bound_is_refused(data, n_threads):
    # 10**6 segfaulted inside the OpenMP runtime, 2**31 gave pybind11's TypeError
    X, y = data
    with pytest.raises(ValueError, match=r"n_threads must be <= 1024"):
        fit(X, y, n_threads=n_threads)
    counts = sp.csr_matrix(np.abs(X.toarray()).round() + (X.toarray() != 0))
    with pytest.raises(ValueError, match=r"n_threads must be <= 1024"):
        asyncopt.LDA(n_components=2, n_threads=n_threads, epochs=1).fit(counts)
    lda = asyncopt.LDA(n_components=2, n_threads=1, epochs=1, random_state=0).fit(counts)
    lda.set_params(n_threads=n_threads)
    with pytest.raises(ValueError, match=r"n_threads must be <= 1024"):
        lda.transform(counts)


def test_the_thread_bound_is_the_cores(data):
    X, y = data
    assert _core.MAX_THREADS == asyncopt._checks.MAX_THREADS == 1024
    assert fit(X, y, n_threads=_core.MAX_THREADS // 128).n_threads_ == 8  # oversubscription stays allowed


def test_omp_num_threads_beyond_the_bound_is_refused(data, monkeypatch):
    X, y = data
    monkeypatch.setenv("OMP_NUM_THREADS", "1000000")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS=1000000 asks for more than the 1024"):
        fit(X, y, n_threads=None)


def test_native_calls_bound_n_threads_themselves(data):
    # the bindings re-check what they rely on: a ValueError, never a crash or a TypeError
    cfg = _core.LogisticConfig()
    for bad in (0, 1025, 10 ** 6, 2 ** 31):
        with pytest.raises(ValueError, match=r"n_threads must be in \[1, 1024\]"):
            cfg.n_threads = bad
    lda_cfg = _core.LdaConfig()
    with pytest.raises(ValueError, match=r"n_threads must be in \[1, 1024\]"):
        lda_cfg.n_threads = 2 ** 31
    X, _ = data
    Xc = sp.csr_matrix(np.ceil(np.abs(X.toarray())))
    lda_cfg.n_components = 2
    mu = np.ones((X.shape[1], 2))
    args = (Xc.indptr.astype(np.int64), Xc.indices.astype(np.int32), Xc.data, X.shape[1], mu, mu.sum(axis=0), lda_cfg)
    for bad in (10 ** 6, 2 ** 31):
        with pytest.raises(ValueError, match=r"n_threads must be in \[1, 1024\]"):
            _core.lda_infer(*args, bad, False)


def test_cli_refuses_a_million_threads(tmp_path, capsys):
    from asyncopt.cli import main
    good = tmp_path / "good.libsvm"
    good.write_text("1 3:1\n-1 2:1\n1 1:1 3:1\n-1 2:2\n")
    assert main(["train", str(good), "--epochs", "1", "--n-threads", "1000000"]) == 2
    assert "n_threads must be <= 1024" in capsys.readouterr().err


@pytest.mark.parametrize("huge", [2 ** 40, 2 ** 62, 2 ** 63 - 1])
def test_batch_size_beyond_the_rows_is_one_batch_of_all_rows(data, huge):
    # batch_size=2**40 on 300 rows raised std::bad_alloc (per-thread scratch sized by batch_size);
    # the core now clamps it to the rows, which is the same epoch: same model to the bit
    X, y = data
    ref = fit(X, y, batch_size=X.shape[0], epochs=2)
    big = fit(X, y, batch_size=huge, epochs=2)
    np.testing.assert_array_equal(big.coef_, ref.coef_)
    np.testing.assert_array_equal(big.intercept_, ref.intercept_)
    threaded = fit(X, y, batch_size=huge, n_threads=3, epochs=1)
    assert np.isfinite(threaded.coef_).all()
    counts = sp.csr_matrix(np.ceil(np.abs(X.toarray())))
    kw = dict(n_components=2, n_threads=1, epochs=1, random_state=0)
    lda_ref = asyncopt.LDA(batch_size=counts.shape[0], **kw).fit(counts)
    lda_big = asyncopt.LDA(batch_size=huge, **kw).fit(counts)
    np.testing.assert_array_equal(lda_big.components_, lda_ref.components_)


def test_non_contiguous_csr_arrays_are_accepted(data):
    # scipy keeps strided views it is given; fit refused them ("expected a C-contiguous array")
    # while predict took them
    X, y = data
    X64 = X.astype(np.float64)
    strided = sp.csr_matrix((np.repeat(X64.data, 2)[::2], np.repeat(X64.indices, 2)[::2],
                             np.repeat(X64.indptr, 2)[::2]), shape=X64.shape)
    assert not strided.data.flags.c_contiguous and not strided.indices.flags.c_contiguous
    assert not strided.indptr.flags.c_contiguous
    a = fit(strided, y, epochs=2)
    b = fit(X64, y, epochs=2)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.predict(strided), b.predict(X64))
    assert not strided.data.flags.c_contiguous  # the caller's matrix is only read
    counts = sp.csr_matrix(np.ceil(np.abs(X64.toarray())))
    strided_counts = sp.csr_matrix((np.repeat(counts.data, 2)[::2], np.repeat(counts.indices, 2)[::2],
                                    counts.indptr), shape=counts.shape)
    kw = dict(n_components=2, n_threads=1, epochs=1, random_state=0)
    np.testing.assert_array_equal(asyncopt.LDA(**kw).fit(strided_counts).components_,
                                  asyncopt.LDA(**kw).fit(counts).components_)


@pytest.mark.parametrize("make, fit_args", [
    (lambda cb: asyncopt.LogisticRegression(n_threads=1, epochs=2, tol=None, callback=cb), "Xy"),
    (lambda cb: asyncopt.LDA(n_components=2, n_threads=1, epochs=2, callback=cb), "counts"),
])
def test_a_second_concurrent_fit_on_one_estimator_is_refused(data, make, fit_args):
    # Deterministic, not timed: the first fit blocks in its callback (after its first epoch) until
    # the second has been tried. Before, both fits trained the one model and merged silently.
    import threading
    X, y = data
    args = (X, y) if fit_args == "Xy" else (sp.csr_matrix(np.ceil(np.abs(X.toarray()))),)
    inside, release = threading.Event(), threading.Event()

    def callback(record):
        inside.set()
        assert release.wait(timeout=60)

    est = make(callback)
    partial_args = args + ((np.array([-1.0, 1.0]),) if fit_args == "Xy" else ())
    outcome = []
    first = threading.Thread(target=lambda: outcome.append(est.fit(*args)))
    first.start()
    try:
        assert inside.wait(timeout=60)
        with pytest.raises(RuntimeError, match="fit is already running on this .* in another thread"):
            est.fit(*args)
        with pytest.raises(RuntimeError, match="fit is already running on this .* in another thread"):
            est.partial_fit(*partial_args)
    finally:
        release.set()
        first.join(timeout=60)
    assert outcome == [est] and est.n_iter_ == 2
    # the lock is released with the fit: the next one runs, also on a clone and after pickling
    est.set_params(callback=None)
    assert est.fit(*args) is est
    assert pickle.loads(pickle.dumps(est)).fit(*args) is not None
    assert clone(est).fit(*args) is not None
