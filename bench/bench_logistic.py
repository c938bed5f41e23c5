#!/usr/bin/env python3
"""Sparse logistic regression: asyncopt (Hogwild! SGD, asynchronous AMSGrad) against scikit-learn.

    python bench/bench_logistic.py [--quick] [--out DIR] [--threads 1,2] [--epochs N]
                                   [--sets a9a,news20,synthetic,scaling]

Everything is measured side by side in one run, so every ratio compares numbers taken on the same
machine at the same time. Writes DIR/logistic.json (every raw number), DIR/logistic.md (tables and
the target ratios with PASS/MISS) and DIR/logistic.png (objective minus optimum against training
time). bench/README.md says what is measured and how to read it.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import sklearn
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import SGDClassifier

import asyncopt
from benchenv import cpu_model, git_commit, jsonable
from asyncopt.datasets import load_libsvm, make_sparse_classification

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALL_SETS = ("a9a", "news20", "synthetic", "scaling")
QUICK_SETS = ("a9a", "synthetic", "scaling")
TARGET_GAP = 0.01  # the target objective is optimum * (1 + TARGET_GAP)

# Step sizes tried once per data set at 1 thread; the lowest final objective wins. The small ends
# (SGD 0.02, AMSGrad 0.0003 and 0.001) are there because the synthetic set's best rates lie below
# SGD 0.05 and AMSGrad 0.003: with those as the smallest choice AMSGrad stalls at a 2 % gap.
SGD_GRID = [(lr, schedule) for schedule in ("invsqrt", "constant") for lr in (0.02, 0.05, 0.1, 0.5, 1.0)]
AMSGRAD_GRID = [(lr, "constant") for lr in (0.0003, 0.001, 0.003, 0.01, 0.03)]
# Used by the scaling set when the synthetic set (whose choice it reuses) is not run.
DEFAULT_STEPS = {"sgd": (0.1, "constant"), "amsgrad": (0.01, "constant")}

# Targets of the ratios, all computed from numbers of this run.
TARGETS = {
    "a": ("asyncopt 1-thread SGD epoch / SGDClassifier epoch", "<=", 1.0),
    "b": ("2-thread / 1-thread update throughput (synthetic)", ">=", 1.7),
    "c": ("AMSGrad epoch / SGD epoch, 1 thread", "<=", 2.0),
    "d": ("epoch time, 2^14-feature rows declared in 2^24 / in 2^14", "<=", 1.3),
}

METHOD_NAMES = {"asyncopt-sgd": "asyncopt SGD", "asyncopt-amsgrad": "asyncopt AMSGrad",
                "sklearn-sgd": "sklearn SGDClassifier", "sklearn-saga": "sklearn saga"}


# --------------------------------------------------------------------------- settings and data
@dataclass
class Settings:
    quick: bool
    sets: list
    threads: list
    epochs: int
    repeats: int
    alpha: float
    synthetic_rows: int
    scaling_rows: int
    scaling_epochs: int
    lbfgs_max_iter: int
    data_dir: Path
    out: Path


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, 2 epochs, 1 repeat, a9a as the only real set: a CI smoke run")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default bench/results)")
    ap.add_argument("--threads", default=None,
                    help="comma-separated thread counts (default 1..os.cpu_count())")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per training run (default 10, quick 2)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="interleaved repeats of every timed configuration (default 3, quick 1)")
    ap.add_argument("--sets", default=None, help=f"comma-separated subset of {','.join(ALL_SETS)}")
    ap.add_argument("--alpha", type=float, default=1e-4, help="L2 strength of the objective (default 1e-4)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help=f"folder holding libsvm/ (default {DEFAULT_DATA_DIR})")
    args = ap.parse_args(argv)

    sets = args.sets.split(",") if args.sets else list(QUICK_SETS if args.quick else ALL_SETS)
    unknown = [s for s in sets if s not in ALL_SETS]
    if unknown:
        ap.error(f"unknown set(s) {unknown}; choose from {ALL_SETS}")
    threads = ([int(t) for t in args.threads.split(",")] if args.threads
               else list(range(1, (os.cpu_count() or 1) + 1)))
    if 1 not in threads:
        threads.insert(0, 1)  # step sizes are chosen at 1 thread and ratios (a)-(d) need it
    threads = sorted(set(threads))
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 10)
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if epochs < 1 or repeats < 1 or min(threads) < 1:
        ap.error("--epochs, --repeats and --threads must be >= 1")
    return Settings(quick=args.quick, sets=sets, threads=threads, epochs=epochs, repeats=repeats,
                    alpha=args.alpha, synthetic_rows=20_000 if args.quick else 300_000,
                    scaling_rows=20_000 if args.quick else 300_000, scaling_epochs=3,
                    lbfgs_max_iter=2000 if args.quick else 10_000, data_dir=args.data_dir, out=args.out)


@dataclass
class Problem:
    """One training set in the two forms the solvers want, so no solver pays for a conversion."""

    name: str
    X: sp.csr_matrix  # float32: what asyncopt trains on
    X64: sp.csr_matrix  # the same values in float64 with int32 indices: what scikit-learn takes without a copy
    y: np.ndarray  # labels as loaded
    ypm: np.ndarray  # +1 for classes[1], -1 otherwise: the sign convention of coef_ in both libraries
    X_test: sp.csr_matrix | None
    ypm_test: np.ndarray | None
    source: str


def _as_float64_int32(X):
    X64 = sp.csr_matrix((X.data.astype(np.float64), X.indices.astype(np.int32, copy=False),
                         X.indptr.astype(np.int32, copy=False)), shape=X.shape)
    X64.has_canonical_format = True
    return X64


def _signs(y, classes):
    return np.where(y == classes[1], 1.0, -1.0)


def make_problem(name, X, y, X_test=None, y_test=None, source=""):
    classes = np.unique(y)
    assert classes.shape[0] == 2, f"{name}: expected two classes, got {classes}"
    return Problem(name=name, X=X, X64=_as_float64_int32(X), y=y, ypm=_signs(y, classes),
                   X_test=None if X_test is None else _as_float64_int32(X_test),
                   ypm_test=None if y_test is None else _signs(y_test, classes), source=source)


def load_problem(name, cfg):
    """The real sets come with their test files (one width for both); the synthetic set is the
    generator's default text-like problem at a size (>= 10M nonzeros) where an epoch takes long
    enough to time and the model (2^20 features) no longer fits in the caches."""
    lib = cfg.data_dir / "libsvm"
    if name == "a9a":
        X, y = load_libsvm(lib / "a9a.xz", n_features=123)
        Xt, yt = load_libsvm(lib / "a9a.t.xz", n_features=123)
        return make_problem(name, X, y, Xt, yt, "LIBSVM a9a (+ a9a.t for test accuracy)")
    if name == "news20":
        d = 78_886
        X, y = load_libsvm(lib / "news20bydate_tfidf.binary.train.xz", n_features=d)
        Xt, yt = load_libsvm(lib / "news20bydate_tfidf.binary.test.xz", n_features=d)
        return make_problem(name, X, y, Xt, yt, "news20 by date, tf-idf, binary (+ its test split)")
    if name == "synthetic":
        X, y = make_sparse_classification(n_samples=cfg.synthetic_rows, n_features=2 ** 20, random_state=0)
        if not cfg.quick:
            assert X.nnz >= 10_000_000, f"synthetic set has only {X.nnz} nonzeros, expected >= 10M"
        return make_problem(name, X, y, source=f"make_sparse_classification(n_samples={cfg.synthetic_rows}, "
                                               f"n_features=2**20, random_state=0)")
    raise ValueError(name)


# --------------------------------------------------------------------------- the yardstick
def objective(X64, ypm, coef, intercept, alpha):
    """mean log(1 + exp(-y (w.x + b))) + alpha/2 ||w||^2 in float64, intercept unregularised.

    Every solver's model goes through the same formula (asyncopt reports its own in history_,
    which this also cross-checks), so "time to target" means the same thing for all of them."""
    w = np.asarray(coef, dtype=np.float64).ravel()
    z = X64 @ w + float(np.asarray(intercept).ravel()[0])
    return float(np.mean(np.logaddexp(0.0, -ypm * z)) + 0.5 * alpha * float(w @ w))


def test_accuracy(p, coef, intercept):
    if p.X_test is None:
        return None
    z = p.X_test @ np.asarray(coef, dtype=np.float64).ravel() + float(np.asarray(intercept).ravel()[0])
    return float(np.mean(np.where(z > 0, 1.0, -1.0) == p.ypm_test))


def solve_optimum(p, alpha, max_iter):
    """The optimum f* of the objective, from a batch quasi-Newton solver run to tol=1e-10.

    scikit-learn minimises C sum(loss) + 1/2 ||w||^2, which with C = 1/(alpha n) is n C times our
    objective, so its minimiser is ours; f* is recomputed from its coef_ with our formula. The
    gradient norm at the solution says how far f* can be trusted (the 1% target is far coarser)."""
    n = p.X.shape[0]
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = SkLogisticRegression(solver="lbfgs", C=1.0 / (alpha * n), tol=1e-10,
                                     max_iter=max_iter).fit(p.X64, p.y)
    seconds = time.perf_counter() - t0
    w, b = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    f = objective(p.X64, p.ypm, w, b, alpha)
    s = -p.ypm * expit(-p.ypm * (p.X64 @ w + b)) / n
    grad = np.append(p.X64.T @ s + alpha * w, s.sum())
    return {"objective": f, "target": f * (1.0 + TARGET_GAP), "solver": "sklearn lbfgs, tol=1e-10",
            "n_iter": int(np.max(model.n_iter_)), "max_iter": max_iter, "seconds": seconds,
            "grad_inf_norm": float(np.abs(grad).max()),
            "convergence_warning": any(issubclass(c.category, ConvergenceWarning) for c in caught),
            "test_accuracy": test_accuracy(p, w, b)}


# --------------------------------------------------------------------------- one training run each
def _record(method, threads, settings, epochs, fit_wall, final_recomputed, test_acc, diverged=None):
    return {"method": method, "threads": threads, "label": f"{method}/{threads}", "settings": settings,
            "epochs": epochs, "fit_wall_time": fit_wall, "final_objective_recomputed": final_recomputed,
            "test_accuracy": test_acc, "diverged": diverged}


def run_asyncopt(p, optimizer, learning_rate, schedule, n_threads, epochs, alpha):
    """One asyncopt fit; per-epoch objective, cumulative training time and staleness come from
    history_ (training time there excludes the per-epoch evaluation). fit_wall_time is the whole
    call: validation, model allocation and evaluation included."""
    settings = {"learning_rate": learning_rate, "schedule": schedule, "batch_size": 1, "alpha": alpha,
                "random_state": 0, "dtype": str(p.X.dtype)}
    est = asyncopt.LogisticRegression(optimizer=optimizer, learning_rate=learning_rate, schedule=schedule,
                                      alpha=alpha, batch_size=1, epochs=epochs, n_threads=n_threads,
                                      random_state=0, tol=None, train_loss="exact")  # every epoch, exact: the curves
    diverged = None
    t0 = time.perf_counter()
    try:
        est.fit(p.X, p.y)
    except FloatingPointError as e:
        diverged = str(e)
    fit_wall = time.perf_counter() - t0
    curve = [{"epoch": int(r["epoch"]), "time": float(r["time"]), "epoch_time": float(r["epoch_time"]),
              "eval_time": float(r["eval_time"]), "objective": float(r["objective"]),
              "updates": int(r["updates"]), "staleness_mean": float(r["staleness_mean"]),
              "staleness_max": int(r["staleness_max"])} for r in est.history_]
    settings["regularization"] = getattr(est, "regularization_", None)
    if diverged:
        return _record(f"asyncopt-{optimizer}", n_threads, settings, curve, fit_wall, None, None, diverged)
    return _record(f"asyncopt-{optimizer}", n_threads, settings, curve, fit_wall,
                   objective(p.X64, p.ypm, est.coef_, est.intercept_, alpha),
                   test_accuracy(p, est.coef_, est.intercept_))


def _run_sklearn_epochwise(p, method, model, step, epochs, alpha, settings):
    """Time only the calls that train one epoch each; the objective is evaluated between them,
    outside the clock, as asyncopt's history_ does."""
    curve, total = [], 0.0
    t_fit = time.perf_counter()
    eval_total = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        step(model)
        dt = time.perf_counter() - t0
        total += dt
        t1 = time.perf_counter()
        f = objective(p.X64, p.ypm, model.coef_, model.intercept_, alpha)
        eval_time = time.perf_counter() - t1
        eval_total += eval_time
        curve.append({"epoch": epoch, "time": total, "epoch_time": dt, "eval_time": eval_time, "objective": f})
    fit_wall = time.perf_counter() - t_fit
    return _record(method, 1, settings, curve, fit_wall, curve[-1]["objective"],
                   test_accuracy(p, model.coef_, model.intercept_))


