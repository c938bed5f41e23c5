"""The threads backend: lock-free Hogwild! epochs over this process's cores (csrc/asyncopt/threads/hogwild.hpp),
one native call per epoch with the GIL released."""
from __future__ import annotations

import numpy as np

from .. import _core
from .._checks import check_labels, check_matrix, fit_rng, native_csr, resolve_n_threads
from ..state import check_counts, feature_counts
from .common import lda_train_subsample, logistic_model, row_weights, visiting_order

WORKLOADS = ("logistic", "lda")
PARAMETERS = {"record_staleness": False}
PARAMETER_WORKLOADS = {"record_staleness": ("logistic",)}
PARAMETER_HINTS = {"record_staleness": " (record_staleness records the threads' per-update delays; the simulator "
                                       "records its own in simulate_stats_)"}
PARTIAL_FIT = True


def options(record_staleness=False):
    if not isinstance(record_staleness, (bool, np.bool_)):
        raise ValueError(f"record_staleness must be True or False, got {record_staleness!r}")
    return {"record_staleness": bool(record_staleness)}


def built():
    return True


def usable():
    return True


def unavailable():  # pragma: no cover - always built
    return ""


# ---------------------------------------------------------------------- logistic regression
def fit_logistic(model, X, y, eval_set, settings, loop, run):
    X = check_matrix(X, n_features=model.n_features if run.continuing and model is not None else None)
    y = check_labels(y, X.shape[0])
    n_threads = resolve_n_threads(run.n_threads)
    model = logistic_model(model, X.shape[1], X.dtype, y, run, settings.optimizer.name, multiclass=True)
    labels = model.encoded(y)
    weight = row_weights(y, model.classes, run)
    val = model.eval_data(eval_set, X.dtype)
    n, d = X.shape
    Xn = native_csr(X)
    _core.validate_csr(*Xn, d)  # once per fit; the epochs skip the O(nnz) check
    present, counts = feature_counts(Xn[1], d)
    reg_scale = model.add_features(present, counts, n, settings)
    sc = settings.step_config()
    cfg = settings.native_config(n_threads)
    loop.bind_data(*Xn, labels, *(() if weight is None else (weight,)))
    rng = loop.fit_rng(lambda: fit_rng(run.random_state, model.t))
    perm = loop.carry("perm", visiting_order(rng, n, settings.shuffle))
    rule = settings.optimizer.native
    record = bool(run.options and run.options["record_staleness"])
    if record and model.K > 1:
        raise ValueError("record_staleness=True records binary logistic regression's updates; this fit has "
                         f"{model.K} classes")
    cfg.record_staleness = record
    trace = []  # the epochs' per-update delays, in step order (record_staleness)
    run.report.update(n_threads=n_threads, device="cpu", staleness_trace=None)

    def epoch(seed, k0):
        cfg.seed, cfg.k0 = seed, k0
        sc.scale = loop.step_scale
        if model.K > 1:  # K classes: K adjacent coordinates per feature (threads/multinomial.hpp)
            return _core.multinomial_epoch(*Xn, d, labels, model.K, perm, model.array, reg_scale, model.active, rule,
                                           sc, cfg, loss=model.loss, check_input=False, sample_weight=weight)
        res = _core.logistic_epoch(*Xn, d, labels, perm, model.array, reg_scale, model.active, rule, sc, cfg,
                                   check_input=False, sample_weight=weight)
        if record:
            trace.append(res["delays"])
        return res

    def evaluate(res):
        return model.evaluate(Xn, X.shape, labels, val, settings, n_threads, progressive=res, weight=weight)

    try:
        return loop.run(model, epoch, evaluate, rng)
    finally:
        if record:
            run.report["staleness_trace"] = np.concatenate(trace) if trace else np.zeros(0, np.int64)


# ---------------------------------------------------------------------- LDA
def fit_lda(model, X, eval_set, settings, loop, run):
    X = check_counts(X, n_features=model.n_features if run.continuing and model is not None else None)
    if not (run.continuing and model is not None):
        model = run.new_model(X.shape[1])
    n_threads = resolve_n_threads(run.n_threads)
    Xv = None if eval_set is None else check_counts(eval_set, name="eval_set", n_features=model.n_features)
    n = X.shape[0]
    Xn = native_csr(X)
    loop.bind_data(*Xn)
    rng = loop.fit_rng(lambda: fit_rng(run.random_state, model.t))
    perm = loop.carry("perm", visiting_order(rng, n, settings.shuffle))
    sub = lda_train_subsample(X, rng, run.train_perplexity_docs)
    cfg = settings.native_config(n_threads, run.total_samples if run.total_samples is not None else n)
    run.report.update(n_threads=n_threads)

    def epoch(seed, k0):
        cfg.seed, cfg.k0 = seed, k0
        return _core.lda_epoch(*Xn, X.shape[1], perm, model.mu, model.topic_mass, cfg)

    def evaluate(res):
        every = run.evaluate_every
        full = every and (model.n_iter % every == 0 or model.n_iter == loop.epochs)
        return {"e_step_iterations": int(res["e_step_iterations"]), "topic_mass_drift": float(res["topic_mass_drift"]),
                "perplexity": model.perplexity(Xv, n_threads) if Xv is not None else None,
                "train_perplexity": model.perplexity(sub, n_threads) if sub is not None else None,
                "full_train_perplexity": model.perplexity(X, n_threads) if full else None}

    return loop.run(model, epoch, evaluate, rng)
