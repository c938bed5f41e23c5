"""Run under mpiexec by tests/test_distributed.py: LogisticRegression or LDA fits with backend="mpi".

    mpiexec -n K python tests/mpi_fit.py CONFIG.json

CONFIG: {"estimator": "logistic" (default) | "lda",
         "data": "a9a" | "problem" | "lda_corpus" | "tiny_corpus", "data_dir": ..., "problem": {generator kwargs,
             and "scale": a factor for X},
         "runs": [{estimator kwargs, "fits": n, "rank_data": {r: change}}, ...] (fitted one after the
             other, each n times; rank_data changes the data of rank r for that run: see change_data),
         "out": path of the JSON list rank 0 writes (each rank's stderr goes to out's .rank<r>.err),
         "start_delay": {"r": seconds} (rank r initialises MPI that much later),
         "runs"[i]["ctrl_c_at_record"]: n (rank 0 sends itself SIGINT from its callback at its n-th record),
         "runs"[i]["checkpoint"]: {"every": n, "path": p} (fit(checkpoint_every=n, checkpoint_path=p)),
         "runs"[i]["resume"]: p (every rank: asyncopt.load(p), its parameters changed by the run's other
             entries, then resume(X, y) instead of fit; {"*": p, "r": q}: rank r loads q),
         "fault": {"rank": r, "signal": "EXIT"|"KILL"|"STOP" | "raise": "ValueError"|...,
                   "exchanges": n | "at_exit": true},
         "catch": true: a fit's ValueError is recorded (as the error of that fit, on every rank) and the
             next run goes on, instead of ending the script}
Rank 0 writes, per fit, coef, intercept, history, staleness and mpi_stats_ (or the error and the
model reached); every worker rank r writes its own mpi_stats_ per fit to out's .rank<r>.json (or,
with "catch", {"error": ...} for a fit that raised).

A fault is placed in the run's progress, never on a wall-clock timer (which, on a machine fast
enough to finish the fit first, fires at an arbitrary point of the shutdown instead): with
"exchanges": n, worker rank r fails in place of its (n+1)-th message exchange with the server
(its first exchange is the first read, each later one pushes a mini-batch: it has pushed n - 1);
with "at_exit", rank r fails after its last fit returned, before the script ends. EXIT ends the
process without finalizing MPI (a crash); KILL and STOP send it that signal. "raise": T raises the
builtin exception T (a Python error inside the worker's training, as its own bug or check would).
"""
import builtins
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

    scale = kw.pop("scale", None)
    X, y = problem(**kw)
    if scale is not None:  # features scaled up until a step overflows: a divergence on purpose
        X = (X * scale).tocsr()
    if len(empty_rows):
        keep = np.ones(X.shape[0])
        keep[list(empty_rows)] = 0
        X = X.multiply(keep[:, None]).tocsr()
        X.eliminate_zeros()
    return X, y