def run_sgdclassifier(p, epochs, alpha):
    """scikit-learn's plain SGD (one core on a binary problem), one partial_fit per epoch on
    float64 CSR, the input it consumes without copying."""
    classes = np.unique(p.y)
    model = SGDClassifier(loss="log_loss", alpha=alpha, learning_rate="optimal", tol=None, random_state=0)
    settings = {"loss": "log_loss", "alpha": alpha, "learning_rate": "optimal", "tol": None, "random_state": 0,
                "dtype": "float64"}
    return _run_sklearn_epochwise(p, "sklearn-sgd", model, lambda m: m.partial_fit(p.X64, p.y, classes=classes),
                                  epochs, alpha, settings)


def run_saga(p, epochs, alpha):
    """scikit-learn's SAGA (variance-reduced, one core), one warm-started max_iter=1 fit per epoch.
    Each fit restarts SAGA's gradient memory, so this is a little slower per epoch in progress
    than one long SAGA run would be."""
    C = 1.0 / (alpha * p.X.shape[0])
    model = SkLogisticRegression(solver="saga", C=C, warm_start=True, max_iter=1, tol=0)
    settings = {"solver": "saga", "C": C, "warm_start": True, "max_iter": 1, "tol": 0, "dtype": "float64"}

    def one_epoch(m):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m.fit(p.X64, p.y)
    return _run_sklearn_epochwise(p, "sklearn-saga", model, one_epoch, epochs, alpha, settings)


