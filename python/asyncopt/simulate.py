"""The delay simulator's options: seeded delay models, Picky, delay-adaptive and synchronous SGD, replay.

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
``pareto(n, shape)``     n virtual workers whose jobs take i.i.d. Pareto times of mean 1 (shape
                         > 1; heavy-tailed: the smaller the shape, the longer the rare jobs);
                         delays and ``simulated_time`` as for straggler
``mixture(p, small, large)``  i.i.d. delays: ``large`` with probability p, else ``small``; mean
                         (1 - p) small + p large, maximum ``large`` (``mixture_with_mean(mean,
                         large)`` picks p for a fixed average and a swept maximum)
=======================  =====================================================================

Picky SGD (Cohen, Daniely, Drori, Koren & Schain, NeurIPS 2021): with ``picky_threshold`` an update
is applied only if ||x_t - x_{t-d}|| <= picky_threshold (the whole model, intercept included); a
dropped update leaves the model as it is and counts as an iteration. SGD without exact L2 only.

Delay-adaptive SGD (``delay_adaptive=c``) and synchronous mini-batch SGD (``synchronous=True``) are
the other methods of issue 14's study; :func:`trace_of` replays a fitted run's recorded delays.
Binary LogisticRegression only (LDA and multiclass are later increments).
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["SimOptions", "Constant", "Uniform", "Trace", "Straggler", "Workers", "Pareto", "Mixture", "constant",
           "uniform", "trace", "straggler", "workers", "pareto", "mixture", "mixture_with_mean", "trace_of",
           "resolve_options"]


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


def _number(name, value, low, *, strict=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Mixture:
    """d_t i.i.d.: ``large`` with probability p, else ``small`` (mean (1 - p) small + p large)."""

    p: float
    small: int
    large: int

    def __post_init__(self):
        p = _number("mixture(p, small, large): p", self.p, 0.0)
        if p > 1:
            raise ValueError(f"mixture(p, small, large): p must be in [0, 1], got {p}")
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "small", _count("mixture(p, small, large): small", self.small, 0))
        object.__setattr__(self, "large", _count("mixture(p, small, large): large", self.large, 0))
        if self.large < self.small:
            raise ValueError(f"mixture(p, small, large): large must be >= small, got {self.large} < {self.small}")

    @property
    def mean(self):
        return (1 - self.p) * self.small + self.p * self.large

    @property
    def max_delay(self):
        return self.large if self.p > 0 else self.small

    def draw(self, rng, start, count):
        return np.where(rng.random(count) < self.p, self.large, self.small).astype(np.int64)

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


@dataclass(frozen=True)
class Pareto:
    """n virtual workers whose every job takes an i.i.d. Pareto time of mean 1: x_m (1 - U)^(-1/shape)
    with x_m = (shape - 1) / shape, shape > 1 (heavy-tailed; shape <= 2 has infinite variance).
    bound: the longest delay the iterate history keeps (None: 1000 n); a longer one stops the fit
    with an error (a job longer than about 1000 mean jobs: probability ((shape-1)/(1000 shape))^shape
    per update)."""

    workers: int
    shape: float = 2.0
    bound: Optional[int] = None

    def __post_init__(self):
        object.__setattr__(self, "workers", _count("pareto(n, shape): n", self.workers, 1))
        object.__setattr__(self, "shape", _number("pareto(n, shape): shape", self.shape, 1.0, strict=True))
        if self.bound is not None:
            object.__setattr__(self, "bound", _count("pareto(n, shape, max_delay): max_delay", self.bound, 0))

    @property
    def max_delay(self):
        return self.bound if self.bound is not None else 1000 * self.workers

    def job_times(self, rng, size):
        xm = (self.shape - 1.0) / self.shape
        return xm * (1.0 - rng.random(size)) ** (-1.0 / self.shape)

    def stream(self, rng):
        return _Workers(list(self.job_times(rng, self.workers)), rng, self.max_delay,
                        draw=lambda count: self.job_times(rng, count))


class _Workers:
    """The event order of virtual workers with fixed compute times: the next write is the worker
    whose compute ends first (ties: the lower worker); it read the model after the write it made
    last (at the start, step 0), and reads again at once. State carries over between epochs.
    ``time``: the simulated time of the latest write (compute time units)."""

    def __init__(self, first, rng, bound, draw=None):
        """first: each worker's first compute time; rng: draws every later job's (exponential, or
        ``draw(count)`` when given), or None: a worker's every job takes its first time."""
        self.compute, self.rng, self.bound = first, rng, bound
        self.draw = draw if draw is not None else (None if rng is None else (lambda count: rng.exponential(size=count)))
        self.heap = [(c, w, 0) for w, c in enumerate(first)]  # (finish time, worker, step it read)
        heapq.heapify(self.heap)
        self.step = 0
        self.time = 0.0

    def __call__(self, count):
        out = np.empty(count, dtype=np.int64)
        heap, compute = self.heap, self.compute
        times = self.draw(count) if self.draw is not None else None
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


