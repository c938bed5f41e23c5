"""What the server loop (server.py) does with a message, per problem: a thin layer over the native
server models, which apply the update rules with the GIL released.

A model names its message shape (``width`` values per coordinate, ``n_extra`` values besides them
in an answer, ``n_keys`` coordinates in all) and how one message, one sync round, and one read are
done; ``state()`` / ``restore(state)`` give and take back what a checkpoint must keep of it
besides the estimator's model state (which the native models work on in place). The loop itself knows nothing of logistic regression or LDA. A model may add fields to the
history records (``record()``) and to the run's summary (``summary()``), and a synchronous one may
answer a round with one ``broadcast`` for every worker instead of values (EfficientAdamModel).
"""
from __future__ import annotations

import hashlib

import numpy as np

from .efficient_adam import ServerSide, apply_server_step, apply_sharded_step
from .protocol import DELTA


class LogisticModel:
    """Logistic regression on ``_core.ServerModel``: a value per feature; the intercept is the extra."""

    width = 1
    n_extra = 1

    def __init__(self, core, n_features, method, picky_threshold):
        self.core = core
        self.n_keys = n_features
        self.all_keys = np.arange(n_features, dtype=np.int32)
        self.picky = method == "picky"
        self.threshold = picky_threshold
        self.acc = np.zeros(n_features, dtype=np.float64) if method == "sync" else None

    @property
    def steps(self):
        return self.core.steps

    @property
    def touched(self):
        return self.core.touched

    def _sparse(self, push):
        if not push.dense:
            return push.idx, push.values
        nz = np.flatnonzero(push.values).astype(np.int32)  # a dense message's zeros are no update
        return nz, push.values[nz]

    def apply(self, push, slot):
        """Apply one worker message; False when Picky SGD drops it."""
        idx, values = self._sparse(push)
        if push.kind == DELTA:
            self.core.add(idx, values, push.g0, push.steps)
            return True
        if self.picky and self.core.distance(slot) > self.threshold:
            return False  # the model moved too far since this gradient's read
        self.core.apply(idx, values, push.g0)
        return True

    def entry(self, push, rank=None):
        """A copy of what a sync round keeps of a message (the receive buffer is reused)."""
        idx, values = self._sparse(push)
        return idx.copy(), values.copy(), push.g0, push.rows

    def apply_round(self, entries):
        """One step with the row-weighted mean of the round's gradients (the mean over all their rows)."""
        total = float(sum(e[3] for e in entries))
        g0 = 0.0
        for idx, values, eg0, rows in entries:
            wgt = rows / total
            self.acc[idx] += values * wgt  # idx distinct within one message
            g0 += eg0 * wgt
        touched = np.unique(np.concatenate([e[0] for e in entries]))
        self.core.apply(touched, self.acc[touched], g0)
        self.acc[touched] = 0.0

    def read(self, keys, values, extras, slot):
        self.core.read(self.all_keys if keys is None else keys, values)
        extras[0] = self.core.read_intercept()
        if self.picky:
            self.core.reset(slot)  # this answer is the worker's new read point

    def settle(self):
        self.core.settle()

    def state(self):
        return {}  # the native model's state is the estimator's array (settled), its step count the model's t

    def restore(self, st):
        pass


class LdaModel:
    """LDA on ``_core.LdaServerModel``: K values (lambda - eta) per word; the K topic sums are the extras."""

    def __init__(self, core, n_words, n_topics):
        self.core = core
        self.n_keys = n_words
        self.width = n_topics
        self.n_extra = n_topics
        self.all_keys = np.arange(n_words, dtype=np.int32)
        self.drift = 0.0

    @property
    def steps(self):
        return self.core.steps

    def apply(self, push, slot):
        self.core.apply(push.idx, push.values, float(push.rows))  # rows: the mini-batch's documents
        return True

    def entry(self, push, rank=None):
        return push.idx.copy(), push.values.copy(), 0.0, push.rows

    def apply_round(self, entries):
        """One global step on the union of the round's mini-batches: their statistics summed word by word,
        |B| their documents together (E-step statistics add over documents)."""
        words, inverse = np.unique(np.concatenate([e[0] for e in entries]), return_inverse=True)
        stats = np.zeros((words.shape[0], self.width), dtype=np.float64)
        np.add.at(stats, inverse, np.concatenate([e[1] for e in entries]))
        self.core.apply(words.astype(np.int32), stats, float(sum(e[3] for e in entries)))

    def read(self, keys, values, extras, slot):
        keys = self.all_keys if keys is None else keys
        self.core.read(keys, values.reshape(keys.shape[0], self.width), extras)

    def settle(self):
        self.drift = max(self.drift, self.core.settle())  # reported in the history's topic_mass_drift

    def state(self):
        return {"drift": self.drift}  # lambda is the estimator's mu and topic sums (settled)

    def restore(self, st):
        self.drift = float(st["drift"])