# --------------------------------------------------------------------------- step sizes
def choose_step_sizes(p, cfg):
    """Try each optimizer's small grid once, at 1 thread, and keep the lowest final objective.

    The choice is then used unchanged at every thread count: the multi-thread runs get no tuning
    of their own, so a speedup cannot come from a better-suited step size."""
    grid, chosen = [], {}
    # plus Bottou's 1/t schedule at its default first step alpha^(-1/4), scikit-learn's SGDClassifier default
    sgd_candidates = SGD_GRID + [(cfg.alpha ** -0.25, "optimal")]
    for optimizer, candidates in (("sgd", sgd_candidates), ("amsgrad", AMSGRAD_GRID)):
        best = None
        for lr, schedule in candidates:
            run = run_asyncopt(p, optimizer, lr, schedule, 1, cfg.epochs, cfg.alpha)
            final = run["final_objective_recomputed"]
            grid.append({"optimizer": optimizer, "learning_rate": lr, "schedule": schedule,
                         "final_objective": final, "diverged": run["diverged"],
                         "objectives": [e["objective"] for e in run["epochs"]]})
            if final is not None and math.isfinite(final) and (best is None or final < best[0]):
                best = (final, lr, schedule)
        if best is None:
            raise RuntimeError(f"{p.name}: every {optimizer} step size in the grid diverged")
        chosen[optimizer] = {"learning_rate": best[1], "schedule": best[2]}
    return grid, chosen


