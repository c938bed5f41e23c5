"""LDA over MPI (DPSVI): what each rank does in a fit.

Rank 0 holds lambda (the model state's mu and topic sums) and applies SVI's global step to each
worker's statistics (_core.LdaServerModel); workers run the E-steps of their documents' mini-batches
over their threads (_core.lda_batch_stats) against lambda as last read. 'async' applies every
message at once (DPSVI: global steps from stale reads, the delay counted in the staleness); 'sync'
applies one global step per round on the union of every worker's mini-batch. Checkpoints and
resume as for logistic regression (resume.py): 'sync' resumes to the uninterrupted run.
"""
from __future__ import annotations

import os
import time

from ... import _core
from ..._checks import fit_rng, native_csr, resolve_n_threads
from ...state import check_counts
from ...training import CONTINUE
from ..common import lda_train_subsample
from . import resume
from .models import LdaModel
from .server import ParameterServer
from .session import end_job_together, join_run, local_threads, open_run, world
from .worker import LdaWorker, failures_reported

def fit(model, X, eval_set, settings, loop, run):
    """Run one MPI fit on this rank: rank 0 returns the trained model, a worker None (its counters
    are in run.report)."""
    opts = run.options
    X = check_counts(X)
    comm = world()
    end_job_together(comm, opts)  # registered before anything can fail: the job must end, whatever happens
    rank = comm.Get_rank()
    agreed = {"settings": settings, "options": opts.describe()}  # compared in the handshake
    if rank == 0:
        return _serve(model, comm, X, eval_set, settings, loop, run, agreed)
    return _work(comm, rank, X, settings, run, agreed, loop)


def _serve(model, comm, X, eval_set, settings, loop, run, agreed):
    opts = run.options
    n, V = X.shape
    refused = resume.problem(loop)  # raised in the handshake below, so that every rank hears of it
    seed, rng = 0, None
    if refused is None:
        if loop.resume is None or model is None:
            model = run.new_model(V)
        rng = loop.fit_rng(lambda: fit_rng(run.random_state, model.t))  # a resume draws the interrupted fit's
        seed = int(rng.integers(2 ** 62))
    spec = {"settings": agreed, "n_features": V, "n_rows": n, "nnz": int(X.nnz), "seed": seed,
            "n_workers": comm.Get_size() - 1, "timeout": opts.timeout, "poll_interval": opts.poll_interval,
            "checksum": loop.checkpoint is not None or loop.resume is not None}

    own = {}

    def own_checks():  # rank 0's own data, checked before the go
        if refused is not None:
            raise ValueError(refused)
        if model.n_features != V:
            raise ValueError(f"X has {V} words, the checkpoint's model {model.n_features}")
        own["Xv"] = None if eval_set is None else check_counts(eval_set, name="eval_set", n_features=V)
        loop.bind_data(*native_csr(X))  # a resume on other documents is refused

    size = comm.Get_size()
    replies, n_total = open_run(comm, spec, opts, X, "documents", own_checks,
                                check_replies=lambda replies: resume.check_replies(loop, size, opts.method, replies))
    Xv = own["Xv"]
    sub = lda_train_subsample(X, rng, run.train_perplexity_docs)
    eval_threads = resolve_n_threads(run.n_threads) if run.n_threads is not None else 1
    core = _core.LdaServerModel(model.mu, model.topic_mass, settings.native_config(eval_threads, n_total), model.t)
    server_model = LdaModel(core, V, settings.n_components)
    base_time = model.train_time

    def evaluate(final=False, write=True):
        t1 = time.perf_counter()
        model.t = int(core.steps)
        rec = dict(server.record(), time=base_time + server.train_time, e_step_iterations=None,
                   topic_mass_drift=server_model.drift,
                   perplexity=model.perplexity(Xv, eval_threads) if Xv is not None else None,
                   train_perplexity=model.perplexity(sub, eval_threads) if sub is not None else None,
                   full_train_perplexity=None)  # evaluate_every is refused with this backend
        rec["eval_time"] = time.perf_counter() - t1
        return loop.record(model, rec, final=final, write=write) != CONTINUE

    def catch_up():
        model.t = int(core.steps)

    server = ParameterServer(comm, server_model, opts, n_total, loop.epochs, evaluate, epoch0=model.epochs_done)
    if loop.resume is not None:
        server.restore(resume.server_state(loop))
    if loop.checkpoint is not None:
        loop.keep_state(resume.writer(server, size, opts.method, seed,
                                      {r: rep["data_crc32"] for r, rep in replies.items()}))
        if opts.method in resume.SYNCHRONOUS:
            server.snapshot_due = loop.checkpoint_due
    return server.train(model, run, loop, catch_up)


def _work(comm, rank, X, settings, run, agreed, loop):
    opts = run.options
    spec, go, Xn, rows = join_run(comm, rank, X, agreed, opts, "words", loop=loop)
    n_threads = local_threads(run.n_threads, go["ranks_here"])
    wspec = {"n_features": spec["n_features"], "seed": spec["seed"], "timeout": opts.timeout,
             "poll_interval": opts.poll_interval, "delay": opts.delay_for(rank), "batch_size": settings.batch_size,
             "shuffle": settings.shuffle, "stream": resume.order_stream(loop) if opts.method not in resume.SYNCHRONOUS
             else 0}
    with failures_reported(comm, opts.timeout, opts.poll_interval):  # rank 0 hears of an exception at once
        worker = LdaWorker(comm, wspec, rank, Xn, rows, settings.native_config(1, go["n_total"]), n_threads)
        saved = resume.worker_state(loop, rank)  # method 'sync': its state at the checkpoint's round
        if saved is not None:
            worker.restore(saved)
        stats = worker.run()
    run.report.update(n_threads=None, mpi_rank=rank, mpi_stats=dict(stats, n_threads=n_threads, pid=os.getpid()),
                      n_features=X.shape[1])
    return None
