#!/usr/bin/env python3
"""Efficient-Adam's traffic: bytes each way and rounds to the 1% target, against uncompressed Adam.

    python bench/bench_efficient_adam.py [--quick] [--out DIR] [--ranks K] [--sets a9a,news20]
                                         [--from-json DIR/efficient_adam.json]

For each data set, one ``mpiexec -n K python bench/bench_efficient_adam.py --job CONFIG`` job trains
every variant one after another (mpiexec's start-up is the slow part); rank 0 writes each run's
history and message statistics. The driver then finds, per run, the first history record whose
test log-loss is within 1% of the L-BFGS optimum's, and reports the rounds and the bytes each way
(the lengths of the buffers MPI sent, headers included) up to it, with their ratios to

- (a) ``dense``: full-precision synchronous Adam with dense float64 messages both ways
  (method 'efficient-adam' with identity quantizers and moments='server': Adam on the averaged
  gradient), and
- (b) ``sparse``: the best uncompressed encoding, method 'sync' with Adam: the gradient as sparse
  index/value pairs up, the values of the next mini-batch's features down (or dense, whichever is
  smaller, message by message).

Also the time to target had each rank a 1 or 10 Gbit/s link (modelled from the measured
training time and the busiest rank's bytes; see modelled_time), so one can see when compression
pays. Sets: a9a, news20 and a synthetic set of 2^20 features (make_sparse_classification, 50k
training and 12.5k test rows).

Writes DIR/efficient_adam.json (every raw number) and DIR/efficient_adam.md (the table).
bench/README.md says what is measured and how to read it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = HERE.parents[0].parent / "shared" / "data" / "libsvm"
ALPHA = 1e-4
TARGET = 0.01  # test log-loss within 1% of the optimum's
# Modelled links (bit/s) for the time to target: the measured training time plus what the busiest
# rank's bytes would take on a link of this speed (transmission only: no latency, no overlap).
LINKS = {"1 Gbit/s": 1e9, "10 Gbit/s": 1e10}

SETS = {
    "a9a": {"train": "a9a.xz", "test": "a9a.t.xz", "learning_rate": 0.01, "batch_size": 32, "epochs": 3,
            "quick_epochs": 1},
    "news20": {"train": "news20bydate_tfidf.binary.train.xz", "test": "news20bydate_tfidf.binary.test.xz",
               "learning_rate": 0.01, "batch_size": 32, "epochs": 8, "quick_epochs": 1},
    # generated, not read: train/test name the generator's rows
    "synthetic": {"train": "synthetic:50000", "test": "synthetic:12500", "learning_rate": 0.01, "batch_size": 32,
                  "epochs": 3, "quick_epochs": 1},
}
SYNTHETIC_FEATURES = 2 ** 20


def load_pair(train, test):
    """(X, y, X_test, y_test): two LIBSVM files, or the synthetic set's first and last rows."""
    from asyncopt.datasets import load_libsvm, make_sparse_classification

    if train.startswith("synthetic:"):
        n, m = int(train.split(":")[1]), int(test.split(":")[1])
        X, y = make_sparse_classification(n_samples=n + m, n_features=SYNTHETIC_FEATURES, random_state=0)
        return X[:n], y[:n], X[n:], y[n:]
    X, y = load_libsvm(train)
    Xt, yt = load_libsvm(test, n_features=X.shape[1])
    return X, y, Xt, yt

# name -> (method, worker quantizer, server quantizer, moments)
VARIANTS = {
    "sparse": ("sync", None, None, None),
    "dense": ("efficient-adam", "identity", "identity", "server"),
    "identity (worker moments)": ("efficient-adam", "identity", "identity", "worker"),
    "sign:sign": ("efficient-adam", "sign", "sign", "worker"),
    "ternary:ternary": ("efficient-adam", "ternary", "ternary", "worker"),
    "qsgd8:qsgd8": ("efficient-adam", "qsgd8", "qsgd8", "worker"),
    "sign:sign (server moments)": ("efficient-adam", "sign", "sign", "server"),
    "sign:sign (sharded)": ("efficient-adam", "sign", "sign", "worker", "sharded"),
}
QUICK_VARIANTS = ("sparse", "dense", "sign:sign")


