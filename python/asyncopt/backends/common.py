"""What every backend does the same way before it trains: which model a fit continues or starts,
the rows' visiting order, and LDA's fixed subsample for the training perplexity. Backends import
this module, never each other."""
from __future__ import annotations

import numpy as np


def logistic_model(model, n_features, dtype, y, run, rule):
    """The model a logistic fit trains: the given one checked against data of n_features columns in
    dtype and labels y when continuing, else a new one."""
    classes = np.unique(y)
    if run.continuing and model is not None:
        model.check_continuation(n_features, np.dtype(dtype), classes, rule)
        return model
    if run.first_classes is not None:
        classes = run.first_classes
    elif classes.shape[0] != 2:
        raise ValueError(f"y must hold exactly two classes for binary logistic regression, got "
                         f"{classes.shape[0]}: {classes[:10]}")
    return run.new_model(n_features, dtype, classes)


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
