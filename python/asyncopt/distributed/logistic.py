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
from .options import WorkerFailure
from .models import LogisticModel
from .server import ParameterServer
from .session import (check_settings, exit_by_abort_at_exit, local_threads, processor_name, send_go,
                      server_handshake, shard_rows, worker_handshake, world)
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

    def check_reply(r, reply):
        if opts.sharding == "split" and (reply["n_rows_given"], reply["nnz_given"]) != (n, int(X.nnz)):
            return (f"sharding='split' needs the same data on every rank: rank 0 has {n} rows and {X.nnz} "
                    f"nonzeros, rank {r} {reply['n_rows_given']} and {reply['nnz_given']} (pass "
                    f"sharding='local' if each rank holds its own shard)")
        return None

    replies, errors = server_handshake(comm, spec, check_reply, opts.timeout, opts.poll_interval)
    try:  # rank 0's own checks, before the go: an error here must reach the workers too
        ypm = est._signed(y)
        val = est._eval_data(eval_set, X)
        Xn = native_csr(X)
        _core.validate_csr(*Xn, d)
    except ValueError as e:
        errors.append(f"rank 0: {e}")
    n_total = 0 if errors else sum(rep["n_rows"] for rep in replies.values())
    if not errors and any(rep["n_rows"] == 0 for rep in replies.values()):
        empty = [r for r, rep in replies.items() if rep["n_rows"] == 0]
        errors.append(f"worker rank(s) {empty} got no rows: fewer rows ({n_total}) than workers?")
    hosts = [processor_name()] + [rep.get("host") for rep in replies.values()]
    reg_scale = None
    if not errors and reg == "sparse":
        total = np.zeros(d, dtype=np.int64)
        for rep in replies.values():
            total[rep["features"]] += rep["counts"]
        present = np.flatnonzero(total)
        reg_scale = np.zeros(d, dtype=X.dtype)
        reg_scale[present] = n_total / total[present]
    send_go(comm, {r: ({"go": False, "error": "; ".join(errors)} if errors else
                       {"go": True, "reg_scale": reg_scale, "n_total": n_total,
                        "ranks_here": hosts.count(replies[r]["host"])}) for r in replies},
            opts.timeout, opts.poll_interval)
    if errors:
        raise ValueError("the MPI run did not start: " + "; ".join(errors))

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
    base_epoch = est.history_[-1]["epoch"] if est.history_ else 0
    last = {"stal": (0, 0), "rows": 0, "time": 0.0, "tol_best": np.inf, "tol_stale": 0}

    def evaluate(rows_done, train_time):
        t1 = time.perf_counter()
        est._active = core.touched
        est._coef = None
        est.t_ = int(core.steps)
        rec = est._evaluate_epoch(Xn, X.shape, ypm, val, est._active, eval_threads)
        st = server.staleness
        count, total = st.count - last["stal"][0], st.sum - last["stal"][1]
        epoch = base_epoch + rows_done / n_total
        rec.update(epoch=int(epoch) if float(epoch).is_integer() else round(epoch, 4), time=base_time + train_time,
                   epoch_time=train_time - last["time"], eval_time=time.perf_counter() - t1, updates=est.t_,
                   staleness_mean=total / max(count, 1), staleness_max=int(st.max), rows=rows_done,
                   dropped=sum(lk.dropped for lk in server.links.values()))
        last.update(stal=(st.count, st.sum), rows=rows_done, time=train_time)
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

    eval_rows = max(1, int(round(opts.eval_every * n_total)))
    server = ParameterServer(comm, model, opts.method, opts, epochs * n_total, eval_rows, evaluate)
    est._diverged = None
    failure = None
    try:
        wall = server.run()
    except WorkerFailure as e:
        failure = e
        wall = server.train_time
    except BaseException:
        # an error of the server's own (a callback's, an interrupt): the workers wait for answers
        # that will not come, so the job ends with MPI_Abort when this process exits
        exit_by_abort_at_exit(comm)
        raise
    finally:
        est.t_ = int(core.steps)
        est._active = core.touched
        est._coef = None
        est.staleness_.add(server.staleness.as_native())
    if server.rows_done > last["rows"] and est._diverged is None:
        server.model.settle()
        evaluate(server.rows_done, server.train_time)
    est.n_iter_ = int(np.ceil(server.rows_done / n_total))
    est._epochs_done += est.n_iter_
    est.mpi_rank_ = 0
    est.mpi_stats_ = server.summary(wall)
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

    def make_reply(spec):
        check_settings(spec, common, X.shape[1], "features")
        if X.dtype.name != spec["dtype"]:
            raise ValueError(f"X has dtype {X.dtype}, rank 0's {spec['dtype']}")
        classes = np.asarray(spec["classes"], dtype=np.asarray(y).dtype) if len(spec["classes"]) else None
        unknown = ~np.isin(y, classes)
        if unknown.any():
            raise ValueError(f"y has labels {np.unique(y[unknown])[:10]} outside rank 0's classes {spec['classes']}")
        Xn = native_csr(X)
        _core.validate_csr(*Xn, X.shape[1])
        rows = shard_rows(spec, rank, X.shape[0], opts.sharding)
        reply = {"n_rows": int(rows.shape[0]), "n_rows_given": int(X.shape[0]), "nnz_given": int(X.nnz),
                 "host": processor_name()}
        if common["regularization"] == "sparse":
            reply["features"], reply["counts"] = _counts(Xn, rows, X.shape[1])
        state.update(Xn=Xn, rows=rows, ypm=np.where(y == classes[1], 1.0, -1.0), classes=classes)
        return reply

    spec, go = worker_handshake(comm, make_reply, opts.timeout, opts.poll_interval)
    method = opts.method
    n_threads = local_threads(est.n_threads, go["ranks_here"]) if method == "dpsgd" else 1
    wspec = {"n_features": spec["n_features"], "dtype": spec["dtype"], "seed": spec["seed"],
             "timeout": opts.timeout, "poll_interval": opts.poll_interval, "delay": opts.delay_for(rank),
             "method": method, "batch_size": common["batch_size"], "shuffle": common["shuffle"],
             "local_updates": opts.local_updates or 8 * n_threads, "sparse_alpha": (
                 float(est.alpha) if common["regularization"] == "sparse" else 0.0),
             "fit_intercept": common["fit_intercept"], "intercept_scale": common["intercept_scale"],
             "learning_rate": common["learning_rate"], "schedule": common["schedule"], "alpha": common["alpha"]}
    worker = LogisticWorker(comm, wspec, rank, state["Xn"], state["ypm"], state["rows"], go["reg_scale"], n_threads)
    stats = worker.run()
    est.mpi_rank_ = rank
    est.mpi_stats_ = dict(stats, n_threads=n_threads, pid=os.getpid())
    est.classes_ = state["classes"]
    est.n_features_in_ = X.shape[1]
    return est