# --------------------------------------------------------------------------- summaries
def median_epoch_time(run):
    return statistics.median(e["epoch_time"] for e in run["epochs"]) if run["epochs"] else math.nan


def first_reach(run, target):
    """(cumulative training seconds, epoch) of the first epoch at or below target, or None."""
    for e in run["epochs"]:
        if e["objective"] <= target:
            return e["time"], e["epoch"]
    return None


def summarize(runs, nnz, optimum):
    """One row per configuration. Each repeat's median epoch time first (one slow epoch, e.g. the
    first one touching fresh model pages, moves nothing), then the median over repeats."""
    rows = []
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label]
        epoch_times = [median_epoch_time(r) for r in mine]
        reach = [first_reach(r, optimum["target"]) for r in mine]
        reach_times = [t[0] if t else math.inf for t in reach]
        t_target = statistics.median(reach_times)
        reached_epochs = sorted(t[1] for t in reach if t)
        finals = [r["epochs"][-1]["objective"] if r["epochs"] and not r["diverged"] else math.nan for r in mine]
        row = {"label": label, "method": mine[0]["method"], "threads": mine[0]["threads"],
               "settings": mine[0]["settings"], "repeats": len(mine),
               "median_epoch_time": statistics.median(epoch_times), "epoch_time_per_repeat": epoch_times,
               "time_to_target": None if math.isinf(t_target) else t_target,
               "epochs_to_target": reached_epochs[len(reached_epochs) // 2] if reached_epochs else None,
               "reached_target": sum(t is not None for t in reach),
               "final_objective": statistics.median(finals),
               "final_gap": statistics.median(finals) / optimum["objective"] - 1.0,
               "best_objective": min((e["objective"] for r in mine for e in r["epochs"]), default=math.nan),
               "diverged": sum(bool(r["diverged"]) for r in mine),
               "test_accuracy": statistics.median([r["test_accuracy"] for r in mine if r["test_accuracy"] is not None])
               if any(r["test_accuracy"] is not None for r in mine) else None,
               "median_fit_wall_time": statistics.median(r["fit_wall_time"] for r in mine)}
        row["nnz_per_second"] = nnz / row["median_epoch_time"]
        if mine[0]["method"].startswith("asyncopt"):
            row["staleness_mean"] = statistics.median(
                statistics.fmean(e["staleness_mean"] for e in r["epochs"]) for r in mine)
            row["staleness_max"] = max(e["staleness_max"] for r in mine for e in r["epochs"])
            row["history_vs_recomputed"] = max(
                abs(r["epochs"][-1]["objective"] - r["final_objective_recomputed"])
                for r in mine if r["final_objective_recomputed"] is not None) if not row["diverged"] else None
        rows.append(row)
    return rows


def paired_ratio(runs, num_label, den_label, key=median_epoch_time):
    """median over repeats of key(num) / key(den) within the same repeat. The configurations ran
    interleaved, so each repeat's pair shared the machine's state; pairing cancels slow drift."""
    num = [r for r in runs if r["label"] == num_label]
    den = [r for r in runs if r["label"] == den_label]
    if not num or not den:
        return None
    per_repeat = [key(a) / key(b) for a, b in zip(num, den)]
    return {"value": statistics.median(per_repeat), "per_repeat": per_repeat}


def interleaved(configs, repeats):
    """Run every configuration once per repeat, in the same order each time (A, B, C, A, B, C, ...),
    so machine noise is spread over all of them instead of hitting one."""
    runs = []
    for repeat in range(repeats):
        for label, run in configs:
            gc.collect()
            load = os.getloadavg()[0]
            record = run()
            record["repeat"] = repeat
            record["load_average_before"] = load  # the machine is shared: a busy core shows here
            runs.append(record)
            print(f"    {label:<22} repeat {repeat}: median epoch {median_epoch_time(record) * 1e3:9.2f} ms, "
                  f"final objective {record['epochs'][-1]['objective'] if record['epochs'] else float('nan'):.6f}"
                  + ("  DIVERGED" if record["diverged"] else ""), flush=True)
    return runs


# --------------------------------------------------------------------------- the measurements
def bench_dataset(name, cfg, steps_out):
    """Items 1-3 for one data set: optimum, step sizes, then every solver at every thread count,
    all repeats interleaved."""
    t0 = time.perf_counter()
    p = load_problem(name, cfg)
    load_seconds = time.perf_counter() - t0
    n, d = p.X.shape
    print(f"[{name}] n={n} d={d} nnz={p.X.nnz} (loaded in {load_seconds:.1f} s)", flush=True)

    optimum = solve_optimum(p, cfg.alpha, cfg.lbfgs_max_iter)
    print(f"[{name}] optimum {optimum['objective']:.8f} (lbfgs {optimum['n_iter']} it, {optimum['seconds']:.1f} s, "
          f"|grad|inf {optimum['grad_inf_norm']:.1e})", flush=True)

    grid, chosen = choose_step_sizes(p, cfg)
    steps_out[name] = chosen
    print(f"[{name}] step sizes: {chosen}", flush=True)

    configs = [("sklearn-sgd/1", lambda: run_sgdclassifier(p, cfg.epochs, cfg.alpha)),
               ("sklearn-saga/1", lambda: run_saga(p, cfg.epochs, cfg.alpha))]
    for optimizer in ("sgd", "amsgrad"):
        lr, schedule = chosen[optimizer]["learning_rate"], chosen[optimizer]["schedule"]
        for t in cfg.threads:
            configs.append((f"asyncopt-{optimizer}/{t}",
                            lambda o=optimizer, lr=lr, s=schedule, t=t: run_asyncopt(p, o, lr, s, t, cfg.epochs,
                                                                                     cfg.alpha)))
    runs = interleaved(configs, cfg.repeats)
    return {"name": name, "source": p.source, "n_samples": n, "n_features": d, "nnz": int(p.X.nnz),
            "nnz_per_row": p.X.nnz / n, "n_test": None if p.X_test is None else int(p.X_test.shape[0]),
            "load_seconds": load_seconds, "optimum": optimum, "step_size_grid": grid, "step_sizes": chosen,
            "runs": runs, "summary": summarize(runs, p.X.nnz, optimum)}


def bench_scaling(cfg, steps):
    """Item 4(d): does an epoch cost O(nnz) whatever the number of features?

    The same CSR arrays (2^14-feature rows) are declared once with 2^14 and once with 2^24 columns:
    only the model size differs, so an epoch-time ratio near 1 means no O(d) work per epoch. The
    fit wall time ratio adds what does scale with d (allocating and zeroing the model). A genuinely
    2^24-feature problem, whose rows hit a model far larger than the caches, is reported beside it
    without a target: it measures cache misses, not wasted work."""
    n, small, big = cfg.scaling_rows, 2 ** 14, 2 ** 24
    X14, y14 = make_sparse_classification(n_samples=n, n_features=small, random_state=0)
    X14_in_24 = sp.csr_matrix((X14.data, X14.indices, X14.indptr), shape=(n, big), copy=False)
    X14_in_24.has_canonical_format = True
    assert np.shares_memory(X14.data, X14_in_24.data) and np.shares_memory(X14.indices, X14_in_24.indices)
    X24, y24 = make_sparse_classification(n_samples=n, n_features=big, random_state=0)
    variants = {"2^14": (X14, y14), "2^14 rows in 2^24": (X14_in_24, y14), "2^24": (X24, y24)}
    problems = {k: make_problem(k, X, y) for k, (X, y) in variants.items()}
    print(f"[scaling] n={n}, nnz 2^14: {X14.nnz}, nnz 2^24: {X24.nnz}", flush=True)

    configs = []
    for optimizer in ("sgd", "amsgrad"):
        lr, schedule = steps.get(optimizer, DEFAULT_STEPS[optimizer])
        for variant, p in problems.items():
            def run(o=optimizer, lr=lr, s=schedule, p=p, v=variant):
                record = run_asyncopt(p, o, lr, s, 1, cfg.scaling_epochs, cfg.alpha)
                record["variant"] = v
                record["label"] = f"{o}@{v}"
                return record
            configs.append((f"{optimizer}@{variant}", run))
    runs = interleaved(configs, cfg.repeats)

    rows, ratios = [], {}
    for label in dict.fromkeys(r["label"] for r in runs):
        mine = [r for r in runs if r["label"] == label]
        v = mine[0]["variant"]
        rows.append({"label": label, "optimizer": mine[0]["method"], "variant": v,
                     "n_features": problems[v].X.shape[1], "nnz": int(problems[v].X.nnz),
                     "settings": mine[0]["settings"],
                     "median_epoch_time": statistics.median(median_epoch_time(r) for r in mine),
                     "median_fit_wall_time": statistics.median(r["fit_wall_time"] for r in mine),
                     "final_objective": statistics.median(r["epochs"][-1]["objective"] for r in mine)})
    for optimizer in ("sgd", "amsgrad"):
        base = f"{optimizer}@2^14"
        ratios[optimizer] = {
            "declared_epoch": paired_ratio(runs, f"{optimizer}@2^14 rows in 2^24", base),
            "declared_fit_wall": paired_ratio(runs, f"{optimizer}@2^14 rows in 2^24", base,
                                              key=lambda r: r["fit_wall_time"]),
            # per nonzero, because the two generated sets differ slightly in nonzeros
            "true_2^24_epoch_per_nnz": paired_ratio(
                runs, f"{optimizer}@2^24", base,
                key=lambda r: median_epoch_time(r) / problems[r["variant"]].X.nnz),
        }
    steps_used = {o: dict(zip(("learning_rate", "schedule"), steps.get(o, DEFAULT_STEPS[o])))
                  for o in ("sgd", "amsgrad")}
    return {"n_samples": n, "epochs": cfg.scaling_epochs, "step_sizes": steps_used,
            "variants": {k: {"n_features": p.X.shape[1], "nnz": int(p.X.nnz)} for k, p in problems.items()},
            "runs": runs, "summary": rows, "ratios": ratios}


def compute_ratios(results, cfg):
    """Items 4(a)-(d), each from the paired, interleaved runs of this very run."""
    out = []

    def add(key, dataset, name, ratio):
        what, op, target = TARGETS[key]
        value = None if ratio is None else ratio["value"]
        ok = None if value is None else (value <= target if op == "<=" else value >= target)
        shown = {"<=": "≤", ">=": "≥"}[op]
        out.append({"id": key, "dataset": dataset, "name": name, "value": value, "target": f"{shown} {target:g}",
                    "pass": ok, "per_repeat": None if ratio is None else ratio["per_repeat"]})

    for name, res in results["datasets"].items():
        add("a", name, "asyncopt SGD 1 thread / SGDClassifier, epoch time",
            paired_ratio(res["runs"], "asyncopt-sgd/1", "sklearn-sgd/1"))
    syn = results["datasets"].get("synthetic")
    for optimizer in ("sgd", "amsgrad"):
        ratio = None
        if syn and 2 in cfg.threads:
            # throughput ratio = inverse epoch-time ratio (same updates per epoch)
            ratio = paired_ratio(syn["runs"], f"asyncopt-{optimizer}/1", f"asyncopt-{optimizer}/2")
        add("b", "synthetic", f"{'SGD' if optimizer == 'sgd' else 'AMSGrad'} throughput 2 threads / 1 thread", ratio)
    for name, res in results["datasets"].items():
        add("c", name, "AMSGrad / SGD epoch time, 1 thread",
            paired_ratio(res["runs"], "asyncopt-amsgrad/1", "asyncopt-sgd/1"))
    if "scaling" in results:
        for optimizer in ("sgd", "amsgrad"):
            add("d", "scaling", f"{'SGD' if optimizer == 'sgd' else 'AMSGrad'} epoch time, 2^14 rows in 2^24 / 2^14",
                results["scaling"]["ratios"][optimizer]["declared_epoch"])
    return out


# --------------------------------------------------------------------------- reports
def environment():
    cpu = cpu_model()
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "numpy": np.__version__, "scipy": scipy.__version__,
            "sklearn": sklearn.__version__, "asyncopt": asyncopt.__version__, "build_info": asyncopt.build_info(),
            "git_commit": git_commit(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def _ms(seconds):
    return "—" if seconds is None or not math.isfinite(seconds) else f"{seconds * 1e3:.3g} ms"


def _label(row):
    name = METHOD_NAMES[row["method"]]
    s = row["settings"]
    if row["method"].startswith("asyncopt"):
        return f"{name} (lr {s['learning_rate']:g} {s['schedule']})"
    return name


def _time_to_target(row):
    if row["time_to_target"] is None:
        extra = f", {row['reached_target']}/{row['repeats']} repeats" if row["reached_target"] else ""
        return f"not reached{extra}"
    extra = "" if row["reached_target"] == row["repeats"] else f", {row['reached_target']}/{row['repeats']} repeats"
    return f"{row['time_to_target']:.3g} s (epoch {row['epochs_to_target']}{extra})"


def markdown(results, cfg):
    env, L = results["environment"], []
    L.append("# asyncopt logistic regression benchmark\n")
    L.append(f"- command: `{results['command']}`")
    L.append(f"- {results['started']}, git {str(env['git_commit'])[:10]}, {env['cpu']}, {env['cpu_count']} CPUs, "
             f"load average {results['load_average_start'][0]:.2f} before / {results['load_average_end'][0]:.2f} after")
    L.append(f"- mode: {'quick' if cfg.quick else 'full'}: {cfg.epochs} epochs per run, {cfg.repeats} interleaved "
             f"repeat(s), threads {cfg.threads}; wall time {results['wall_time']:.0f} s")
    L.append(f"- objective: mean log-loss + alpha/2 ||w||², alpha = {cfg.alpha:g}, intercept unregularised; "
             f"target = optimum × {1 + TARGET_GAP:g}. Medians over repeats; ratios are medians of per-repeat "
             "paired ratios.\n")

    L.append("## Target ratios\n")
    L.append("| | ratio | set | value | target | result | per repeat |")
    L.append("|---|---|---|---|---|---|---|")
    for r in results["ratios"]:
        value = "n/a" if r["value"] is None else f"{r['value']:.3f}"
        verdict = "n/a" if r["pass"] is None else ("PASS" if r["pass"] else "MISS")
        per = "" if r["per_repeat"] is None else ", ".join(f"{v:.3f}" for v in r["per_repeat"])
        L.append(f"| ({r['id']}) | {r['name']} | {r['dataset']} | {value} | {r['target']} | **{verdict}** | {per} |")
    L.append("")

    for name, res in results["datasets"].items():
        opt = res["optimum"]
        L.append(f"## {name}\n")
        L.append(f"{res['source']}: n = {res['n_samples']:,}, d = {res['n_features']:,}, "
                 f"nnz = {res['nnz']:,} ({res['nnz_per_row']:.1f} per row)"
                 + (f", {res['n_test']:,} test rows" if res["n_test"] else "") + ".  ")
        L.append(f"Optimum {opt['objective']:.8f} (L-BFGS: {opt['n_iter']} iterations, {opt['seconds']:.1f} s, "
                 f"‖∇‖∞ = {opt['grad_inf_norm']:.1e}"
                 + (", **ConvergenceWarning**" if opt["convergence_warning"] else "")
                 + (f", test accuracy {opt['test_accuracy']:.4f}" if opt["test_accuracy"] is not None else "")
                 + f"); target {opt['target']:.8f}.\n")
        L.append("| solver | threads | median epoch | nnz/s | time to target | final objective | final gap "
                 "| staleness mean / max | test acc |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for row in res["summary"]:
            stale = (f"{row['staleness_mean']:.3g} / {row['staleness_max']}" if "staleness_mean" in row else "—")
            final = "diverged" if row["diverged"] else f"{row['final_objective']:.6f}"
            gap = "—" if row["diverged"] else f"{100 * row['final_gap']:.3g} %"
            acc = "—" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
            L.append(f"| {_label(row)} | {row['threads']} | {_ms(row['median_epoch_time'])} | "
                     f"{row['nnz_per_second'] / 1e6:.3g} M | {_time_to_target(row)} | {final} | {gap} | {stale} | {acc} |")
        grid = ", ".join(f"{g['optimizer']} {g['learning_rate']:g}/{g['schedule']}: "
                         + ("diverged" if g["final_objective"] is None else f"{g['final_objective']:.5f}")
                         for g in res["step_size_grid"])
        L.append(f"\nStep-size grid (1 thread, final objective after {cfg.epochs} epochs): {grid}.\n")

    if "scaling" in results:
        sc = results["scaling"]
        L.append("## scaling\n")
        L.append(f"make_sparse_classification(n_samples={sc['n_samples']:,}) at 2^14 and 2^24 features; "
                 f"1 thread, {sc['epochs']} epochs; step sizes {sc['step_sizes']}. "
                 "'2^14 rows in 2^24' is the 2^14 set's CSR arrays declared with 2^24 columns.\n")
        L.append("| optimizer | variant | d | nnz | median epoch | median fit wall time | final objective |")
        L.append("|---|---|---|---|---|---|---|")
        for row in sc["summary"]:
            L.append(f"| {METHOD_NAMES[row['optimizer']]} | {row['variant']} | {row['n_features']:,} | {row['nnz']:,} | "
                     f"{_ms(row['median_epoch_time'])} | {row['median_fit_wall_time']:.3g} s | "
                     f"{row['final_objective']:.6f} |")
        L.append("")
        L.append("| optimizer | epoch, declared 2^24 / 2^14 (target ≤ 1.3) | fit wall, declared 2^24 / 2^14 "
                 "| epoch per nnz, true 2^24 / 2^14 (no target) |")
        L.append("|---|---|---|---|")
        for optimizer, r in sc["ratios"].items():
            cells = ["n/a" if r[k] is None else f"{r[k]['value']:.3f}"
                     for k in ("declared_epoch", "declared_fit_wall", "true_2^24_epoch_per_nnz")]
            L.append(f"| {METHOD_NAMES['asyncopt-' + optimizer]} | " + " | ".join(cells) + " |")
        L.append("")

    if results.get("notes"):
        L.append("## Notes\n")
        L.extend(f"- {n}" for n in results["notes"])
        L.append("")
    return "\n".join(L)


def plot(results, path):
    """Objective minus optimum against cumulative training time, first repeat of every
    configuration, one panel per data set. Returns a note when nothing was drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"plot skipped: matplotlib does not import ({e})"
    sets = list(results["datasets"].items())
    if not sets:
        return "plot skipped: no data set with an optimum was run"
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4.2), squeeze=False)
    floor = 1e-9  # gaps at or below 0 (roundoff at the optimum) are drawn here
    for ax, (name, res) in zip(axes[0], sets):
        f_star = res["optimum"]["objective"]
        for run in res["runs"]:
            if run["repeat"] != 0 or not run["epochs"]:
                continue
            # every solver starts from w = 0, b = 0, where the objective is log 2
            t = [0.0] + [e["time"] for e in run["epochs"]]
            gap = [max(math.log(2.0) - f_star, floor)] + [max(e["objective"] - f_star, floor)
                                                           for e in run["epochs"]]
            style = "-" if run["method"].startswith("asyncopt") else "--"
            ax.plot(t, gap, style, marker="o", markersize=3,
                    label=f"{METHOD_NAMES[run['method']]}" + (f" ×{run['threads']}" if run['method'].startswith(
                        "asyncopt") else ""))
        ax.axhline(TARGET_GAP * f_star, color="gray", linestyle=":", linewidth=1, label="target (1 % gap)")
        ax.set_yscale("log")
        ax.set_xlabel("training time (s)")
        ax.set_ylabel("objective − optimum")
        ax.set_title(f"{name} (n={res['n_samples']:,}, d={res['n_features']:,})")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def sanity_notes(results):
    """Things a reader must not miss: divergence, objectives below the reference optimum, and a
    history_ objective that disagrees with the recomputed one."""
    notes = []
    for name, res in results["datasets"].items():
        f_star = res["optimum"]["objective"]
        for optimizer, grid in (("sgd", SGD_GRID), ("amsgrad", AMSGRAD_GRID)):
            lr = res["step_sizes"][optimizer]["learning_rate"]
            rates = [g[0] for g in grid]
            if lr in (min(rates), max(rates)):
                notes.append(f"{name}: the {optimizer} step size chosen, {lr:g}, is at the edge of the grid "
                             f"{sorted(set(rates))}; a rate beyond it might converge better.")
        for row in res["summary"]:
            if row["diverged"]:
                notes.append(f"{name}: {row['label']} diverged in {row['diverged']}/{row['repeats']} repeats.")
            if row["best_objective"] < f_star * (1 - 1e-6):
                notes.append(f"{name}: {row['label']} reached {row['best_objective']:.8f}, below the L-BFGS "
                             f"optimum {f_star:.8f}: the reference is not optimal.")
            d = row.get("history_vs_recomputed")
            if d is not None and d > 1e-5 * max(1.0, f_star):
                notes.append(f"{name}: {row['label']}: history_ objective differs from the float64 recomputation "
                             f"by {d:.2e}.")
            if row["time_to_target"] is None:
                notes.append(f"{name}: {row['label']} did not reach the 1 % target in {row['repeats'] - row['reached_target']}"
                             f"/{row['repeats']} repeats (final gap {100 * row['final_gap']:.3g} %).")
    return notes


# --------------------------------------------------------------------------- main
def main(argv=None):
    cfg = parse_args(argv)
    cfg.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {"command": " ".join(["python"] + [os.path.relpath(sys.argv[0]) if sys.argv[0] else "bench_logistic.py"]
                                   + sys.argv[1:]),
               "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "load_average_start": os.getloadavg(), "environment": environment(),
               "settings": {k: v for k, v in vars(cfg).items()},
               "targets": {k: {"what": w, "op": op, "value": v} for k, (w, op, v) in TARGETS.items()},
               "datasets": {}}
    steps = {}
    for name in (s for s in ALL_SETS if s in cfg.sets and s != "scaling"):
        results["datasets"][name] = bench_dataset(name, cfg, steps)
        gc.collect()
    if "scaling" in cfg.sets:
        syn = steps.get("synthetic", {})
        results["scaling"] = bench_scaling(cfg, {o: (s["learning_rate"], s["schedule"]) for o, s in syn.items()})
    results["ratios"] = compute_ratios(results, cfg)
    results["load_average_end"] = os.getloadavg()
    results["wall_time"] = time.perf_counter() - start
    results["notes"] = sanity_notes(results)

    png_note = plot(results, cfg.out / "logistic.png")
    if png_note:
        results["notes"].append(png_note)
    (cfg.out / "logistic.md").write_text(markdown(results, cfg) + "\n")
    with open(cfg.out / "logistic.json", "w") as f:
        json.dump(jsonable(results), f, indent=1)
    print(f"wrote {cfg.out / 'logistic.json'}, {cfg.out / 'logistic.md'}"
          + ("" if png_note else f", {cfg.out / 'logistic.png'}") + f" in {results['wall_time']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
