"""LDA benchmark: time to reach a target held-out perplexity, asyncopt vs its peers.

Every library trains on the same documents with the same K and priors (alpha = eta = 1/K) and is
scored by ONE shared evaluator, document completion (Wallach et al. 2009, "estimated theta"):
every held-out document's tokens are split at random into two halves; the model's topics
phi (K x V, rows normalised) are folded into the first half (theta by 50 fixed-point iterations of
theta_k <- alpha + sum_w c_w theta_k phi_kw / sum_j theta_j phi_jw, then normalised) and the
score is the perplexity exp(-sum log p(w | theta, phi) / #tokens) of the second half. Lower is
better. Training time excludes evaluation.

Runs asyncopt.LDA at 1 and 2 threads, scikit-learn LatentDirichletAllocation(learning_method=
"online", n_jobs=1/2), gensim LdaModel / LdaMulticore(workers=1/2) and tomotopy LDAModel (Gibbs;
workers=1/2) where installed. The target perplexity of a corpus is what scikit-learn (n_jobs=1)
reaches after its last epoch; each run reports the training time at which it first got there.

    python bench/bench_lda.py [--quick] [--out bench/results] [--datasets kos,20news]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import asyncopt
from asyncopt.datasets import load_uci_bow

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bow"


# ---------------------------------------------------------------------------- data and evaluator
def load_corpus(name, quick, seed=0):
    if name == "kos":
        X, vocab = load_uci_bow(DATA / "kos" / "docword.kos.txt.gz", DATA / "kos" / "vocab.kos.txt.xz")
        rng = np.random.default_rng(seed)
        test = np.zeros(X.shape[0], dtype=bool)
        test[rng.choice(X.shape[0], size=X.shape[0] // 10, replace=False)] = True
        Xtr, Xte = X[~test], X[test]
    elif name == "20news":
        X, vocab = load_uci_bow(DATA / "20news" / "docword.20news.txt.gz", DATA / "20news" / "vocab.20news.txt.gz")
        with gzip.open(DATA / "20news" / "docs.20news.tsv.gz", "rt") as f:
            split = np.array([line.split("\t")[1] for line in f if line.strip()])
        Xtr, Xte = X[split == "train"], X[split == "test"]
        rng = np.random.default_rng(seed)
        Xte = Xte[np.sort(rng.choice(Xte.shape[0], size=2000, replace=False))]  # evaluator cost
    else:
        raise ValueError(name)
    Xtr = Xtr[np.asarray(Xtr.sum(axis=1)).ravel() > 0]
    Xte = Xte[np.asarray(Xte.sum(axis=1)).ravel() >= 2]
    return Xtr.tocsr(), Xte.tocsr(), vocab


class CompletionEvaluator:
    """Document completion on held-out documents (see the module docstring)."""

    def __init__(self, X_test, alpha, seed=0, iterations=50):
        rng = np.random.default_rng(seed)
        rows_obs, cols_obs, rows_ev, cols_ev = [], [], [], []
        for d in range(X_test.shape[0]):
            lo, hi = X_test.indptr[d], X_test.indptr[d + 1]
            tokens = np.repeat(X_test.indices[lo:hi], X_test.data[lo:hi].astype(np.int64))
            rng.shuffle(tokens)
            half = tokens.shape[0] // 2
            rows_obs.append(np.full(half, d)), cols_obs.append(tokens[:half])
            rows_ev.append(np.full(tokens.shape[0] - half, d)), cols_ev.append(tokens[half:])
        shape = X_test.shape

        def counts(r, c):
            M = sp.csr_matrix((np.ones(sum(map(len, c))), (np.concatenate(r), np.concatenate(c))), shape=shape)
            M.sum_duplicates()
            return M

        self.obs, self.ev = counts(rows_obs, cols_obs), counts(rows_ev, cols_ev)
        self.alpha, self.iterations = alpha, iterations

    @staticmethod
    def _p_nonzeros(M, theta, phi, chunk=200_000):
        """(theta @ phi)[d, w] on the stored entries of M."""
        r = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
        out = np.empty(M.nnz)
        phiT = np.ascontiguousarray(phi.T)
        for s in range(0, M.nnz, chunk):
            out[s:s + chunk] = np.einsum("ik,ik->i", theta[r[s:s + chunk]], phiT[M.indices[s:s + chunk]])
        return out

    def perplexity(self, topic_word):
        phi = np.asarray(topic_word, dtype=np.float64)
        phi = phi / phi.sum(axis=1, keepdims=True)
        K = phi.shape[0]
        theta = np.full((self.obs.shape[0], K), 1.0 / K)
        for _ in range(self.iterations):
            p = self._p_nonzeros(self.obs, theta, phi)
            R = sp.csr_matrix((self.obs.data / np.maximum(p, 1e-300), self.obs.indices, self.obs.indptr),
                              shape=self.obs.shape)
            theta = theta * (R @ phi.T) + self.alpha
            theta /= theta.sum(axis=1, keepdims=True)
        p = self._p_nonzeros(self.ev, theta, phi)
        return float(np.exp(-np.sum(self.ev.data * np.log(np.maximum(p, 1e-300))) / self.ev.data.sum()))


# ---------------------------------------------------------------------------- runners
# Each runner yields (cumulative training seconds, topic-word matrix K x V) after every checkpoint.

def run_asyncopt(X, K, epochs, threads, seed):
    snapshots = []
    lda = asyncopt.LDA(n_components=K, batch_size=128, learning_offset=10.0, learning_decay=0.7, epochs=epochs,
                       n_threads=threads, random_state=seed, train_perplexity_docs=0,
                       callback=lambda rec: snapshots.append((rec["time"], lda.components_.copy())))
    lda.fit(X)  # record["time"] is training time only: the callback's copies are not in it
    yield from snapshots


def run_sklearn(X, K, epochs, n_jobs, seed):
    from sklearn.decomposition import LatentDirichletAllocation
    lda = LatentDirichletAllocation(n_components=K, learning_method="online", batch_size=128, learning_offset=10.0,
                                    learning_decay=0.7, n_jobs=n_jobs, random_state=seed, total_samples=X.shape[0])
    total = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        lda.partial_fit(X)  # one epoch in scikit-learn's batch order, D = total_samples = n_docs
        total += time.perf_counter() - t0
        yield total, lda.components_


def _gensim_corpus(X):
    return [list(zip(X.indices[X.indptr[d]:X.indptr[d + 1]].tolist(),
                     X.data[X.indptr[d]:X.indptr[d + 1]].astype(int).tolist())) for d in range(X.shape[0])]


def run_gensim(X, K, epochs, workers, seed):
    from gensim.models import LdaModel, LdaMulticore
    corpus = _gensim_corpus(X)
    id2word = {i: str(i) for i in range(X.shape[1])}
    common = dict(num_topics=K, id2word=id2word, chunksize=128, alpha=np.full(K, 1.0 / K), eta=1.0 / K, decay=0.7,
                  offset=10.0, iterations=100, gamma_threshold=1e-3, random_state=seed, eval_every=None)
    t0 = time.perf_counter()
    if workers == 1:
        lda = LdaModel(corpus=None, update_every=1, **common)
    else:
        lda = LdaMulticore(corpus=None, workers=workers, **common)
    total = time.perf_counter() - t0
    for _ in range(epochs):
        t0 = time.perf_counter()
        lda.update(corpus, passes=1) if workers == 1 else lda.update(corpus)
        total += time.perf_counter() - t0
        yield total, lda.get_topics()


def run_tomotopy(X, K, epochs, workers, seed, sweeps_per_checkpoint=10):
    import tomotopy as tp
    mdl = tp.LDAModel(k=K, alpha=1.0 / K, eta=1.0 / K, seed=seed)
    for d in range(X.shape[0]):
        lo, hi = X.indptr[d], X.indptr[d + 1]
        words = np.repeat(X.indices[lo:hi], X.data[lo:hi].astype(np.int64)).astype(str).tolist()
        if words:
            mdl.add_doc(words)
    vocab_index = None
    total = 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        mdl.train(sweeps_per_checkpoint, workers=workers)
        total += time.perf_counter() - t0
        if vocab_index is None:
            vocab_index = np.array([int(w) for w in mdl.used_vocabs])
        phi = np.full((K, X.shape[1]), 1e-12)
        phi[:, vocab_index] = np.array([mdl.get_topic_word_dist(k) for k in range(K)])
        yield total, phi


# ---------------------------------------------------------------------------- driver
def available(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def bench_dataset(name, quick, seed, log):
    Xtr, Xte, _ = load_corpus(name, quick, seed)
    K = 50 if name == "kos" else (20 if quick else 50)
    if quick and name == "20news":
        Xtr = Xtr[:3000]
    epochs = 3 if quick else (10 if name == "kos" else 5)
    ev = CompletionEvaluator(Xte, alpha=1.0 / K, seed=seed)
    runs = [("asyncopt", 1, run_asyncopt), ("asyncopt", 2, run_asyncopt),
            ("scikit-learn", 1, run_sklearn), ("scikit-learn", 2, run_sklearn)]
    if available("gensim"):
        runs += [("gensim LdaModel", 1, run_gensim), ("gensim LdaMulticore", 2, run_gensim)]
    if available("tomotopy"):
        runs += [("tomotopy (Gibbs)", 1, run_tomotopy), ("tomotopy (Gibbs)", 2, run_tomotopy)]
    if quick:
        runs = [r for r in runs if r[0] in ("asyncopt", "scikit-learn") or r[1] == 1]
        runs = [r for r in runs if not (r[0] == "scikit-learn" and r[1] == 2)]
    results = []
    for lib, threads, runner in runs:
        curve = []
        n_ckpt = epochs if not lib.startswith("tomotopy") else (epochs if quick else 2 * epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for seconds, topics in runner(Xtr, K, n_ckpt, threads, seed):
                curve.append((float(seconds), ev.perplexity(topics)))
        log(f"  {name:7s} {lib:20s} threads={threads}  " +
            "  ".join(f"{t:.2f}s:{p:.0f}" for t, p in curve))
        results.append(dict(dataset=name, library=lib, threads=threads, K=K, curve=curve,
                            unit="sweeps x10" if lib.startswith("tomotopy") else "epochs"))
    ref = [r for r in results if r["library"] == "scikit-learn" and r["threads"] == 1][0]
    target = ref["curve"][-1][1]
    for r in results:
        hit = [t for t, p in r["curve"] if p <= target]
        r["target"] = target
        r["time_to_target"] = hit[0] if hit else None
        r["final_perplexity"] = r["curve"][-1][1]
        r["time_per_checkpoint"] = r["curve"][-1][0] / len(r["curve"])
    return dict(dataset=name, n_train=int(Xtr.shape[0]), n_test=int(Xte.shape[0]), n_words=int(Xtr.shape[1]),
                K=K, epochs=epochs, target=target, runs=results)


def _speedup(run, base):
    """base's time to target over run's; '> x' when base never got there (its whole training time is
    then a lower bound), '-' when run did not or there is no base."""
    if base is None or run["time_to_target"] is None:
        return "-"
    if base["time_to_target"] is None:
        return f"> {base['curve'][-1][0] / run['time_to_target']:.1f}x"
    return f"{base['time_to_target'] / run['time_to_target']:.1f}x"


def markdown(report):
    lines = [f"# LDA benchmark ({report['machine']})", "",
             "Training time to reach the target held-out perplexity (document completion, one shared evaluator); "
             "target = scikit-learn online LDA (n_jobs=1) after its last epoch. Speedups compare times to target "
             "at the same thread count.", ""]
    for ds in report["datasets"]:
        lines += [f"## {ds['dataset']}: {ds['n_train']} train / {ds['n_test']} held-out documents, "
                  f"V={ds['n_words']}, K={ds['K']}, {ds['epochs']} epochs, target perplexity {ds['target']:.0f}", "",
                  "| library | threads | s per epoch (tomotopy: per 10 sweeps) | time to target (s) | final perplexity "
                  "| vs scikit-learn | vs gensim |",
                  "|---|---|---|---|---|---|---|"]
        sk = {r["threads"]: r for r in ds["runs"] if r["library"] == "scikit-learn"}
        gs = {r["threads"]: r for r in ds["runs"] if r["library"].startswith("gensim")}
        for r in ds["runs"]:
            ttt = r["time_to_target"]
            lines.append(f"| {r['library']} | {r['threads']} | {r['time_per_checkpoint']:.3f} | "
                         f"{'%.2f' % ttt if ttt is not None else 'not reached'} | {r['final_perplexity']:.0f} | "
                         f"{_speedup(r, sk.get(r['threads']))} | {_speedup(r, gs.get(r['threads']))} |")
        a = {r["threads"]: r for r in ds["runs"] if r["library"] == "asyncopt"}
        if 1 in a and 2 in a:
            lines += ["", f"asyncopt 2 threads vs 1: {_speedup(a[2], a[1])} in time to target, "
                          f"{a[1]['time_per_checkpoint'] / a[2]['time_per_checkpoint']:.2f}x in time per epoch."]
        lines.append("")
    return "\n".join(lines)


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.ticker
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(report["datasets"]), figsize=(6 * len(report["datasets"]), 4.5), squeeze=False)
    for ax, ds in zip(axes[0], report["datasets"]):
        for r in ds["runs"]:
            t, p = zip(*r["curve"])
            ax.plot(t, p, marker="o", ms=3, label=f"{r['library']} ({r['threads']})")
        ax.axhline(ds["target"], color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # overlapping minor labels otherwise
        ax.set_xlabel("training time (s)")
        ax.set_ylabel("held-out perplexity (document completion)")
        ax.set_title(f"{ds['dataset']}, K={ds['K']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="kos only, 3 epochs, fewer peers (under ~60 s)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--datasets", default=None, help="comma-separated: kos,20news")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report-only", metavar="JSON", help="rewrite the markdown and plot of an earlier run's JSON")
    args = ap.parse_args(argv)
    if args.report_only:
        src = Path(args.report_only)
        report = json.loads(src.read_text())
        src.with_suffix(".md").write_text(markdown(report))
        plot(report, src.with_suffix(".png"))
        print(markdown(report))
        return
    names = args.datasets.split(",") if args.datasets else (["kos"] if args.quick else ["kos", "20news"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = dict(machine=f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
                  build=asyncopt.build_info(), quick=args.quick, datasets=[])
    for name in names:
        print(f"{name}:", flush=True)
        report["datasets"].append(bench_dataset(name, args.quick, args.seed, lambda s: print(s, flush=True)))
    stem = "lda_quick" if args.quick else "lda"
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    md = markdown(report)
    (out / f"{stem}.md").write_text(md)
    try:
        plot(report, out / f"{stem}.png")
    except ImportError:
        print("matplotlib not installed: no plot", file=sys.stderr)
    print(md)


if __name__ == "__main__":
    main()
