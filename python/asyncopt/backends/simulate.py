"""The delay simulator backend: one writer, the native rules, each update's gradient read at the
iterate of d_t updates earlier (csrc/asyncopt/simulate/delayed.hpp), d_t from a seeded delay model
(:mod:`asyncopt.simulate`). One native call per epoch with the GIL released.

Binary logistic regression only (LDA and multiclass are later increments). With delay constant(0)
a fit is the one-thread threads fit bit for bit: the same visiting order, segments and arithmetic.
With ``record_every=E`` an "epoch" of the training loop (one history record) is the next E updates
of the visiting order, which is reshuffled at every pass's end: records at a finer grain than
passes, for steps to a target. Synchronous mini-batch SGD over n virtual workers is the same loop at delay 0 with mini-batches of
n x batch_size rows (the mean of the n workers' equal-sized mini-batch gradients), its clock the
slowest job of every round.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _core
from .._checks import check_labels, check_matrix, fit_rng, native_csr, resolve_n_threads
from ..simulate import delay_stream, resolve_options
from ..state import feature_counts
from .common import logistic_model, row_weights, visiting_order

WORKLOADS = ("logistic",)
PARAMETERS = {"simulate": None}
PARAMETER_HINTS = {"simulate": " (simulate holds the delay simulator's delay model and Picky SGD's threshold)"}
PARTIAL_FIT = False  # the iterate history lives in one fit's simulator


def options(simulate=None):
    return resolve_options(simulate)


def built():
    return True


def usable():
    return False  # never picked by backend='auto': a simulation is asked for


def unavailable():  # pragma: no cover - always built
    return ""


def check_logistic(optimizer, regularization, alpha, n_threads, options):
    if options.picky_threshold is not None:
        if not optimizer.capabilities["additive"]:
            raise ValueError("simulate: picky_threshold (Picky SGD) runs SGD: set optimizer='sgd' (the distance "
                             "||x_t - x_{t-d}|| follows the sparse writes of an additive step)")
        if regularization == "exact" and alpha > 0:
            raise ValueError("simulate: picky_threshold cannot use regularization='exact': exact L2 moves every "
                             "coordinate at every step, which the O(nnz) distance cannot follow; use 'sparse'")
        if regularization == "auto":
            regularization = "sparse"
    if options.delay_adaptive is not None:
        if not optimizer.capabilities["additive"]:
            raise ValueError("simulate: delay_adaptive (delay-adaptive SGD) runs SGD: set optimizer='sgd'")
        if regularization == "exact" and alpha > 0:
            raise ValueError("simulate: delay_adaptive cannot use regularization='exact' (its shrink tables assume "
                             "the schedule's steps); use 'sparse'")
        if regularization == "auto":
            regularization = "sparse"
    return regularization


def fit_logistic(model, X, y, eval_set, settings, loop, run):
    opts = run.options
    if loop.checkpoint is not None or loop.resume is not None:
        raise ValueError("checkpoints are not available with backend='simulate' yet (the iterate history is not "
                         "saved): fit again instead")
    X = check_matrix(X, n_features=model.n_features if run.continuing and model is not None else None)
    y = check_labels(y, X.shape[0])
    model = logistic_model(model, X.shape[1], X.dtype, y, run, settings.optimizer.name, backend="simulate")
    labels = model.encoded(y)
    weight = row_weights(y, model.classes, run)
    val = model.eval_data(eval_set, X.dtype)
    n, d = X.shape
    Xn = native_csr(X)
    _core.validate_csr(*Xn, d)
    present, counts = feature_counts(Xn[1], d)
    reg_scale = model.add_features(present, counts, n, settings)
    cfg = settings.native_config(1)
    batch = settings.batch_size * (opts.delay.workers if opts.synchronous else 1)
    cfg.batch_size = batch
    chunk = None if opts.record_every is None else opts.record_every * batch  # rows per record
    if chunk is not None:
        cfg.shuffle = False  # the chunks are cut from a visiting order this loop reshuffles per pass
    eval_threads = resolve_n_threads(run.n_threads)
    rng = loop.fit_rng(lambda: fit_rng(run.random_state, model.t))
    perm = visiting_order(rng, n, settings.shuffle)
    threshold = -1.0 if opts.picky_threshold is None else opts.picky_threshold
    if opts.picky_relative:
        threshold *= settings.optimizer.learning_rate
    adaptive = math.inf if opts.delay_adaptive is None else opts.delay_adaptive
    max_delay = 0 if opts.synchronous else opts.delay.max_delay
    sim = stream = order_rng = None
    pos = 0
    stats = {"iterations": 0, "applied": 0, "dropped": 0, "delays": [], "accepted": []}
    run.report.update(n_threads=1, device="cpu", simulate_stats=stats)

    def next_rows(seed):
        """The next chunk of rows (record_every updates): the visiting order read on, reshuffled
        (its own seeded generator) at every pass's end."""
        nonlocal pos, order_rng
        if order_rng is None:
            order_rng = np.random.default_rng([seed, 0xC4])
        parts, need = [], chunk
        while need > 0:
            if pos == n:
                if settings.shuffle:
                    order_rng.shuffle(perm)
                pos = 0
            take = min(need, n - pos)
            parts.append(perm[pos:pos + take])
            pos += take
            need -= take
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.int64)

    def epoch(seed, k0):
        nonlocal sim, stream
        sc = settings.step_config()
        sc.scale = loop.step_scale
        if sim is None:
            sim = _core.DelaySimulator(model.array, d, settings.optimizer.native, X.dtype.name, sc, cfg,
                                       model.active, reg_scale, max_delay, threshold, k0, adaptive)
        else:
            sim.set_step_scale(loop.step_scale)
        if stream is None:
            # the delays' own generator, from the first epoch's seed (not from the fit's generator,
            # whose draws give every epoch its seed: those, and so the visiting orders, stay the
            # threads backend's)
            stream = delay_stream(opts, np.random.default_rng([seed, 0x51D]))
        rows = perm if chunk is None else next_rows(seed)
        delays = stream(-(-rows.size // min(batch, rows.size)))
        res = sim.epoch(*Xn, labels, rows, np.ascontiguousarray(delays, dtype=np.int64), seed, sample_weight=weight)
        done = int(res["updates"])
        stats["iterations"] += done
        stats["dropped"] += int(res["dropped"])
        stats["applied"] = stats["iterations"] - stats["dropped"]
        stats["delays"].append(res["delays"][:done])
        stats["accepted"].append(res["accepted"][:done])
        return res

    def evaluate(res):
        rec = model.evaluate(Xn, X.shape, labels, val, settings, eval_threads,
                             progressive=res if settings.train_loss == "progressive" else None, weight=weight)
        rec["dropped"] = int(res["dropped"])
        rec["simulated_time"] = stream.time  # the virtual workers' clock at the epoch's last write (None: no clock)
        return rec

    try:
        return loop.run(model, epoch, evaluate, rng)
    finally:
        stats["delays"] = np.concatenate(stats["delays"]) if stats["delays"] else np.zeros(0, np.int64)
        stats["accepted"] = np.concatenate(stats["accepted"]) if stats["accepted"] else np.zeros(0, bool)
        stats["accepted_fraction"] = stats["applied"] / stats["iterations"] if stats["iterations"] else 1.0
