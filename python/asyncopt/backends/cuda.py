"""The CUDA backend: logistic regression on one GPU. The data go to the device once per fit (or are
read in place when they are device arrays), every epoch runs there (csrc/cuda, the engine of
csrc/asyncopt/gpu/engine.hpp), and only the history's scalars come back per epoch; the model comes
back at the end of the fit (and before each callback).

The module that runs the engine is resolved by :func:`engine_module`: asyncopt._cuda, or in tests
the host emulator ``_core.gpu_emulator``, which runs the kernels' per-worker code on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import _core, gpu
from .._checks import check_int, check_labels, check_matrix, fit_rng
from ..state import feature_counts
from .common import logistic_model, refuse_weights, visiting_order

WORKLOADS = ("logistic",)
PARAMETERS = {"device": None, "gpu_workers": None, "gpu_update": "auto"}
PARAMETER_HINTS = {"device": " (device selects which one GPU of this process backend='cuda' trains on)"}
PARTIAL_FIT = True
UPDATES = ("auto", "atomic", "racy")


def built():
    return gpu.built()


def usable():
    """A GPU is here (asks the CUDA runtime: only called when a fit resolves backend='auto')."""
    return gpu.is_available()


def unavailable():
    return gpu.REBUILD


@dataclass(frozen=True)
class GpuOptions:
    """device : GPU number; workers : concurrent workers (warps), None = fill the device
    (:func:`asyncopt.gpu.default_workers`); update : how an SGD step writes ('atomic' or 'racy';
    'auto' = atomic where the rule's step is an addition)."""

    device: int = 0
    workers: Optional[int] = None
    update: str = "auto"

    def __post_init__(self):
        check_int("gpu_workers", self.workers, low=1, allow_none=True)
        if self.update not in UPDATES:
            raise ValueError(f"gpu_update must be one of {UPDATES}, got {self.update!r}")


def options(device=None, gpu_workers=None, gpu_update="auto"):
    if device == "cpu":
        raise ValueError("backend='cuda' with device='cpu': use backend='threads' for the CPU")
    index = gpu.parse_device(device)
    return GpuOptions(0 if index is None else index, gpu_workers, gpu_update)


def check_logistic(optimizer, regularization, alpha, n_threads, options):
    if options.update == "atomic" and not optimizer.atomic_writes:
        raise ValueError(f"gpu_update='atomic' needs a step that is one addition (SGD's); a {optimizer.name} "
                         "step is not an addition (use 'auto' or 'racy')")
    return regularization


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


def fit_logistic(model, X, y, eval_set, settings, loop, run):
    refuse_weights(run, "cuda")
    opts = run.options
    opt = settings.optimizer
    module = engine_module(opts.device)
    continuing = run.continuing and model is not None
    parts = gpu.device_csr(X)
    if parts is not None:  # device arrays: converted and checked on the device
        n, d = parts[1]
        if continuing and d != model.n_features:
            raise ValueError(f"X has {d} features, but the model was fit with {model.n_features}")
        data, classes = gpu.dataset_from_device(module, parts, y, d, opts.device)
        counts = data.column_counts()
        present = np.flatnonzero(counts)
        counts = counts[present]
        row_lengths = np.diff(data.indptr())
        if continuing:
            model.check_continuation(d, np.dtype(np.float32), classes, opt.name)
        else:
            classes = run.first_classes if run.first_classes is not None else classes
            model = run.new_model(d, np.float32, classes)
        if not np.array_equal(classes, model.classes):
            raise ValueError(f"y's labels {classes} differ from the model's classes {model.classes} (labels on the "
                             "GPU must hold both classes)")
    else:
        X = check_matrix(X, n_features=model.n_features if continuing else None)
        y = check_labels(y, X.shape[0])
        n, d = X.shape
        # the device computes in float32: the model is float32 whatever X's dtype
        model = logistic_model(model, d, np.float32, y, run, opt.name, backend="cuda")
        present, counts = feature_counts(X.indices, d)
        row_lengths = np.diff(X.indptr)
        loop.bind_data(X.indptr, X.indices, X.data, y)  # (device arrays are not checksummed on a resume)
        data = gpu.dataset(module, X, model.signed(y), opts.device)
    val = _eval_dataset(model, module, eval_set, opts.device)

    reg_scale = model.add_features(present, counts, n, settings)
    cfg = _core.GpuConfig()
    sm, warps = device_limits(module, opts.device)
    workers = opts.workers if opts.workers is not None else gpu.default_workers(n, settings.batch_size, sm, warps)
    cfg.workers = int(min(workers, n))  # a worker without rows would only cost a launch slot
    cfg.batch_size = settings.batch_size
    cfg.shuffle = settings.shuffle
    cfg.sparse_alpha = settings.sparse_alpha
    cfg.fit_intercept = settings.fit_intercept
    cfg.intercept_scale = settings.intercept_scale
    cfg.atomic = opt.atomic_writes and opts.update in ("auto", "atomic")
    cfg.max_batch_nnz = _max_batch_nnz(row_lengths, settings.batch_size)
    rng = loop.fit_rng(lambda: fit_rng(run.random_state, model.t))
    perm = loop.carry("perm", visiting_order(rng, n, settings.shuffle), current=lambda: engine.download_perm())
    engine = module.LogisticEngine(data, opt.native, model.array, reg_scale, model.active, perm,
                                   settings.step_config(), cfg)
    run.report.update(n_threads=None, device=f"cuda:{opts.device}", gpu_workers=cfg.workers)

    def evaluate(_):
        loss_sum, correct = engine.evaluate(data)
        # the device kernels do not sum progressive losses: a record is always an exact pass here
        rec = {"train_loss": loss_sum / n, "train_accuracy": correct / n, "train_loss_kind": "exact",
               "objective": loss_sum / n + 0.5 * settings.alpha * engine.squared_norm(),
               "val_loss": None, "val_accuracy": None}
        if val is not None:
            vl, vc = engine.evaluate(val)
            rec["val_loss"] = vl / val.n_rows
            rec["val_accuracy"] = vc / val.n_rows
        return rec

    def sync():
        engine.download_state(model.array)
        model.changed()

    def epoch(seed, k0):
        return engine.epoch(seed, k0, loop.step_scale)

    return loop.run(model, epoch, evaluate, rng, sync)


def _eval_dataset(model, module, eval_set, device):
    """The validation pair as a data set on the device (host or device arrays), or None."""
    if eval_set is None:
        return None
    if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
        raise ValueError("eval_set must be a pair (X_val, y_val)")
    parts = gpu.device_csr(eval_set[0])
    if parts is not None:
        if parts[1][1] != model.n_features:
            raise ValueError(f"eval_set X has {parts[1][1]} features, but the model has {model.n_features}")
        data, classes = gpu.dataset_from_device(module, parts, eval_set[1], parts[1][1], device)
        if not np.array_equal(classes, model.classes):
            raise ValueError(f"eval_set y's classes {classes} differ from the model's {model.classes}")
        return data
    Xv = check_matrix(eval_set[0], name="eval_set X", n_features=model.n_features)
    yv = model.signed(check_labels(eval_set[1], Xv.shape[0], name="eval_set y"), name="eval_set y")
    return gpu.dataset(module, Xv, yv, device)
