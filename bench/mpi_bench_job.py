#!/usr/bin/env python3
"""One MPI job of bench_distributed.py: every rank runs this script.

    mpiexec -n K python bench/mpi_bench_job.py CONFIG.json

CONFIG.json (written by bench_distributed.py) names the problem, the shared estimator settings,
the artificial delays of the scenario and the list of runs (method, optimizer, step size). Every
rank builds the same data and, for each run in turn, the same estimator, and calls ``fit``; rank 0
(the parameter server) then holds the model and its history. After every run rank 0 rewrites the
config's ``out`` file with all results so far (history, staleness, message statistics), so a job
cut off by the driver's timeout still leaves what it finished.

Between two runs the ranks meet at a polled barrier (MPI's own blocking barrier spins, which on an
oversubscribed machine takes the cores from the rank still evaluating), so every run starts with
all its workers idle.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback

import numpy as np
from mpi4py import MPI

import asyncopt
from asyncopt.datasets import load_libsvm, make_sparse_classification
from asyncopt.distributed import Delay
from benchenv import jsonable


def polled_barrier(comm, poll=1e-3, timeout=600.0):
    req = comm.Ibarrier()
    deadline = time.perf_counter() + timeout
    while not req.Test():
        if time.perf_counter() > deadline:
            raise TimeoutError("ranks did not meet at the barrier between runs")
        time.sleep(poll)


def load(problem):
    if problem["kind"] == "synthetic":
        return make_sparse_classification(n_samples=problem["n_samples"], n_features=problem["n_features"],
                                          nnz_per_row=problem["nnz_per_row"], random_state=problem["random_state"],
                                          dtype=np.float32)
    if problem["kind"] == "libsvm":
        return load_libsvm(problem["path"], n_features=problem.get("n_features"))
    raise ValueError(f"unknown problem kind {problem['kind']!r}")


def delays_of(scenario, n_workers):
    """{rank: Delay} of a scenario: 'none', 'straggler' (one rank slowed by a constant factor) or
    'heavy_tail' (every worker gets Lomax(shape)-distributed extra compute)."""
    kind = scenario["kind"]
    if kind == "none":
        return {}
    if kind == "straggler":
        return {int(scenario["rank"]): Delay(factor=float(scenario["factor"]))}
    if kind == "heavy_tail":
        return {r: Delay(factor=float(scenario.get("factor", 1.0)), pareto_shape=float(scenario["pareto_shape"]))
                for r in range(1, n_workers + 1)}
    raise ValueError(f"unknown scenario kind {kind!r}")


def estimator(cfg, run, delays, epochs=None):
    mpi = {"method": run["method"], "delays": delays, "eval_every": cfg["eval_every"], "timeout": cfg["timeout"]}
    mpi.update(run.get("mpi", {}))
    return asyncopt.LogisticRegression(
        optimizer=run["optimizer"], learning_rate=run["learning_rate"], schedule=run["schedule"],
        alpha=cfg["alpha"], batch_size=cfg["batch_size"], epochs=epochs or cfg["epochs"], tol=None,
        random_state=cfg["random_state"], fit_intercept=cfg.get("fit_intercept", True),
        n_threads=run.get("n_threads"), backend="mpi", mpi=mpi)


def server_record(clf, wall):
    history = [{k: r.get(k) for k in ("epoch", "time", "epoch_time", "eval_time", "objective", "staleness_mean",
                                       "staleness_max", "updates", "dropped", "rows")} for r in clf.history_]
    return {"history": history, "staleness": clf.staleness_.as_dict(), "mpi_stats": clf.mpi_stats_,
            "fit_wall_time": wall}


def main():
    with open(sys.argv[1]) as f:
        cfg = json.load(f)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n_workers = size - 1
    t0 = time.perf_counter()
    X, y = load(cfg["problem"])
    load_seconds = time.perf_counter() - t0
    delays = delays_of(cfg["scenario"], n_workers)

    out = {"K": size, "n_workers": n_workers, "asyncopt": asyncopt.__version__,
           "asyncopt_path": os.path.dirname(asyncopt.__file__), "scenario": cfg["scenario"],
           "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "nnz": int(X.nnz), "load_seconds": load_seconds,
           "processor": MPI.Get_processor_name(), "mpi_library": MPI.Get_library_version().strip().splitlines()[0],
           "runs": []}

    def save():
        if rank == 0:
            tmp = cfg["out"] + ".tmp"
            with open(tmp, "w") as f:
                json.dump(jsonable(out), f, indent=1)
            os.replace(tmp, cfg["out"])

    # A short first fit that is not measured: MPI connections, first-touch page faults of the
    # data and the native code's lazy set-up are paid here rather than by the first timed method.
    if cfg.get("warmup_rows"):
        polled_barrier(comm)
        m = min(int(cfg["warmup_rows"]), X.shape[0])
        try:
            estimator(cfg, cfg["runs"][0], {}, epochs=1).fit(X[:m], y[:m])
        except Exception:  # noqa: BLE001 - a warm-up failure shows again in the timed run
            if rank == 0:
                out["warmup_error"] = traceback.format_exc()

    for run in cfg["runs"]:
        polled_barrier(comm)
        clf = estimator(cfg, run, delays)
        t1 = time.perf_counter()
        error = None
        try:
            clf.fit(X, y)
        except Exception as e:  # noqa: BLE001 - recorded, the job goes on with the next method
            error = f"{type(e).__name__}: {e}"
            print(f"[rank {rank}] {run['name']}: {error}", file=sys.stderr, flush=True)
            traceback.print_exc()
        wall = time.perf_counter() - t1
        if rank == 0:
            rec = {"name": run["name"], "settings": run, "error": error, "fit_wall_time": wall}
            if getattr(clf, "history_", None) is not None and getattr(clf, "mpi_stats_", None) is not None:
                rec.update(server_record(clf, wall))
            out["runs"].append(rec)
            history = getattr(clf, "history_", None)
            print(f"[K={size} {cfg['scenario']['kind']}] {run['name']:<14} {wall:6.2f} s"
                  + (f"  final objective {history[-1]['objective']:.6f}" if history else "")
                  + (f"  ERROR {error}" if error else ""), flush=True)
            save()
    out["job_seconds"] = time.perf_counter() - t0
    save()
    polled_barrier(comm)


if __name__ == "__main__":
    main()
