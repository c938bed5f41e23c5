"""Efficient-Adam's arithmetic (Chen, Shen, Liu & Luo, "Efficient-Adam: Communication-Efficient
Distributed Adam", arXiv 2205.14473, IEEE TSP 2023), one round at a time, without MPI: what a
worker does with its gradient, what the server does with the workers' messages, and how every rank
applies the server's step. The worker loop (worker.py) and the server model (models.py) call these;
the tests drive them in one process to check the error-feedback identity exactly.

The paper's round t over N workers, x_t the model every rank holds (bit-identical)::

    worker i:  g_i = mini-batch gradient at x_t
               m_i = b1 m_i + (1 - b1) g_i;  v_i = b2 v_i + (1 - b2) g_i^2      (its own moments)
               delta_i = a_t m_i / (sqrt(v_i) + eps)
               p_i = delta_i + e_i;  send q_i = Q_w(p_i);  e_i = p_i - decode(q_i)
    server:    P = mean_i decode(q_i) + e_s;  send q_s = Q_s(P);  e_s = P - decode(q_s)
    every rank: x_{t+1} = x_t - decode(q_s)

so that y_t = x_t - mean_i e_i - e_s moves by exactly y_{t+1} = y_t - mean_i delta_i: nothing a
quantizer drops is lost, only delayed. The residuals are replaced each round (e = p - decode), never
accumulated, and the server's residual is added *before* it quantizes.

``moments="server"`` (COMP-AMS, Li et al. 2022) moves the optimizer to the server: worker i sends
``Q_w(g_i + e_i)`` with error feedback, the server runs the estimator's rule (the native server
model of method 'sync') on the mean of the decoded gradients, and broadcasts its step
``x^S_t - x^S_{t+1}`` through Q_s with error feedback (with identity quantizers: Adam or AMSGrad
on the averaged gradient).

Where the paper is silent (stated in MPIOptions' documentation too):

- the mean over the round's workers is the plain mean 1/N (the paper's), not row-weighted;
- the intercept is one more coordinate of the vector (the last one, in the last block), its step
  times ``intercept_scale`` as in every other backend; it is not regularised;
- L2 (alpha) enters as the estimator's ``regularization``: 'sparse' (the frequency-scaled unbiased
  estimate, inside each worker's mini-batch gradient, so inside its moments) or 'decoupled' (AdamW:
  ``eta_t alpha x_t`` added to each worker's step before error feedback, so the replicas shrink by
  the same decoded amount; with moments='server' the server's rule applies it);
- a_t is the estimator's schedule at round t, with Adam's bias correction folded in as in
  ``asyncopt.optim`` (``eta_t sqrt(1 - b2^t) / (1 - b1^t)``); AMSGrad's max is kept per worker;
- every fit starts with zero moments and residuals (a resume from a checkpoint continues them:
  ``state`` / ``restore`` of each side, resume.py).

``topology="sharded"`` (worker moments): worker j also serves the j-th slice of the coordinates (a
run of whole quantizer blocks), so the server's work and traffic are spread over the workers as in
the compressed all-to-all then all-gather of DeepSpeed's compressed allreduce: worker i sends the
j-th slice of Q_w(p_i), with error feedback on the whole vector, to worker j; worker j takes the
mean of the N decoded slices plus its slice of e_s, and sends the packed Q_s of it to every other
rank (rank 0 included, which holds a replica and evaluates); every rank decodes the N server slices
into its copy of x with one function. The algorithm is the central one slice by slice: the same
identity holds with e_s the concatenation of the slice owners' residuals.
"""
from __future__ import annotations

import math

import numpy as np

from ...compress import ErrorFeedback

SERVER_STREAM = 0  # QSGD's random stream of the server; worker rank r draws from stream r
SLICE_STREAMS = 1 << 16  # sharded: worker rank r's slice j draws from stream r 2^16 + j, server slice j from j


def fitted(saved, like, what):
    """A checkpoint's copy of an array, checked to have the shape and dtype of the one it replaces."""
    saved = np.asarray(saved)
    if saved.shape != like.shape or saved.dtype != like.dtype:
        raise ValueError(f"checkpoint's Efficient-Adam {what} has shape {saved.shape} and dtype {saved.dtype}, this "
                         f"run's {like.shape} and {like.dtype}")
    return saved.copy()


def feedback_state(sender):
    """An ErrorFeedback's residual and message count (its QSGD stream position), for a checkpoint."""
    return {"residual": sender.residual.copy(), "sent": sender.sent}


def restore_feedback(sender, st):
    sender.residual = fitted(st["residual"], sender.residual, "residual")
    sender.sent = int(st["sent"])