def pareto(n, shape=2.0, max_delay=None):
    """n virtual workers with i.i.d. Pareto job times of mean 1 (shape > 1; smaller: heavier tail);
    the delays arise from the event order. max_delay: the history's bound (see :class:`Pareto`)."""
    return Pareto(n, shape, max_delay)


def mixture(p, small, large):
    """i.i.d. delays: ``large`` with probability p, else ``small``."""
    return Mixture(p, small, large)


def mixture_with_mean(mean, large, small=0):
    """The mixture of ``small`` and ``large`` whose average delay is ``mean``: p = (mean - small) /
    (large - small); sweeping ``large`` at a fixed mean sweeps max/mean (P1 of issue 14)."""
    mean = _number("mixture_with_mean: mean", mean, 0.0)
    if not small <= mean <= large:
        raise ValueError(f"mixture_with_mean: mean must lie in [small, large] = [{small}, {large}], got {mean}")
    return Mixture(0.0 if large == small else (mean - small) / (large - small), small, large)


_MODELS = (Constant, Uniform, Trace, Straggler, Workers, Pareto, Mixture)


@dataclass(frozen=True)
class SimOptions:
    """delay : a delay model (constant(d), uniform(max_delay), trace(delays), straggler(n, slowdown),
        workers(n, compute), pareto(n, shape), mixture(p, small, large)); default constant(0)
    picky_threshold : None (apply every update: delayed SGD, or delayed AMSGrad = APAM) or a
        float >= 0 (math.inf allowed): Picky SGD's ||x_t - x_{t-d}|| <= threshold filter
    picky_relative : the threshold is picky_threshold x the (first) learning rate (Cohen et al. set
        it in units of the step: a gradient of norm G moves the model by about eta G per update)
    delay_adaptive : None, or c > 0 (math.inf allowed): delay-adaptive SGD, the step of an update
        with delay d_t scaled by min(1, c / d_t) (Mishchenko, Bach, Even & Woodworth 2022,
        "Asynchronous SGD beats minibatch SGD under arbitrary delays": gamma_t = min(gamma,
        1 / (4 L d_t)), which is gamma min(1, c / d_t) with c = 1 / (4 L gamma); their analysis takes
        c of the order of the number of workers). SGD without exact L2 only
    synchronous : synchronous mini-batch SGD over the virtual workers of the delay model
        (straggler, workers or pareto): each server step averages one mini-batch from each of the
        n workers, all read at the current model (delay 0), and takes the slowest worker's job
        time; ``simulated_time`` counts those rounds' time
    record_every : None (a history record per pass over the data) or E >= 1: a record every E
        updates (server steps), the training loop's ``epochs`` then counting records; the visiting
        order is read on across records and reshuffled at each pass's end (for steps to a target)"""

    delay: object = None
    picky_threshold: Optional[float] = None
    picky_relative: bool = False
    delay_adaptive: Optional[float] = None
    synchronous: bool = False
    record_every: Optional[int] = None

    def __post_init__(self):
        if self.delay is None:
            object.__setattr__(self, "delay", Constant(0))
        if not isinstance(self.delay, _MODELS):
            raise ValueError("simulate: delay must be a delay model of asyncopt.simulate (constant(d), uniform(max_delay), "
                             "trace(delays), straggler(n, slowdown), workers(n), pareto(n, shape), mixture(p, small, "
                             f"large)), got {self.delay!r}")
        t = self.picky_threshold
        if t is not None:
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, float, np.integer, np.floating)):
                raise ValueError(f"simulate: picky_threshold must be a number >= 0 or None, got {t!r}")
            t = float(t)
            if math.isnan(t) or t < 0:
                raise ValueError(f"simulate: picky_threshold must be >= 0 (math.inf: never drop), got {t}")
            object.__setattr__(self, "picky_threshold", t)
        for name in ("picky_relative", "synchronous"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"simulate: {name} must be True or False, got {getattr(self, name)!r}")
        if self.picky_relative and t is None:
            raise ValueError("simulate: picky_relative=True needs a picky_threshold")
        c = self.delay_adaptive
        if c is not None:
            if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, float, np.integer, np.floating)) \
                    or math.isnan(c) or c <= 0:
                raise ValueError(f"simulate: delay_adaptive must be a number > 0 (math.inf: plain delayed SGD) or "
                                 f"None, got {c!r}")
            object.__setattr__(self, "delay_adaptive", float(c))
        if self.record_every is not None:
            object.__setattr__(self, "record_every", _count("simulate: record_every", self.record_every, 1))
        if self.synchronous:
            if not isinstance(self.delay, (Straggler, Workers, Pareto)):
                raise ValueError("simulate: synchronous=True runs mini-batch SGD over virtual workers: give a "
                                 f"straggler, workers or pareto delay model, got {self.delay!r}")
            if t is not None or c is not None:
                raise ValueError("simulate: synchronous=True reads every gradient at the current model: "
                                 "picky_threshold and delay_adaptive do not apply")

    @property
    def method(self):
        """The method's name in the study's words."""
        if self.synchronous:
            return "sync"
        if self.picky_threshold is not None:
            return "picky"
        return "adaptive" if self.delay_adaptive is not None else "delayed"


