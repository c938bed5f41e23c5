"""Update rules: one class per rule, and the registry every estimator and backend reads.

An optimizer object says *which* update rule runs and with which constants; a backend decides who
applies it when. The arithmetic lives in C++ (``csrc/asyncopt/optim/``), documented there with the
papers' equations; each class here names its native rule, its defaults, the regularisation modes it
supports and what it can do. Adding a rule is one class here (decorated with :func:`register`) and
its header in C++.

- :class:`SGD`: ``w <- w - eta_k g`` (Hogwild!, Niu et al. 2011).
- :class:`AMSGrad`: APAM's asynchronous AMSGrad (Xu et al. 2020, Alg. 1)::

      m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vhat = max(vhat, v)
      x = x - a_k m / (sqrt(vhat) + eps)

  with ``a_k = eta_k`` or, with ``bias_correction=True``, ``eta_k sqrt(1 - beta2^k) / (1 - beta1^k)``
  (Adam's bias correction folded into the step, the "epsilon-hat" form of Kingma & Ba 2015 §2).
- :class:`AdaGrad` (Duchi et al. 2011): ``G = G + g^2;  x = x - eta_k g / (sqrt(G) + eps)``.
- :class:`Adam` (Kingma & Ba 2015): AMSGrad without the max, ``x = x - a_k m / (sqrt(v) + eps)``.
- :class:`RMSProp` (A3C's shared RMSProp): ``G = beta2 G + (1 - beta2) g^2;  x = x - eta_k g / (sqrt(G) + eps)``.

On your own arrays (``attach``)
-------------------------------
``opt = asyncopt.AMSGrad(learning_rate=1e-3).attach(W)`` attaches a rule to ``W``, any writeable,
aligned, C-contiguous float32/float64 numpy array of 1 or 2 dimensions that you own (``np.memmap``
and arrays over ``multiprocessing.shared_memory`` buffers included; never copied). Then

- ``opt.step(grad)``: one step with a dense gradient of W's shape;
- ``opt.step(grad_rows, rows=idx)``: one step with a row-sparse gradient of a 2-D W (``idx``
  distinct row indices, ``grad_rows`` of shape ``(len(idx), W.shape[1])``), or index-sparse for a
  1-D W (``grad_rows`` of shape ``(len(idx),)``). The other coordinates take the step with a zero
  gradient, lazily: exactly what the dense algorithm gives them, applied when next touched;
- ``opt.catch_up(rows=idx)``: bring those rows to the current step in W (call it before reading
  rows to compute the next gradient with a rule whose idle coordinates move: AMSGrad, Adam, or any
  rule with L2); ``opt.finish()``: every coordinate, so W holds exactly the dense algorithm's iterate.

Layout: W is the authority for the weights; the rule's statistics live in a private array the
optimizer owns, compact (per coordinate only its own words: G; m, v; m, v, vhat and AMSGrad's
cached direction) with one step stamp per row, since every step touches whole rows (an Adam row of
16 float32 is 128 bytes of statistics). A step reads W[j] and the statistics of each coordinate it
touches and writes both back, so after every step each touched coordinate holds in W its exact
value at that step. An untouched coordinate holds in W its value as of the last step that touched
it (or of the last ``catch_up`` / ``finish``) until then: W is lazy there, exact after ``finish()``.
SGD and AdaGrad without ``alpha`` never move idle coordinates, so for them W is always current.

Threads: ``step``, ``catch_up`` and ``finish`` release the GIL, and ``step`` may be called from
several Python threads at once on the same optimizer (Hogwild!). Every word is read and written with
relaxed atomics (``csrc/asyncopt/core/shared.hpp``): no value is ever torn, steps on disjoint rows
never interfere, and each step gets its own global step number k (its step size, its catch-up).
Not guaranteed under races: two steps touching the same coordinate at once may lose one update to
it, its weight and statistics may come from different steps, and a gradient computed from W while
other threads write it is stale by their steps (the asynchrony the Hogwild!/APAM analyses allow).
``finish`` waits for steps in flight and is exact for every step completed. ``staleness()``
reports the delay tau of the steps as the estimators do: the steps other threads began between a
thread's read (its last ``catch_up``, else its previous step) and its step. The statistics are
private to the process: several processes on one shared-memory W each run their own optimizer.

Every rule is lazy and exact: a coordinate no mini-batch touches moves as in the dense algorithm
with a zero gradient there (shrinks, momentum drift), applied in closed form when it is next read,
so an update costs O(nonzeros). Adam's drift has no closed form; its catch-up evaluates it to double
precision in bounded work (``csrc/asyncopt/optim/adam.hpp``).

Schedules, with k the global update counter (it continues across ``partial_fit`` calls) and
``eta = learning_rate``:

- ``"constant"``: ``eta_k = eta``;
- ``"invsqrt"``: ``eta_k = eta / sqrt(k)``;
- ``"optimal"``: ``eta_k = eta / (1 + alpha eta (k - 1))``, Bottou's 1/t schedule for an
  alpha-strongly convex objective (the default of scikit-learn's SGDClassifier, which takes
  ``eta = alpha^(-1/4)``; so does asyncopt when ``learning_rate`` is None). Needs ``alpha > 0``.

L2 regularisation of strength ``alpha`` (objective: mean log-loss + alpha/2 ||w||^2) comes in three
forms, chosen by ``regularization``:

- ``"exact"`` (SGD only): the exact gradient ``alpha w`` on every coordinate at every step, applied
  lazily in closed form so a step stays O(nnz).
- ``"sparse"``: the Hogwild! paper's frequency-scaled regulariser. Row i adds ``(n / d_j) alpha w_j``
  to the gradient of each of its own features j (d_j = rows containing j), an unbiased estimate of
  ``alpha w`` that touches only the row's features. The default of the adaptive rules, where a
  dense L2 gradient would enter their per-coordinate statistics and has no closed-form catch-up.
- ``"decoupled"`` (adaptive rules): AdamW-style weight decay ``x <- (1 - eta_k alpha) x - ...``,
  applied lazily in closed form. It is not the gradient of the L2 objective (its fixed point
  differs), but is the usual choice with adaptive methods (Loshchilov & Hutter 2019).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from . import _core
from ._checks import check_real

SCHEDULES = ("constant", "invsqrt", "optimal")
REGISTRY: dict = {}  # name -> optimizer class, in registration order


def register(cls):
    """Add an optimizer class to the registry under ``cls.name``."""
    REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Optimizer:
    """What every rule has: a base step size and its schedule.

    Class attributes a rule sets: ``name`` (its native rule kind, ``asyncopt._core.Rule``, and its
    ``optimizer=`` name), ``default_learning_rate``, ``default_schedule`` (what ``schedule=None``
    means) and ``regularizations`` (the modes it supports, the first being its default); it may
    override :meth:`decay_shrink_bound`. What the compiled
    rule can do is read from the core (:attr:`capabilities`), not restated here.
    """

    learning_rate: Optional[float] = None
    schedule: Optional[str] = None

    name: ClassVar[str] = ""
    default_learning_rate: ClassVar[float] = 0.1
    default_schedule: ClassVar[str] = "constant"
    regularizations: ClassVar[tuple] = ("sparse",)

    def __post_init__(self):
        check_real("learning_rate", self.learning_rate, low=0, low_open=True, allow_none=True)
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be None or one of {SCHEDULES}, got {self.schedule!r}")

    # ------------------------------------------------------------------ resolution
    def resolved(self, alpha):
        """This rule with ``schedule`` and ``learning_rate`` filled in. schedule None: the rule's
        default (for SGD 'optimal', which needs alpha > 0: 'constant' when alpha is 0).
        learning_rate None: the rule's default or, for the 'optimal' schedule, Bottou's heuristic
        alpha^(-1/4) (as scikit-learn)."""
        schedule = self.schedule
        if schedule is None:  # the rule's; 'optimal' needs L2, so without it the constant step
            schedule = "constant" if self.default_schedule == "optimal" and alpha == 0 else self.default_schedule
        if schedule == "optimal" and alpha == 0:
            raise ValueError("schedule='optimal' (eta / (1 + alpha eta (k - 1))) needs alpha > 0")
        lr = self.learning_rate
        if lr is None:
            lr = float(alpha) ** -0.25 if schedule == "optimal" else self.default_learning_rate
        return dataclasses.replace(self, learning_rate=lr, schedule=schedule)

    def decay_shrink_bound(self):
        """learning_rate * alpha must stay below this under a multiplicative shrink (1 for the shrink
        to stay positive; a momentum rule's closed-form catch-up needs more, see AMSGrad)."""
        return 1.0

    def resolve_regularization(self, regularization, alpha):
        """The regularisation mode used: 'none' when alpha == 0, else 'auto' -> the rule's default, or
        the given one after checking the rule supports it."""
        alpha = check_real("alpha", alpha, low=0)
        if regularization == "auto":
            regularization = self.regularizations[0]
        elif regularization not in self.regularizations:
            raise ValueError(f"regularization for {self.name!r} must be 'auto' or one of {self.regularizations}, "
                             f"got {regularization!r}{self._unsupported_reason(regularization)}")
        if alpha == 0:
            return "none"
        if regularization in ("exact", "decoupled"):
            step = self.resolved(alpha).learning_rate * alpha
            bound = self.decay_shrink_bound()
            if step >= bound:
                raise ValueError(
                    f"learning_rate * alpha = {step:g} must be < {bound:g} for {regularization!r} regularization: "
                    "each step shrinks w by (1 - learning_rate * alpha)"
                    + ("" if bound == 1.0 else ", and the lazy catch-up needs that shrink to stay above beta1")
                    + "; lower learning_rate or alpha")
        return regularization

    def _unsupported_reason(self, regularization):
        if regularization == "exact":
            return (f" (a dense L2 gradient enters {self.name}'s per-coordinate statistics on every coordinate at "
                    "every step and has no closed-form catch-up; 'sparse' is its unbiased sparse estimate)")
        return ""

    # ------------------------------------------------------------------ native side
    @property
    def native(self):
        """The rule kind the compiled core takes (``asyncopt._core.Rule``)."""
        return getattr(_core.Rule, self.name)

    @property
    def capabilities(self):
        """The compiled rule's capabilities (``csrc/asyncopt/optim/rules.hpp``): additive,
        reg_in_state, and the step tables it reads (moments, drift, series)."""
        return _core.rule_capabilities(self.native)

    @property
    def atomic_writes(self):
        """A step is one addition, so the GPU can write it with an atomic add."""
        return self.capabilities["additive"]

    def step_config(self, alpha, regularization):
        """The native ``StepConfig`` (steps and rule constants) for a resolved regularisation mode
        (of this rule resolved for alpha, when its schedule or learning rate is still None)."""
        if self.schedule is None or self.learning_rate is None:
            return self.resolved(alpha).step_config(alpha, regularization)
        sc = _core.StepConfig()
        sc.learning_rate = self.learning_rate
        sc.schedule = getattr(_core.Schedule, self.schedule)
        sc.schedule_alpha = alpha
        sc.decay = alpha if regularization in ("exact", "decoupled") else 0.0
        for field in ("beta1", "beta2", "eps", "bias_correction"):
            if hasattr(self, field):
                setattr(sc, field, getattr(self, field))
        return sc

    def describe(self):
        """Plain values (name and fields), e.g. for a report."""
        return {"name": self.name, **dataclasses.asdict(self)}

    def attach(self, param, *, alpha=0.0, regularization="auto", segment_steps=None):
        """This rule attached to ``param``, a parameter array the caller owns and keeps: the
        returned :class:`Attached` updates it in place (see the module docstring, "On your own
        arrays"). ``alpha``: L2 strength, ``regularization``: 'exact' (SGD) or 'decoupled'
        (adaptive rules); 'auto' picks the one the rule has. ``segment_steps``: steps between
        stamp rebases (None: the rule's default; small values only for tests)."""
        return Attached(self, param, alpha=alpha, regularization=regularization, segment_steps=segment_steps)


@register
@dataclass(frozen=True)
class SGD(Optimizer):
    """Plain stochastic gradient descent (Hogwild! when run by several threads)."""

    name: ClassVar[str] = "sgd"
    default_learning_rate: ClassVar[float] = 0.1
    # Bottou's 1/t steps: with the estimator's default plateau drops, the setting that measured
    # best on a9a, news20, rcv1 and the synthetic set (bench/bench_defaults.py; bench/README.md)
    default_schedule: ClassVar[str] = "optimal"
    regularizations: ClassVar[tuple] = ("exact", "sparse")

    def _unsupported_reason(self, regularization):
        if regularization == "decoupled":
            return " (for SGD, decoupled weight decay is the same as exact L2: use 'exact')"
        return ""


@dataclass(frozen=True)
class MomentRule(Optimizer):
    """What the Adam family shares: first and second moments with decays beta1 and beta2, eps, and
    Adam's optional bias correction folded into the step. Not a rule by itself."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    bias_correction: bool = False

    default_learning_rate: ClassVar[float] = 0.003
    regularizations: ClassVar[tuple] = ("sparse", "decoupled")

    def __post_init__(self):
        super().__post_init__()
        check_real("beta1", self.beta1, low=0, high=1, high_open=True)
        check_real("beta2", self.beta2, low=0, high=1, high_open=True)
        check_real("eps", self.eps, low=0, low_open=True)
        if not isinstance(self.bias_correction, bool):
            raise ValueError(f"bias_correction must be True or False, got {self.bias_correction!r}")


@register
@dataclass(frozen=True)
class AMSGrad(MomentRule):
    """AMSGrad as run asynchronously by APAM (Xu et al. 2020)."""

    name: ClassVar[str] = "amsgrad"

    def decay_shrink_bound(self):
        # The catch-up's suffix sum F (steps.hpp) stays bounded only while beta1 < rho = 1 - eta alpha.
        return 1.0 - self.beta1


@register
@dataclass(frozen=True)
class AdaGrad(Optimizer):
    """AdaGrad's diagonal per-coordinate steps (Duchi, Hazan & Singer 2011)::

        G = G + g^2;  x = x - eta_k g / (sqrt(G) + eps)

    G sums every squared gradient of the coordinate, so its steps shrink where gradients were
    large or frequent and stay large for rare features: the usual remedy for sparse text data."""

    eps: float = 1e-10

    name: ClassVar[str] = "adagrad"
    default_learning_rate: ClassVar[float] = 0.1
    regularizations: ClassVar[tuple] = ("sparse", "decoupled")

    def __post_init__(self):
        super().__post_init__()
        check_real("eps", self.eps, low=0, low_open=True)


@register
@dataclass(frozen=True)
class Adam(MomentRule):
    """Adam (Kingma & Ba 2015), the rule Efficient-Adam's workers run::

        m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
        x = x - a_k m / (sqrt(v) + eps)

    with Adam's bias correction folded into ``a_k`` by default. Lazy and exact like the other
    rules: an idle coordinate's drift is a sum over its skipped steps with no closed form, whose
    terms shrink geometrically when ``beta1 < sqrt(beta2)``; it is evaluated to double precision
    from per-segment tables in a few lookups, or, where ``eps`` is not small against
    ``sqrt(v)``, by summing its first ``asyncopt._core.series_horizon`` terms
    (``csrc/asyncopt/optim/adam.hpp``)."""

    bias_correction: bool = True

    name: ClassVar[str] = "adam"

    def __post_init__(self):
        super().__post_init__()
        if not self.beta1 < self.beta2 ** 0.5:
            raise ValueError(f"Adam needs beta1 < sqrt(beta2) (got beta1={self.beta1}, beta2={self.beta2}): its lazy "
                             "catch-up sums terms that shrink by beta1 / sqrt(beta2) per skipped step")

    def decay_shrink_bound(self):
        # The catch-up's terms shrink only while beta1 < sqrt(beta2) (1 - eta alpha) (steps.hpp).
        return 1.0 - self.beta1 / self.beta2 ** 0.5


@register
@dataclass(frozen=True)
class RMSProp(Optimizer):
    """RMSProp (Tieleman & Hinton 2012), A3C's optimizer (Mnih et al. 2016) with its statistics
    shared by every thread like the parameters ("shared RMSProp")::

        G = beta2 G + (1 - beta2) g^2;  x = x - eta_k g / (sqrt(G) + eps)

    ``beta2`` is RMSProp's decay (``alpha`` in PyTorch and the A3C paper; named as the second-moment
    decay of the Adam family here because ``alpha`` is the L2 strength of every estimator). The
    defaults are stable-baselines3's A2C optimizer (alpha 0.99, eps 1e-5)."""

    beta2: float = 0.99
    eps: float = 1e-5

    name: ClassVar[str] = "rmsprop"
    default_learning_rate: ClassVar[float] = 0.01
    regularizations: ClassVar[tuple] = ("sparse", "decoupled")

    def __post_init__(self):
        super().__post_init__()
        check_real("beta2", self.beta2, low=0, high=1, high_open=True)
        check_real("eps", self.eps, low=0, low_open=True)


