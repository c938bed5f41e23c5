"""LogisticRegression(backend="mpi"): what each rank does in fit.

Every rank calls ``fit`` with its data. Rank 0 checks that all ranks were given the same settings
and compatible data, runs the parameter server on the estimator's own optimizer state (so its
coef_, history_ and staleness_ are those of any other fit) and evaluates the objective at the
history points; the workers train on their shards and return with only their counters
(``mpi_stats_``).
"""
from __future__ import annotations

import os
import time

import numpy as np

from .. import _core
from .._checks import fit_rng, native_csr, resolve_n_threads
from .models import LogisticModel
from .server import ParameterServer
from .session import end_job_together, join_run, local_threads, open_run, world
from .worker import LogisticWorker


def settings(est, opt, reg, opts, intercept_scale):
    """What every rank must agree on (compared in the handshake)."""
    return {"optimizer": opt.name, "learning_rate": opt.learning_rate, "schedule": opt.schedule,
            "beta1": getattr(opt, "beta1", None), "beta2": getattr(opt, "beta2", None),
            "eps": getattr(opt, "eps", None), "bias_correction": getattr(opt, "bias_correction", None),
            "alpha": float(est.alpha), "regularization": reg, "batch_size": int(est.batch_size),
            "shuffle": bool(est.shuffle), "fit_intercept": bool(est.fit_intercept),
            "intercept_scale": intercept_scale, "options": opts.describe()}


def _counts(Xn, rows, d):
    """(features, rows holding each) over the shard rows, for the sparse regulariser's n/d_j."""
    indptr, indices = Xn[0], Xn[1]
    if rows.shape[0] == indptr.shape[0] - 1:
        cols = indices
    else:
        starts, ends = indptr[rows], indptr[rows + 1]
        lens = ends - starts
        pos = np.repeat(ends - np.cumsum(lens), lens) + np.arange(int(lens.sum()))
        cols = indices[pos]
    counts = np.bincount(cols, minlength=d)
    present = np.flatnonzero(counts)
    return present.astype(np.int32), counts[present]


def fit(est, X, y, eval_set, opt, reg, opts, epochs, intercept_scale):
    """Run one MPI fit of est on this rank; returns est."""
    comm = world()
    end_job_together(comm, opts)  # registered before anything can fail: the job must end, whatever happens
    rank = comm.Get_rank()
    common = settings(est, opt, reg, opts, intercept_scale)
    if rank == 0:
        return _serve(est, comm, X, y, eval_set, opt, reg, opts, epochs, common)
    return _work(est, comm, rank, X, y, opts, common)


