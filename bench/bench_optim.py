#!/usr/bin/env python3
"""asyncopt's optimizers on the user's own arrays (``rule.attach(W)``) against torch's sparse
optimizers, on an embedding-bag logistic model.

    python bench/bench_optim.py [--quick] [--out DIR] [--repeats R]

The model: each sample is a bag of ``BAG`` ids (Zipf-distributed, as token and item ids are); its
score is ``c . (sum of the bag's rows of E)`` with E a 2^20 x 16 float32 table (zeros at the start)
and c a fixed vector; the loss is the mean log-loss over a mini-batch of ``BATCH`` samples, one
pass over the training samples. Three trainers, each on one thread (``torch.set_num_threads(1)``):

- asyncopt: the gradient in numpy (the batch's distinct rows, ``np.unique`` and ``np.bincount``),
  then ``opt.catch_up(rows)`` (the lazy rules' idle rows drift) before the forward pass and
  ``opt.step(grad, rows=rows)``; ``Adam`` and ``AdaGrad`` with the same constants as torch's;
- torch: ``nn.EmbeddingBag(mode="sum", sparse=True)``, autograd, and ``optim.SparseAdam`` or
  ``optim.Adagrad`` (which takes sparse gradients);
- asyncopt with two Python threads calling ``step`` on one table (Hogwild!), for the scaling.

With ``--grid``, each one-thread trainer also runs at every step of a grid, for its held-out loss:
the rules are different algorithms (exact lazy Adam against SparseAdam), and one step size does
not suit both.

Reported per trainer: the optimizer's share of the time (the calls that update the table and its
statistics: asyncopt's catch_up + step, torch's ``optimizer.step``) as table rows updated per
second, the whole pass's wall time, and the held-out log-loss after the pass. The ratio the issue
sets a target on (>= 2x) is the optimizer throughput at one thread, asyncopt / torch.

Exactness is measured, not claimed: on a small table the same gradient sequence is applied by each
sparse optimizer and by dense Adam / Adagrad (every row steps every time, zero gradient where the
batch has none); the table reports max |W_sparse - W_dense| / max |W_dense|. asyncopt's lazy Adam is
exact (its idle rows take the zero-gradient steps in closed form); SparseAdam skips them (its m and
v of an idle row neither decay nor move the row), which is what it trades for speed.

Writes DIR/optim.json (every raw number) and DIR/optim.md (the table). Needs torch for the
comparison; without it only asyncopt's rows are measured.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sklearn  # noqa: F401  (a user's process: scikit-learn imported and used)
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import asyncopt
from benchenv import cpu_model, git_commit, jsonable

try:
    import torch
except ImportError:  # the comparison needs torch; asyncopt's own rows are measured without it
    torch = None

DIM, BAG, BATCH = 16, 8, 128
LR, EPS, BETAS = 0.05, 1e-8, (0.9, 0.999)
GRID = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1)  # --grid: the steps each trainer's loss is measured at


def make_data(n_ids, n_train, n_test, seed=0):
    """Bags of Zipf(1.1)-distributed ids over n_ids rows, labels from a planted table."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(10, n_ids + 10) ** 1.1
    cdf = np.cumsum(p / p.sum())
    perm = rng.permutation(n_ids)  # frequent ids scattered over the table, not its first rows
    bags = perm[np.minimum(np.searchsorted(cdf, rng.random((n_train + n_test, BAG))), n_ids - 1)].astype(np.int64)
    c = (rng.normal(size=DIM) / np.sqrt(DIM)).astype(np.float32)
    planted = rng.normal(size=(n_ids, DIM)).astype(np.float32)
    z = planted[bags].sum(axis=1) @ c
    y = np.where(rng.random(len(z)) < 1 / (1 + np.exp(-z)), 1.0, 0.0)
    return bags[:n_train], y[:n_train], bags[n_train:], y[n_train:], c