class EfficientAdamModel:
    """Method 'efficient-adam' on rank 0 (efficient_adam.py has the arithmetic): rank 0's replica x of
    the model (float64, bit-identical to every worker's), the server's half of each round, and the
    round's broadcast (``broadcast``: the packed server step the loop sends to every worker).

    state : the estimator's model state array, into which ``settle`` writes x (its dtype)
    server_core : moments='server': a ``_core.ServerModel`` on a private float64 state (the server's
        optimizer, as method 'sync' runs it) started at x; None for moments='worker'
    server_state : that private state (its structured array), which a checkpoint keeps
    """

    width = 1
    n_extra = 1

    def __init__(self, state, layout, worker_q, server_q, seed, server_core=None, server_state=None):
        self.model_state = state
        self.server_state = server_state
        self.layout = layout
        self.n_keys = layout.d
        self.all_keys = np.arange(layout.d, dtype=np.int32)
        self.x = state["w"].astype(np.float64)  # d + 1 values, the intercept last
        self.core = server_core
        rule_step = None
        if server_core is not None:
            self.xs = self.x[:layout.n].copy()  # the server optimizer's own iterate x^S
            rule_step = self._rule_step
        self.server = ServerSide(layout, worker_q, server_q, seed, rule_step)
        self.server_q = server_q
        self.broadcast = None
        self.worker_residuals = {}  # rank -> ||e_i|| as of its latest message
        self.payload_in = self.payload_out = 0  # packed bytes of the rounds' messages, without headers

    def _rule_step(self, mean):
        """moments='server': one step of the server's rule with the mean gradient; its step x^S_t - x^S_{t+1}."""
        lay = self.layout
        self.core.apply(self.all_keys, np.ascontiguousarray(mean[:lay.d]), float(mean[lay.d]) if lay.fit_intercept
                        else 0.0)
        new = np.empty(lay.n)
        self.core.read(self.all_keys, new[:lay.d])
        if lay.fit_intercept:
            new[lay.d] = self.core.read_intercept()
        step = self.xs - new
        self.xs = new
        return step

    @property
    def steps(self):
        return self.server.rounds

    @property
    def touched(self):
        return self.all_keys

    def entry(self, push, rank=None):
        self.worker_residuals[rank] = push.g0
        self.payload_in += push.values.shape[0]
        return push.values.copy(), None, push.g0, push.rows

    def apply_round(self, entries):
        """One round from the workers' messages (given in rank order)."""
        self.broadcast = self.server.round([e[0] for e in entries])
        self.payload_out += len(entries) * self.broadcast.shape[0]
        apply_server_step(self.x, self.server_q, self.broadcast, self.layout.n)

    def read(self, keys, values, extras, slot):
        values[:] = self.x[:self.layout.d] if keys is None else self.x[keys]
        extras[0] = self.x[self.layout.d]

    def settle(self):
        self.model_state["w"][:] = self.x

    def state(self):
        """The float64 replica x (the estimator's array holds it in the model's dtype), the server's residual
        e_s, the moments='server' optimizer (settled: its records as of its step count) and the counters."""
        st = {"x": self.x.copy(), "server": self.server.state(), "payload_in": self.payload_in,
              "payload_out": self.payload_out, "worker_residuals": {str(r): v for r, v in self.worker_residuals.items()},
              "core": None}
        if self.core is not None:
            self.core.settle()
            st["core"] = {"state": self.server_state.copy(), "steps": int(self.core.steps), "xs": self.xs.copy()}
        return st

    def restore(self, st):
        """Everything of state() but the moments='server' optimizer, which is built on its saved records
        (logistic.py)."""
        x = np.asarray(st["x"])
        if x.shape != self.x.shape or x.dtype != self.x.dtype:
            raise ValueError(f"checkpoint's Efficient-Adam replica has shape {x.shape}, this model {self.x.shape}")
        self.x = x.copy()
        self.server.restore(st["server"])
        self.payload_in, self.payload_out = int(st["payload_in"]), int(st["payload_out"])
        self.worker_residuals = {int(r): float(v) for r, v in st["worker_residuals"].items()}
        if self.core is not None:
            self.xs = np.array(st["core"]["xs"], dtype=np.float64)

    def residual_norms(self):
        return {"worker_residual": float(np.mean(list(self.worker_residuals.values()))) if self.worker_residuals
                else 0.0, "server_residual": float(np.linalg.norm(self.server.residual))}

    def record(self):
        return {"rounds": self.server.rounds, **self.residual_norms()}

    def summary(self):
        return {"rounds": self.server.rounds, "payload_in": self.payload_in, "payload_out": self.payload_out,
                "worker_residual_norms": {int(r): float(v) for r, v in self.worker_residuals.items()},
                "server_residual_norm": float(np.linalg.norm(self.server.residual)),
                "replica_sha256": hashlib.sha256(self.x.tobytes()).hexdigest()}