# ---------------------------------------------------------------------- rank 0
def _serve(est, comm, X, y, eval_set, opt, reg, opts, epochs, common):
    from ..optim import step_config

    n, d = X.shape
    classes = est._start_fit(X, y, opt)
    seed = int(fit_rng(est.random_state, est.t_).integers(2 ** 62))  # shards and shuffles of every rank
    spec = {"settings": common, "n_features": d, "dtype": X.dtype.name, "classes": classes.tolist(),
            "n_rows": n, "nnz": int(X.nnz), "seed": seed, "n_workers": comm.Get_size() - 1,
            "timeout": opts.timeout, "poll_interval": opts.poll_interval}

    own = {}

    def own_checks():  # rank 0's own data, checked before the go
        own.update(ypm=est._signed(y), val=est._eval_data(eval_set, X), Xn=native_csr(X))
        _core.validate_csr(*own["Xn"], d)

    def reg_scale(replies, n_total):
        """n / d_j of the frequency-scaled regulariser over all shards (None when it is off)."""
        if reg != "sparse":
            return {"reg_scale": None}
        total = np.zeros(d, dtype=np.int64)
        for rep in replies.values():
            total[rep["features"]] += rep["counts"]
        present = np.flatnonzero(total)
        scale = np.zeros(d, dtype=X.dtype)
        scale[present] = n_total / total[present]
        return {"reg_scale": scale}

    _, n_total = open_run(comm, spec, opts, X, "rows", own_checks, reg_scale)
    ypm, val, Xn = own["ypm"], own["val"], own["Xn"]

    sc = step_config(opt, est.alpha, reg)
    core = _core.ServerModel(est._state, d, opt.name, X.dtype.name, sc, est.t_, bool(est.fit_intercept),
                             common["intercept_scale"], est._active,
                             n_slots=comm.Get_size() - 1 if opts.method == "picky" else 0)
    opts = _resolved(opts, opt)
    model = LogisticModel(core, d, opts.method, opts.picky_threshold)
    est.regularization_ = reg
    est.n_threads_ = None
    eval_threads = resolve_n_threads(est.n_threads) if est.n_threads is not None else 1
    base_time = est.history_[-1]["time"] if est.history_ else 0.0
    last = {"tol_best": np.inf, "tol_stale": 0}

    def evaluate():
        t1 = time.perf_counter()
        est._active = core.touched
        est._coef = None
        est.t_ = int(core.steps)
        rec = est._evaluate_epoch(Xn, X.shape, ypm, val, est._active, eval_threads)
        rec.update(server.record(), time=base_time + server.train_time, eval_time=time.perf_counter() - t1)
        est.history_.append(rec)
        if est.verbose:
            print(est.history_.format_row(rec), flush=True)
        if not np.isfinite(rec["objective"]):
            est._diverged = rec
            return True
        stop = est.callback is not None and est.callback(rec) is True
        if est.tol is not None:
            if rec["objective"] > last["tol_best"] - est.tol:
                last["tol_stale"] += 1
            else:
                last["tol_stale"] = 0
            last["tol_best"] = min(last["tol_best"], rec["objective"])
            stop = stop or last["tol_stale"] >= est.n_iter_no_change
        return stop

    server = ParameterServer(comm, model, opts, n_total, epochs, evaluate,
                             epoch0=est.history_[-1]["epoch"] if est.history_ else 0)
    est._diverged = None
    try:
        wall, failure = server.fit()  # a divergence stops the run at its record: no rows are left unrecorded
    finally:
        est.t_ = int(core.steps)
        est._active = core.touched
        est._coef = None
        est.staleness_.add(server.staleness.as_native())
    server.report_to(est, wall)
    if failure is not None:
        raise failure
    if est._diverged is not None:
        rec = est._diverged
        raise FloatingPointError(
            f"training diverged (objective {rec['objective']} after {rec['updates']} updates): lower learning_rate "
            f"(now {opt.learning_rate:g}), use a decaying schedule ('optimal', 'invsqrt'), or scale the features")
    return est


def _resolved(opts, opt):
    """Options with picky_threshold defaulted (one unit-gradient step: learning_rate)."""
    if opts.method == "picky" and opts.picky_threshold is None:
        from dataclasses import replace

        return replace(opts, picky_threshold=float(opt.learning_rate))
    return opts


# ---------------------------------------------------------------------- workers
def _work(est, comm, rank, X, y, opts, common):
    state = {}

    def check(spec, Xn, rows):
        if X.dtype.name != spec["dtype"]:
            raise ValueError(f"X has dtype {X.dtype}, rank 0's {spec['dtype']}")
        classes = np.asarray(spec["classes"], dtype=np.asarray(y).dtype)
        unknown = ~np.isin(y, classes)
        if unknown.any():
            raise ValueError(f"y has labels {np.unique(y[unknown])[:10]} outside rank 0's classes {spec['classes']}")
        state.update(ypm=np.where(y == classes[1], 1.0, -1.0), classes=classes)
        if common["regularization"] != "sparse":
            return {}
        features, counts = _counts(Xn, rows, X.shape[1])
        return {"features": features, "counts": counts}

    spec, go, Xn, rows = join_run(comm, rank, X, common, opts, "features", check)
    method = opts.method
    n_threads = local_threads(est.n_threads, go["ranks_here"]) if method == "dpsgd" else 1
    wspec = {"n_features": spec["n_features"], "dtype": spec["dtype"], "seed": spec["seed"],
             "timeout": opts.timeout, "poll_interval": opts.poll_interval, "delay": opts.delay_for(rank),
             "method": method, "batch_size": common["batch_size"], "shuffle": common["shuffle"],
             "local_updates": opts.local_updates or 8 * n_threads, "sparse_alpha": (
                 float(est.alpha) if common["regularization"] == "sparse" else 0.0),
             "fit_intercept": common["fit_intercept"], "intercept_scale": common["intercept_scale"],
             "learning_rate": common["learning_rate"], "schedule": common["schedule"], "alpha": common["alpha"]}
    worker = LogisticWorker(comm, wspec, rank, Xn, state["ypm"], rows, go["reg_scale"], n_threads)
    stats = worker.run()
    est.mpi_rank_ = rank
    est.mpi_stats_ = dict(stats, n_threads=n_threads, pid=os.getpid())
    est.classes_ = state["classes"]
    est.n_features_in_ = X.shape[1]
    return est
