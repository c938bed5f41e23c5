"""The delay simulator's options: seeded delay models and Picky SGD's threshold.

``LogisticRegression(backend="simulate", simulate=SimOptions(delay=uniform(10)))`` trains with one
writer that applies every update with the same native rules as the other backends, each update's
mini-batch gradient computed at the iterate of d_t updates earlier (x_{t-d_t}; the backend is
:mod:`asyncopt.backends.simulate`, the native loop ``csrc/asyncopt/simulate/delayed.hpp``). The
same options and ``random_state`` give the same bits. A delay model draws the delays of an epoch's
updates from a generator the backend seeds; the native loop caps each at the updates this fit has
applied before it (no read before the fit's first step).

=======================  =====================================================================
model                    d_t
=======================  =====================================================================
``constant(d)``          d for every update
``uniform(max_delay)``   i.i.d. uniform on {0, ..., max_delay - 1}: APAM's artificial delay
                         (Xu et al. 2020)
``trace(delays)``        the given delays in order (repeated from the start when exhausted)
``straggler(n, slowdown)``  n virtual workers, each reading the model, computing for one time unit
                         (worker 0: ``slowdown`` units) and writing; d_t is the number of updates
                         the others wrote in between (Lian et al.'s tau). Deterministic;
                         ``straggler(n, 1)`` is n homogeneous workers (d_t = n - 1 once started);
                         history records hold the clock's ``simulated_time``
``workers(n, compute)``  n virtual workers whose jobs take i.i.d. times ('exponential', mean 1,
                         seeded; or 'constant'); delays and ``simulated_time`` as for straggler
=======================  =====================================================================

Picky SGD (Cohen, Daniely, Drori, Koren & Schain, NeurIPS 2021): with ``picky_threshold`` an update
is applied only if ||x_t - x_{t-d}|| <= picky_threshold (the whole model, intercept included); a
dropped update leaves the model as it is and counts as an iteration. SGD without exact L2 only.

This first increment covers binary LogisticRegression; LDA, other compute-time distributions, the
Pareto and mixture models, replaying a fitted estimator's delays, the delay-adaptive and synchronous methods,
the command line and the study of the issue are later increments.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["SimOptions", "Constant", "Uniform", "Trace", "Straggler", "Workers", "constant", "uniform", "trace",
           "straggler", "workers", "resolve_options"]


def _count(name, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


@dataclass(frozen=True)
class Constant:
    """d_t = delay for every update."""

    delay: int

    def __post_init__(self):
        object.__setattr__(self, "delay", _count("constant(d): d", self.delay, 0))

    @property
    def max_delay(self):
        return self.delay

    def draw(self, rng, start, count):
        return np.full(count, self.delay, dtype=np.int64)

    def stream(self, rng):
        return _Stream(self, rng)


@dataclass(frozen=True)
class Uniform:
    """d_t i.i.d. uniform on {0, ..., max_delay - 1} (APAM's artificial delay, Xu et al. 2020)."""

    bound: int  # D of U{0..D-1}

    def __post_init__(self):
        object.__setattr__(self, "bound", _count("uniform(max_delay): max_delay", self.bound, 1))

    @property
    def max_delay(self):
        return self.bound - 1

    def draw(self, rng, start, count):
        return rng.integers(0, self.bound, size=count, dtype=np.int64)

    def stream(self, rng):
        return _Stream(self, rng)


@dataclass(frozen=True, eq=False)
class Trace:
    """The given delays in order, update after update; repeated from the start when the fit runs longer."""

    delays: np.ndarray

    def __post_init__(self):
        d = np.asarray(self.delays)
        if d.ndim != 1 or d.size == 0:
            raise ValueError(f"trace(delays): delays must be a non-empty 1-d array, got shape {d.shape}")
        if d.dtype.kind not in "iu":
            if d.dtype.kind != "f" or not np.all(np.isfinite(d)) or not np.all(d == np.round(d)):
                raise ValueError(f"trace(delays): delays must be integers, got dtype {d.dtype}")
        if (d < 0).any():
            raise ValueError(f"trace(delays): delays must be >= 0, got min {d.min()}")
        d = d.astype(np.int64)
        d.setflags(write=False)
        object.__setattr__(self, "delays", d)

    def __eq__(self, other):
        return isinstance(other, Trace) and np.array_equal(self.delays, other.delays)

    def __hash__(self):
        return hash(self.delays.tobytes())

    @property
    def max_delay(self):
        return int(self.delays.max())

    def draw(self, rng, start, count):
        return self.delays[(start + np.arange(count)) % self.delays.size]

    def stream(self, rng):
        return _Stream(self, rng)


class _Stream:
    """The delays of a fit's successive updates from a model whose delays are drawn independently
    of the order of events (``draw(rng, start, count)``)."""

    time = None  # no clock: these models draw delays, not events

    def __init__(self, model, rng):
        self.model, self.rng, self.position = model, rng, 0

    def __call__(self, count):
        out = self.model.draw(self.rng, self.position, count)
        self.position += count
        return out


@dataclass(frozen=True)
class Straggler:
    """n virtual workers; worker 0 computes ``slowdown`` times longer than the others (one time unit)."""

    workers: int
    slowdown: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "workers", _count("straggler(n, slowdown): n", self.workers, 1))
        s = self.slowdown
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.integer, np.floating)) \
                or not math.isfinite(s) or s < 1:
            raise ValueError(f"straggler(n, slowdown): slowdown must be a finite number >= 1, got {s!r}")
        object.__setattr__(self, "slowdown", float(s))

    @property
    def max_delay(self):
        # a write by worker w follows its read by its compute time c_w; in that time every other worker
        # writes at most floor(c_w / c_v) + 1 times
        n, s = self.workers, self.slowdown
        return (n - 1) * (math.floor(s) + 1) if n > 1 else 0

    def stream(self, rng):
        return _Workers([self.slowdown] + [1.0] * (self.workers - 1), None, self.max_delay)


