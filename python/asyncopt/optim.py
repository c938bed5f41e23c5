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
from dataclasses import dataclass
from typing import ClassVar, Optional

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