class _Rounds:
    """Synchronous rounds over the virtual workers of ``model``: every delay 0; ``time`` the sum of
    the rounds' slowest job."""

    def __init__(self, model, rng):
        self.time, self.rng, self.model = 0.0, rng, model
        n = model.workers
        if isinstance(model, Straggler):
            self.round = lambda count: np.full(count, model.slowdown)
        elif isinstance(model, Pareto):
            self.round = lambda count: model.job_times(rng, (count, n)).max(axis=1)
        elif model.compute == "constant":
            self.round = lambda count: np.ones(count)
        else:
            self.round = lambda count: rng.exponential(size=(count, n)).max(axis=1)

    def __call__(self, count):
        times = self.round(count)
        self.time = float(self.time + times.sum()) if count else self.time
        return np.zeros(count, dtype=np.int64)


def delay_stream(options, rng):
    """The per-update delays (and the clock, ``.time``) of a fit under ``options``."""
    if options.synchronous:
        return _Rounds(options.delay, rng)
    return options.delay.stream(rng)


def trace_of(fitted):
    """trace(delays) replaying the per-update delays a fitted estimator recorded: a threads fit with
    ``record_staleness=True`` (``staleness_trace_``: update k's delay, in step order) or a simulated
    fit (``simulate_stats_["delays"]``)."""
    delays = getattr(fitted, "staleness_trace_", None)
    if delays is None:
        stats = getattr(fitted, "simulate_stats_", None)
        delays = None if stats is None else stats.get("delays")
    if delays is None:
        raise ValueError("trace_of: the estimator has no recorded delays: fit it with record_staleness=True "
                         "(backend='threads' or 'mpi') or with backend='simulate'")
    if len(delays) == 0:
        raise ValueError("trace_of: the estimator recorded no updates")
    return Trace(np.asarray(delays))


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
        fields = ("delay", "picky_threshold", "picky_relative", "delay_adaptive", "synchronous", "record_every")
        unknown = set(value) - set(fields)
        if unknown:
            raise ValueError(f"simulate: unknown options {sorted(unknown)} (SimOptions has {', '.join(fields)})")
        return SimOptions(**value)
    raise ValueError(f"simulate must be None, asyncopt.simulate.SimOptions, a delay model or a dict, got {value!r}")


# ---------------------------------------------------------------------- studies (the CLI and bench/bench_delays.py)
def parse_delay(spec):
    """A delay model from its command-line spelling: ``constant:D``, ``uniform:D``, ``straggler:N:S``,
    ``workers:N[:exponential|constant]``, ``pareto:N:SHAPE``, ``mixture:P:SMALL:LARGE``."""
    name, *args = str(spec).split(":")
    makers = {"constant": (constant, (int,)), "uniform": (uniform, (int,)), "straggler": (straggler, (int, float)),
              "workers": (workers, (int, str)), "pareto": (pareto, (int, float)),
              "mixture": (mixture, (float, int, int))}
    if name not in makers:
        raise ValueError(f"delay {spec!r}: the model must be one of {', '.join(makers)}")
    make, types = makers[name]
    if not 1 <= len(args) <= len(types) or (name != "workers" and len(args) != len(types)):
        raise ValueError(f"delay {spec!r}: {name} takes {len(types)} ':'-separated arguments")
    try:
        values = [t(a) for t, a in zip(types, args)]
    except ValueError:
        raise ValueError(f"delay {spec!r}: arguments must be {', '.join(t.__name__ for t in types)}") from None
    return make(*values)


def batch_objective(X, y, alpha):
    """The optimum of mean log-loss + alpha/2 ||w||^2 (intercept unregularised), by scikit-learn's
    L-BFGS at a tight tolerance: the study's reference (target = 1.01 x this)."""
    from sklearn.linear_model import LogisticRegression as Exact

    n = X.shape[0]
    clf = Exact(C=1.0 / (alpha * n), tol=1e-10, max_iter=5000).fit(X, y)
    z = X @ clf.coef_[0] + clf.intercept_[0]
    s = np.where(y == clf.classes_[1], 1.0, -1.0)
    return float(np.logaddexp(0.0, -s * z).mean() + 0.5 * alpha * np.dot(clf.coef_[0], clf.coef_[0]))


def to_target(history, target):
    """(steps, simulated time) at the first history record whose objective is <= target, or
    (None, None) if none is; the time is None for delay models without a clock."""
    for rec in history:
        obj = rec.get("objective")
        if obj is not None and math.isfinite(obj) and obj <= target:
            return int(rec["updates"]), rec.get("simulated_time")
    return None, None
