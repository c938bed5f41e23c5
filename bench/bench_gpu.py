"""GPU benchmark: asyncopt on one GPU against asyncopt's CPU threads (every core) and PyTorch's sparse
logistic regression on the same GPU, side by side in one run.

Per data set (a9a, news20 from ../shared/data, and a synthetic set of 10M rows): epoch time, time
to a target test loss (1.01 x the CPU threads' final loss), rows and nonzeros per second, and the
achieved memory bandwidth against the GPU's peak (bytes the epoch must move: each nonzero's index,
value and model state read and written, each row's offsets and label). Targets (issue 5): >= 10x
the CPU threads' throughput, faster than PyTorch.

    python bench/bench_gpu.py                  # on a machine with a GPU (the lent device)
    python bench/bench_gpu.py --quick --emulate   # CI smoke: tiny sets, the host emulator
                                                  # stands in for the GPU (its times are not GPU times)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import asyncopt  # noqa: E402
from asyncopt import _core, gpu  # noqa: E402
from asyncopt.backends import cuda as cuda_backend  # noqa: E402
from asyncopt.datasets import load_libsvm, make_sparse_classification  # noqa: E402
from benchenv import cpu_model, git_commit, jsonable  # noqa: E402


def load_sets(args):
    root = Path(args.data_dir) / "libsvm"
    sets = {}
    for name in args.sets:
        if name == "a9a":
            X, y = load_libsvm(root / "a9a.xz")
            Xt, yt = load_libsvm(root / "a9a.t.xz", n_features=X.shape[1])
            sets[name] = (X, y, Xt, yt, dict(learning_rate=0.1, alpha=1e-4))
        elif name == "news20":
            X, y = load_libsvm(root / "news20bydate_tfidf.binary.train.xz")
            Xt, yt = load_libsvm(root / "news20bydate_tfidf.binary.test.xz", n_features=X.shape[1])
            sets[name] = (X, y, Xt, yt, dict(learning_rate=1.0, alpha=1e-5))
        elif name == "synthetic":
            n = 20_000 if args.quick else 10_000_000
            X, y = make_sparse_classification(n_samples=n + n // 10, n_features=2 ** 20, nnz_per_row=20,
                                              random_state=0)
            sets[name] = (X[:n], y[:n], X[n:], y[n:], dict(learning_rate=0.1, alpha=1e-6))
    return sets


def epoch_bytes(X, optimizer):
    """Bytes one epoch must move at least: per nonzero its index and value (4 + 4) and its model
    state read and written (SGD 4 + 4, AMSGrad's 32-byte line twice), per row offsets and label."""
    state = 4 if optimizer == "sgd" else 32
    return X.nnz * (8 + 2 * state) + X.shape[0] * 16


def run_asyncopt(X, y, Xt, yt, kw, epochs, **extra):
    """One fit of `epochs` passes; the test loss of every epoch comes from eval_set (evaluated where
    the model lives), its training time from history_ (evaluation excluded)."""
    m = asyncopt.LogisticRegression(epochs=epochs, tol=None, random_state=0, **kw, **extra).fit(X, y, eval_set=(Xt, yt))
    return {"epoch_times": [r["epoch_time"] for r in m.history_], "times": [r["time"] for r in m.history_],
            "test_loss": [r["val_loss"] for r in m.history_], "staleness_mean": m.staleness_.mean,
            "workers": getattr(m, "gpu_workers_", None)}


def run_torch(X, y, Xt, yt, kw, epochs, batch):
    """PyTorch's sparse logistic regression on the GPU: mini-batches of CSR rows, torch.sparse.mm,
    plain SGD (the same objective and step), the model dense on the device."""
    import torch

    dev = torch.device("cuda")

    def csr(A):
        A = A.tocsr().astype(np.float32)
        return torch.sparse_csr_tensor(torch.from_numpy(A.indptr.astype(np.int64)),
                                       torch.from_numpy(A.indices.astype(np.int64)),
                                       torch.from_numpy(A.data), size=A.shape).to(dev)

    w = torch.zeros(X.shape[1], 1, device=dev, requires_grad=True)
    b = torch.zeros(1, device=dev, requires_grad=True)
    opt = torch.optim.SGD([w, b], lr=kw["learning_rate"])
    ys = torch.from_numpy(np.where(y > 0, 1.0, 0.0).astype(np.float32)).to(dev)
    order = np.random.default_rng(0).permutation(X.shape[0])
    batches = [(csr(X[order[i:i + batch]]), ys[torch.from_numpy(order[i:i + batch]).to(dev)])
               for i in range(0, X.shape[0], batch)]
    Xt_d, yt_np = csr(Xt), np.where(yt > 0, 1.0, 0.0)
    times, losses, total = [], [], 0.0
    for _ in range(epochs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for Xb, yb in batches:
            opt.zero_grad()
            z = torch.sparse.mm(Xb, w).squeeze(1) + b
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yb) + 0.5 * kw["alpha"] * (w * w).sum()
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        total += time.perf_counter() - t0
        times.append(total)
        with torch.no_grad():
            z = (torch.sparse.mm(Xt_d, w).squeeze(1) + b).double().cpu().numpy()
        losses.append(float(np.mean(np.logaddexp(0, -(2 * yt_np - 1) * z))))
    return {"epoch_times": list(np.diff([0.0] + times)), "times": times, "test_loss": losses}


def time_to(run, target):
    for t, loss in zip(run["times"], run["test_loss"]):
        if loss <= target:
            return t
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--emulate", action="store_true", help="run the GPU lines on the host emulator (smoke test)")
    ap.add_argument("--sets", default="a9a,news20,synthetic")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--torch-batch", type=int, default=256)
    ap.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    args.sets = args.sets.split(",")
    epochs = args.epochs or (2 if args.quick else 10)

    if args.emulate:
        cuda_backend.built = lambda: True  # the emulator is in every build
        cuda_backend.engine_module = lambda device: _core.gpu_emulator
        cuda_backend.device_limits = lambda module, device: (132, 64)
        info = {"name": "host emulator (not a GPU)", "peak_bandwidth_gbs": None}
    elif not gpu.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU and a CUDA build (asyncopt.gpu.is_available() is False); "
                 "--emulate runs the script's code paths on the host emulator instead")
    else:
        info = gpu.device_info(0)
    try:
        import torch

        have_torch = torch.cuda.is_available() and not args.emulate
    except ImportError:
        have_torch = False

    report = {"device": info, "cpu": cpu_model(), "cores": os.cpu_count(), "commit": git_commit(),
              "build": asyncopt.build_info(), "epochs": epochs, "sets": {}}
    lines = [f"# GPU benchmark ({info['name']}, {os.cpu_count()} CPU cores, commit {report['commit']})", ""]
    for name, (X, y, Xt, yt, kw) in load_sets(args).items():
        X = X.astype(np.float32)
        Xt = Xt.astype(np.float32)
        runs = {}
        for opt in ("sgd", "amsgrad"):
            okw = dict(kw, optimizer=opt, learning_rate=kw["learning_rate"] if opt == "sgd" else 0.003)
            runs[f"{opt} cpu threads"] = run_asyncopt(X, y, Xt, yt, okw, epochs)
            runs[f"{opt} gpu"] = run_asyncopt(X, y, Xt, yt, okw, epochs, backend="cuda")
            if opt == "sgd":
                runs["sgd gpu racy"] = run_asyncopt(X, y, Xt, yt, okw, epochs, backend="cuda", gpu_update="racy")
        if have_torch:
            runs["sgd torch gpu"] = run_torch(X, y, Xt, yt, kw, epochs, args.torch_batch)
        lines += [f"## {name}: {X.shape[0]} rows, {X.shape[1]} features, {X.nnz} nonzeros", "",
                  "| run | median epoch s | M nonzeros/s | GB/s (of peak) | final test loss | s to target | workers |",
                  "|---|---|---|---|---|---|---|"]
        for label, r in runs.items():
            opt = label.split()[0]
            target = 1.01 * runs[f"{opt} cpu threads"]["test_loss"][-1]
            r["target"], r["time_to_target"] = target, time_to(r, target)
            ep = float(np.median(r["epoch_times"]))
            gbs = epoch_bytes(X, opt) / ep / 1e9
            peak = info.get("peak_bandwidth_gbs")
            share = f" ({100 * gbs / peak:.1f}%)" if peak and "gpu" in label else ""
            ttt = "not reached" if r["time_to_target"] is None else f"{r['time_to_target']:.3f}"
            lines.append(f"| {label} | {ep:.4f} | {X.nnz / ep / 1e6:.0f} | {gbs:.1f}{share} | "
                         f"{r['test_loss'][-1]:.4f} | {ttt} | {r.get('workers') or ''} |")
        for opt in ("sgd", "amsgrad"):
            cpu_ep = np.median(runs[f"{opt} cpu threads"]["epoch_times"])
            gpu_ep = np.median(runs[f"{opt} gpu"]["epoch_times"])
            lines.append(f"\n{opt}: GPU / CPU-threads throughput {cpu_ep / gpu_ep:.2f}x (target >= 10x)")
        if have_torch:
            lines.append(f"sgd: GPU / PyTorch throughput "
                         f"{np.median(runs['sgd torch gpu']['epoch_times']) / np.median(runs['sgd gpu']['epoch_times']):.2f}x"
                         " (target > 1x)")
        else:
            lines.append("PyTorch on the GPU: not measured (torch with CUDA not importable here)")
        lines.append("")
        report["sets"][name] = {"shape": list(X.shape), "nnz": int(X.nnz), "runs": runs}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(jsonable(report), indent=1))
    (out / "gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
