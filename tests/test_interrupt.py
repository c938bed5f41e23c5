"""Ctrl-C during a fit: the native epoch stops after the mini-batches in flight, the partial epoch is
recorded so that t_, n_iter_, history_ and staleness_ agree with coef_, KeyboardInterrupt reaches
the caller, and the estimator stays usable.

Every test here is deterministic: the stop request is raised at a known point (before a native
epoch, or by the main thread signalling itself from a callback, which POSIX delivers before
pthread_kill returns), except the subprocess test, whose fit could not end by itself within its
timeout and which only checks the outcome, never how soon it came."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import asyncopt
from asyncopt import _core
from asyncopt.backends import threads as threads_backend
from asyncopt.datasets import make_sparse_classification


@pytest.fixture(scope="module")
def problem():
    return make_sparse_classification(n_samples=1500, n_features=300, random_state=0)


def signal_self(rec):
    """A callback that presses Ctrl-C at epoch 2 (SIGINT to this thread, delivered before it returns)."""
    if rec["epoch"] == 2:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)


def consistent(est, n_rows):
    h = est.history_
    assert est.n_iter_ == len(h) and est.t_ == h[-1]["updates"] == est.staleness_.count
    assert np.isfinite(est.coef_).all()


def test_ctrl_c_between_epochs_stops_with_consistent_bookkeeping(problem):
    X, y = problem
    kw = dict(n_threads=1, random_state=0, tol=None)
    est = asyncopt.LogisticRegression(epochs=50, callback=signal_self, **kw)
    with pytest.raises(KeyboardInterrupt, match="interrupted.*model reached so far"):
        est.fit(X, y)
    consistent(est, X.shape[0])
    assert est.n_iter_ == 2 and est.t_ == 2 * X.shape[0]
    two = asyncopt.LogisticRegression(epochs=2, **kw).fit(X, y)
    assert np.array_equal(est.coef_, two.coef_)  # the model of the epochs it finished, nothing lost
    # Python's handler is back and no stop request lingers: the next fit runs to its end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and not _core.stop_requested()
    est.set_params(callback=None, epochs=3)
    assert est.fit(X, y).n_iter_ == 3


def test_a_stop_inside_a_native_epoch_records_the_partial_epoch(problem, monkeypatch):
    X, y = problem
    real = _core.logistic_epoch
    calls = []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            _core.request_stop()  # as the SIGINT handler does, here before any worker claims a step
        return real(*args, **kwargs)

    monkeypatch.setattr(threads_backend._core, "logistic_epoch", epoch)
    est = asyncopt.LogisticRegression(epochs=20, n_threads=1, random_state=1, tol=None)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    consistent(est, X.shape[0])
    last = est.history_[-1]
    assert last["interrupted"] is True and est.n_iter_ == 3
    assert est.t_ == 2 * X.shape[0]  # the stopped epoch applied no update, and says so
    monkeypatch.setattr(threads_backend._core, "logistic_epoch", real)
    two = asyncopt.LogisticRegression(epochs=2, n_threads=1, random_state=1, tol=None).fit(X, y)
    assert np.array_equal(est.coef_, two.coef_)
    # usable: partial_fit continues the model with the step count it reached
    est.partial_fit(X, y)
    assert est.t_ == 3 * X.shape[0]


def test_an_interrupted_epoch_writes_no_checkpoint(problem, monkeypatch, tmp_path):
    """A partial pass cannot resume to the uninterrupted fit: the last checkpoint stays the last whole one."""
    X, y = problem
    real = _core.logistic_epoch
    calls = []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            _core.request_stop()
        return real(*args, **kwargs)

    monkeypatch.setattr(threads_backend._core, "logistic_epoch", epoch)
    est = asyncopt.LogisticRegression(epochs=20, n_threads=1, random_state=1, tol=None)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y, checkpoint_every=1, checkpoint_path=tmp_path / "ck.npz")
    assert asyncopt.load(tmp_path / "ck.npz").n_iter_ == 2


def test_lda_ctrl_c_between_epochs(problem):
    rng = np.random.default_rng(0)
    X = (abs(problem[0]) * 3).astype(np.float64)
    X.data = np.ceil(X.data + rng.random(X.data.size))
    est = asyncopt.LDA(n_components=4, epochs=30, n_threads=1, random_state=0, callback=signal_self)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X)
    assert est.n_iter_ == 2 and len(est.history_) == 2 and np.isfinite(est.components_).all()


def test_sigint_is_taken_only_in_the_main_thread_and_only_from_pythons_default_handler(problem):
    X, y = problem
    seen = {}

    def probe(key):
        def callback(rec):
            # sigint_install answers False when a fit has already routed SIGINT to the core
            took = _core.sigint_install()
            if took:
                _core.sigint_restore()
            seen[key] = not took
        return callback

    asyncopt.LogisticRegression(epochs=1, n_threads=1, callback=probe("main")).fit(X, y)
    t = threading.Thread(target=lambda: asyncopt.LogisticRegression(epochs=1, n_threads=1,
                                                                    callback=probe("thread")).fit(X, y))
    t.start()
    t.join()
    previous = signal.signal(signal.SIGINT, lambda *a: None)
    try:
        asyncopt.LogisticRegression(epochs=1, n_threads=1, callback=probe("custom")).fit(X, y)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == {"main": True, "thread": False, "custom": False}


SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, threading, time
    import numpy as np, asyncopt
    from asyncopt.datasets import make_sparse_classification
    X, y = make_sparse_classification(n_samples=200000, n_features=2 ** 17, random_state=0)
    out = {}
    for name, est in (("logistic", asyncopt.LogisticRegression(optimizer="amsgrad", epochs=10 ** 6, tol=None,
                                                               n_threads=2)),
                      ("lda", asyncopt.LDA(n_components=20, epochs=10 ** 6, n_threads=2, batch_size=64))):
        started = threading.Event()
        est.callback = lambda rec: started.set()
        sent = []

        def press():
            started.wait()
            time.sleep(0.05)
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=press, daemon=True).start()
        try:
            est.fit(abs(X) if name == "lda" else X, None if name == "lda" else y)
            out[name] = "finished"
        except KeyboardInterrupt:
            h = est.history_
            out[name] = dict(seconds_after_ctrl_c=time.perf_counter() - sent[0], n_iter=est.n_iter_,
                             records=len(h), t=est.t_, last_updates=h[-1]["updates"],
                             staleness_count=est.staleness_.count,
                             partial=[bool(r.get("interrupted")) for r in h][-1],
                             finite=bool(np.isfinite(est.coef_ if name == "logistic" else est.components_).all()))
    print(json.dumps(out))
""")


def test_a_real_ctrl_c_stops_a_fit_that_would_run_for_hours(tmp_path):
    """A million epochs cannot finish within the timeout: only a working interrupt ends this run."""
    script = tmp_path / "ctrl_c.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("logistic", "lda"):
        r = out[name]
        assert r != "finished"
        assert r["n_iter"] == r["records"] and r["t"] == r["last_updates"] and r["finite"]
        if name == "logistic":
            assert r["t"] == r["staleness_count"]
