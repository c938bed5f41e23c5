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
from .._checks import fit_rng, native_csr, resolve_n_threads
from .models import LdaModel
from .options import WorkerFailure
from .server import ParameterServer
from .session import (check_settings, exit_by_abort_at_exit, local_threads, processor_name, send_go,
                      server_handshake, shard_rows, worker_handshake, world)
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

    def check_reply(r, reply):
        if opts.sharding == "split" and (reply["n_rows_given"], reply["nnz_given"]) != (n, int(X.nnz)):
            return (f"sharding='split' needs the same documents on every rank: rank 0 has {n} documents and "
                    f"{X.nnz} nonzeros, rank {r} {reply['n_rows_given']} and {reply['nnz_given']}")
        return None

    replies, errors = server_handshake(comm, spec, check_reply, opts.timeout, opts.poll_interval)
    try:  # rank 0's own checks, before the go: an error here must reach the workers too
        Xv = None if eval_set is None else check_counts(eval_set, name="eval_set", n_features=V)
    except ValueError as e:
        errors.append(f"rank 0: {e}")
    n_total = 0 if errors else sum(rep["n_rows"] for rep in replies.values())
    if not errors and any(rep["n_rows"] == 0 for rep in replies.values()):
        errors.append(f"worker rank(s) {[r for r, rep in replies.items() if rep['n_rows'] == 0]} got no documents")
    hosts = [processor_name()] + [rep.get("host") for rep in replies.values()]
    send_go(comm, {r: ({"go": False, "error": "; ".join(errors)} if errors else
                       {"go": True, "n_total": n_total, "ranks_here": hosts.count(replies[r]["host"])})
                   for r in replies}, opts.timeout, opts.poll_interval)
    if errors:
        raise ValueError("the MPI run did not start: " + "; ".join(errors))

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
    last = {"stal": (0, 0), "time": 0.0, "rows": 0}

    def evaluate(rows_done, train_time):
        t1 = time.perf_counter()
        est.t_ = int(core.steps)
        st = server.staleness
        count, total = st.count - last["stal"][0], st.sum - last["stal"][1]
        epoch = rows_done / n_total
        rec = {"epoch": int(epoch) if float(epoch).is_integer() else round(epoch, 4),
               "time": est._train_time + train_time, "epoch_time": train_time - last["time"], "updates": est.t_,
               "staleness_mean": total / max(count, 1), "staleness_max": int(st.max), "e_step_iterations": None,
               "topic_mass_drift": model.drift, "rows": rows_done,
               "perplexity": est._perplexity(Xv, eval_threads) if Xv is not None else None,
               "train_perplexity": est._perplexity(sub, eval_threads) if sub is not None else None}
        rec["eval_time"] = time.perf_counter() - t1
        last.update(stal=(st.count, st.sum), time=train_time, rows=rows_done)
        est.history_.append(rec)
        if est.verbose:
            print(est._format_record(rec), flush=True)
        if not np.isfinite(est._topic_mass).all():
            raise FloatingPointError(f"lambda is no longer finite after {est.t_} global steps: check the counts and "
                                     "priors, or raise learning_offset")
        return est.callback is not None and est.callback(rec) is True

    eval_rows = max(1, int(round(opts.eval_every * n_total)))
    server = ParameterServer(comm, model, opts.method, opts, epochs * n_total, eval_rows, evaluate)
    failure = None
    try:
        wall = server.run()
    except WorkerFailure as e:
        failure, wall = e, server.train_time
    except BaseException:
        exit_by_abort_at_exit(comm)  # the workers would wait for answers that will not come
        raise
    finally:
        est.t_ = int(core.steps)
        est.staleness_.add(server.staleness.as_native())
    if server.rows_done > last["rows"]:
        model.settle()
        evaluate(server.rows_done, server.train_time)
    est._train_time += server.train_time
    est.n_iter_ = int(np.ceil(server.rows_done / n_total))
    est._epochs_done += est.n_iter_
    est.mpi_rank_ = 0
    est.mpi_stats_ = server.summary(wall)
    if failure is not None:
        raise failure
    return est


def _work(est, comm, rank, X, opts, common):
    state = {}

    def make_reply(spec):
        check_settings(spec, common, X.shape[1], "words")
        Xn = native_csr(X)
        _core.validate_csr(*Xn, X.shape[1])
        rows = shard_rows(spec, rank, X.shape[0], opts.sharding)
        state.update(Xn=Xn, rows=rows)
        return {"n_rows": int(rows.shape[0]), "n_rows_given": int(X.shape[0]), "nnz_given": int(X.nnz),
                "host": processor_name()}

    spec, go = worker_handshake(comm, make_reply, opts.timeout, opts.poll_interval)
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
    worker = LdaWorker(comm, wspec, rank, state["Xn"], state["rows"], cfg, n_threads)
    stats = worker.run()
    est.mpi_rank_ = rank
    est.mpi_stats_ = dict(stats, n_threads=n_threads, pid=os.getpid())
    est.n_features_in_ = X.shape[1]
    return est