def step_coefficients(optimizer, alpha, k):
    """(eta_k, a_k) of round k >= 1: the schedule and the moment step with bias correction
    (csrc/asyncopt/optim/steps.hpp's step_coeffs)."""
    lr = optimizer.learning_rate
    eta = {"constant": lr, "invsqrt": lr / math.sqrt(k),
           "optimal": lr / (1.0 + alpha * lr * (k - 1))}[optimizer.schedule]
    a = eta
    if optimizer.bias_correction:
        a *= math.sqrt(1.0 - optimizer.beta2 ** k) / (1.0 - optimizer.beta1 ** k)
    return eta, a


class Layout:
    """The message vector: the n_features weights, then the intercept when it is fitted."""

    def __init__(self, n_features, fit_intercept, intercept_scale):
        self.d = int(n_features)
        self.fit_intercept = bool(fit_intercept)
        self.n = self.d + (1 if fit_intercept else 0)
        self.intercept_scale = float(intercept_scale)

    def dense_gradient(self, idx, g, g0, out):
        """The mini-batch gradient (sparse idx, g and the intercept's g0) as a dense vector of n."""
        out[:] = 0.0
        out[idx] = g
        if self.fit_intercept:
            out[self.d] = g0
        return out


class LocalMoments:
    """A worker's own Adam (or AMSGrad) moments and its step delta_i (moments='worker')."""

    def __init__(self, settings, layout):
        opt = settings.optimizer
        self.opt, self.layout = opt, layout
        self.alpha = settings.alpha
        self.decoupled = settings.regularization == "decoupled"
        self.amsgrad = opt.name == "amsgrad"
        n = layout.n
        self.m, self.v = np.zeros(n), np.zeros(n)
        self.vhat = np.zeros(n) if self.amsgrad else None
        self.k = 0

    def state(self):
        """The moments and the round count, for a checkpoint (copies)."""
        return {"m": self.m.copy(), "v": self.v.copy(), "vhat": None if self.vhat is None else self.vhat.copy(),
                "k": self.k}

    def restore(self, st):
        self.m, self.v = fitted(st["m"], self.m, "m"), fitted(st["v"], self.v, "v")
        if self.vhat is not None:
            self.vhat = fitted(st["vhat"], self.vhat, "vhat")
        self.k = int(st["k"])

    def step(self, g, x):
        """delta_i of this round from the dense gradient g at the model x (d + 1 values)."""
        self.k += 1
        opt, lay = self.opt, self.layout
        eta, a = step_coefficients(opt, self.alpha, self.k)
        self.m *= opt.beta1
        self.m += (1.0 - opt.beta1) * g
        self.v *= opt.beta2
        self.v += (1.0 - opt.beta2) * (g * g)
        denom = self.v
        if self.amsgrad:
            np.maximum(self.vhat, self.v, out=self.vhat)
            denom = self.vhat
        delta = a * self.m / (np.sqrt(denom) + opt.eps)
        if lay.fit_intercept:
            delta[lay.d] *= lay.intercept_scale
        if self.decoupled:
            delta[:lay.d] += (eta * self.alpha) * x[:lay.d]
        return delta


class WorkerSide:
    """What worker rank r sends each round: error-feedback-compressed delta_i (moments='worker') or
    gradient (moments='server'), and how it applies the server's step."""

    def __init__(self, settings, layout, worker_q, server_q, moments, seed, rank):
        self.layout = layout
        self.moments = LocalMoments(settings, layout) if moments == "worker" else None
        self.sender = ErrorFeedback(worker_q, layout.n, seed=seed, stream=rank)
        self.server_q = server_q
        self.g = np.zeros(layout.n)
        self.message_bytes = worker_q.nbytes(layout.n)
        self.reply_bytes = server_q.nbytes(layout.n)

    def message(self, idx, g, g0, x):
        """The packed message of this round from the sparse mini-batch gradient at x; also returns
        what it meant (delta_i or g_i) for diagnostics."""
        grad = self.layout.dense_gradient(idx, g, g0, self.g)
        meant = self.moments.step(grad, x) if self.moments is not None else grad
        packed, _ = self.sender.send(meant)
        return packed, meant

    @property
    def residual(self):
        return self.sender.residual

    def state(self):
        """The worker's moments (moments='worker') and its error-feedback residual, for a checkpoint."""
        return {"moments": None if self.moments is None else self.moments.state(),
                "sender": feedback_state(self.sender)}

    def restore(self, st):
        if self.moments is not None:
            self.moments.restore(st["moments"])
        restore_feedback(self.sender, st["sender"])

    def apply(self, x, packed):
        apply_server_step(x, self.server_q, packed, self.layout.n)


def apply_server_step(x, server_q, packed, n):
    """x <- x - decode(q_s): the one code path every rank, the server included, applies the round's
    step with (the same decode, the same subtraction), so the replicas stay bit-identical."""
    x[:n] -= server_q.decode(packed, n)