def main():
    cfg = json.loads(Path(sys.argv[1]).read_text())
    # "start_delay": {rank: seconds}: that rank initialises MPI late, as ranks of an srun-style
    # launch start at different times (the rank from the launcher's environment: MPI is not up yet)
    late = cfg.get("start_delay", {}).get(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "")))
    if late:
        import time

        time.sleep(late)
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
    # stderr into a file of this rank's: what a rank writes just before MPI_Abort reaches the file,
    # while mpiexec's forwarding of it races the abort's kill (the message was lost in one CI run)
    err = os.open(Path(cfg["out"]).with_suffix(f".rank{rank}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(err, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    fault = cfg.get("fault")
    fail_at_exit = None
    if fault and fault["rank"] == rank:
        fail = fail_now(fault.get("signal"), fault.get("raise"), rank, fault.get("exchanges"))
        if fault.get("at_exit"):
            fail_at_exit = fail
        else:
            fail_at_exchange(fault["exchanges"], fail)
    X0, y0, val = load(cfg)
    results, worker_stats = [], []
    for params in cfg["runs"]:  # several fits in one job: mpiexec's start-up is the slow part
        params = dict(params)
        fits = params.pop("fits", 1)  # > 1: fit again (with warm_start, a continuation)
        X, y = change_data(X0, y0, params.pop("rank_data", {}).get(str(rank)))
        lda = cfg.get("estimator") == "lda"
        if not lda and "resume" not in params:  # fixed numbers of epochs unless a test asks for a stopping rule
            params.setdefault("tol", None)
        ctrl_c = params.pop("ctrl_c_at_record", None)  # rank 0 presses Ctrl-C in its callback at that record
        ck = params.pop("checkpoint", None)
        fit_kw = {} if ck is None else {"checkpoint_every": ck["every"], "checkpoint_path": ck["path"]}
        resume_from = params.pop("resume", None)
        if isinstance(resume_from, dict):  # {"*": path, "r": another path for rank r}
            resume_from = resume_from.get(str(rank), resume_from["*"])
        est = (asyncopt.LDA if lda else asyncopt.LogisticRegression)(backend="mpi", **params)
        if ctrl_c is not None and rank == 0:
            records = []

            def press(rec, records=records, at=ctrl_c):
                records.append(rec)
                if len(records) == at:  # SIGINT to this thread: delivered before pthread_kill returns
                    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

            est.callback = press
        error = None
        try:
            if resume_from is not None:  # every rank loads the file; the run's other entries change its parameters
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # the callback that was not saved
                    est = asyncopt.load(resume_from)
                est.set_params(**params)
            for _ in range(fits):
                if resume_from is not None:
                    est.resume(X) if lda else est.resume(X, y, eval_set=val)
                else:
                    est.fit(X, **fit_kw) if lda else est.fit(X, y, eval_set=val, **fit_kw)
        except WorkerFailure as e:
            error = {"type": "WorkerFailure", "message": str(e), "ranks": list(e.ranks)}
        except FloatingPointError as e:  # a divergence: rank 0 raises it, the model reached is kept
            error = {"type": "FloatingPointError", "message": str(e)}
        except KeyboardInterrupt as e:  # rank 0's Ctrl-C ("ctrl_c_at_record"): the workers were drained
            if rank != 0:
                raise
            error = {"type": "KeyboardInterrupt", "message": str(e)}
        except ValueError as e:  # e.g. a handshake that refused the run, on every rank
            if not cfg.get("catch"):
                raise
            error = {"type": "ValueError", "message": str(e)}
        if rank != 0:  # a worker's own counters (e.g. its replica's hash), one file per rank
            worker_stats.append({"error": error} if error is not None else getattr(est, "mpi_stats_", None))
            Path(cfg["out"]).with_suffix(f".rank{rank}.json").write_text(json.dumps(worker_stats, default=float))
            continue
        if error is not None and error["type"] == "ValueError":  # refused before any model existed
            results.append({"error": error})
            Path(cfg["out"]).write_text(json.dumps(results, default=float))
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
    if fail_at_exit is not None:
        fail_at_exit()


def change_data(X, y, change):
    """This rank's data for one run: as loaded, or with one change that keeps the row and nonzero
    counts (what the sharding='split' handshake must still catch): "negate_y" (y -> -y, the two
    classes swapped for +-1 labels), "scale_value" (one nonzero of X doubled), "move_nonzero" (one
    nonzero of row 0 moved to a column that row does not use)."""
    if change is None:
        return X, y
    if change == "negate_y":
        return X, -y
    X = X.copy()
    if change == "scale_value":
        X.data[0] *= 2
        return X, y
    if change == "move_nonzero":
        row = X.indices[X.indptr[0]:X.indptr[1]]
        free = np.setdiff1d(np.arange(X.shape[1]), row)[0]
        X.indices[X.indptr[0]] = free
        X.has_sorted_indices = False
        X.sort_indices()
        return X, y
    raise ValueError(f"unknown data change {change!r}")


def fail_now(how, exception, rank, exchanges):
    """What a fault does to this process: EXIT ends it at once without finalizing MPI (a crash);
    KILL and STOP send it that signal (STOP: alive and silent, for good); with exception (a builtin
    exception's name) it raises that, with a message naming the rank and the exchange."""
    def fail():
        if exception is not None:
            raise getattr(builtins, exception)(f"fault injected in worker rank {rank} at exchange {exchanges}")
        sys.stdout.flush()
        sys.stderr.flush()
        if how == "EXIT":
            os._exit(1)
        os.kill(os.getpid(), getattr(signal, "SIG" + how))
    return fail


def fail_at_exchange(n, fail):
    """Run fail() in place of this worker's (n+1)-th message exchange with the server (counted over
    all its fits), by wrapping the one method every worker loop sends through."""
    from asyncopt.backends.mpi.worker import Worker

    exchange = Worker._send_and_wait
    done = [0]

    def counted(self, nbytes, size):
        if done[0] == n:
            fail()
        done[0] += 1
        return exchange(self, nbytes, size)

    Worker._send_and_wait = counted


if __name__ == "__main__":
    main()