COMPUTE = ("constant", "exponential")


@dataclass(frozen=True)
class Workers:
    """n virtual workers whose every job (read, compute, write) takes an i.i.d. time: 'constant' (one
    unit; the same as straggler(n, 1)) or 'exponential' (mean one unit). bound: the longest delay
    the iterate history keeps (None: 2 (n - 1) for constant times, 32 n for exponential ones, which
    a delay exceeds with probability about e^-32 per update); a longer one stops the fit with an error."""

    workers: int
    compute: str = "exponential"
    bound: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "workers", _count("workers(n, compute): n", self.workers, 1))
        if self.compute not in COMPUTE:
            raise ValueError(f"workers(n, compute): compute must be one of {COMPUTE}, got {self.compute!r}")
        if self.bound is not None:
            object.__setattr__(self, "bound", _count("workers(n, compute, max_delay): max_delay", self.bound, 0))

    @property
    def max_delay(self):
        if self.bound is not None:
            return self.bound
        return 2 * (self.workers - 1) if self.compute == "constant" else 32 * self.workers

    def stream(self, rng):
        if self.compute == "constant":
            return _Workers([1.0] * self.workers, None, self.max_delay)
        return _Workers(list(rng.exponential(size=self.workers)), rng, self.max_delay)


class _Workers:
    """The event order of virtual workers with fixed compute times: the next write is the worker
    whose compute ends first (ties: the lower worker); it read the model after the write it made
    last (at the start, step 0), and reads again at once. State carries over between epochs.
    ``time``: the simulated time of the latest write (compute time units)."""

    def __init__(self, first, rng, bound):
        """first: each worker's first compute time; rng: draws every later job's (exponential),
        or None: a worker's every job takes its first time."""
        self.compute, self.rng, self.bound = first, rng, bound
        self.heap = [(c, w, 0) for w, c in enumerate(first)]  # (finish time, worker, step it read)
        heapq.heapify(self.heap)
        self.step = 0
        self.time = 0.0

    def __call__(self, count):
        out = np.empty(count, dtype=np.int64)
        heap, compute = self.heap, self.compute
        times = self.rng.exponential(size=count) if self.rng is not None else None
        for i in range(count):
            t, w, read = heapq.heappop(heap)
            self.step += 1
            out[i] = self.step - 1 - read
            heapq.heappush(heap, (t + (compute[w] if times is None else times[i]), w, self.step))
            self.time = t
        if count and out.max() > self.bound:
            raise ValueError(f"the virtual workers produced a delay of {int(out.max())}, beyond the {self.bound} "
                             "updates the iterate history keeps: pass a larger max_delay to workers()")
        return out


def constant(d):
    """Every update's gradient is read d updates before it is applied."""
    return Constant(d)


def uniform(max_delay):
    """d_t ~ U{0, ..., max_delay - 1}: exactly APAM's artificial delay."""
    return Uniform(max_delay)


def trace(delays):
    """Replay an explicit sequence of delays (e.g. recorded from another run)."""
    return Trace(delays)


def workers(n, compute="exponential", max_delay=None):
    """n virtual workers with i.i.d. job times ('exponential': mean 1; 'constant': 1); the delays
    arise from the event order. max_delay: the history's bound (see :class:`Workers`)."""
    return Workers(n, compute, max_delay)


def straggler(n, slowdown):
    """n workers, one of them ``slowdown`` times slower than the others (straggler(n, 1): homogeneous)."""
    return Straggler(n, slowdown)


_MODELS = (Constant, Uniform, Trace, Straggler, Workers)


@dataclass(frozen=True)
class SimOptions:
    """delay : a delay model (constant(d), uniform(max_delay), trace(delays), straggler(n, slowdown),
        workers(n, compute));
        default constant(0)
    picky_threshold : None (apply every update: delayed SGD, or delayed AMSGrad = APAM) or a
        float >= 0 (math.inf allowed): Picky SGD's ||x_t - x_{t-d}|| <= threshold filter"""

    delay: object = None
    picky_threshold: Optional[float] = None

    def __post_init__(self):
        if self.delay is None:
            object.__setattr__(self, "delay", Constant(0))
        if not isinstance(self.delay, _MODELS):
            raise ValueError("simulate: delay must be a delay model of asyncopt.simulate (constant(d), uniform(max_delay), "
                             f"trace(delays), straggler(n, slowdown), workers(n)), got {self.delay!r}")
        t = self.picky_threshold
        if t is not None:
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)):
                raise ValueError(f"simulate: picky_threshold must be a number >= 0 or None, got {t!r}")
            t = float(t)
            if math.isnan(t) or t < 0:
                raise ValueError(f"simulate: picky_threshold must be >= 0 (math.inf: never drop), got {t}")
            object.__setattr__(self, "picky_threshold", t)


def resolve_options(value):
    """SimOptions from the estimator's ``simulate`` parameter: None (the defaults), SimOptions, a
    delay model, or a dict of SimOptions' fields."""
    if value is None:
        return SimOptions()
    if isinstance(value, SimOptions):
        return value
    if isinstance(value, _MODELS):
        return SimOptions(delay=value)
    if isinstance(value, dict):
        unknown = set(value) - {"delay", "picky_threshold"}
        if unknown:
            raise ValueError(f"simulate: unknown options {sorted(unknown)} (SimOptions has delay, picky_threshold)")
        return SimOptions(**value)
    raise ValueError(f"simulate must be None, asyncopt.simulate.SimOptions, a delay model or a dict, got {value!r}")