# --------------------------------------------------------------------------- one MPI job (every rank)
def job(config_path):
    from mpi4py import MPI

    import asyncopt

    cfg = json.loads(Path(config_path).read_text())
    X, y, Xt, yt = load_pair(cfg["train"], cfg["test"])
    rank = MPI.COMM_WORLD.Get_rank()
    results = []
    for run in cfg["runs"]:
        method, wq, sq, moments, *topology = run["variant"]
        mpi = {"method": method, "timeout": 120, "eval_every": cfg["eval_every"]}
        if method == "efficient-adam":
            mpi.update(worker_compressor=wq, server_compressor=sq, moments=moments,
                       topology=topology[0] if topology else "central")
        clf = asyncopt.LogisticRegression(optimizer="adam", learning_rate=cfg["learning_rate"], alpha=ALPHA,
                                          batch_size=cfg["batch_size"], epochs=cfg["epochs"], tol=None,
                                          random_state=0, backend="mpi", mpi=mpi)
        t0 = time.perf_counter()
        clf.fit(X, y, eval_set=(Xt, yt))
        if rank == 0:
            stats = {k: v for k, v in clf.mpi_stats_.items() if k != "workers"}
            # what each worker received (its own counters): with topology='sharded' also from its peers
            stats["worker_received"] = {r: w.get("worker", {}).get("bytes_received", w["bytes_out"])
                                        for r, w in clf.mpi_stats_["workers"].items()}
            results.append({"name": run["name"], "history": list(clf.history_), "stats": stats,
                            "wall": time.perf_counter() - t0})
            Path(cfg["out"]).write_text(json.dumps(results, default=float))
        MPI.COMM_WORLD.Barrier()


# --------------------------------------------------------------------------- the driver
def optimum(train, test):
    from sklearn.linear_model import LogisticRegression as SklearnLR

    X, y, Xt, yt = load_pair(train, test)
    sk = SklearnLR(C=1.0 / (ALPHA * X.shape[0]), tol=1e-9, max_iter=10_000).fit(X.astype(np.float64), y)
    z = Xt @ sk.coef_[0] + sk.intercept_[0]
    ypm = np.where(yt == sk.classes_[1], 1.0, -1.0)
    return float(np.mean(np.logaddexp(0.0, -ypm * z))), X.shape


def to_target(history, best):
    """(rounds, bytes in, bytes out, test loss, training time) at the first record within TARGET of
    best, or None. 'in' is what the workers sent (with topology='sharded' to each other too), 'out'
    what rank 0 sent."""
    bytes_in = bytes_out = 0
    for rec in history:
        bytes_in += rec["bytes_in"] + rec.get("peer_bytes", 0)
        bytes_out += rec["bytes_out"]
        if rec["val_loss"] <= best * (1 + TARGET):
            return {"rounds": int(rec["updates"]), "bytes_in": bytes_in, "bytes_out": bytes_out,
                    "test_loss": rec["val_loss"], "epoch": rec["epoch"], "time": float(rec["time"])}
    return None


def busiest_rank_bytes(run):
    """Bytes through the busiest rank up to the target: the central server receives every
    worker's message and sends every reply; with topology='sharded' a rank's share is the most any
    one rank received per round, sent about as much again, times the rounds."""
    t = run["target"]
    if run.get("sharded"):
        return 2 * run["per_round"]["max_into_one_rank"] * t["rounds"]
    return t["bytes_in"] + t["bytes_out"]


def modelled_time(run, bits_per_second):
    """Time to target had every rank's link this speed: measured training time (on one machine, so
    with next to no transmission time) plus the busiest rank's bytes over the link."""
    return run["target"]["time"] + 8 * busiest_rank_bytes(run) / bits_per_second


