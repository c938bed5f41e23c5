"""The threads backend's elastic team (csrc/asyncopt/core/thread_pool.hpp): an epoch never waits for
a thread the OS has not scheduled.

In a user's process the cores are shared with other OpenMP runtimes (scikit-learn's), OpenBLAS and
other programs. An OpenMP region waits for every thread of its team; on 2 cores that made 2-thread
fits 30-60x slower than 1-thread fits after a scikit-learn fit in the same process (issue 11). The
first test checks the mechanism without any timing: pool threads are held back until every job has
closed, so the calling thread must do each epoch alone, and a driver that waited for its team would
hang (the subprocess timeout turns a hang into a failure). The second measures the symptom as a
ratio within one run, with a bound far above the fixed code's ratio and far below the old one's.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np

import asyncopt
from asyncopt import _core
from conftest import sparse_problem


def _run(code, timeout):
    """Run code in a fresh interpreter; its last line of output, parsed as JSON."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_an_epoch_is_done_by_the_caller_when_no_pool_thread_arrives_in_time():
    out = _run("""
        import json, numpy as np, asyncopt
        from asyncopt import _core
        X, y = asyncopt.datasets.make_sparse_classification(n_samples=3000, n_features=2000, random_state=0)
        _core.hold_pool_joiners_for_testing(True)
        res = {}
        for opt in ("sgd", "amsgrad"):
            fits = [asyncopt.LogisticRegression(optimizer=opt, n_threads=2, epochs=3, random_state=0).fit(X, y)
                    for _ in range(2)]
            res[opt] = dict(same=bool(np.array_equal(fits[0].coef_, fits[1].coef_)
                                      and fits[0].intercept_[0] == fits[1].intercept_[0]),
                            max=int(fits[0].staleness_.max), count=int(fits[0].staleness_.count),
                            t=int(fits[0].t_), threads=fits[0].n_threads_, acc=float(fits[0].score(X, y)))
        print(json.dumps(res))
    """, timeout=120)
    for opt, r in out.items():
        # two slices, both walked by the caller: every update counted once, none overlapping another
        assert r["threads"] == 2 and r["count"] == r["t"] == 3 * 3000 and r["max"] == 0, (opt, r)
        assert r["same"], opt  # one thread's fixed order: reproducible to the bit
        assert r["acc"] > 0.8, (opt, r)  # the zero model scores about 0.5


def test_the_pool_sleeps_and_is_reused():
    X, y = sparse_problem(n=400, d=200, seed=2)
    asyncopt.LogisticRegression(n_threads=2, epochs=2, random_state=0).fit(X, y)
    size = _core.thread_pool_size()
    assert size >= 1
    for _ in range(3):
        asyncopt.LogisticRegression(n_threads=2, epochs=2, random_state=0).fit(X, y)
    assert _core.thread_pool_size() == size  # no thread per fit


def test_two_threads_stay_near_one_thread_after_scikit_learn_ran_in_the_process():
    """Old code: after an SGDClassifier fit, 2-thread fits took 30-60x the 1-thread fit's time on 2
    cores. Fixed: about 0.6-1.2x, up to about 1.5x on a loaded machine. The bound, 4x, is between."""
    out = _run("""
        import json, time, numpy as np, asyncopt
        from sklearn.linear_model import SGDClassifier
        X, y = asyncopt.datasets.make_sparse_classification(n_samples=20000, n_features=2 ** 16, random_state=0)
        SGDClassifier(loss="log_loss", max_iter=3, tol=None).fit(X.astype(np.float64), y)
        np.linalg.eigh(np.random.default_rng(0).random((300, 300)))  # OpenBLAS's threads, too
        def fit(n):
            t = time.perf_counter()
            asyncopt.LogisticRegression(n_threads=n, epochs=3, random_state=0).fit(X, y)
            return time.perf_counter() - t
        fit(1), fit(2)
        times = {n: [] for n in (1, 2)}
        for _ in range(7):
            for n in (1, 2):
                times[n].append(fit(n))
        print(json.dumps({n: float(np.median(v)) for n, v in times.items()}))
    """, timeout=300)
    assert out["2"] <= 4 * out["1"], out
