"""LDA(backend="mpi"): DPSVI over MPI, what each rank does in fit.

Rank 0 holds lambda (the estimator's own mu and topic sums) and applies SVI's global step to each
worker's statistics (_core.LdaServerModel); workers run the E-steps of their documents' mini-batches
over their threads (_core.lda_batch_stats) against lambda as last read. 'async' applies every
message at once (DPSVI: global steps from stale reads, the delay counted in staleness_); 'sync'
applies one global step per round on the union of every worker's mini-batch.
"""
from __future__ import annotations

import os
import time

import numpy as np

from .. import _core
from .._checks import fit_rng, resolve_n_threads
from .models import LdaModel
from .server import ParameterServer
from .session import end_job_together, join_run, local_threads, open_run, world
from .worker import LdaWorker


def settings(est, alpha, eta, opts):
    """What every rank must agree on (compared in the handshake)."""
    return {"n_components": int(est.n_components), "doc_topic_prior": alpha, "topic_word_prior": eta,
            "learning_offset": float(est.learning_offset), "learning_decay": float(est.learning_decay),
            "batch_size": int(est.batch_size), "max_doc_update_iter": int(est.max_doc_update_iter),
            "mean_change_tol": float(est.mean_change_tol), "shuffle": bool(est.shuffle),
            "options": opts.describe()}


def fit(est, X, eval_set, alpha, eta, opts, epochs):
    """Run one MPI fit of est on this rank; returns est."""
    if opts.method not in ("async", "sync"):
        raise ValueError(f"LDA over MPI runs method 'async' (DPSVI) or 'sync', not {opts.method!r}")
    comm = world()
    end_job_together(comm, opts)  # registered before anything can fail: the job must end, whatever happens
    rank = comm.Get_rank()
    common = settings(est, alpha, eta, opts)
    if rank == 0:
        return _serve(est, comm, X, eval_set, alpha, eta, opts, epochs, common)
    return _work(est, comm, rank, X, opts, common)


def _serve(est, comm, X, eval_set, alpha, eta, opts, epochs, common):
    from ..lda import check_counts

    n, V = X.shape
    est._init_model(V, alpha, eta)
    rng = fit_rng(est.random_state, est.t_)
    seed = int(rng.integers(2 ** 62))
    spec = {"settings": common, "n_features": V, "n_rows": n, "nnz": int(X.nnz), "seed": seed,
            "n_workers": comm.Get_size() - 1, "timeout": opts.timeout, "poll_interval": opts.poll_interval}

    own = {}

    def own_checks():  # rank 0's own data, checked before the go
        own["Xv"] = None if eval_set is None else check_counts(eval_set, name="eval_set", n_features=V)

    _, n_total = open_run(comm, spec, opts, X, "documents", own_checks)
    Xv = own["Xv"]

    sub = None
    if est.train_perplexity_docs > 0:
        rows = np.sort(rng.choice(n, size=min(n, int(est.train_perplexity_docs)), replace=False))
        sub = X[rows] if X[rows].data.any() else None
    eval_threads = resolve_n_threads(est.n_threads) if est.n_threads is not None else 1
    cfg = est._config(eval_threads, float(n_total))
    core = _core.LdaServerModel(est._mu, est._topic_mass, cfg, est.t_)
    model = LdaModel(core, V, int(est.n_components))
    est.n_threads_ = None
    est.n_iter_ = 0

    def evaluate():
        t1 = time.perf_counter()
        est.t_ = int(core.steps)
        rec = dict(server.record(), time=est._train_time + server.train_time, e_step_iterations=None,
                   topic_mass_drift=model.drift,
                   perplexity=est._perplexity(Xv, eval_threads) if Xv is not None else None,
                   train_perplexity=est._perplexity(sub, eval_threads) if sub is not None else None)
        rec["eval_time"] = time.perf_counter() - t1
        est.history_.append(rec)
        if est.verbose:
            print(est._format_record(rec), flush=True)
        if not np.isfinite(est._topic_mass).all():
            raise FloatingPointError(f"lambda is no longer finite after {est.t_} global steps: check the counts and "
                                     "priors, or raise learning_offset")
        return est.callback is not None and est.callback(rec) is True

    server = ParameterServer(comm, model, opts, n_total, epochs, evaluate)
    try:
        wall, failure = server.fit()
    finally:
        est.t_ = int(core.steps)
        est.staleness_.add(server.staleness.as_native())
    est._train_time += server.train_time
    server.report_to(est, wall)
    if failure is not None:
        raise failure
    return est


def _work(est, comm, rank, X, opts, common):
    spec, go, Xn, rows = join_run(comm, rank, X, common, opts, "words")
    n_threads = local_threads(est.n_threads, go["ranks_here"])
    cfg = _core.LdaConfig()
    cfg.n_components = common["n_components"]
    cfg.doc_topic_prior = common["doc_topic_prior"]
    cfg.topic_word_prior = common["topic_word_prior"]
    cfg.learning_offset = common["learning_offset"]
    cfg.learning_decay = common["learning_decay"]
    cfg.total_samples = float(go["n_total"])
    cfg.max_doc_update_iter = common["max_doc_update_iter"]
    cfg.mean_change_tol = common["mean_change_tol"]
    wspec = {"n_features": spec["n_features"], "seed": spec["seed"], "timeout": opts.timeout,
             "poll_interval": opts.poll_interval, "delay": opts.delay_for(rank), "batch_size": common["batch_size"],
             "shuffle": common["shuffle"]}
    worker = LdaWorker(comm, wspec, rank, Xn, rows, cfg, n_threads)
    stats = worker.run()
    est.mpi_rank_ = rank
    est.mpi_stats_ = dict(stats, n_threads=n_threads, pid=os.getpid())
    est.n_features_in_ = X.shape[1]
    return est
