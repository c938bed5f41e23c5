"""Every registered update rule side by side: fit wall time and the quality reached, one run.

For each data set, each rule of ``asyncopt.optim`` and each thread count, the estimator is fitted
with the rule's defaults (its default step size and schedule) for exactly ``--epochs`` epochs, the
repeats interleaved (rule A, rule B, ..., then again) so that a busy spell of the shared machine
hits every rule alike. Reported: median ``fit`` wall time, its ratio to SGD's in the same run, the
median epoch time, and the test log-loss against the L-BFGS optimum of the same objective
(``mean log-loss + alpha/2 ||w||^2``), the quality a user of the defaults gets.

    python bench/bench_rules.py                    # a9a and news20, threads 1,2, 10 epochs, 3 repeats
    python bench/bench_rules.py --quick            # CI smoke: a9a, 2 epochs, 1 repeat
    python bench/bench_rules.py --out /tmp/res --sets news20 --threads 2

Writes ``rules.json`` (every number) and ``rules.md`` (the table) to ``--out`` (default
bench/results).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import asyncopt
from asyncopt import optim
from asyncopt.datasets import load_libsvm
from benchenv import cpu_model, git_commit, jsonable

HERE = Path(__file__).resolve().parent
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {"a9a": ("a9a.xz", "a9a.t.xz"),
        "news20": ("news20bydate_tfidf.binary.train.xz", "news20bydate_tfidf.binary.test.xz")}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a9a only, 2 epochs, 1 repeat (CI smoke)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--sets", default=None, help=f"comma-separated subset of {','.join(SETS)}")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per fit (default 10, quick 2)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 3, quick 1)")
    ap.add_argument("--alpha", type=float, default=1e-4)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = ap.parse_args(argv)
    args.sets = args.sets.split(",") if args.sets else (["a9a"] if args.quick else list(SETS))
    unknown = set(args.sets) - set(SETS)
    if unknown:
        ap.error(f"unknown sets {sorted(unknown)}; choose from {sorted(SETS)}")
    args.threads = [int(t) for t in args.threads.split(",")]
    args.epochs = args.epochs or (2 if args.quick else 10)
    args.repeats = args.repeats or (1 if args.quick else 3)
    return args


def mean_log_loss(X, y, coef, intercept):
    return float(np.mean(np.logaddexp(0.0, -y * (X @ coef + intercept))))


def optimum_test_loss(X, y, Xt, yt, alpha):
    """Test log-loss of the minimiser of mean log-loss + alpha/2 ||w||^2 (L-BFGS; scikit-learn's C sums
    the losses, so C = 1 / (alpha n))."""
    sk = SkLogisticRegression(C=1.0 / (alpha * X.shape[0]), tol=1e-9, max_iter=10_000).fit(X, y)
    return mean_log_loss(Xt, np.where(yt == sk.classes_[1], 1.0, -1.0), sk.coef_[0], sk.intercept_[0])


def main(argv=None):
    args = parse_args(argv)
    rules = list(optim.names())
    rows, started = [], time.time()
    for name in args.sets:
        train, test = SETS[name]
        X, y = load_libsvm(args.data_dir / "libsvm" / train)
        Xt, yt = load_libsvm(args.data_dir / "libsvm" / test, n_features=X.shape[1])
        best = optimum_test_loss(X, y, Xt, yt, args.alpha)
        print(f"{name}: {X.shape[0]} rows x {X.shape[1]} features, optimum test log-loss {best:.5f}", flush=True)
        for threads in args.threads:
            runs = {r: [] for r in rules}
            for rep in range(args.repeats):
                for rule in rules:  # interleaved: every rule sees the same spells of load
                    clf = asyncopt.LogisticRegression(optimizer=rule, alpha=args.alpha, epochs=args.epochs, tol=None,
                                                      n_threads=threads, random_state=rep)
                    t = time.perf_counter()
                    clf.fit(X, y)
                    wall = time.perf_counter() - t
                    runs[rule].append({"fit_wall": wall, "epoch_time": float(np.median(clf.history_.column(
                        "epoch_time"))), "test_loss": clf.log_loss(Xt, yt)})
            sgd_wall = statistics.median(r["fit_wall"] for r in runs["sgd"])
            for rule in rules:
                wall = statistics.median(r["fit_wall"] for r in runs[rule])
                test = statistics.median(r["test_loss"] for r in runs[rule])
                row = {"set": name, "threads": threads, "rule": rule,
                       "learning_rate": optim.get(rule).resolved(args.alpha).learning_rate,
                       "fit_wall": wall, "fit_vs_sgd": wall / sgd_wall,
                       "epoch_time": statistics.median(r["epoch_time"] for r in runs[rule]),
                       "test_loss": test, "test_vs_optimum": test / best - 1, "runs": runs[rule]}
                rows.append(row)
                print(f"  {threads} thread(s) {rule:8s} fit {wall:7.3f} s ({row['fit_vs_sgd']:5.2f}x SGD)  "
                      f"epoch {row['epoch_time'] * 1e3:7.1f} ms  test log-loss {test:.5f} "
                      f"({row['test_vs_optimum']:+.2%} vs optimum)", flush=True)
    env = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "git": git_commit(),
           "cpu": cpu_model(), "build": asyncopt.build_info(), "wall_s": time.time() - started}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rules.json").write_text(json.dumps(jsonable({"args": vars(args), "env": env, "rows": rows}),
                                                    indent=2))
    lines = ["| set | threads | rule | default lr | fit wall s | fit / SGD | epoch ms | test log-loss vs optimum |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['threads']} | {r['rule']} | {r['learning_rate']:g} | {r['fit_wall']:.3f} | "
                     f"{r['fit_vs_sgd']:.2f} | {r['epoch_time'] * 1e3:.1f} | {r['test_vs_optimum']:+.2%} |")
    lines.append(f"\n{args.epochs} epochs, defaults of each rule, alpha={args.alpha}, median of {args.repeats} "
                 f"interleaved repeat(s); {env['date']}, git {env['git']}, {env['cpu']}.")
    (args.out / "rules.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'rules.md'}")


if __name__ == "__main__":
    sys.exit(main())