class ServerSide:
    """The server's half of a round: the mean of the workers' decoded messages, then (moments='server')
    the optimizer's step on it, then the error-feedback-compressed broadcast.

    rule_step(mean) -> step: with moments='server', runs the server's optimizer on the mean gradient
    and returns its step x^S_t - x^S_{t+1} (n values); None for moments='worker' (the mean is the step).
    """

    def __init__(self, layout, worker_q, server_q, seed, rule_step=None, n=None, stream=SERVER_STREAM):
        self.layout = layout
        self.n = layout.n if n is None else n  # sharded: the length of the served slice
        self.worker_q = worker_q
        self.sender = ErrorFeedback(server_q, self.n, seed=seed, stream=stream)
        self.server_q = server_q
        self.rule_step = rule_step
        self.rounds = 0

    def round(self, messages):
        """The packed broadcast of one round from the workers' packed messages (in rank order: the
        sum's floating-point order is fixed)."""
        n = self.n
        total = self.worker_q.decode(messages[0], n)
        for msg in messages[1:]:
            total += self.worker_q.decode(msg, n)
        mean = total / len(messages)
        step = mean if self.rule_step is None else self.rule_step(mean)
        packed, _ = self.sender.send(step)
        self.rounds += 1
        return packed

    @property
    def residual(self):
        return self.sender.residual

    def state(self):
        """The server residual e_s (and its stream position) and the round count, for a checkpoint."""
        return {"sender": feedback_state(self.sender), "rounds": self.rounds}

    def restore(self, st):
        restore_feedback(self.sender, st["sender"])
        self.rounds = int(st["rounds"])


# ---------------------------------------------------------------------- topology='sharded'
def slice_bounds(n, block_size, n_workers):
    """[(lo, hi)] of the n_workers slices of n coordinates: runs of whole quantizer blocks, as even as
    blocks allow (a slice may be empty when there are fewer blocks than workers)."""
    blocks = -(-n // block_size)
    cuts = [min(n, block_size * (blocks * j // n_workers)) for j in range(n_workers + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def apply_sharded_step(x, server_q, slices, bounds):
    """x <- x - decode(q_s), slice by slice (the slices in slice order): the one code path of every rank."""
    for packed, (lo, hi) in zip(slices, bounds):
        x[lo:hi] -= server_q.decode(packed, hi - lo)


class ShardedWorkerSide:
    """Worker rank r under topology='sharded': its moments and error feedback over the whole vector,
    sent slice by slice to the slices' owners, and the server's half of the round for its own slice
    r - 1 (a ServerSide over that slice)."""

    def __init__(self, settings, layout, worker_q, server_q, seed, rank, bounds):
        self.layout = layout
        self.bounds = bounds
        self.own = rank - 1
        self.moments = LocalMoments(settings, layout)
        self.senders = [ErrorFeedback(worker_q, hi - lo, seed=seed, stream=rank * SLICE_STREAMS + j)
                        for j, (lo, hi) in enumerate(bounds)]
        lo, hi = bounds[self.own]
        self.server = ServerSide(layout, worker_q, server_q, seed, n=hi - lo, stream=self.own)
        self.worker_q, self.server_q = worker_q, server_q
        self.g = np.zeros(layout.n)

    def slice_bytes(self, j):
        """(worker message, server message) bytes of slice j."""
        lo, hi = self.bounds[j]
        return self.worker_q.nbytes(hi - lo), self.server_q.nbytes(hi - lo)

    def messages(self, idx, g, g0, x):
        """The packed slices of Q_w(delta_i + e_i), one per owner, and delta_i."""
        grad = self.layout.dense_gradient(idx, g, g0, self.g)
        delta = self.moments.step(grad, x)
        return [sender.send(delta[lo:hi])[0] for sender, (lo, hi) in zip(self.senders, self.bounds)], delta

    def serve(self, messages):
        """The packed server step of this worker's slice from every worker's message for it (rank order)."""
        return self.server.round(messages)

    def state(self):
        """Moments, the residual of every slice's sender and the server half of the own slice."""
        return {"moments": self.moments.state(), "senders": [feedback_state(s) for s in self.senders],
                "server": self.server.state()}

    def restore(self, st):
        self.moments.restore(st["moments"])
        if len(st["senders"]) != len(self.senders):
            raise ValueError(f"checkpoint's worker state has {len(st['senders'])} slices, this run {len(self.senders)}")
        for sender, saved in zip(self.senders, st["senders"]):
            restore_feedback(sender, saved)
        self.server.restore(st["server"])

    @property
    def residual(self):
        return np.concatenate([s.residual for s in self.senders])

    @property
    def server_residual(self):
        return self.server.residual

    def apply(self, x, slices):
        apply_sharded_step(x, self.server_q, slices, self.bounds)
