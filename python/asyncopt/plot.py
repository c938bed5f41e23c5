"""Figures of fitted estimators, from what a fit records (``history_``, ``staleness_``,
``mpi_stats_``, ``components_``): loss against time or updates, speedup against threads, the
staleness histogram, LDA perplexity curves and top words, and the MPI per-worker timeline.

matplotlib is imported when a figure is drawn, not with asyncopt (``pip install asyncopt[plot]``).
Every function draws on the Axes it is given (a new figure's otherwise) and returns it, so
several fits share one axis and the figures compose into a user's own layout; :func:`save_figures`
writes every figure that applies to one fit, which is what ``asyncopt train --plot DIR`` does.

A fit is an estimator fitted by asyncopt (its ``history_`` is read) or a history itself (a list of
records, e.g. loaded from JSON).
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["loss", "perplexity", "speedup", "staleness", "top_words", "mpi_timeline", "save_figures"]

# the x axes a history offers: record field, axis label
_X = {"time": ("time", "training time (s)"), "updates": ("updates", "updates applied"),
      "epoch": ("epoch", "epoch")}


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(f"asyncopt.plot needs matplotlib (pip install asyncopt[plot]): {e}") from None
    return plt


def _axes(ax):
    return _pyplot().subplots(figsize=(6, 4))[1] if ax is None else ax


def _history(fit):
    history = getattr(fit, "history_", fit)
    if not isinstance(history, (list, tuple)) or not all(isinstance(r, dict) for r in history):
        raise ValueError(f"expected a fitted asyncopt estimator or a list of history records, got "
                         f"{type(fit).__name__}")
    if not history:
        raise ValueError("the history is empty: nothing to plot (was the estimator fitted?)")
    return history


def _fits(fits, labels):
    """[(label, history)] of one fit, a list of fits, or a dict label -> fit."""
    if isinstance(fits, dict):
        labels, fits = list(fits), list(fits.values())
    elif not isinstance(fits, (list, tuple)) or (fits and isinstance(fits[0], dict)):
        fits = [fits]  # one estimator, or one history (a list of records)
    if not fits:
        raise ValueError("no fits to plot")
    if labels is None:
        labels = [_default_label(f, i) for i, f in enumerate(fits)]
    elif len(labels) != len(fits):
        raise ValueError(f"{len(labels)} labels for {len(fits)} fits")
    return [(str(lab), _history(f)) for lab, f in zip(labels, fits)]


def _default_label(fit, i):
    """'sgd (2 threads)', 'LDA (mpi)', or 'fit i' for a bare history."""
    if isinstance(fit, (list, tuple)):
        return f"fit {i}"
    name = getattr(getattr(fit, "optimizer_", None), "name", None) or type(fit).__name__
    threads = getattr(fit, "n_threads_", None)
    backend = getattr(fit, "backend_", None)
    where = f"{threads} thread{'s' if threads != 1 else ''}" if threads is not None else (backend or "")
    return f"{name} ({where})" if where else name


def _column(history, key):
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in history])


def _check_x(x):
    if x not in _X:
        raise ValueError(f"x must be one of {sorted(_X)}, got {x!r}")
    return _X[x]


def loss(fits, x="time", y=None, labels=None, ax=None, logy=False):
    """The training objective (or ``y``, any numeric record field: 'val_loss', 'train_accuracy', an
    LDA fit's 'perplexity') of one or several fits against ``x``: 'time' (training seconds,
    evaluation excluded), 'updates' or 'epoch'. ``y`` None: 'objective' where the records have it,
    else the LDA perplexity (:func:`perplexity`)."""
    xkey, xlabel = _check_x(x)
    ax = _axes(ax)
    drawn = set()  # the fields drawn: one names the y axis, several (LDA beside logistic) do not
    for label, history in _fits(fits, labels):
        key = y or ("objective" if "objective" in history[0] else
                    "perplexity" if history[0].get("perplexity") is not None else "train_perplexity")
        values = _column(history, key)
        if np.isnan(values).all():
            raise ValueError(f"the records of {label!r} have no values of {key!r}")
        ax.plot(_column(history, xkey), values, marker="o", ms=3, label=label)
        drawn.add(key)
    ax.set_xlabel(xlabel)
    only = drawn.pop() if len(drawn) == 1 else None
    ax.set_ylabel("training objective" if only == "objective" else only.replace("_", " ") if only else "loss")
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def perplexity(fits, x="time", labels=None, ax=None):
    """LDA perplexity curves: the held-out set's (``eval_set``; solid) and the training subsample's
    (dashed) per record, of one or several fits, against ``x`` as in :func:`loss`."""
    xkey, xlabel = _check_x(x)
    ax = _axes(ax)
    for label, history in _fits(fits, labels):
        xs = _column(history, xkey)
        held, train = _column(history, "perplexity"), _column(history, "train_perplexity")
        if np.isnan(held).all() and np.isnan(train).all():
            raise ValueError(f"the records of {label!r} hold no perplexity (an LDA fit with eval_set or "
                             "train_perplexity_docs > 0 records one)")
        line = None
        if not np.isnan(held).all():
            line, = ax.plot(xs, held, marker="o", ms=3, label=f"{label}, held out")
        if not np.isnan(train).all():
            ax.plot(xs, train, "--", color=None if line is None else line.get_color(), label=f"{label}, training")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("perplexity")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def speedup(fits, labels=None, ax=None):
    """Throughput speedup against threads: updates per second of training time of each fit over that
    of the fit with the fewest threads, beside the ideal line. ``fits``: fitted estimators of one
    configuration at several ``n_threads`` (a list, or several lists in a dict label -> list for
    several curves), or a dict n_threads -> seconds for times measured by the caller.

    Throughput, not time to a loss: staleness may cost extra updates, which :func:`loss` against
    'updates' shows."""
    if not fits:
        raise ValueError("no fits to plot")
    ax = _axes(ax)
    if isinstance(fits, dict) and all(isinstance(v, (int, float, np.number)) for v in fits.values()):
        times = sorted((int(n), float(t)) for n, t in fits.items())
        curves = {"measured": [(n, times[0][1] / t) for n, t in times]}
    else:
        groups = fits if isinstance(fits, dict) else {"speedup": fits}
        curves = {}
        for name, group in groups.items():
            pts = []
            for est in group:
                n = getattr(est, "n_threads_", None)
                if n is None:
                    raise ValueError("speedup needs estimators fitted with the threads backend (n_threads_)")
                history = _history(est)
                pts.append((int(n), history[-1]["updates"] / max(history[-1]["time"], 1e-12)))
            pts.sort()
            curves[name] = [(n, r / pts[0][1]) for n, r in pts]
    top = 1
    for name, pts in curves.items():
        ns, s = zip(*pts)
        ax.plot(ns, s, marker="o", label=name)
        top = max(top, max(ns))
    base = min(min(n for n, _ in pts) for pts in curves.values())
    ax.plot([base, top], [1, top / base], "k:", label="ideal")
    ax.set_xlabel("threads")
    ax.set_ylabel("speedup")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def staleness(fit, ax=None):
    """The histogram of the updates' delays tau (``staleness_``: tau = 0, then bins [2^(b-1), 2^b)),
    with the mean and maximum in the title."""
    st = getattr(fit, "staleness_", fit)
    if not hasattr(st, "histogram"):
        raise ValueError(f"expected a fitted estimator or its staleness_, got {type(fit).__name__}")
    hist = np.asarray(st.histogram)
    last = int(np.flatnonzero(hist)[-1]) + 1 if hist.any() else 1
    edges = np.asarray(st.bin_edges)[:last + 1].astype(int)
    names = ["0"] + [f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges[1:-1], edges[2:])]
    ax = _axes(ax)
    ax.bar(np.arange(last), hist[:last])
    ax.set_xticks(np.arange(last), names[:last], rotation=45, ha="right", fontsize=8)
    ax.set_yscale("log")  # the counts span orders of magnitude: a rare long delay must stay visible
    ax.set_xlabel("staleness tau (updates applied between a read and its write)")
    ax.set_ylabel("updates")
    ax.set_title(f"mean tau {st.mean:.3g}, max {st.max} ({st.count} updates)", fontsize=10)
    return ax


def top_words(lda, vocabulary=None, n_words=10, topics=None, n_cols=5):
    """A grid of bar charts, one per topic, of its ``n_words`` heaviest words (``components_`` rows
    normalised), as scikit-learn's topic-extraction example draws them. ``vocabulary``: the column
    names (e.g. a CountVectorizer's get_feature_names_out()); None labels columns by index.
    Returns the Figure."""
    plt = _pyplot()
    comp = np.asarray(lda.components_, dtype=np.float64)
    if vocabulary is not None and len(vocabulary) != comp.shape[1]:
        raise ValueError(f"vocabulary has {len(vocabulary)} words but the model has {comp.shape[1]} features")
    topics = range(comp.shape[0]) if topics is None else list(topics)
    if not topics:
        raise ValueError("topics is empty")
    n_cols = min(n_cols, len(topics))
    n_rows = -(-len(topics) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3 * n_cols, 0.3 * n_words * n_rows + 1), squeeze=False)
    for ax in axes.ravel()[len(topics):]:
        ax.set_visible(False)
    for ax, k in zip(axes.ravel(), topics):
        weights = comp[k] / comp[k].sum()
        top = np.argsort(weights)[::-1][:n_words]
        words = [str(vocabulary[j]) if vocabulary is not None else str(j) for j in top]
        ax.barh(range(len(top))[::-1], weights[top], tick_label=words)
        ax.set_title(f"topic {k}", fontsize=10)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def mpi_timeline(fit, ax=None):
    """When each MPI worker's updates reached the server (one row per worker rank; colour: the
    update's delay tau; x: dropped by the Picky SGD filter), from rank 0's ``mpi_stats_``. A long
    run's events are thinned evenly (``stride`` in the stats)."""
    stats = getattr(fit, "mpi_stats_", fit)
    workers = stats.get("workers") if isinstance(stats, dict) else None
    if not workers or not all("timeline" in w for w in workers.values()):
        raise ValueError("expected rank 0 of an MPI fit (its mpi_stats_ hold each worker's timeline)")
    ax = _axes(ax)
    points = None
    taus = [t for w in workers.values() for t in w["timeline"]["tau"] if t >= 0]
    vmax = max(taus) if taus else 1
    for rank, w in sorted(workers.items(), key=lambda kv: int(kv[0])):
        t = np.asarray(w["timeline"]["time"], dtype=np.float64)
        tau = np.asarray(w["timeline"]["tau"], dtype=np.int64)
        kept = tau >= 0
        points = ax.scatter(t[kept], np.full(kept.sum(), int(rank)), c=tau[kept], cmap="viridis", vmin=0,
                            vmax=max(vmax, 1), s=8, marker="|")
        if (~kept).any():
            ax.scatter(t[~kept], np.full((~kept).sum(), int(rank)), color="red", s=12, marker="x")
    if points is not None:
        ax.figure.colorbar(points, ax=ax, label="staleness tau")
    ax.set_yticks(sorted(int(r) for r in workers))
    ax.set_xlabel("wall time since the fit began (s)")
    ax.set_ylabel("worker rank")
    return ax


def save_figures(est, directory, vocabulary=None, fmt="png"):
    """Write every figure that applies to one fitted estimator into ``directory`` (created if
    missing) and return their paths: the loss (logistic) or perplexity (LDA) curve, the staleness
    histogram, an LDA fit's top words, and on MPI rank 0 the worker timeline."""
    plt = _pyplot()
    os.makedirs(directory, exist_ok=True)
    paths = []

    def save(name, draw):
        fig = draw()
        fig = getattr(fig, "figure", fig)
        path = os.path.join(directory, f"{name}.{fmt}")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)

    history = _history(est)
    is_lda = hasattr(est, "components_") and "objective" not in history[0]
    if is_lda:
        if any(r.get("perplexity") is not None or r.get("train_perplexity") is not None for r in history):
            save("perplexity", lambda: perplexity(est))
        save("top_words", lambda: top_words(est, vocabulary))
    else:
        save("loss", lambda: loss(est))
    if getattr(est, "staleness_", None) is not None and est.staleness_.count:
        save("staleness", lambda: staleness(est))
    if getattr(est, "mpi_rank_", None) == 0:
        save("mpi_timeline", lambda: mpi_timeline(est))
    return paths
