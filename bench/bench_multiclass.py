#!/usr/bin/env python3
"""Multiclass logistic regression against scikit-learn, timed as a user times it: ``fit`` wall time.

    python bench/bench_multiclass.py [--quick] [--out DIR] [--repeats R] [--sets 20news,synthetic]

On each set, with every model at its defaults except the L2 strength, which is the same objective
for all (alpha = 1e-4; scikit-learn's ``LogisticRegression`` takes C = 1 / (alpha n)):

- ``asyncopt.LogisticRegression()`` (multinomial) at 1 and 2 threads, and ``multi_class="ovr"``
  at 2 threads;
- ``SGDClassifier(loss="log_loss")`` (one-vs-rest, its ``n_jobs`` parallel over the classes) with
  n_jobs 1 and 2;
- ``LogisticRegression(solver="saga")`` (multinomial, scikit-learn's stochastic solver for sparse
  data);
- the L-BFGS multinomial optimum of the objective (once, untimed in the ratios): the test
  log-loss a converged solver reaches.

All in one process that has fitted scikit-learn models first, the runs interleaved so every ratio
compares figures measured side by side; scikit-learn gets float64 CSR converted before its clock
starts, asyncopt the float32 matrix. Writes DIR/multiclass.json (every raw number) and
DIR/multiclass.md (the table). bench/README.md says how to read it.
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import statistics
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import log_loss

import asyncopt
from asyncopt.datasets import load_uci_bow, make_sparse_classification
from benchenv import cpu_model, git_commit, jsonable

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALPHA = 1e-4
ALL_SETS = ("20news", "synthetic")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run: the synthetic set only, smaller, 1 repeat")
    p.add_argument("--out", default="bench-results", help="output folder (default bench-results)")
    p.add_argument("--repeats", type=int, help="interleaved repeats per set (default 3, quick 1)")
    p.add_argument("--sets", help=f"comma-separated among {','.join(ALL_SETS)} (default all; quick: synthetic)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="the shared data folder")
    return p.parse_args(argv)


def twenty_newsgroups(data_dir):
    """20 newsgroups bydate as l2-normalised tf-idf, the official split, 20 group names as labels."""
    root = Path(data_dir) / "bow" / "20news"
    X, _ = load_uci_bow(root / "docword.20news.txt.gz")
    with gzip.open(root / "docs.20news.tsv.gz", "rt") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    split = np.array([r[1] for r in rows])
    group = np.array([r[2] for r in rows])
    X = TfidfTransformer().fit_transform(X).tocsr().astype(np.float32)
    tr, te = split == "train", split == "test"
    return X[tr], group[tr], X[te], group[te]


def synthetic(quick):
    n = 20000 if quick else 100000
    X, y = make_sparse_classification(n_samples=n, n_features=2 ** 16, nnz_per_row=40, n_classes=10, signal=8.0)
    cut = n * 3 // 4
    return X[:cut], y[:cut], X[cut:], y[cut:]


def contenders(n_train):
    """name -> (make estimator, wants float64)."""
    return {
        "asyncopt 1 thread": (lambda: asyncopt.LogisticRegression(alpha=ALPHA, n_threads=1), False),
        "asyncopt 2 threads": (lambda: asyncopt.LogisticRegression(alpha=ALPHA, n_threads=2), False),
        "asyncopt ovr 2 threads": (lambda: asyncopt.LogisticRegression(alpha=ALPHA, n_threads=2, multi_class="ovr"),
                                   False),
        "SGDClassifier n_jobs=1": (lambda: SGDClassifier(loss="log_loss", alpha=ALPHA, n_jobs=1), True),
        "SGDClassifier n_jobs=2": (lambda: SGDClassifier(loss="log_loss", alpha=ALPHA, n_jobs=2), True),
        "sklearn saga": (lambda: SkLogisticRegression(solver="saga", C=1.0 / (ALPHA * n_train)), True),
    }


def run_set(name, data, repeats):
    Xtr, ytr, Xte, yte = data
    X64, Xte64 = Xtr.astype(np.float64), Xte.astype(np.float64)
    t0 = time.perf_counter()
    opt = SkLogisticRegression(C=1.0 / (ALPHA * Xtr.shape[0]), max_iter=1000, tol=1e-7).fit(X64, ytr)
    optimum = {"test_log_loss": log_loss(yte, opt.predict_proba(Xte64), labels=opt.classes_),
               "accuracy": opt.score(Xte64, yte), "seconds": time.perf_counter() - t0}
    runs = {k: [] for k in contenders(Xtr.shape[0])}
    for r in range(repeats):  # interleaved: every contender once per round
        for label, (make, f64) in contenders(Xtr.shape[0]).items():
            est = make()
            Xa, Xb = (X64, Xte64) if f64 else (Xtr, Xte)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                t = time.perf_counter()
                est.fit(Xa, ytr)
                seconds = time.perf_counter() - t
            p = est.predict_proba(Xb)
            runs[label].append({"fit_seconds": seconds, "test_log_loss": log_loss(yte, p, labels=est.classes_),
                                "accuracy": float(np.mean(est.classes_[np.argmax(p, axis=1)] == yte)),
                                "epochs": int(np.max(getattr(est, "n_iter_", 0)))})
    summary = {}
    for label, rs in runs.items():
        summary[label] = {k: statistics.median(r[k] for r in rs) for k in ("fit_seconds", "test_log_loss", "accuracy",
                                                                           "epochs")}
    sgd = summary["SGDClassifier n_jobs=1"]
    for label, s in summary.items():
        s["fit_vs_sgdclassifier"] = s["fit_seconds"] / sgd["fit_seconds"]
        s["loss_vs_optimum"] = s["test_log_loss"] / optimum["test_log_loss"]
    return {"set": name, "train": list(Xtr.shape), "test": list(Xte.shape), "classes": int(len(np.unique(ytr))),
            "nnz": int(Xtr.nnz), "optimum": optimum, "runs": runs, "summary": summary}


def markdown(report):
    lines = [f"# Multiclass: fit wall time and test log-loss (alpha {ALPHA:g})", "",
             f"git {report['git']}, {report['cpu']}, {report['date']}", ""]
    for res in report["sets"]:
        o = res["optimum"]
        lines += [f"## {res['set']}: {res['train'][0]} x {res['train'][1]} train, {res['test'][0]} test, "
                  f"{res['classes']} classes; L-BFGS optimum test log-loss {o['test_log_loss']:.4f} "
                  f"(accuracy {o['accuracy']:.4f}, {o['seconds']:.1f} s)", "",
                  "| model | fit s | fit / SGDClassifier(n_jobs=1) | test log-loss | / optimum | accuracy | epochs |",
                  "|---|---|---|---|---|---|---|"]
        for label, s in res["summary"].items():
            lines.append(f"| {label} | {s['fit_seconds']:.3f} | {s['fit_vs_sgdclassifier']:.2f} | "
                         f"{s['test_log_loss']:.4f} | {s['loss_vs_optimum']:.4f} | {s['accuracy']:.4f} | "
                         f"{s['epochs']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    sets = args.sets.split(",") if args.sets else (["synthetic"] if args.quick else list(ALL_SETS))
    unknown = set(sets) - set(ALL_SETS)
    if unknown:
        raise SystemExit(f"unknown sets {sorted(unknown)}; choose among {ALL_SETS}")
    # a user's process: scikit-learn and numpy's BLAS already used
    warm = np.random.default_rng(0).normal(size=(200, 5))
    SkLogisticRegression().fit(warm, warm[:, 0] > 0)
    results = []
    for name in sets:
        data = twenty_newsgroups(args.data_dir) if name == "20news" else synthetic(args.quick)
        results.append(run_set(name, data, repeats))
        print(markdown({"git": "", "cpu": "", "date": "", "sets": results[-1:]}), flush=True)
    report = {"git": git_commit(), "cpu": cpu_model(), "python": platform.python_version(),
              "sklearn": sklearn.__version__, "asyncopt": asyncopt.__version__,
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "repeats": repeats, "sets": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multiclass.json").write_text(json.dumps(jsonable(report), indent=1))
    (out / "multiclass.md").write_text(markdown(report))
    print(f"wrote {out / 'multiclass.json'} and {out / 'multiclass.md'}")


if __name__ == "__main__":
    main()
