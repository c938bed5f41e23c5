"""What every backend does the same way before it trains: which model a fit continues or starts,
the rows' visiting order, and LDA's fixed subsample for the training perplexity. Backends import
this module, never each other."""
from __future__ import annotations

import numpy as np


def logistic_model(model, n_features, dtype, y, run, rule, multiclass=False, backend=""):
    """The model a logistic fit trains: the given one checked against data of n_features columns in
    dtype and labels y when continuing, else a new one. ``multiclass``: whether the backend trains
    more than two classes."""
    classes = np.unique(y)
    if run.continuing and model is not None:
        model.check_continuation(n_features, np.dtype(dtype), classes, rule, run.multi_class)
        return model
    if run.first_classes is not None:
        classes = run.first_classes
    if classes.shape[0] < 2:
        k = classes.shape[0]
        raise ValueError(f"y must hold at least two classes, got {k} class{'' if k == 1 else 'es'}: {classes[:10]}")
    if classes.shape[0] > 2 and not multiclass:
        raise ValueError(f"y has {classes.shape[0]} classes, but backend={backend!r} trains exactly two classes "
                         "(binary logistic regression); multiclass runs on backend='threads'")
    return run.new_model(n_features, dtype, classes)


def row_weights(y, classes, run):
    """The fit's per-row loss weights, sample_weight times class_weight, as float64 (None: all ones).
    sample_weight must be n finite values >= 0, not all 0; class_weight as scikit-learn's
    compute_class_weight takes it ('balanced' counts the classes in y)."""
    sw, cw = run.sample_weight, run.class_weight
    if sw is None and cw is None:
        return None
    n = y.shape[0]
    w = np.ones(n)
    if sw is not None:
        sw = np.asarray(sw)
        if sw.ndim == 0:
            sw = np.full(n, sw)  # a scalar weighs every row alike, as scikit-learn's _check_sample_weight
        if sw.ndim != 1 or sw.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},): one weight per row of X")
        if sw.dtype.kind not in "biuf":
            raise ValueError(f"sample_weight must be numbers, got dtype {sw.dtype}")
        sw = sw.astype(np.float64)
        if not np.isfinite(sw).all():
            raise ValueError("sample_weight contains NaN or infinity")
        if (sw < 0).any():
            raise ValueError("Negative values in sample_weight: weights must be >= 0")
        if not sw.any():
            raise ValueError("sample_weight is zero for every row: nothing to learn from")
        w = sw
    if cw is not None:
        from sklearn.utils.class_weight import compute_class_weight

        per_class = compute_class_weight(cw, classes=classes, y=y)
        w = w * per_class[np.searchsorted(classes, y)]
    return w


def refuse_weights(run, backend):
    """For a backend that trains unweighted rows only: raise if the fit has weights."""
    for name in ("sample_weight", "class_weight"):
        if getattr(run, name) is not None:
            raise ValueError(f"{name} is not available with backend={backend!r} yet; backend='threads' takes it")


def visiting_order(rng, n, shuffle):
    """The epoch's starting order of the rows: one global shuffle per fit (each thread reshuffles its
    slice every epoch), or the file order."""
    return rng.permutation(n).astype(np.int64) if shuffle else np.arange(n, dtype=np.int64)


def lda_train_subsample(X, rng, n_docs):
    """A fixed random subsample of n_docs training documents for the records' train_perplexity, or None."""
    if n_docs <= 0:
        return None
    rows = np.sort(rng.choice(X.shape[0], size=min(X.shape[0], int(n_docs)), replace=False))
    sub = X[rows]
    return sub if sub.data.any() else None
