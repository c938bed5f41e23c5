"""Optimizer configurations shared by every backend.

An optimizer config says *which* update rule runs and with which constants; a backend (threads
today) decides who applies it when. The update rules themselves live in C++
(``csrc/asyncopt/optim/``) and are documented there with the papers' equations.

- :class:`SGD`: ``w <- w - eta_k g`` (Hogwild!, Niu et al. 2011).
- :class:`AMSGrad`: APAM's asynchronous AMSGrad (Xu et al. 2020, Alg. 1)::

      m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vhat = max(vhat, v)
      x = x - a_k m / (sqrt(vhat) + eps)

  with ``a_k = eta_k`` or, with ``bias_correction=True``, ``eta_k sqrt(1 - beta2^k) / (1 - beta1^k)``
  (Adam's bias correction folded into the step, the "epsilon-hat" form of Kingma & Ba 2015 §2).

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
  ``alpha w`` that touches only the row's features. The default for AMSGrad, where a dense L2
  gradient would enter m and v and has no closed-form catch-up.
- ``"decoupled"`` (AMSGrad only): AdamW-style weight decay ``x <- (1 - eta_k alpha) x - ...``,
  applied lazily in closed form. It is not the gradient of the L2 objective (its fixed point
  differs), but is the usual choice with adaptive methods (Loshchilov & Hutter 2019).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import _core
from ._checks import check_real

SCHEDULES = ("constant", "invsqrt", "optimal")
REGULARIZATIONS = {"sgd": ("exact", "sparse"), "amsgrad": ("sparse", "decoupled")}
DEFAULT_REGULARIZATION = {"sgd": "exact", "amsgrad": "sparse"}


@dataclass(frozen=True)
class SGD:
    """Plain stochastic gradient descent (Hogwild! when run by several threads)."""

    learning_rate: float = 0.1
    schedule: str = "constant"

    name = "sgd"

    def __post_init__(self):
        check_real("learning_rate", self.learning_rate, low=0, low_open=True)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")


@dataclass(frozen=True)
class AMSGrad:
    """AMSGrad as run asynchronously by APAM (Xu et al. 2020)."""

    learning_rate: float = 0.003
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    bias_correction: bool = False
    schedule: str = "constant"

    name = "amsgrad"

    def __post_init__(self):
        check_real("learning_rate", self.learning_rate, low=0, low_open=True)
        check_real("beta1", self.beta1, low=0, high=1, high_open=True)
        check_real("beta2", self.beta2, low=0, high=1, high_open=True)
        check_real("eps", self.eps, low=0, low_open=True)
        if not isinstance(self.bias_correction, bool):
            raise ValueError(f"bias_correction must be True or False, got {self.bias_correction!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")


def make_optimizer(name, learning_rate=None, schedule="constant", beta1=0.9, beta2=0.999, eps=1e-8,
                   bias_correction=False, alpha=0.0):
    """Build the config for ``name`` ('sgd' or 'amsgrad'); ``learning_rate=None`` takes its default
    (for the 'optimal' schedule, Bottou's heuristic alpha^(-1/4), as scikit-learn)."""
    if schedule == "optimal":
        check_real("alpha", alpha, low=0)
        if alpha == 0:
            raise ValueError("schedule='optimal' (eta / (1 + alpha eta (k - 1))) needs alpha > 0")
        if learning_rate is None:
            learning_rate = float(alpha) ** -0.25
    if name == "sgd":
        kw = {} if learning_rate is None else {"learning_rate": learning_rate}
        return SGD(schedule=schedule, **kw)
    if name == "amsgrad":
        kw = {} if learning_rate is None else {"learning_rate": learning_rate}
        return AMSGrad(beta1=beta1, beta2=beta2, eps=eps, bias_correction=bias_correction, schedule=schedule, **kw)
    raise ValueError(f"optimizer must be 'sgd' or 'amsgrad', got {name!r}")


def resolve_regularization(optimizer, regularization, alpha):
    """The regularisation mode actually used ('none' when alpha == 0)."""
    alpha = check_real("alpha", alpha, low=0)
    allowed = REGULARIZATIONS[optimizer.name]
    if regularization == "auto":
        regularization = DEFAULT_REGULARIZATION[optimizer.name]
    elif regularization not in allowed:
        extra = ""
        if optimizer.name == "amsgrad" and regularization == "exact":
            extra = (" (a dense L2 gradient enters AMSGrad's moments on every coordinate at every step and has "
                     "no closed-form catch-up; 'sparse' is its unbiased sparse estimate)")
        if optimizer.name == "sgd" and regularization == "decoupled":
            extra = " (for SGD, decoupled weight decay is the same as exact L2: use 'exact')"
        raise ValueError(f"regularization for {optimizer.name!r} must be 'auto' or one of {allowed}, "
                         f"got {regularization!r}{extra}")
    if alpha == 0:
        return "none"
    if regularization in ("exact", "decoupled"):
        step = optimizer.learning_rate * alpha
        bound = 1.0 if optimizer.name == "sgd" else 1.0 - optimizer.beta1
        if step >= bound:
            raise ValueError(
                f"learning_rate * alpha = {step:g} must be < {bound:g} for {regularization!r} regularization: "
                "each step shrinks w by (1 - learning_rate * alpha)"
                + ("" if optimizer.name == "sgd" else ", and the lazy catch-up needs that shrink to stay above beta1")
                + "; lower learning_rate or alpha")
    return regularization


def step_config(optimizer, alpha, regularization):
    """The native ``StepConfig`` for a config and a resolved regularisation mode."""
    sc = _core.StepConfig()
    sc.learning_rate = optimizer.learning_rate
    sc.schedule = getattr(_core.Schedule, optimizer.schedule)
    sc.schedule_alpha = alpha
    if optimizer.name == "amsgrad":
        sc.beta1, sc.beta2, sc.eps = optimizer.beta1, optimizer.beta2, optimizer.eps
        sc.bias_correction = optimizer.bias_correction
    sc.decay = alpha if regularization in ("exact", "decoupled") else 0.0
    return sc
