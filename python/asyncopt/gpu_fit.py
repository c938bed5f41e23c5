"""LogisticRegression.fit on one GPU (device='cuda'): the data go to the device once per fit (or are
read in place when they are device arrays), every epoch runs there (csrc/cuda, the engine of
csrc/asyncopt/gpu/engine.hpp), and only the history's scalars come back per epoch; the model comes
back at the end of the fit (and before each callback).

The module that runs the engine is resolved by :func:`engine_module`: asyncopt._cuda, or in tests
the host emulator ``_core.gpu_emulator``, which runs the kernels' per-worker code on the CPU.
"""
from __future__ import annotations

import numpy as np

from . import _core, gpu
from ._checks import check_labels, check_matrix, fit_rng
from .optim import step_config


def engine_module(device):
    """The module holding Dataset and LogisticEngine for ``device`` (after checking it exists)."""
    return gpu.require(device)


def device_limits(module, device):
    """(SM count, resident warps per SM) of the device, for the default number of workers."""
    info = module.device_info(device)
    return info["sm_count"], info["max_warps_per_sm"]


def _max_batch_nnz(row_lengths, batch_size):
    """A bound on one mini-batch's nonzeros: the batch_size longest rows together."""
    if batch_size <= 1:
        return int(row_lengths.max(initial=0))
    k = min(batch_size, row_lengths.shape[0])
    return int(np.partition(row_lengths, row_lengths.shape[0] - k)[-k:].sum())


def fit(est, X, y, eval_set, opt, reg, device, epochs, continuing, first_classes=None):
    """fit (epochs = est.epochs) or partial_fit (epochs = 1) on the GPU. continuing: train the
    existing model (warm start, or a later partial_fit); first_classes: partial_fit's classes."""
    from .linear import _feature_counts

    module = engine_module(device)
    parts = gpu.device_csr(X)
    if parts is not None:  # device arrays: converted and checked on the device
        n, d = parts[1]
        if continuing and d != est.n_features_in_:
            raise ValueError(f"X has {d} features, but the model was fit with {est.n_features_in_}")
        data, classes = gpu.dataset_from_device(module, parts, y, d, device)
        counts = data.column_counts()
        present = np.flatnonzero(counts)
        counts = counts[present]
        row_lengths = np.diff(data.indptr())
    else:
        X = check_matrix(X, n_features=est.n_features_in_ if continuing else None)
        y = check_labels(y, X.shape[0])
        classes = np.unique(y)
        n, d = X.shape

    if continuing:
        est._check_continuation(d, np.dtype(np.float32), classes, opt)
    else:
        if first_classes is not None:
            classes = np.unique(np.asarray(first_classes))
            if classes.shape[0] != 2:
                raise ValueError(f"classes must hold exactly two labels, got {classes}")
        elif classes.shape[0] != 2:
            raise ValueError(f"y must hold exactly two classes for binary logistic regression, got "
                             f"{classes.shape[0]}: {classes[:10]}")
        est._init_model(d, np.float32, classes, opt)
    if parts is None:
        present, counts = _feature_counts(X.indices, d)
        row_lengths = np.diff(X.indptr)
        data = gpu.dataset(module, X, est._signed(y), device)
    elif not np.array_equal(classes, est.classes_):
        raise ValueError(f"y's labels {classes} differ from the model's classes {est.classes_} (labels on the GPU "
                         "must hold both classes)")
    val = _eval_dataset(est, module, eval_set, device)

    reg_scale = est._prepare_features(present, counts, n, reg, opt)
    cfg = _core.GpuConfig()
    sm, warps = device_limits(module, device)
    workers = est.gpu_workers if est.gpu_workers is not None else gpu.default_workers(n, est.batch_size, sm, warps)
    cfg.workers = int(min(workers, n))  # a worker without rows would only cost a launch slot
    cfg.batch_size = est.batch_size
    cfg.shuffle = bool(est.shuffle)
    cfg.sparse_alpha = float(est.alpha) if reg == "sparse" else 0.0
    cfg.fit_intercept = bool(est.fit_intercept)
    cfg.intercept_scale = est._intercept_scale(opt)
    cfg.atomic = opt.name == "sgd" and est.gpu_update in ("auto", "atomic")
    cfg.max_batch_nnz = _max_batch_nnz(row_lengths, est.batch_size)
    rng = fit_rng(est.random_state, est.t_)
    perm = rng.permutation(n).astype(np.int64) if est.shuffle else np.arange(n, dtype=np.int64)
    engine = module.LogisticEngine(data, opt.name, est._state, reg_scale, est._active, perm,
                                   step_config(opt, est.alpha, reg), cfg)
    est.regularization_ = reg
    est.n_threads_ = None
    est.device_ = f"cuda:{device}"
    est.gpu_workers_ = cfg.workers

    def evaluate():
        loss_sum, correct = engine.evaluate(data)
        rec = {"train_loss": loss_sum / n, "train_accuracy": correct / n,
               "objective": loss_sum / n + 0.5 * float(est.alpha) * engine.squared_norm(),
               "val_loss": None, "val_accuracy": None}
        if val is not None:
            vl, vc = engine.evaluate(val)
            rec["val_loss"] = vl / val.n_rows
            rec["val_accuracy"] = vc / val.n_rows
        return rec

    return est._run_epochs(engine.epoch, evaluate, lambda: engine.download_state(est._state), rng, opt, epochs)


def _eval_dataset(est, module, eval_set, device):
    """The validation pair as a data set on the device (host or device arrays), or None."""
    if eval_set is None:
        return None
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
        raise ValueError("eval_set must be a pair (X_val, y_val)")
    parts = gpu.device_csr(eval_set[0])
    if parts is not None:
        if parts[1][1] != est.n_features_in_:
            raise ValueError(f"eval_set X has {parts[1][1]} features, but the model has {est.n_features_in_}")
        data, classes = gpu.dataset_from_device(module, parts, eval_set[1], parts[1][1], device)
        if not np.array_equal(classes, est.classes_):
            raise ValueError(f"eval_set y's classes {classes} differ from the model's {est.classes_}")
        return data
    Xv = check_matrix(eval_set[0], name="eval_set X", n_features=est.n_features_in_)
    yv = est._signed(check_labels(eval_set[1], Xv.shape[0], name="eval_set y"), name="eval_set y")
    return gpu.dataset(module, Xv, yv, device)