class ShardedEfficientAdamModel(EfficientAdamModel):
    """Rank 0 under topology='sharded': the workers serve the slices, so a round's messages are the
    owners' packed server steps (worker r's of slice r - 1), which rank 0 applies to its replica with
    the workers' own function; its answer to each worker is an empty go on. The residual norms come
    with the messages; the workers' traffic between themselves (``peer_bytes``) is computed from the
    slice sizes (every worker sends each other owner its slice and each other worker its step)."""

    def __init__(self, state, layout, worker_q, server_q, seed, bounds):
        super().__init__(state, layout, worker_q, server_q, seed)
        self.bounds = bounds
        self.broadcast = np.zeros(0, dtype=np.uint8)
        self.rounds = 0
        self.server_residuals = {}
        sizes = [(worker_q.nbytes(hi - lo), server_q.nbytes(hi - lo)) for lo, hi in bounds]
        N = len(bounds)
        self.peer_bytes_per_round = sum((N - 1) * (w + s) for w, s in sizes)
        self.peer_bytes = 0

    @property
    def steps(self):
        return self.rounds

    def entry(self, push, rank=None):
        self.server_residuals[rank] = push.server_residual
        return super().entry(push, rank)

    def state(self):
        """The replica and counters (the server residuals live on the workers that serve the slices)."""
        return dict(super().state(), rounds=self.rounds, peer_bytes=self.peer_bytes,
                    peer_recorded=getattr(self, "_peer_recorded", 0),
                    server_residuals={str(r): v for r, v in self.server_residuals.items()})

    def restore(self, st):
        super().restore(st)
        self.rounds, self.peer_bytes = int(st["rounds"]), int(st["peer_bytes"])
        self._peer_recorded = int(st["peer_recorded"])
        self.server_residuals = {int(r): float(v) for r, v in st["server_residuals"].items()}

    def apply_round(self, entries):
        """The owners' steps (in rank order: slice order) into rank 0's replica."""
        apply_sharded_step(self.x, self.server_q, [e[0] for e in entries], self.bounds)
        self.rounds += 1
        self.peer_bytes += self.peer_bytes_per_round

    def residual_norms(self):
        worker = float(np.mean(list(self.worker_residuals.values()))) if self.worker_residuals else 0.0
        server = float(np.sqrt(sum(v * v for v in self.server_residuals.values())))
        return {"worker_residual": worker, "server_residual": server}

    def record(self):
        rec = {"rounds": self.rounds, "peer_bytes": self.peer_bytes - getattr(self, "_peer_recorded", 0),
               **self.residual_norms()}
        self._peer_recorded = self.peer_bytes
        return rec

    def summary(self):
        norms = self.residual_norms()
        return {"rounds": self.rounds, "payload_in": self.payload_in, "payload_out": 0, "peer_bytes": self.peer_bytes,
                "slices": [list(b) for b in self.bounds],
                "worker_residual_norms": {int(r): float(v) for r, v in self.worker_residuals.items()},
                "server_residual_norm": norms["server_residual"],
                "replica_sha256": hashlib.sha256(self.x.tobytes()).hexdigest()}
