#!/usr/bin/env python3
"""The MPI parameter server with a straggler: time to target of asynchronous methods against sync.

    python bench/bench_distributed.py [--quick] [--out DIR] [--ks 3,4,5]
                                      [--scenarios straggler,heavy_tail,none] [--epochs N]
                                      [--from-json DIR/distributed.json]

For every K (ranks: one parameter server and K-1 workers) and every delay scenario, one
``mpiexec -n K python bench/mpi_bench_job.py`` job trains every method one after another on the
same data (mpiexec's start-up is slow; bench/mpi_bench_job.py is what each rank runs). Rank 0
writes the history, staleness and message statistics of each run; this driver then computes the
time to target of each method, its ratio to the synchronous baseline, and writes
DIR/distributed.json (every raw number), DIR/distributed.md (the tables) and DIR/distributed.png
(objective minus the best final objective against training time). bench/README.md says what is
measured and how to read it.

Methods, in the papers' names: sync (synchronous rounds, SGD: the baseline), asgd (AsySG-con:
method 'async' + SGD), apam (method 'async' + AMSGrad), picky (Picky SGD), dpsgd (Hogwild! inside
each worker, 1 thread here) and sync-amsgrad (synchronous rounds with AMSGrad: apam's own
baseline). Scenarios: 'straggler' (worker rank 1 sleeps so that it is FACTOR times slower),
'heavy_tail' (every worker sleeps compute x Lomax(SHAPE) after each message) and 'none' (no
delay: the reference that separates the straggler's effect from async's other differences).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import asyncopt
from benchenv import cpu_model, git_commit, jsonable

HERE = Path(__file__).resolve().parent
JOB = HERE / "mpi_bench_job.py"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TARGET_GAP = 0.02  # target = f* + TARGET_GAP * (log 2 - f*)
TARGET_RATIO = 1.5  # the target: async at least 1.5x faster than sync (with a straggler)
LOG2 = math.log(2.0)

ALL_METHODS = ("sync", "asgd", "apam", "sync-amsgrad", "picky", "dpsgd")
ASYNC_METHODS = ("asgd", "apam", "picky", "dpsgd")
BASELINE = {"asgd": "sync", "apam": "sync-amsgrad", "picky": "sync", "dpsgd": "sync"}  # same optimizer
ALL_SCENARIOS = ("straggler", "heavy_tail", "none")
METHOD_TEXT = {"sync": "sync (SGD)", "asgd": "asgd (AsySG-con)", "apam": "apam (async AMSGrad)",
               "sync-amsgrad": "sync (AMSGrad)", "picky": "picky (Picky SGD)", "dpsgd": "dpsgd (1 thread/worker)"}


# --------------------------------------------------------------------------- settings
@dataclass
class Settings:
    quick: bool
    ks: list
    scenarios: list
    methods: list
    dataset: str
    n_samples: int
    n_features: int
    nnz_per_row: int
    batch_size: int
    epochs: int
    eval_every: float
    alpha: float
    fit_intercept: bool
    sgd_lr: float
    sgd_schedule: str
    amsgrad_lr: float
    amsgrad_schedule: str
    picky_threshold: float | None
    local_updates: int | None
    straggler_factor: float
    pareto_shape: float
    mpi_timeout: float
    job_timeout: float
    warmup_rows: int
    data_dir: Path
    out: Path


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke run: K=3, straggler only, 30k rows, 4 epochs (about 10 s)")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="output folder (default bench/results)")
    ap.add_argument("--ks", default=None, help="comma-separated mpiexec -n values (default 3,4,5; quick 3)")
    ap.add_argument("--scenarios", default=None,
                    help=f"comma-separated subset of {','.join(ALL_SCENARIOS)} (default all; quick straggler)")
    ap.add_argument("--methods", default=",".join(ALL_METHODS),
                    help=f"comma-separated subset of {','.join(ALL_METHODS)} (default all)")
    ap.add_argument("--dataset", default="synthetic", choices=["synthetic", "a9a"],
                    help="synthetic (make_sparse_classification) or LIBSVM a9a from --data-dir")
    ap.add_argument("--n-samples", type=int, default=None, help="synthetic rows (default 100000; quick 30000)")
    ap.add_argument("--n-features", type=int, default=2 ** 12, help="synthetic features (default 4096)")
    ap.add_argument("--batch-size", type=int, default=1024, help="rows per gradient message (default 1024)")
    ap.add_argument("--epochs", type=int, default=None, help="passes over the data per run (default 16; quick 4)")
    ap.add_argument("--eval-every", type=float, default=None,
                    help="epochs between history records (default 0.2; quick 0.25)")
    ap.add_argument("--alpha", type=float, default=1e-5, help="L2 strength (default 1e-5)")
    ap.add_argument("--fit-intercept", action="store_true",
                    help="fit an intercept (default off: see bench/README.md, it keeps SGD from the step sizes "
                         "the features need)")
    ap.add_argument("--sgd-lr", type=float, default=1500.0, help="SGD learning rate (default 1500, invsqrt)")
    ap.add_argument("--sgd-schedule", default="invsqrt", choices=["constant", "invsqrt", "optimal"])
    ap.add_argument("--amsgrad-lr", type=float, default=0.02, help="AMSGrad learning rate (default 0.02, constant)")
    ap.add_argument("--amsgrad-schedule", default="constant", choices=["constant", "invsqrt", "optimal"])
    ap.add_argument("--picky-threshold", type=float, default=None,
                    help="Picky SGD's distance bound (default: the library's, = the SGD learning rate)")
    ap.add_argument("--local-updates", type=int, default=None,
                    help="DPSGD mini-batch updates per push (default: the library's, 8 x n_threads = 8)")
    ap.add_argument("--straggler-factor", type=float, default=3.0, help="slow-down of worker rank 1 (default 3)")
    ap.add_argument("--pareto-shape", type=float, default=1.5,
                    help="Lomax shape of the heavy-tailed delays of every worker (default 1.5)")
    ap.add_argument("--mpi-timeout", type=float, default=60.0, help="MPIOptions.timeout in seconds (default 60)")
    ap.add_argument("--job-timeout", type=float, default=None,
                    help="hard limit of one mpiexec job in seconds (default 300; quick 90)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                    help=f"folder holding libsvm/ (for --dataset a9a; default {DEFAULT_DATA_DIR})")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="run nothing: recompute the summaries of an earlier distributed.json and rewrite the "
                         "report, JSON and plot in --out")
    a = ap.parse_args(argv)
    if a.from_json is not None:
        return a.from_json, a.out

    ks = [int(k) for k in a.ks.split(",")] if a.ks else ([3] if a.quick else [3, 4, 5])
    scenarios = (a.scenarios.split(",") if a.scenarios
                 else ["straggler"] if a.quick else ["straggler", "heavy_tail", "none"])
    methods = a.methods.split(",")
    if any(k < 2 for k in ks):
        ap.error("--ks: every K must be >= 2 (one server and at least one worker)")
    bad = [s for s in scenarios if s not in ALL_SCENARIOS] + [m for m in methods if m not in ALL_METHODS]
    if bad:
        ap.error(f"unknown scenario(s)/method(s) {bad}")
    return Settings(
        quick=a.quick, ks=ks, scenarios=scenarios, methods=methods, dataset=a.dataset,
        n_samples=a.n_samples or (30_000 if a.quick else 100_000), n_features=a.n_features, nnz_per_row=46,
        batch_size=a.batch_size, epochs=a.epochs or (4 if a.quick else 16),
        eval_every=a.eval_every or (0.25 if a.quick else 0.2), alpha=a.alpha, fit_intercept=a.fit_intercept,
        sgd_lr=a.sgd_lr, sgd_schedule=a.sgd_schedule, amsgrad_lr=a.amsgrad_lr, amsgrad_schedule=a.amsgrad_schedule,
        picky_threshold=a.picky_threshold, local_updates=a.local_updates, straggler_factor=a.straggler_factor,
        pareto_shape=a.pareto_shape, mpi_timeout=a.mpi_timeout,
        job_timeout=a.job_timeout or (90.0 if a.quick else 300.0),
        warmup_rows=4096, data_dir=a.data_dir, out=a.out)


def problem_spec(cfg):
    if cfg.dataset == "a9a":
        return {"kind": "libsvm", "path": str(cfg.data_dir / "libsvm" / "a9a.xz"), "n_features": 123}
    return {"kind": "synthetic", "n_samples": cfg.n_samples, "n_features": cfg.n_features,
            "nnz_per_row": cfg.nnz_per_row, "random_state": 0}


def problem_text(cfg):
    if cfg.dataset == "a9a":
        return "LIBSVM a9a (32,561 rows, 123 features)"
    return (f"make_sparse_classification(n_samples={cfg.n_samples:,}, n_features={cfg.n_features:,}, "
            f"nnz_per_row={cfg.nnz_per_row}, random_state=0, dtype=float32)")


def scenario_spec(name, cfg):
    if name == "straggler":
        return {"kind": "straggler", "rank": 1, "factor": cfg.straggler_factor}
    if name == "heavy_tail":
        return {"kind": "heavy_tail", "pareto_shape": cfg.pareto_shape}
    return {"kind": "none"}


def scenario_text(spec):
    if spec["kind"] == "straggler":
        return f"worker rank {spec['rank']} {spec['factor']:g}× slower (Delay(factor={spec['factor']:g}))"
    if spec["kind"] == "heavy_tail":
        return (f"every worker sleeps compute × Lomax({spec['pareto_shape']:g}) after each message "
                f"(Delay(pareto_shape={spec['pareto_shape']:g}))")
    return "no artificial delay"


def run_specs(cfg):
    """The runs of one job, in the order they are trained. The SGD methods share one step size and
    schedule, the AMSGrad ones another: the async methods and their sync baseline get the same."""
    sgd = {"optimizer": "sgd", "learning_rate": cfg.sgd_lr, "schedule": cfg.sgd_schedule}
    ams = {"optimizer": "amsgrad", "learning_rate": cfg.amsgrad_lr, "schedule": cfg.amsgrad_schedule}
    picky = {} if cfg.picky_threshold is None else {"picky_threshold": cfg.picky_threshold}
    dpsgd = {} if cfg.local_updates is None else {"local_updates": cfg.local_updates}
    all_runs = {"sync": dict(method="sync", **sgd), "asgd": dict(method="async", **sgd),
                "apam": dict(method="async", **ams), "sync-amsgrad": dict(method="sync", **ams),
                "picky": dict(method="picky", mpi=picky, **sgd),
                "dpsgd": dict(method="dpsgd", n_threads=1, mpi=dpsgd, **sgd)}
    return [dict(name=m, **all_runs[m]) for m in ALL_METHODS if m in cfg.methods]


# --------------------------------------------------------------------------- one mpiexec job
def child_env():
    """OMP_NUM_THREADS=1 (every rank is one process on an oversubscribed machine), and the asyncopt
    this driver imported first on PYTHONPATH, so the ranks run the same build."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    pkg_parent = str(Path(asyncopt.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_job(K, scenario, cfg, workdir):
    """One mpiexec job; returns rank 0's results (possibly partial) plus how the job ended."""
    tag = f"K{K}_{scenario}"
    out_path = workdir / f"{tag}.json"
    job_cfg = {"problem": problem_spec(cfg), "scenario": scenario_spec(scenario, cfg), "alpha": cfg.alpha,
               "batch_size": cfg.batch_size, "epochs": cfg.epochs, "random_state": 0,
               "fit_intercept": cfg.fit_intercept, "eval_every": cfg.eval_every, "timeout": cfg.mpi_timeout,
               "warmup_rows": cfg.warmup_rows, "runs": run_specs(cfg), "out": str(out_path)}
    cfg_path = workdir / f"{tag}.config.json"
    cfg_path.write_text(json.dumps(job_cfg, indent=1))
    cmd = ["mpiexec", "-n", str(K), sys.executable, str(JOB), str(cfg_path)]
    print(f"[{tag}] {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    timed_out = False
    # own session: on timeout the whole group (mpiexec, its proxies, the ranks) is killed
    proc = subprocess.Popen(cmd, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=cfg.job_timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        output, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    for line in (output or "").splitlines():
        if line.startswith("["):
            print("    " + line, flush=True)
    res = json.loads(out_path.read_text()) if out_path.exists() else {"runs": []}
    res.update(K=K, scenario_name=scenario, scenario=job_cfg["scenario"], command=" ".join(cmd),
               job_wall_time=seconds, returncode=proc.returncode, timed_out=timed_out,
               output_tail=(output or "")[-4000:])
    if timed_out or proc.returncode != 0:
        print(f"[{tag}] job {'timed out' if timed_out else f'exited with {proc.returncode}'} after {seconds:.0f} s; "
              f"{len(res['runs'])} run(s) recorded. Output tail:\n{(output or '')[-2000:]}", flush=True)
    else:
        print(f"[{tag}] done in {seconds:.1f} s", flush=True)
    return res


# --------------------------------------------------------------------------- analysis
def first_reach(history, target):
    """Time to target: the first history record at or below target, its 'time' (training seconds,
    evaluation pauses excluded) and the same plus the evaluation pauses before it; None if never."""
    eval_total = 0.0
    for rec in history:
        eval_total += rec.get("eval_time") or 0.0
        if rec["objective"] is not None and rec["objective"] <= target:
            # the pause of this very record's evaluation came after the target was hit
            return {"time": rec["time"], "time_with_eval": rec["time"] + eval_total - (rec.get("eval_time") or 0.0),
                    "epoch": rec["epoch"], "objective": rec["objective"]}
    return None


def worker_rows(stats):
    """Per worker: rows/s, applied, dropped, and its own compute / delay / wait seconds per message."""
    rows = []
    for rank, w in sorted(stats["workers"].items(), key=lambda kv: int(kv[0])):
        own = w.get("worker") or {}
        m = max(own.get("messages", 0.0), 1.0)
        rows.append({"rank": int(rank), "rows_per_second": w["rows_per_second"], "applied": w["applied"],
                     "dropped": w["dropped"], "messages": own.get("messages"),
                     "compute_ms_per_message": 1e3 * own.get("compute_time", math.nan) / m,
                     "delay_ms_per_message": 1e3 * own.get("delay_time", math.nan) / m,
                     "wait_ms_per_message": 1e3 * own.get("wait_time", math.nan) / m})
    return rows


def summarize_job(job):
    """f*, the target, every method's time to target, and its ratio to sync's."""
    runs = [r for r in job["runs"] if r.get("history")]
    finals = [r["history"][-1]["objective"] for r in runs if r["history"][-1]["objective"] is not None]
    if not finals:
        return {"f_star": None, "target": None, "methods": {}}
    f_star = min(finals)
    target = f_star + TARGET_GAP * (LOG2 - f_star)
    methods = {}
    for r in job["runs"]:
        name = r["name"]
        if not r.get("history"):
            methods[name] = {"error": r.get("error") or "no history", "reached": None}
            continue
        s = r["mpi_stats"]
        reach = first_reach(r["history"], target)
        hist = r["history"]
        workers = worker_rows(s)
        methods[name] = {
            "settings": r["settings"], "error": r.get("error"), "reached": reach,
            "final_objective": hist[-1]["objective"], "best_objective": min(h["objective"] for h in hist
                                                                             if h["objective"] is not None),
            "train_time": hist[-1]["time"], "eval_time_total": sum(h.get("eval_time") or 0.0 for h in hist),
            "fit_wall_time": r["fit_wall_time"], "epochs_run": hist[-1]["epoch"],
            "staleness_mean": r["staleness"]["mean"], "staleness_max": r["staleness"]["max"],
            "staleness_histogram": r["staleness"]["histogram"], "staleness_bin_edges": r["staleness"]["bin_edges"],
            "applied": s["applied"], "dropped": s["dropped"], "messages_in": s["messages_in"],
            "messages_out": s["messages_out"], "mb_in": s["bytes_in"] / 1e6, "mb_out": s["bytes_out"] / 1e6,
            "workers": workers,
            "compute_ms_per_message": statistics.fmean(w["compute_ms_per_message"] for w in workers),
            "wait_ms_per_message": statistics.fmean(w["wait_ms_per_message"] for w in workers),
        }
    for name, m in methods.items():
        if name not in ASYNC_METHODS or "final_objective" not in m:
            continue
        m["ratios"] = {}
        for base in dict.fromkeys(("sync", BASELINE[name])):
            m["ratios"][base] = ratio(methods.get(base), m)
    return {"f_star": f_star, "target": target, "methods": methods}


def ratio(base, m):
    """time_base / time_m. With the baseline short of the target and the method reaching it, the
    baseline's whole training time gives a lower bound ('>'); with the method short, None."""
    if base is None or "final_objective" not in base:
        return None
    if m.get("reached") is None:
        return {"value": None, "bound": "not reached", "with_eval": None}
    t_m, t_m_eval = m["reached"]["time"], m["reached"]["time_with_eval"]
    if base.get("reached") is None:
        return {"value": base["train_time"] / t_m, "bound": ">",
                "with_eval": (base["train_time"] + base["eval_time_total"]) / t_m_eval}
    return {"value": base["reached"]["time"] / t_m, "bound": "=",
            "with_eval": base["reached"]["time_with_eval"] / t_m_eval}


# --------------------------------------------------------------------------- reports
def environment():
    cpu = cpu_model()
    try:
        mpi = subprocess.run(["mpiexec", "--version"], capture_output=True, text=True, timeout=20).stdout
        mpi = next((ln.split(":", 1)[1].strip() for ln in mpi.splitlines() if "Version" in ln), mpi.strip()[:80])
    except (OSError, subprocess.SubprocessError):
        mpi = None
    try:
        import mpi4py
        mpi4py_version = mpi4py.__version__
    except ImportError:
        mpi4py_version = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "numpy": np.__version__, "asyncopt": asyncopt.__version__,
            "mpi4py": mpi4py_version, "mpiexec": mpi, "git_commit": git_commit()}


def _ratio_text(r, with_verdict=False):
    if r is None:
        return "n/a"
    if r["value"] is None:
        return "not reached"
    s = f"{'> ' if r['bound'] == '>' else ''}{r['value']:.2f}"
    if with_verdict:
        s += " ✓" if r["value"] >= TARGET_RATIO else " ✗"
    return s


def _t(m):
    if m.get("reached") is None:
        return "not reached" if not m.get("error") else "error"
    return f"{m['reached']['time']:.2f} s (ep {m['reached']['epoch']:g})"


def delay_slowdowns(results):
    """Per async method of a delayed scenario: its time to target over its own time without delays
    (scenario 'none', same K), and the same for its same-optimizer sync baseline. Async tolerates
    the delays better than sync where the first is the smaller."""
    none = {j["K"]: j["summary"]["methods"] for j in results["jobs"] if j["scenario_name"] == "none"}

    def t(m):
        return None if not m or m.get("reached") is None else m["reached"]["time"]
    for job in results["jobs"]:
        if job["scenario_name"] == "none" or job["K"] not in none:
            continue
        ref, here = none[job["K"]], job["summary"]["methods"]
        for name in ASYNC_METHODS:
            m = here.get(name)
            if not m or "ratios" not in m:
                continue
            vals = {}
            for key, method in (("method", name), ("sync", BASELINE[name])):
                a, b = t(here.get(method)), t(ref.get(method))
                vals[key] = a / b if a is not None and b is not None else None
            m["delay_slowdown"] = vals


def headline_rows(results):
    rows = []
    for job in results["jobs"]:
        summ = job["summary"]
        for name in ASYNC_METHODS:
            m = summ["methods"].get(name)
            if m is None or "ratios" not in m:
                continue
            rows.append((job, name, m))
    return rows


def markdown(results, cfg):
    env, L = results["environment"], []
    L.append("# asyncopt MPI parameter server benchmark\n")
    L.append(f"- command: `{results['command']}`")
    L.append(f"- {results['started']}, git {str(env['git_commit'])[:10]}, {env['cpu']}, {env['cpu_count']} CPUs, "
             f"MPICH {env['mpiexec']}, mpi4py {env['mpi4py']}; load average {results['load_average_start'][0]:.2f} "
             f"before / {results['load_average_end'][0]:.2f} after; wall time {results['wall_time']:.0f} s")
    L.append(f"- mode: {'quick' if cfg.quick else 'full'}; problem: {problem_text(cfg)}; alpha = {cfg.alpha:g}, "
             f"fit_intercept = {cfg.fit_intercept}; batch_size = {cfg.batch_size}; {cfg.epochs} epochs per run; "
             f"history every {cfg.eval_every:g} epoch")
    L.append(f"- step sizes: SGD methods (sync, asgd, picky, dpsgd) {cfg.sgd_lr:g} {cfg.sgd_schedule}; AMSGrad "
             f"methods (apam, sync-amsgrad) {cfg.amsgrad_lr:g} {cfg.amsgrad_schedule}; picky_threshold "
             f"{'default (= SGD learning rate)' if cfg.picky_threshold is None else f'{cfg.picky_threshold:g}'}; "
             f"dpsgd n_threads=1, local_updates {'default (8)' if cfg.local_updates is None else cfg.local_updates}")
    L.append(f"- target = f* + {TARGET_GAP:g} × (log 2 − f*), f* = the lowest final objective over all runs of "
             f"the same (K, scenario); time = training seconds (`history_` time, evaluation pauses excluded) of the "
             f"first record at or below it. Ratio = time of sync / time of the method; target ≥ {TARGET_RATIO:g} "
             "(✓/✗). '> x': the baseline never reached the target, x uses its whole training time.\n")

    L.append("## Time-to-target ratios\n")
    L.append("'slowdown from the delays': time to target in this scenario / in scenario 'none' at the same K, "
             "for the method / for its same-optimizer sync baseline (when 'none' was run).\n")
    L.append("| K | scenario | method | time to target | × sync (SGD) | × sync, same optimizer | × sync (SGD), eval "
             "pauses counted | slowdown from the delays: method / sync | staleness mean / max | dropped |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for job, name, m in headline_rows(results):
        same = m["ratios"].get(BASELINE[name])
        with_eval = m["ratios"].get("sync")
        we = "n/a" if with_eval is None or with_eval["with_eval"] is None else \
            f"{'> ' if with_eval['bound'] == '>' else ''}{with_eval['with_eval']:.2f}"
        slow = m.get("delay_slowdown")
        slow = "—" if not slow else " / ".join("n/a" if v is None else f"{v:.2f}" for v in (slow["method"],
                                                                                          slow["sync"]))
        L.append(f"| {job['K']} | {job['scenario_name']} | {name} | {_t(m)} | "
                 f"{_ratio_text(m['ratios'].get('sync'), True)} | {_ratio_text(same, True)} | {we} | {slow} | "
                 f"{m['staleness_mean']:.2f} / {m['staleness_max']} | {m['dropped']} |")
    L.append("")

    for job in results["jobs"]:
        summ = job["summary"]
        L.append(f"## K = {job['K']} ({job['K'] - 1} workers), {job['scenario_name']}\n")
        L.append(f"{scenario_text(job['scenario'])}. Job: {job['job_wall_time']:.0f} s"
                 + (", **timed out**" if job["timed_out"] else "")
                 + (f", exit status {job['returncode']}" if job["returncode"] not in (0, None) else "")
                 + (f"; f* = {summ['f_star']:.6f}, target {summ['target']:.6f}." if summ["f_star"] else
                    "; no run finished."))
        L.append("")
        L.append("| method | time to target | final objective | train time | eval pauses | staleness mean / max "
                 "| applied | dropped | messages in | MB in / out | compute / wait per msg (ms) "
                 "| rows/s per worker (k) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, m in summ["methods"].items():
            if m.get("final_objective") is None:
                L.append(f"| {name} | error: {m.get('error')} |" + " |" * 10)
                continue
            rates = "/".join(f"{w['rows_per_second'] / 1e3:.0f}" for w in m["workers"])
            L.append(f"| {METHOD_TEXT[name]} | {_t(m)} | {m['final_objective']:.5f} | {m['train_time']:.2f} s | "
                     f"{m['eval_time_total']:.2f} s | {m['staleness_mean']:.2f} / {m['staleness_max']} | "
                     f"{m['applied']} | {m['dropped']} | {m['messages_in']} | {m['mb_in']:.1f} / {m['mb_out']:.1f} | "
                     f"{m['compute_ms_per_message']:.2f} / {m['wait_ms_per_message']:.2f} | {rates} |")
        L.append("")
    if results.get("notes"):
        L.append("## Notes\n")
        L.extend(f"- {n}" for n in results["notes"])
        L.append("")
    return "\n".join(L)


def plot(results, path):
    """Objective minus f* (log scale) against training time, one panel per (K, scenario)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"plot skipped: matplotlib does not import ({e})"
    jobs = [j for j in results["jobs"] if j["summary"]["f_star"] is not None]
    if not jobs:
        return "plot skipped: no job finished a run"
    ks = sorted({j["K"] for j in jobs})
    scen = list(dict.fromkeys(j["scenario_name"] for j in jobs))
    fig, axes = plt.subplots(len(scen), len(ks), figsize=(5 * len(ks), 3.8 * len(scen)), squeeze=False)
    floor = 1e-5
    for job in jobs:
        ax = axes[scen.index(job["scenario_name"])][ks.index(job["K"])]
        f_star = job["summary"]["f_star"]
        for r in job["runs"]:
            if not r.get("history"):
                continue
            t = [0.0] + [h["time"] for h in r["history"]]
            gap = [LOG2 - f_star] + [max(h["objective"] - f_star, floor) if h["objective"] is not None else math.nan
                                     for h in r["history"]]
            style = "--" if r["name"].startswith("sync") else "-"
            ax.plot(t, gap, style, linewidth=1.2, label=r["name"])
        ax.axhline(job["summary"]["target"] - f_star, color="gray", linestyle=":", linewidth=1, label="target")
        ax.set_yscale("log")
        ax.set_ylim(floor, max(1.0, 2 * (LOG2 - f_star)))
        ax.set_xlabel("training time (s)")
        ax.set_ylabel("objective − f*")
        ax.set_title(f"K={job['K']}, {job['scenario_name']}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def notes(results):
    out = []
    for job in results["jobs"]:
        tag = f"K={job['K']} {job['scenario_name']}"
        if job["timed_out"]:
            out.append(f"{tag}: the job hit the {results['settings']['job_timeout']:g} s limit; runs after the last "
                       "recorded one are missing.")
        elif job["returncode"] not in (0, None):
            out.append(f"{tag}: mpiexec exited with status {job['returncode']}.")
        for name, m in job["summary"]["methods"].items():
            if m.get("error"):
                out.append(f"{tag}: {name}: {m['error']}")
            elif m.get("reached") is None:
                out.append(f"{tag}: {name} did not reach the target (best {m['best_objective']:.5f}, final "
                           f"{m['final_objective']:.5f}, target {job['summary']['target']:.5f}).")
    return out


# --------------------------------------------------------------------------- main
def finish(results, cfg):
    """Summaries that span jobs, notes, then the report, the JSON and the plot."""
    delay_slowdowns(results)
    results["notes"] = notes(results)
    png_note = plot(results, cfg.out / "distributed.png")
    if png_note:
        results["notes"].append(png_note)
    (cfg.out / "distributed.md").write_text(markdown(results, cfg) + "\n")
    with open(cfg.out / "distributed.json", "w") as f:
        json.dump(jsonable(results), f, indent=1)
    print(f"wrote {cfg.out / 'distributed.json'}, {cfg.out / 'distributed.md'}"
          + ("" if png_note else f", {cfg.out / 'distributed.png'}") + f" ({results['wall_time']:.0f} s run)",
          flush=True)


def rerender(path, out):
    results = json.loads(Path(path).read_text())
    settings = dict(results["settings"], out=Path(out), data_dir=Path(results["settings"]["data_dir"]))
    cfg = Settings(**settings)
    out.mkdir(parents=True, exist_ok=True)
    for job in results["jobs"]:
        job["summary"] = summarize_job(job)
    finish(results, cfg)
    return 0


def main(argv=None):
    cfg = parse_args(argv)
    if isinstance(cfg, tuple):
        return rerender(*cfg)
    missing = [what for what, ok in (("mpiexec on PATH", shutil.which("mpiexec")),
                                     ("mpi4py", importlib.util.find_spec("mpi4py"))) if not ok]
    if missing:
        print(f"bench_distributed: needs {' and '.join(missing)} (pip install 'asyncopt[mpi]')", file=sys.stderr)
        return 2
    cfg.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = {"command": " ".join(["python", os.path.relpath(sys.argv[0]) if sys.argv[0] else "bench_distributed.py"]
                                   + sys.argv[1:]),
               "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "load_average_start": os.getloadavg(), "environment": environment(), "settings": vars(cfg),
               "problem": problem_spec(cfg), "problem_text": problem_text(cfg),
               "target": {"gap": TARGET_GAP, "ratio": TARGET_RATIO}, "jobs": []}
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        for scenario in cfg.scenarios:
            for K in cfg.ks:
                job = run_job(K, scenario, cfg, Path(tmp))
                job["summary"] = summarize_job(job)
                results["jobs"].append(job)
                for name in ASYNC_METHODS:
                    m = job["summary"]["methods"].get(name)
                    if m and "ratios" in m:
                        print(f"    {name:<6} time to target {_t(m):<24} × sync {_ratio_text(m['ratios'].get('sync'))}"
                              f"  × same-optimizer sync {_ratio_text(m['ratios'].get(BASELINE[name]))}"
                              f"  staleness {m['staleness_mean']:.2f}/{m['staleness_max']}", flush=True)
    results["load_average_end"] = os.getloadavg()
    results["wall_time"] = time.perf_counter() - start
    finish(results, cfg)
    # a method missing the target is a result; a job that crashed or hung is not
    broken = [f"K={j['K']} {j['scenario_name']}" for j in results["jobs"] if j["timed_out"] or j["returncode"] != 0]
    if broken:
        print(f"bench_distributed: job(s) {', '.join(broken)} did not end cleanly (see the notes)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