def names():
    """The registered rule names."""
    return tuple(REGISTRY)


def get(optimizer, **flat):
    """The optimizer object for ``optimizer``: a registered name, built from the flat estimator
    parameters that the rule has (the others, and None values, which mean the rule's default, are
    ignored), or an optimizer object, returned as it is.
    ``flat`` must then be left at the defaults (an estimator passes the ones its user changed)."""
    if isinstance(optimizer, Optimizer):
        if flat:
            raise ValueError(f"optimizer is an object ({optimizer!r}); set {sorted(flat)} on it instead of as "
                             "estimator parameters")
        return optimizer
    if isinstance(optimizer, str) and optimizer in REGISTRY:
        cls = REGISTRY[optimizer]
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in flat.items() if k in fields and v is not None})
    raise ValueError(f"optimizer must be one of {names()} or an optimizer object (e.g. asyncopt.AMSGrad(beta1=0.95)), "
                     f"got {optimizer!r}")


# ---------------------------------------------------------------------- on the user's own arrays
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_param(param):
    if not isinstance(param, np.ndarray):
        raise ValueError(f"param must be a numpy array (updated in place), got {type(param).__name__}")
    if param.dtype not in _DTYPES:
        raise ValueError(f"param must be float32 or float64 (native byte order), got dtype {param.dtype}: converting "
                         "it would train a copy and leave your array untouched")
    if param.ndim not in (1, 2):
        raise ValueError(f"param must be 1-d or 2-d, got {param.ndim}-d with shape {param.shape}")
    if param.size == 0:
        raise ValueError(f"param must not be empty, got shape {param.shape}")
    if not param.flags.c_contiguous:
        raise ValueError("param must be C-contiguous (a view with strides, e.g. a column slice or a transpose, would "
                         "need a copy that leaves your array untouched); pass np.ascontiguousarray(param) and keep it")
    if not param.flags.writeable:
        raise ValueError("param is read-only: the optimizer updates it in place")
    if not param.flags.aligned:
        raise ValueError("param is not aligned to its item size: lock-free updates need aligned words")
    return param


