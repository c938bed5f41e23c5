"""The backends: who applies which update when. One registry, one narrow interface.

Every backend is a module with

- ``built()``: whether this build can run it, asked without initialising CUDA or MPI;
- ``unavailable()``: why not, with what to install or rebuild (only called when not built);
- ``WORKLOADS``: the workloads it trains ('logistic', 'lda');
- ``PARAMETERS``: the estimator parameters that are its own, with their defaults (e.g. ``mpi``), and
  ``options(**those)``: its options object from them, checked (:func:`options` routes them);
  optionally ``PARAMETER_WORKLOADS``: parameter -> the workloads whose estimators have it (default: all);
- optionally ``check_logistic(optimizer, regularization, alpha, n_threads, options)`` (returns the
  regularisation to resolve, or raises for what the backend cannot run) and ``check_lda(options)``;
- ``PARTIAL_FIT``: whether it can continue a model one chunk at a time;
- ``fit_logistic(model, X, y, eval_set, settings, loop, run)`` and/or
  ``fit_lda(model, X, eval_set, settings, loop, run)``: train the model state (state.py) on the data
  with the frozen settings (settings.py) through the epoch loop (training.py). ``model`` is None
  where the backend must start a new one (it calls ``run.new_model``), ``run`` carries the
  per-process resources and backend options (:class:`Run`). Each returns the trained state.

A backend never sees an estimator, and nothing here imports one. Adding a backend is one module
and one line in ``_MODULES``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# name -> module, in the order 'auto' prefers them where they can run
_MODULES = {"cuda": ".cuda", "threads": ".threads", "mpi": ".mpi", "simulate": ".simulate"}
AUTO_ORDER = ("cuda", "threads")  # 'auto' never picks mpi (mpiexec and every rank's fit) or simulate


@dataclass
class Run:
    """What one fit call needs besides data, settings and the loop.

    n_threads : threads of this process (None: resolved by the backend)
    random_state : the estimator's, for shuffles and seeds
    new_model : (n_features, dtype, classes) -> a new model state (logistic), or
        (n_features) -> one (LDA)
    continuing : the given model is continued (warm start, partial_fit) rather than replaced
    total_samples : LDA's D for partial_fit (None: the rows of X)
    evaluate_every : LDA: passes between evaluations of every training document's perplexity
    options : the backend's own settings (MPIOptions; the GPU's device and workers; SimOptions)
    report : attributes the backend reports about the run (e.g. mpi_rank, device), read by the
        estimator afterwards
    """

    n_threads: Optional[int]
    random_state: Any
    new_model: Callable
    continuing: bool = False
    total_samples: Optional[float] = None
    options: Any = None
    first_classes: Any = None  # logistic partial_fit's first call: the classes
    multi_class: Optional[str] = None  # logistic, K > 2 classes: 'softmax' or 'ovr' (what a continued model must have)
    sample_weight: Any = None  # logistic: the fit's per-row weights (common.row_weights checks them)
    class_weight: Any = None  # logistic: None, 'balanced' or a dict label -> weight
    train_perplexity_docs: int = 0  # LDA: training documents whose perplexity each record holds
    evaluate_every: int = 0  # LDA: every this many passes (and at a fit's last) a record holds the perplexity of
    #                          all training documents (scikit-learn's evaluate_every); 0: never
    report: dict = field(default_factory=dict)


def module(name):
    """The backend module called ``name`` (imported on first use)."""
    return importlib.import_module(_MODULES[name], __name__)


def names():
    return tuple(_MODULES)


def built(workload):
    """Names of the backends this build can run for a workload ('logistic' or 'lda')."""
    out = []
    for name in _MODULES:
        m = module(name)
        if workload in m.WORKLOADS and m.built():
            out.append(name)
    return out


def _is_set(param, value, default):
    if param == "device":  # 'cpu' is the same as None: no GPU
        from ..gpu import parse_device

        return parse_device(value) is not None
    return not (value is default or (value == default and type(value) is type(default)))


def options(name, workload, values):
    """The options object of backend ``name`` from the estimator's backend parameters ``values``
    (parameter -> value, for every backend that trains the workload). A parameter of another
    backend that is set raises ValueError: it would be silently ignored."""
    own = _own(module(name), workload)
    for other in _MODULES:
        m = module(other)
        if other == name or workload not in m.WORKLOADS:
            continue
        for param, default in _own(m, workload).items():
            if param not in own and _is_set(param, values[param], default):
                hint = getattr(m, "PARAMETER_HINTS", {}).get(param, "")
                raise ValueError(f"{param}={values[param]!r} is a setting of backend={other!r}, but backend is "
                                 f"{name!r}: pass backend={other!r}{hint}")
    return module(name).options(**{p: values[p] for p in own})


def _own(m, workload):
    """A backend module's parameters that the estimators of ``workload`` have, with their defaults."""
    only = getattr(m, "PARAMETER_WORKLOADS", {})
    return {p: d for p, d in m.PARAMETERS.items() if workload in only.get(p, (workload,))}


def parameter_names(workload):
    """Every backend parameter of the backends that train a workload."""
    return [p for n in _MODULES if workload in module(n).WORKLOADS for p in _own(module(n), workload)]


def resolve(name, workload):
    """The backend module for ``backend=name``: 'auto' is the first of AUTO_ORDER that is built and
    usable here; an unknown name, one that does not train this workload, or one this build lacks
    raises ValueError naming the ones it has."""
    if name == "auto":
        for candidate in AUTO_ORDER:
            m = module(candidate)
            if workload in m.WORKLOADS and m.built() and m.usable():
                return candidate, m
        raise ValueError(f"no backend can run here for {workload}")  # threads always can
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"backend must be 'auto' or one of {names()}, got {name!r} (built here: "
                         f"{built(workload)})")
    m = module(name)
    if workload not in m.WORKLOADS:
        raise ValueError(f"backend {name!r} does not train this model (backends for it: "
                         f"{[n for n in _MODULES if workload in module(n).WORKLOADS]})")
    if not m.built():
        raise ValueError(f"backend {name!r} is not available in this build: {m.unavailable()} (built here: "
                         f"{built(workload)})")
    return name, m