def run_set(name, spec, args, mpiexec, out_dir):
    data = Path(args.data_dir)
    if spec["train"].startswith("synthetic:"):
        train, test = spec["train"], spec["test"]
    else:
        train, test = str(data / spec["train"]), str(data / spec["test"])
    best, shape = optimum(train, test)
    variants = QUICK_VARIANTS if args.quick else tuple(VARIANTS)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        cfg = {"train": train, "test": test, "learning_rate": spec["learning_rate"], "batch_size": spec["batch_size"],
               "epochs": spec["quick_epochs"] if args.quick else spec["epochs"], "eval_every": 0.25 if not args.quick
               else 0.5, "out": str(out), "runs": [{"name": v, "variant": VARIANTS[v]} for v in variants]}
        (Path(tmp) / "cfg.json").write_text(json.dumps(cfg))
        cmd = [mpiexec, "-n", str(args.ranks), sys.executable, str(Path(__file__).resolve()), "--job",
               str(Path(tmp) / "cfg.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        if proc.returncode != 0:
            raise SystemExit(f"the MPI job for {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        runs = json.loads(out.read_text())
    for r in runs:
        r["target"] = to_target(r["history"], best)
        s = r["stats"]
        rounds = max(int(s.get("rounds", s["versions"])), 1)
        r["per_round"] = {"bytes_in": (s["bytes_in"] + s.get("peer_bytes", 0)) / rounds,
                          "bytes_out": s["bytes_out"] / rounds,
                          # the most any one rank received: the central server's N messages, or a worker's share
                          "max_into_one_rank": max([s["bytes_in"], *s["worker_received"].values()]) / rounds}
        r["final_test_loss"] = r["history"][-1]["val_loss"]
        r["sharded"] = "sharded" in r["name"]
        if r["target"] is not None:
            r["modelled_time"] = {link: modelled_time(r, bps) for link, bps in LINKS.items()}
    return {"set": name, "shape": list(shape), "optimum_test_loss": best, "settings": spec, "runs": runs}


def ratio(a, b):
    return a / b if a and b else None


def markdown(report):
    lines = []
    for ds in report["sets"]:
        runs = {r["name"]: r for r in ds["runs"]}
        lines += [f"### {ds['set']}: {ds['shape'][0]} rows x {ds['shape'][1]} features, {report['ranks'] - 1} workers, "
                  f"batch {ds['settings']['batch_size']} per worker, Adam lr {ds['settings']['learning_rate']}; "
                  f"optimum test log-loss {ds['optimum_test_loss']:.5f}", "",
                  "| variant | final test loss vs optimum | rounds to 1% | bytes up / down to 1% | "
                  "x fewer than dense (up / down) | x fewer than sparse (up / down) | rounds vs dense | "
                  "bytes per round up / down | most into one rank per round | "
                  + " | ".join(f"time to 1% at {link}" for link in LINKS) + " |",
                  "|---|---|---|---|---|---|---|---|---|" + "---|" * len(LINKS)]
        dense, sparse = (runs.get(k, {}).get("target") for k in ("dense", "sparse"))
        for name, r in runs.items():
            t = r["target"]
            gap = f"{100 * (r['final_test_loss'] / ds['optimum_test_loss'] - 1):+.2f}%"
            pr = (f"{r['per_round']['bytes_in']:.0f} / {r['per_round']['bytes_out']:.0f} | "
                  f"{r['per_round']['max_into_one_rank']:.0f}")
            if t is None:
                lines.append(f"| {name} | {gap} | not reached | | | | | {pr} |" + " |" * len(LINKS))
                continue

            def fewer(base):
                if base is None:
                    return ""
                return f"{ratio(base['bytes_in'], t['bytes_in']):.1f} / {ratio(base['bytes_out'], t['bytes_out']):.1f}"

            rr = f"{t['rounds'] / dense['rounds']:.2f}" if dense else ""
            times = " | ".join(f"{r['modelled_time'][link]:.2f} s" for link in LINKS)
            lines.append(f"| {name} | {gap} | {t['rounds']} | {t['bytes_in']:,} / {t['bytes_out']:,} | "
                         f"{fewer(dense)} | {fewer(sparse)} | {rr} | {pr} | {times} |")
        lines += ["", "Time to 1% at a link speed: the measured training time to the target (ranks on one "
                  "machine) plus the busiest rank's bytes to the target over that link (the central server's "
                  "in and out; a sharded rank's share), transmission only.", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="a9a only, 1 epoch, 3 variants (the CI smoke run)")
    p.add_argument("--out", default="bench-results")
    p.add_argument("--ranks", type=int, default=3)
    p.add_argument("--sets", default=None, help="comma-separated among " + ",".join(SETS))
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--from-json", help="rewrite the markdown from an earlier run's JSON")
    args = p.parse_args(argv)
    if args.job:
        return job(args.job)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        report = json.loads(Path(args.from_json).read_text())
    else:
        mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                                 os.environ.get("PATH", "")]))
        if mpiexec is None:
            raise SystemExit("no mpiexec: pip install 'asyncopt[mpi]'")
        sets = args.sets.split(",") if args.sets else (["a9a"] if args.quick else list(SETS))
        report = {"ranks": args.ranks, "quick": args.quick, "sets": []}
        for name in sets:
            t0 = time.perf_counter()
            report["sets"].append(run_set(name, SETS[name], args, mpiexec, out_dir))
            print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
        (out_dir / "efficient_adam.json").write_text(json.dumps(report, indent=1, default=float))
    md = markdown(report)
    (out_dir / "efficient_adam.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