class Attached:
    """An update rule attached to a parameter array the caller owns, updated in place; made by
    :meth:`Optimizer.attach`. See the module docstring ("On your own arrays") for what W holds
    between steps and what is guaranteed when several threads call :meth:`step`.

    Attributes: ``param`` (the array), ``optimizer`` (the rule, resolved for ``alpha``), ``alpha``,
    ``regularization`` ('none', 'exact' or 'decoupled')."""

    def __init__(self, optimizer, param, *, alpha=0.0, regularization="auto", segment_steps=None):
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be an asyncopt optimizer object, got {optimizer!r}")
        self.param = _check_param(param)
        alpha = check_real("alpha", alpha, low=0)
        if regularization == "auto":
            regularization = "exact" if "exact" in optimizer.regularizations else "decoupled"
        if regularization == "sparse":
            raise ValueError("regularization='sparse' (the Hogwild! paper's frequency-scaled L2) needs the data's "
                             "feature counts, which an attached optimizer does not see; use "
                             f"{'exact' if 'exact' in optimizer.regularizations else 'decoupled'!r} or add the "
                             "regulariser's gradient to yours")
        self.regularization = optimizer.resolve_regularization(regularization, alpha)
        self.alpha = alpha
        self.optimizer = optimizer.resolved(alpha)
        if segment_steps is not None and (isinstance(segment_steps, bool) or not isinstance(segment_steps, int)
                                          or segment_steps < 1):
            raise ValueError(f"segment_steps must be None or an int >= 1, got {segment_steps!r}")
        sc = self.optimizer.step_config(alpha, self.regularization)
        self._native = _core.AttachedOptimizer(param, self.optimizer.native, sc, segment_steps or 0)
        # staleness: per thread, the step k of its last read (catch_up or own step) and its counters
        self._local = threading.local()
        self._counters = []  # one [count, total, max, histogram] per thread that stepped
        self._counters_lock = threading.Lock()

    def __repr__(self):
        return (f"Attached({self.optimizer!r}, param={self.param.dtype}{list(self.param.shape)}, alpha={self.alpha}, "
                f"regularization={self.regularization!r}, steps={self.steps})")

    @property
    def steps(self):
        """Steps taken: the global step counter k of the schedule (the steps begun, which are the
        steps completed whenever no other thread is inside :meth:`step`)."""
        return self._native.steps

    @property
    def segment_steps(self):
        """Steps between two rebases of the 32-bit stamps (each brings every coordinate up to date)."""
        return self._native.segment_steps

    def _rows(self, rows):
        r = np.asarray(rows)
        what = "rows" if self.param.ndim == 2 else "rows (indices of the 1-d param)"
        if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
            raise ValueError(f"{what} must be a 1-d array of integers, got dtype {r.dtype} and shape {r.shape}")
        n = self.param.shape[0]
        if r.size:
            lo, hi = int(r.min()), int(r.max())
            if lo < 0 or hi >= n:
                raise ValueError(f"{what} must be in [0, {n}), got values from {lo} to {hi}")
            # O(len) when already increasing (np.unique's output), else one sort
            if not (r[1:] > r[:-1]).all() and (np.diff(np.sort(r)) == 0).any():
                raise ValueError(f"{what} must be distinct (sum the gradients of a repeated row first)")
        return np.ascontiguousarray(r, dtype=np.int64)

    def step(self, grad, rows=None):
        """One step, in place on ``param``. ``rows`` None: ``grad`` is the dense gradient (param's
        shape). Else distinct row indices (2-d param; grad of shape (len(rows), param.shape[1])) or
        element indices (1-d; grad of shape (len(rows),)); the other coordinates get a zero gradient.
        grad is converted to param's dtype (it is only read); it must be finite."""
        g = np.asarray(grad)
        if g.dtype.kind not in "fiu":
            raise ValueError(f"grad must be real numbers, got dtype {g.dtype}")
        if rows is None:
            idx = None
            want = self.param.shape
        else:
            idx = self._rows(rows)
            want = (idx.shape[0],) + self.param.shape[1:]
        if g.shape != want:
            raise ValueError(f"grad must have shape {want} ({'param' if rows is None else 'len(rows), param.shape[1:]'}"
                             f"), got {g.shape}")
        g = np.ascontiguousarray(g, dtype=self.param.dtype)
        if not np.isfinite(g).all():
            raise ValueError("grad holds NaN or inf; the model would be destroyed (lower the step size or check the "
                             "loss)")
        k = self._native.step(g, idx)
        self._count_staleness(k)

    def _count_staleness(self, k):
        local = self._local
        read = getattr(local, "read", None)
        tau = 0 if read is None else max(0, k - 1 - read)
        c = getattr(local, "counters", None)
        if c is None:
            c = local.counters = [0, 0, 0, np.zeros(_core.STALENESS_BINS, dtype=np.int64)]
            with self._counters_lock:
                self._counters.append(c)
        c[0] += 1
        c[1] += tau
        c[2] = max(c[2], tau)
        c[3][min(tau.bit_length(), len(c[3]) - 1)] += 1
        local.read = k  # this thread's view now includes its own step

    def staleness(self):
        """The delays tau of the steps taken so far, as the estimators report them (``count``,
        ``mean``, ``max``, and ``histogram``: tau = 0, then 2^(b-1) <= tau < 2^b): tau of a step is
        the number of steps other threads began between the calling thread's last read and this
        step, the read being its last :meth:`catch_up` (or, without one, its previous step). With one
        thread tau is always 0."""
        with self._counters_lock:
            parts = [(c[0], c[1], c[2], c[3].copy()) for c in self._counters]
        hist = sum((p[3] for p in parts), np.zeros(_core.STALENESS_BINS, dtype=np.int64))
        count = sum(p[0] for p in parts)
        last = int(np.flatnonzero(hist)[-1]) + 1 if hist.any() else 1
        return {"count": count, "mean": sum(p[1] for p in parts) / count if count else 0.0,
                "max": max((p[2] for p in parts), default=0), "histogram": hist[:last].tolist()}

    def catch_up(self, rows=None):
        """Bring ``rows`` (None: all) of ``param`` to the last completed step, so that reading them
        gives the current iterate; the other rows stay lazy."""
        self._local.read = self._native.catch_up(None if rows is None else self._rows(rows))

    def finish(self):
        """Bring every coordinate to the last completed step: ``param`` then holds exactly the
        dense algorithm's iterate. O(size of param); steps may continue afterwards."""
        self._native.finish()
        self._local.read = self._native.steps
