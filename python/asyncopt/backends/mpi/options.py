"""Settings of the MPI backend, the artificial delays of straggler experiments, and its errors."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from ..._checks import check_int, check_real

# method -> what the server does with a message (see asyncopt.distributed)
METHODS = ("async", "sync", "picky", "dpsgd", "efficient-adam")
ON_FAILURE = ("raise", "drop")
SHARDING = ("split", "local")
TOPOLOGIES = ("central", "sharded")
MOMENTS = ("worker", "server")
# the MPIOptions fields that only method='efficient-adam' reads, with their defaults
COMPRESSION_FIELDS = {"worker_compressor": "sign", "server_compressor": "sign", "block_size": 2048,
                      "topology": "central", "moments": "worker"}


class WorkerFailure(RuntimeError):
    """A worker died, stopped answering or stopped with an exception (rank 0's side of a failed
    run; the message holds each failed worker's exception, or its silence). ``ranks`` lists the
    failed workers; the estimator keeps the model reached before the failure."""

    def __init__(self, message, ranks=()):
        super().__init__(message)
        self.ranks = tuple(ranks)


class ServerFailure(RuntimeError):
    """The server (rank 0) stopped answering (a worker's side of a failed run)."""


@dataclass(frozen=True)
class Delay:
    """An artificial compute delay of one worker, for straggler experiments on one machine.

    After computing a message in ``c`` seconds the worker sleeps ``(factor - 1) c``, and with
    ``pareto_shape`` a further ``c L`` with ``L`` drawn from the Lomax (Pareto II) distribution of
    that shape (mean ``1 / (shape - 1)`` for shape > 1; heavy-tailed: a few messages take many
    times the usual time). The worker's rate then matches a machine ``factor`` times slower, with
    occasional long stalls; sleeping, rather than spinning, leaves the core to the other ranks as
    a slow remote machine would.
    """

    factor: float = 1.0
    pareto_shape: float | None = None

    def __post_init__(self):
        check_real("factor", self.factor, low=1)
        check_real("pareto_shape", self.pareto_shape, low=0, low_open=True, allow_none=True)

    def seconds(self, compute_seconds, rng):
        extra = (self.factor - 1.0) * compute_seconds
        if self.pareto_shape is not None:
            extra += compute_seconds * float(rng.pareto(self.pareto_shape))
        return extra


@dataclass(frozen=True)
class MPIOptions:
    """How ``backend="mpi"`` runs: rank 0 is the parameter server, ranks 1..K-1 are workers.

    method : {'async', 'sync', 'picky', 'dpsgd', 'efficient-adam'}
        'async': every worker pushes the gradient of one mini-batch computed at the model it last
        read, and the server applies it at once with the estimator's optimizer (with 'sgd' this is
        AsySG-con, Lian et al. 2015; with 'amsgrad' distributed APAM, Xu et al. 2020: the server
        owns m, v and vhat). 'picky': the same with SGD, but a gradient computed at x_{t-d} is
        applied only if ||x_t - x_{t-d}|| <= picky_threshold, else dropped and counted (Picky SGD,
        Cohen et al. 2021). 'dpsgd': each worker runs ``local_updates`` lock-free Hogwild!
        mini-batch updates over its ``n_threads`` threads on a copy of the model, then pushes the
        change, which the server adds (DPSGD, Mohamad et al. 2022). 'sync': every round gathers one
        gradient from every worker and applies their row-weighted mean (the synchronous baseline).
        'efficient-adam': synchronous rounds with quantized messages both ways and error feedback on
        both sides (Efficient-Adam, Chen, Shen, Liu & Luo 2023, arXiv 2205.14473), for
        optimizer='adam' or 'amsgrad'. With ``moments='worker'`` (the paper's algorithm) worker i
        computes its mini-batch gradient at the shared model x_t, updates its own moments m_i, v_i
        and forms its step ``delta_i = a_t m_i / (sqrt(v_i) + eps)``; it sends
        ``q_i = Q_w(delta_i + e_i)`` and keeps ``e_i = delta_i + e_i - decode(q_i)``. The server
        takes ``mean_i decode(q_i) + e_s``, sends its ``Q_s``, keeps the rest in ``e_s``, and every
        rank, the server included, subtracts the decoded server step from its copy of x with the same
        code in the same order: the replicas stay bit-identical and the model is never shipped. With
        ``moments='server'`` (COMP-AMS, Li et al. 2022) the workers send error-feedback-compressed
        gradients and the server runs the optimizer (its native rule, as method='sync') on their
        mean, then broadcasts its step compressed the same way. Assumptions where the paper is
        silent: the plain mean over the round's workers (not row-weighted); the intercept is one more
        coordinate of the vector (the last, its step times ``intercept_scale``); alpha enters as the
        estimator's regularization says: 'sparse' inside each worker's gradient, 'decoupled' as
        ``eta_t alpha x_t`` added to the step (moments='worker') or by the server's rule
        (moments='server'); moments and residuals start at zero in every fit (continuing a model
        with warm_start is refused). With on_failure='drop' (central topology) the rounds go on
        over the remaining workers; what the lost worker's residual held is lost with it.
    worker_compressor, server_compressor : str or asyncopt.compress.Quantizer
        method='efficient-adam': the quantizer of each direction (``asyncopt.compress.names()``:
        'identity', 'sign' (per-block scaled sign, 1 bit per coordinate), 'ternary' (zero-preserving
        scaled sign, 2 bits), 'qsgd' or 'qsgdK' with K = 2..8 bits). Messages travel bit-packed, and
        the bytes reported are the lengths of the buffers MPI sent (header included).
    block_size : int
        method='efficient-adam': coordinates per quantizer scale (default 2048).
    topology : {'central', 'sharded'}
        method='efficient-adam': 'central' (rank 0 is the server, as in the paper) or 'sharded'
        (worker moments only): worker j serves the j-th slice of the coordinates (whole quantizer
        blocks), so the round is a compressed all-to-all of the slices between the workers, then
        each owner sends its packed server step to every other rank (rank 0 only applies them,
        evaluates and says when to stop): no rank receives more than one vector's worth a round,
        where the central server receives N. Every worker is needed (on_failure='raise').
    moments : {'worker', 'server'}
        method='efficient-adam': where the optimizer's moments live (see above).
    timeout : float
        Seconds without a message after which the server declares a worker failed (a worker gives
        up on the server after twice that, plus one). It must exceed a worker's longest
        computation of one message and the server's evaluation of the history points.
    on_failure : {'raise', 'drop'}
        'raise' stops the run (the other workers are told to stop) and raises WorkerFailure naming
        the rank; 'drop' continues with the remaining workers (and raises WorkerFailure if none is
        left before the run's rows are done). Either way the model reached so far stays in the
        estimator. A worker stopped by an exception (its own check, or any error while training)
        sends it to rank 0 before it propagates on its own rank: rank 0 names the rank and the
        exception's type, message and place at once (``mpi_stats_['errors']``), without waiting
        for the timeout, and every rank goes on to its exit as usual (with topology='sharded' its
        peers may be stuck in their round and are declared silent after the timeout). After a
        worker died or fell silent the job ends with MPI_Abort when rank 0's process exits
        (MPI_Finalize would wait for the lost rank): save the model before the script ends; the
        job's exit status is then nonzero. mpiexec's default is to kill the whole job when one rank
        dies by a signal; run ``mpiexec -disable-auto-cleanup`` (MPICH) for the server to see a
        rank that exits.
    picky_threshold : float or None
        Picky SGD's distance bound; None takes ``learning_rate`` (one unit-gradient step).
    local_updates : int or None
        DPSGD: mini-batch updates per push, shared by the worker's threads; None takes
        ``8 x n_threads``.
    delays : dict {rank: Delay or factor}
        Artificial compute delays per worker rank (a number is a Delay factor).
    sharding : {'split', 'local'}
        'split': every rank passes the same data and worker w trains on the w-th contiguous share
        of its rows (after one shuffle seeded from random_state when ``shuffle``); rank 0 evaluates
        the objective on all of it. 'local': each worker's data is its own shard; rank 0's data is
        used for the history's training loss only.

        What the start of a fit checks, on every rank, before any training (a mismatch raises
        ValueError on every rank, naming the rank(s) and what differs): with either sharding, the
        estimator's settings and these options are equal to rank 0's, X has rank 0's number of
        columns and (LogisticRegression) its dtype, and a worker's labels are among rank 0's
        classes. With 'split', every rank must also hold the same data: the same numbers of rows
        and nonzeros, and SHA-256 digests of X's sparsity pattern, of X's values and of the labels
        as trained on (+1 for the second class, -1 for the first) equal to rank 0's, so a worker
        given -y, or another matrix of the same size, is refused (O(nonzeros), once per fit; two
        ranks that load the same file in the same dtype agree). With 'local' a worker's shard is
        its own and nothing holds a copy to compare it with: only the checks common to both apply.
        eval_set is used by rank 0 only and not compared.
    eval_every : float
        Epochs (passes of computed rows over the whole data) between two history records.
    poll_interval : float
        Seconds a waiting rank sleeps between checks for a message (MPI's blocking waits spin,
        which on an oversubscribed machine takes cores from the ranks doing the work).
    exit_timeout : float or None
        Seconds a rank waits, when its process exits, for every other rank to reach its own exit
        (MPI_Finalize would wait forever for a rank that stopped or hung after ``fit`` returned);
        past that the job ends with MPI_Abort, a nonzero status and a message on stderr. None takes
        ``2 x timeout + 1``. The wait starts when a rank's script ends, so a rank that works long
        after ``fit`` (rank 0 evaluating or saving the model) needs an ``exit_timeout`` above that
        work's duration, or the others end the job under it. With several fits the largest applies.
    """

    method: str = "async"
    timeout: float = 60.0
    on_failure: str = "raise"
    picky_threshold: float | None = None
    local_updates: int | None = None
    delays: dict = field(default_factory=dict)
    sharding: str = "split"
    eval_every: float = 1.0
    poll_interval: float = 5e-5
    exit_timeout: float | None = None
    worker_compressor: object = "sign"
    server_compressor: object = "sign"
    block_size: int = 2048
    topology: str = "central"
    moments: str = "worker"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        self._check_compression()
        check_real("timeout", self.timeout, low=0, low_open=True)
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {ON_FAILURE}, got {self.on_failure!r}")
        check_real("picky_threshold", self.picky_threshold, low=0, allow_none=True)
        check_int("local_updates", self.local_updates, low=1, allow_none=True)
        if not isinstance(self.delays, dict):
            raise ValueError(f"delays must be a dict {{rank: Delay or factor}}, got {self.delays!r}")
        for rank, d in self.delays.items():
            check_int("delays rank", rank, low=1)
            if not isinstance(d, Delay):
                if isinstance(d, bool) or not isinstance(d, numbers.Real):
                    raise ValueError(f"delays[{rank}] must be a Delay or a factor >= 1, got {d!r}")
                check_real(f"delays[{rank}]", d, low=1)
        if self.sharding not in SHARDING:
            raise ValueError(f"sharding must be one of {SHARDING}, got {self.sharding!r}")
        check_real("eval_every", self.eval_every, low=0, low_open=True)
        check_real("poll_interval", self.poll_interval, low=0)
        check_real("exit_timeout", self.exit_timeout, low=0, low_open=True, allow_none=True)

    def _check_compression(self):
        from ...compress import get

        check_int("block_size", self.block_size, low=1)
        for name in ("worker_compressor", "server_compressor"):
            try:
                get(getattr(self, name), block_size=self.block_size)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, got {self.topology!r}")
        if self.moments not in MOMENTS:
            raise ValueError(f"moments must be one of {MOMENTS}, got {self.moments!r}")
        if self.method != "efficient-adam":
            changed = [k for k, v in COMPRESSION_FIELDS.items() if getattr(self, k) != v]
            if changed:
                raise ValueError(f"{', '.join(changed)}: settings of method='efficient-adam', but method is "
                                 f"{self.method!r}")
        else:
            for name, q in zip(("worker_compressor", "server_compressor"), self.quantizers()):
                if hasattr(q, "variance_factor") and q.variance_factor() >= 1:
                    raise ValueError(
                        f"{name}: QSGD with {q.bits} bits over blocks of {q.block_size} is not a contraction "
                        f"(variance factor {q.variance_factor():.3g} >= 1), so its error-feedback residual can grow "
                        "without bound; use more bits (qsgd8) or a smaller block_size")
        if self.method == "efficient-adam" and self.topology == "sharded":
            if self.moments != "worker":
                raise ValueError("topology='sharded' runs the paper's worker moments: the server's optimizer of "
                                 "moments='server' is not sharded; use topology='central' with it")
            if self.on_failure != "raise":
                raise ValueError("topology='sharded' needs every worker (each serves a slice of the coordinates): "
                                 "on_failure must be 'raise'")

    def quantizers(self):
        """(worker's, server's) asyncopt.compress quantizers of method='efficient-adam'."""
        from ...compress import get

        return get(self.worker_compressor, self.block_size), get(self.server_compressor, self.block_size)

    def delay_for(self, rank):
        d = self.delays.get(rank)
        if d is None or isinstance(d, Delay):
            return d
        return Delay(factor=float(d))

    def describe(self):
        """A picklable, comparable summary (ranks check that they were all given the same)."""
        return {"method": self.method, "timeout": self.timeout, "on_failure": self.on_failure,
                "picky_threshold": self.picky_threshold, "local_updates": self.local_updates,
                "delays": {int(r): (d if isinstance(d, Delay) else float(d)) for r, d in self.delays.items()},
                "sharding": self.sharding, "eval_every": self.eval_every, "exit_timeout": self.exit_timeout,
                "worker_compressor": _describe_quantizer(self.worker_compressor),
                "server_compressor": _describe_quantizer(self.server_compressor), "block_size": self.block_size,
                "topology": self.topology, "moments": self.moments}


def _describe_quantizer(q):
    return q if isinstance(q, str) else repr(q)


def resolve_options(mpi):
    """MPIOptions from None (defaults), a dict of its fields, or an MPIOptions."""
    if mpi is None:
        return MPIOptions()
    if isinstance(mpi, MPIOptions):
        return mpi
    if isinstance(mpi, dict):
        unknown = set(mpi) - set(MPIOptions.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown MPI option(s) {sorted(unknown)}; known: {sorted(MPIOptions.__dataclass_fields__)}")
        return MPIOptions(**mpi)
    raise ValueError(f"mpi must be None, a dict or an asyncopt.distributed.MPIOptions, got {type(mpi).__name__}")


def delay_rng(seed, rank):
    return np.random.default_rng([seed, rank, 0xD1])
