"""LogisticRegression(backend="mpi"): what each rank does in fit.

Every rank calls ``fit`` with its data. Rank 0 checks that all ranks were given the same settings
and compatible data, runs the parameter server on the estimator's own optimizer state (so its
coef_, history_ and staleness_ are those of any other fit) and evaluates the objective at the
history points; the workers train on their shards and return with only their counters
(``mpi_stats_``). With checkpoint_every, rank 0 writes the checkpoints, with the run's own state
(resume.py); ``resume`` on every rank continues the run from one.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from ... import _core
from ..._checks import check_labels, check_matrix, fit_rng, native_csr, resolve_n_threads
from ...state import aligned_zeros, state_dtype
from ...training import CONTINUE
from ..common import logistic_model, refuse_weights
from . import resume
from .efficient_adam import Layout, slice_bounds
from .models import EfficientAdamModel, LogisticModel, ShardedEfficientAdamModel
from .server import ParameterServer
from .session import end_job_together, join_run, local_threads, open_run, world
from .worker import LogisticWorker, failures_reported


# Methods whose steps the workers compute (their step sizes never pass through the server's model),
# so the epoch loop's plateau drops cannot reach them.
WORKER_STEPS = ("dpsgd", "efficient-adam")


def check(optimizer, regularization, alpha, n_threads, opts):
    """What the MPI methods allow (before any rank talks to another); returns the regularisation
    to resolve, 'auto' replaced where a method needs another default."""
    if opts.method in ("picky", "dpsgd"):
        if not optimizer.capabilities["additive"]:  # the server adds changes (DPSGD) or tracks moves (Picky)
            raise ValueError(f"method {opts.method!r} runs SGD: set optimizer='sgd' (the adaptive rules run over "
                             "MPI as method='async', e.g. optimizer='amsgrad': distributed APAM)")
        if regularization == "exact" and alpha > 0:
            raise ValueError(
                f"method {opts.method!r} cannot use regularization='exact': exact L2 moves every "
                "coordinate at every step, which " + (
                    "Picky SGD's O(nnz) distance tracking cannot follow" if opts.method == "picky" else
                    "a worker's change of its own features cannot carry") + "; use 'sparse' (the default)")
        if regularization == "auto":
            regularization = "sparse"
    if opts.method == "efficient-adam" and optimizer.name not in ("adam", "amsgrad"):
        raise ValueError(f"method 'efficient-adam' runs Adam: set optimizer='adam' or 'amsgrad', not "
                         f"{optimizer.name!r}")
    if opts.method != "dpsgd" and n_threads not in (None, 1):
        raise ValueError(f"method {opts.method!r} computes each gradient on one thread per worker; "
                         "n_threads > 1 (lock-free Hogwild! inside each worker) is method='dpsgd'")
    return regularization


def common(settings, opts):
    """What every rank must agree on (compared in the handshake): the frozen settings and the options."""
    return {"settings": settings, "options": opts.describe()}


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


def fit(model, X, y, eval_set, settings, loop, run):
    """Run one MPI fit on this rank: rank 0 returns the trained model, a worker None (its counters
    and the data's classes are in run.report)."""
    refuse_weights(run, "mpi")
    X = check_matrix(X)
    y = check_labels(y, X.shape[0])
    opts = run.options
    if opts.method in WORKER_STEPS and loop.tol is not None and loop.step_drops:
        raise ValueError(f"method {opts.method!r} runs its steps on the workers, which the plateau drops do not "
                         "reach: pass plateau_drops=0 (or tol=None)")
    comm = world()
    end_job_together(comm, opts)  # registered before anything can fail: the job must end, whatever happens
    rank = comm.Get_rank()
    agreed = common(settings, opts)
    if rank == 0:
        return _serve(model, comm, X, y, eval_set, settings, loop, run, agreed)
    return _work(comm, rank, X, y, settings, run, agreed, loop)


# ---------------------------------------------------------------------- rank 0
def _serve(model, comm, X, y, eval_set, settings, loop, run, agreed):
    opts = run.options
    n, d = X.shape
    refused = resume.problem(loop)  # raised in the handshake below, so that every rank hears of it
    seed = 0
    if refused is None:
        model = logistic_model(model, d, X.dtype, y, run, settings.optimizer.name, backend="mpi")
        # the shards and shuffles of every rank; a resume draws the interrupted fit's again
        seed = int(loop.fit_rng(lambda: fit_rng(run.random_state, model.t)).integers(2 ** 62))
    spec = {"settings": agreed, "n_features": d, "dtype": X.dtype.name, "classes": model.classes.tolist(),
            "n_rows": n, "nnz": int(X.nnz), "seed": seed, "n_workers": comm.Get_size() - 1,
            "timeout": opts.timeout, "poll_interval": opts.poll_interval,
            "checksum": loop.checkpoint is not None or loop.resume is not None}

    own = {}

    def own_checks():  # rank 0's own data, checked before the go
        if refused is not None:
            raise ValueError(refused)
        if opts.method == "efficient-adam" and run.continuing and loop.resume is None:
            raise ValueError("method 'efficient-adam' starts its moments and error-feedback residuals at zero in every "
                             "fit and cannot continue a model (warm_start): refit with warm_start=False")
        own.update(ypm=model.signed(y), val=model.eval_data(eval_set, X.dtype), Xn=native_csr(X))
        _core.validate_csr(*own["Xn"], d)
        loop.bind_data(*own["Xn"], own["ypm"])  # a resume on other data is refused

    def reg_scale(replies, n_total):
        """n / d_j of the frequency-scaled regulariser over all shards (None when it is off)."""
        if settings.regularization != "sparse":
            return {"reg_scale": None}
        total = np.zeros(d, dtype=np.int64)
        for rep in replies.values():
            total[rep["features"]] += rep["counts"]
        present = np.flatnonzero(total)
        scale = np.zeros(d, dtype=X.dtype)
        scale[present] = n_total / total[present]
        return {"reg_scale": scale}

    size = comm.Get_size()
    replies, n_total = open_run(comm, spec, opts, X, "rows", own_checks, reg_scale, labels=lambda: own["ypm"],
                                check_replies=lambda replies: resume.check_replies(loop, size, opts.method, replies))
    ypm, val, Xn = own["ypm"], own["val"], own["Xn"]
    restored = resume.server_state(loop) if loop.resume is not None else None

    if opts.method == "efficient-adam":
        server_model = _efficient_adam_model(model, d, settings, opts, seed, size - 1,
                                             None if restored is None else restored["model"])
    else:
        core = _core.ServerModel(model.array, d, settings.optimizer.native, X.dtype.name, settings.step_config(),
                                 model.t, settings.fit_intercept, settings.intercept_scale, model.active,
                                 n_slots=size - 1 if opts.method == "picky" else 0)
        if loop.step_scale != 1.0:  # a resumed fit's plateau drops so far
            core.set_step_scale(loop.step_scale)
        opts = _resolved(opts, settings.optimizer)
        server_model = LogisticModel(core, d, opts.method, opts.picky_threshold)
    eval_threads = resolve_n_threads(run.n_threads) if run.n_threads is not None else 1
    base_time = model.train_time

    def catch_up():
        model.active = server_model.touched
        model.t = int(server_model.steps)
        model.changed()

    def evaluate(final=False, write=True):
        t1 = time.perf_counter()
        catch_up()
        rec = model.evaluate(Xn, X.shape, ypm, val, settings, eval_threads)
        rec.update(server.record(), time=base_time + server.train_time, eval_time=time.perf_counter() - t1)
        before = loop.step_scale
        status = loop.record(model, rec, final=final, write=write)
        if loop.step_scale != before:  # a plateau drop: the server applies every step
            core.set_step_scale(loop.step_scale)
        return status != CONTINUE

    server = ParameterServer(comm, server_model, opts, n_total, loop.epochs, evaluate, epoch0=model.epochs_done)
    _checkpointed(server, loop, size, opts.method, seed, replies, restored)
    return server.train(model, run, loop, catch_up)


def _checkpointed(server, loop, size, method, seed, replies, restored):
    """A resumed run continues from the checkpoint's server state; a checkpointed one writes the run's
    state with the model (synchronous methods: the workers' too, gathered at the checkpoints' rounds)."""
    if restored is not None:
        server.restore(restored)
    if loop.checkpoint is None:
        return
    crcs = {r: rep["data_crc32"] for r, rep in replies.items()}
    loop.keep_state(resume.writer(server, size, method, seed, crcs))
    if method in resume.SYNCHRONOUS:
        server.snapshot_due = loop.checkpoint_due


def _layout(d, settings):
    return Layout(d, settings.fit_intercept, settings.intercept_scale)


def _slices(d, settings, opts, n_workers):
    """topology='sharded': the coordinate slices the workers serve, whole blocks of both quantizers
    (given as objects they may have block sizes of their own); None for 'central'."""
    if opts.topology != "sharded":
        return None
    block = math.lcm(*(q.block_size for q in opts.quantizers()))
    return slice_bounds(_layout(d, settings).n, block, n_workers)


def _efficient_adam_model(model, d, settings, opts, seed, n_workers, restored=None):
    """Rank 0's EfficientAdamModel: with moments='server', the server's optimizer is the native server
    model of method 'sync' on a private float64 state (rank 0's replica x is what the estimator keeps);
    with topology='sharded', the ShardedEfficientAdamModel that applies the workers' slice steps.
    restored: a checkpoint's state of it (resume), the server's optimizer rebuilt on its records."""
    worker_q, server_q = opts.quantizers()
    if opts.topology == "sharded":
        out = ShardedEfficientAdamModel(model.array, _layout(d, settings), worker_q, server_q, seed,
                                        _slices(d, settings, opts, n_workers))
    else:
        core = state = None
        if opts.moments == "server":
            state = aligned_zeros(d + 1, state_dtype(settings.optimizer.name, np.float64))
            k0, active = 0, np.zeros(0, dtype=np.int32)
            if restored is not None:
                saved = np.asarray(restored["core"]["state"])
                if saved.dtype != state.dtype or saved.shape != state.shape:
                    raise ValueError(f"checkpoint's Efficient-Adam server optimizer state has shape {saved.shape} and "
                                     f"dtype {saved.dtype}, this build's {state.shape} and {state.dtype}")
                state[...] = saved
                k0 = int(restored["core"]["steps"])
                active = np.arange(d if k0 else 0, dtype=np.int32)  # every round steps every coordinate
            else:
                state["w"] = model.array["w"]
            core = _core.ServerModel(state, d, settings.optimizer.native, "float64", settings.step_config(), k0,
                                     settings.fit_intercept, settings.intercept_scale, active)
        out = EfficientAdamModel(model.array, _layout(d, settings), worker_q, server_q, seed, core, state)
    return out


def _resolved(opts, optimizer):
    """Options with picky_threshold defaulted (one unit-gradient step: learning_rate)."""
    if opts.method == "picky" and opts.picky_threshold is None:
        from dataclasses import replace

        return replace(opts, picky_threshold=float(optimizer.learning_rate))
    return opts


# ---------------------------------------------------------------------- workers
def _work(comm, rank, X, y, settings, run, agreed, loop):
    opts = run.options
    state = {}

    def check(spec, Xn, rows):
        if X.dtype.name != spec["dtype"]:
            raise ValueError(f"X has dtype {X.dtype}, rank 0's {spec['dtype']}")
        classes = np.asarray(spec["classes"], dtype=np.asarray(y).dtype)
        unknown = ~np.isin(y, classes)
        if unknown.any():
            raise ValueError(f"y has labels {np.unique(y[unknown])[:10]} outside rank 0's classes {spec['classes']}")
        state.update(ypm=np.where(y == classes[1], 1.0, -1.0), classes=classes)
        if settings.regularization != "sparse":
            return {}
        features, counts = _counts(Xn, rows, X.shape[1])
        return {"features": features, "counts": counts}

    spec, go, Xn, rows = join_run(comm, rank, X, agreed, opts, "features", check, labels=lambda: state["ypm"],
                                  loop=loop)
    method = opts.method
    n_threads = local_threads(run.n_threads, go["ranks_here"]) if method == "dpsgd" else 1
    wspec = {"n_features": spec["n_features"], "dtype": spec["dtype"], "seed": spec["seed"],
             "timeout": opts.timeout, "poll_interval": opts.poll_interval, "delay": opts.delay_for(rank),
             "method": method, "local_updates": opts.local_updates or 8 * n_threads, "settings": settings,
             "shuffle": settings.shuffle, "stream": resume.order_stream(loop) if method not in resume.SYNCHRONOUS else 0}
    if method == "efficient-adam":
        worker_q, server_q = opts.quantizers()
        wspec["efficient_adam"] = {"layout": _layout(X.shape[1], settings), "worker_q": worker_q, "server_q": server_q,
                                   "moments": opts.moments,
                                   "bounds": _slices(X.shape[1], settings, opts, spec["n_workers"])}
    with failures_reported(comm, opts.timeout, opts.poll_interval):  # rank 0 hears of an exception at once
        worker = LogisticWorker(comm, wspec, rank, Xn, state["ypm"], rows, go["reg_scale"], n_threads)
        saved = resume.worker_state(loop, rank)  # a synchronous method's state at the checkpoint's round
        if saved is not None:
            worker.restore(saved)
        stats = worker.run()
    run.report.update(n_threads=None, mpi_rank=rank, mpi_stats=dict(stats, n_threads=n_threads, pid=os.getpid()),
                      classes=state["classes"], n_features=X.shape[1])
    return None