def log_loss(E, bags, y, c):
    z = E[bags].sum(axis=1).astype(np.float64) @ c
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def batches(n):
    return [np.arange(s, min(s + BATCH, n)) for s in range(0, n, BATCH)]


def asyncopt_rule(name, lr=LR):
    if name == "adam":
        return asyncopt.Adam(learning_rate=lr, beta1=BETAS[0], beta2=BETAS[1], eps=EPS, bias_correction=True)
    return asyncopt.AdaGrad(learning_rate=lr, eps=EPS)


def run_asyncopt(rule, data, n_ids, n_threads=1, lr=LR):
    bags, y, bags_te, y_te, c = data
    E = np.zeros((n_ids, DIM), dtype=np.float32)
    opt = asyncopt_rule(rule, lr).attach(E)
    order = batches(len(y))
    opt_time = [0.0] * n_threads  # per thread: catch_up + step
    rows_done = [0] * n_threads

    def train(t):
        for b in order[t::n_threads]:
            ids, inverse = np.unique(bags[b], return_inverse=True)  # the batch's distinct rows
            t0 = time.perf_counter()
            opt.catch_up(ids)  # the lazy rules' idle rows drift: bring these to the current step
            opt_time[t] += time.perf_counter() - t0
            z = E[bags[b]].sum(axis=1) @ c
            coef = (1 / (1 + np.exp(-z)) - y[b]) / len(b)  # d loss / d z per sample
            per_row = np.bincount(inverse.ravel(), weights=np.repeat(coef, BAG), minlength=len(ids))
            g = (per_row[:, None] * c).astype(np.float32)
            t0 = time.perf_counter()
            opt.step(g, rows=ids)
            opt_time[t] += time.perf_counter() - t0
            rows_done[t] += len(ids)

    start = time.perf_counter()
    if n_threads == 1:
        train(0)
    else:
        threads = [threading.Thread(target=train, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    opt.finish()
    wall = time.perf_counter() - start
    # with threads the optimizer calls overlap: their throughput is the rows over the longest
    # thread's optimizer time
    opt_s = max(opt_time)
    return {"wall_seconds": wall, "optimizer_seconds": opt_s, "rows_updated": sum(rows_done),
            "rows_per_second": sum(rows_done) / opt_s, "test_log_loss": log_loss(E, bags_te, y_te, c),
            "steps": opt.steps}


def run_torch(rule, data, n_ids, lr=LR):
    bags, y, bags_te, y_te, c = data
    torch.manual_seed(0)
    emb = torch.nn.EmbeddingBag(n_ids, DIM, mode="sum", sparse=True)
    with torch.no_grad():
        emb.weight.zero_()
    ct = torch.from_numpy(c)
    if rule == "adam":
        opt = torch.optim.SparseAdam(emb.parameters(), lr=lr, betas=BETAS, eps=EPS)
    else:
        opt = torch.optim.Adagrad(emb.parameters(), lr=lr, eps=EPS)
    bags_t = torch.from_numpy(bags)
    y_t = torch.from_numpy(y.astype(np.float32))
    lossf = torch.nn.BCEWithLogitsLoss()
    opt_time = 0.0
    rows = 0
    start = time.perf_counter()
    for b in batches(len(y)):
        bt = torch.from_numpy(b)
        opt.zero_grad(set_to_none=True)
        z = emb(bags_t[bt]) @ ct
        lossf(z, y_t[bt]).backward()
        rows += len(np.unique(bags[b]))  # rows the step updates (not timed: counting only)
        t0 = time.perf_counter()
        opt.step()
        opt_time += time.perf_counter() - t0
    wall = time.perf_counter() - start
    E = emb.weight.detach().numpy()
    return {"wall_seconds": wall, "optimizer_seconds": opt_time, "rows_updated": rows,
            "rows_per_second": rows / opt_time, "test_log_loss": log_loss(E, bags_te, y_te, c)}


def exactness(rule, seed=1):
    """max |W_sparse - W_dense| / max |W_dense| after 200 steps of the same gradients on a 512 x 4
    table, where each step's gradient touches 16 rows (the others idle)."""
    rng = np.random.default_rng(seed)
    n, d, steps = 512, 4, 200
    grads = [(np.sort(rng.choice(n, 16, replace=False)), rng.normal(size=(16, d))) for _ in range(steps)]
    # dense reference: float64, every row steps every time
    W = np.zeros((n, d))
    m, v, G = np.zeros_like(W), np.zeros_like(W), np.zeros_like(W)
    for k, (idx, g_rows) in enumerate(grads, start=1):
        g = np.zeros_like(W)
        g[idx] = g_rows
        if rule == "adam":
            m = BETAS[0] * m + (1 - BETAS[0]) * g
            v = BETAS[1] * v + (1 - BETAS[1]) * g * g
            a = LR * np.sqrt(1 - BETAS[1] ** k) / (1 - BETAS[0] ** k)
            W = W - a * m / (np.sqrt(v) + EPS)
        else:
            G = G + g * g
            W = W - LR * g / (np.sqrt(G) + EPS)
    scale = np.abs(W).max()
    out = {}
    A = np.zeros((n, d))
    opt = asyncopt_rule(rule).attach(A)
    for idx, g_rows in grads:
        opt.step(g_rows, rows=idx)
    opt.finish()
    out["asyncopt"] = float(np.abs(A - W).max() / scale)
    if torch is not None:
        P = torch.zeros((n, d), dtype=torch.float64, requires_grad=True)
        topt = (torch.optim.SparseAdam([P], lr=LR, betas=BETAS, eps=EPS) if rule == "adam"
                else torch.optim.Adagrad([P], lr=LR, eps=EPS))
        for idx, g_rows in grads:
            P.grad = torch.sparse_coo_tensor(torch.from_numpy(idx)[None, :], torch.from_numpy(g_rows), (n, d))
            topt.step()
        out["torch"] = float(np.abs(P.detach().numpy() - W).max() / scale)
    return out


def run(args):
    n_ids = 1 << 14 if args.quick else 1 << 20
    n_train, n_test = (20_000, 5_000) if args.quick else (200_000, 20_000)
    data = make_data(n_ids, n_train, n_test)
    repeats = args.repeats or (1 if args.quick else 3)
    if torch is not None:
        torch.set_num_threads(1)
    rows = {}
    for rule in ("adam", "adagrad"):
        for r in range(repeats):  # interleaved, so every ratio compares figures measured side by side
            for label, fn in (("asyncopt", lambda: run_asyncopt(rule, data, n_ids)),
                              ("asyncopt, 2 threads", lambda: run_asyncopt(rule, data, n_ids, 2)),
                              ("torch", (lambda: run_torch(rule, data, n_ids)) if torch is not None else None)):
                if fn is None:
                    continue
                rows.setdefault((rule, label), []).append(fn())
    summary = []
    for (rule, label), runs in rows.items():
        med = {k: statistics.median(x[k] for x in runs) for k in ("wall_seconds", "optimizer_seconds",
                                                                  "rows_per_second", "test_log_loss")}
        summary.append({"rule": rule, "trainer": label, **med, "runs": runs})
    for s in summary:
        base = next((t for t in summary if t["rule"] == s["rule"] and t["trainer"] == "torch"), None)
        s["optimizer_throughput_vs_torch"] = s["rows_per_second"] / base["rows_per_second"] if base else None
        s["wall_vs_torch"] = s["wall_seconds"] / base["wall_seconds"] if base else None
    grid = {}
    if args.grid:  # each trainer's held-out loss over a step grid: the algorithms at their best steps
        for rule in ("adam", "adagrad"):
            for lr in GRID:
                grid.setdefault(rule, {}).setdefault("asyncopt", {})[lr] = \
                    run_asyncopt(rule, data, n_ids, lr=lr)["test_log_loss"]
                if torch is not None:
                    grid[rule].setdefault("torch", {})[lr] = run_torch(rule, data, n_ids, lr=lr)["test_log_loss"]
    return {"n_ids": n_ids, "dim": DIM, "bag": BAG, "batch": BATCH, "n_train": n_train, "n_test": n_test,
            "repeats": repeats, "summary": summary, "lr": LR, "grid": grid,
            "exactness": {rule: exactness(rule) for rule in ("adam", "adagrad")},
            "initial_test_log_loss": float(np.log(2))}


def markdown(report):
    name = {"adam": ("Adam", "SparseAdam"), "adagrad": ("AdaGrad", "Adagrad")}
    lines = [f"# Optimizers on the user's arrays: embedding-bag logistic model, {report['n_ids']} x {report['dim']} "
             f"table, bags of {report['bag']}, batches of {report['batch']}, {report['n_train']} samples, one pass",
             "", f"git {report['git']}, {report['cpu']}, {report['date']}, torch {report['torch']}, "
             f"median of {report['repeats']}", "",
             f"| rule | trainer | optimizer rows/s | / torch | pass s | / torch | test log-loss at step {report['lr']:g} (start 0.6931) |",
             "|---|---|---|---|---|---|---|"]
    for s in report["summary"]:
        asy, tor = name[s["rule"]]
        label = f"torch.optim.{tor}" if s["trainer"] == "torch" else f"asyncopt.{asy} ({s['trainer'][10:] or '1 thread'})"
        ratio = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
        lines.append(f"| {asy} | {label} | {s['rows_per_second']:.3g} | {ratio(s['optimizer_throughput_vs_torch'])} | "
                     f"{s['wall_seconds']:.2f} | {ratio(s['wall_vs_torch'])} | {s['test_log_loss']:.4f} |")
    lines += ["", "Distance from the dense algorithm (max |W_sparse - W_dense| / max |W_dense|, 200 steps of 16 of 512 "
              "rows):", "", "| rule | asyncopt | torch |", "|---|---|---|"]
    for rule, e in report["exactness"].items():
        lines.append(f"| {name[rule][0]} | {e['asyncopt']:.1e} | {e.get('torch', float('nan')):.1e} |")
    if report["grid"]:
        lines += ["", "Held-out log-loss after the pass at each step size (one run each, 1 thread):", "",
                  "| trainer | " + " | ".join(f"{lr:g}" for lr in GRID) + " |",
                  "|---|" + "---|" * len(GRID)]
        for rule, by in report["grid"].items():
            for who, losses in by.items():
                label = f"torch.optim.{name[rule][1]}" if who == "torch" else f"asyncopt.{name[rule][0]}"
                best = min(losses.values())
                lines.append(f"| {label} | " + " | ".join(
                    f"**{losses[lr]:.4f}**" if losses[lr] == best else f"{losses[lr]:.4f}" for lr in GRID) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run: a 2^14-row table, 20k samples, 1 repeat")
    p.add_argument("--out", default="bench-results", help="output folder (default bench-results)")
    p.add_argument("--repeats", type=int, help="interleaved repeats (default 3, quick 1)")
    p.add_argument("--grid", action="store_true", help=f"also each trainer's held-out loss at the steps {GRID}")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    warm = np.random.default_rng(0).normal(size=(200, 5))
    SkLogisticRegression().fit(warm, warm[:, 0] > 0)
    report = run(args)
    report.update({"git": git_commit(), "cpu": cpu_model(), "python": platform.python_version(),
                   "asyncopt": asyncopt.__version__, "torch": torch.__version__ if torch is not None else None,
                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "optim.json").write_text(json.dumps(jsonable(report), indent=1))
    (out / "optim.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'optim.json'} and {out / 'optim.md'}")


if __name__ == "__main__":
    main()
