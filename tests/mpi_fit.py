"""Run under mpiexec by tests/test_distributed.py: LogisticRegression or LDA fits with backend="mpi".

    mpiexec -n K python tests/mpi_fit.py CONFIG.json

CONFIG: {"estimator": "logistic" (default) | "lda",
         "data": "a9a" | "problem" | "lda_corpus" | "tiny_corpus", "data_dir": ..., "problem": {generator kwargs},
         "runs": [{estimator kwargs, "fits": n}, ...] (fitted one after the other, each n times),
         "out": path of the JSON list rank 0 writes, "fault": {"rank": r, "after": s, "signal": "EXIT"|"KILL"|"STOP"}}
Rank 0 writes, per fit, coef, intercept, history, staleness and mpi_stats_ (or the error and the
model reached).
"""
import json
import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import asyncopt  # noqa: E402
from asyncopt.distributed import WorkerFailure  # noqa: E402


def load(cfg):
    if cfg["data"] == "a9a":
        from asyncopt.datasets import load_libsvm

        root = Path(cfg["data_dir"])
        X, y = load_libsvm(root / "a9a.xz")
        Xt, yt = load_libsvm(root / "a9a.t.xz", n_features=X.shape[1])
        return X, y, (Xt, yt)
    if cfg["data"] == "lda_corpus":
        from test_lda_statistical import lda_corpus

        X, _ = lda_corpus(**cfg.get("problem", {}))
        return X, None, None
    if cfg["data"] == "tiny_corpus":
        from test_lda_exact import tiny_corpus

        return tiny_corpus(**cfg.get("problem", {})), None, None
    kw = dict(cfg.get("problem", {}))
    if "dtype" in kw:
        kw["dtype"] = np.dtype(kw["dtype"])
    X, y = sparse_problem(**kw)
    return X, y, None


def sparse_problem(empty_rows=(), **kw):
    """conftest.sparse_problem with the listed rows emptied (rows without a single feature)."""
    from conftest import sparse_problem as problem

    X, y = problem(**kw)
    if len(empty_rows):
        keep = np.ones(X.shape[0])
        keep[list(empty_rows)] = 0
        X = X.multiply(keep[:, None]).tocsr()
        X.eliminate_zeros()
    return X, y


def main():
    cfg = json.loads(Path(sys.argv[1]).read_text())
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    fault = cfg.get("fault")
    if fault and fault["rank"] == rank:
        how = fault.get("signal", "KILL")
        # EXIT: the process ends at once without finalizing MPI (a crash); KILL/STOP: that signal
        die = (lambda: os._exit(1)) if how == "EXIT" else (lambda: os.kill(os.getpid(), getattr(signal, "SIG" + how)))
        threading.Timer(fault["after"], die).start()
    X, y, val = load(cfg)
    results = []
    for params in cfg["runs"]:  # several fits in one job: mpiexec's start-up is the slow part
        params = dict(params)
        fits = params.pop("fits", 1)  # > 1: fit again (with warm_start, a continuation)
        lda = cfg.get("estimator") == "lda"
        est = (asyncopt.LDA if lda else asyncopt.LogisticRegression)(backend="mpi", **params)
        error = None
        try:
            for _ in range(fits):
                est.fit(X) if lda else est.fit(X, y, eval_set=val)
        except WorkerFailure as e:
            error = {"type": "WorkerFailure", "message": str(e), "ranks": list(e.ranks)}
        if rank != 0:
            continue
        out = {"error": error, "t": est.t_, "history": list(est.history_), "staleness": est.staleness_.as_dict(),
               "stats": est.mpi_stats_}
        if lda:
            out["components"] = est.components_.tolist()
        else:
            out.update(coef=est.coef_[0].tolist(), intercept=float(est.intercept_[0]),
                       test_loss=est.log_loss(*val) if val is not None else None)
        results.append(out)
        Path(cfg["out"]).write_text(json.dumps(results, default=float))  # what was reached, even if a later fit fails


if __name__ == "__main__":
    main()
