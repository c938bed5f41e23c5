"""A worker's loop (ranks 1..K-1).

Gradient workers ('async', 'picky', 'sync'): read the features of the next mini-batch from the
server, compute its mean gradient there (native, GIL released), push it together with the keys of
the mini-batch after it, and read the answer: one message each way per update, O(nnz) bytes.

Efficient-Adam workers (method 'efficient-adam'): read the whole model once, then every round
compute the mini-batch gradient at their replica of the model, push the error-feedback-compressed
step (or gradient) packed, and apply the server's packed broadcast to their replica
(efficient_adam.py); O(features) per round, bit-packed both ways.

DPSGD workers: read the features of a chunk of ``local_updates`` mini-batches, run them as one
lock-free Hogwild! epoch over the worker's threads on a private copy of the model (the threads
backend's own native epoch), and push the change of the chunk's features.

LDA workers (DPSVI): read lambda for the words of the next mini-batch of documents, run their
E-steps over the worker's threads, and push the statistics; the server applies the global step.

A worker walks its shard in passes, reshuffled every pass with its own stream of the run's seed;
the server decides when the run ends (it answers STOP) and the worker then reports its counters.

Checkpoints (synchronous methods): an answer flagged SNAPSHOT (protocol.py) makes the worker send
its state once it has applied that answer, at the round's end (``state``); a resumed worker starts
from such a state (``restore``: the shard order, the next mini-batch and what it read for it, its
moments and residuals) with its next push, without a first read, so a resumed 'sync' or
'efficient-adam' run with one thread per worker repeats the uninterrupted one. An asynchronous
method's checkpoint holds no worker state (there is no round at which all of them stand still): a
resumed worker starts new passes over its shard from a stream of its own for that resume.
An exception that stops a worker is sent to the server first (failures_reported), so rank 0 names
it at once and stops the other workers, instead of waiting out the timeout for a silent rank.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
import traceback
from pathlib import Path

import numpy as np

from ... import _core
from ...state import aligned_zeros, state_dtype
from .efficient_adam import ShardedWorkerSide, WorkerSide
from .options import ServerFailure, delay_rng
from .protocol import (DELTA, GRAD, PACKED, PULL, SNAPSHOT, STAT_FIELDS, STOP, TAG_PUSH, TAG_REPLY, TAG_SLICE,
                       TAG_STATE, TAG_STATS, TAG_STEP, Buffer, pack_error, pack_packed_push, pack_push,
                       packed_reply_size, reply_size, wait)
from .session import exit_by_abort_at_exit, mpi


def describe_error(e):
    """'Type: message (at file:line, in function)', the frame where e was raised: what rank 0 reports."""
    text = f"{type(e).__name__}: {e}"
    frames = traceback.extract_tb(e.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {Path(last.filename).name}:{last.lineno}, in {last.name})"
    return text


@contextlib.contextmanager
def failures_reported(comm, timeout, poll_interval):
    """Around a worker's training (after the handshake): an exception is sent to the server (kind
    ERROR, protocol.py) before it propagates on this rank, so rank 0 raises WorkerFailure with its
    text at once and stops the other workers cleanly; without it rank 0 would only see this rank
    fall silent, ``timeout`` seconds later. The exception itself is re-raised unchanged.

    Every message exchange with the server completes before it returns (both requests are waited
    on), so between them, where an exception comes from, nothing is in flight between this rank and
    the server, which expects no answer: the error is simply the worker's next message. (With
    topology='sharded' the peers waiting for this rank's slice of a round are not told: rank 0 stops
    them, or declares them silent after the timeout when they are stuck in the round.) ServerFailure
    is not sent (the server is the one that stopped answering). KeyboardInterrupt is (a terminal's
    Ctrl-C reaches every rank): rank 0, interrupted too, then drains without waiting for this rank,
    and does not count it as a failure."""
    try:
        yield
    except ServerFailure:
        raise
    except (Exception, KeyboardInterrupt) as e:
        buf = Buffer()
        nbytes = pack_error(buf, describe_error(e))
        req = comm.Isend([buf.raw[:nbytes], mpi().BYTE], dest=0, tag=TAG_PUSH)
        try:
            wait(req, 2 * timeout + 1, poll_interval, "completion of the error report to the server")
        except TimeoutError:  # the server is gone too: the exception below is what this rank reports
            req.Cancel()
        raise


class ShardOrder:
    """Mini-batches (or DPSGD chunks) of a worker's shard rows, pass after pass. A pass ends with a
    short batch rather than mixing two passes, as an epoch of the threads backend does."""

    def __init__(self, rows, size, shuffle, rng):
        self.rows = rows
        self.size = size
        self.shuffle = shuffle
        self.rng = rng
        self.order = None
        self.pos = 0

    def state(self):
        """Where the walk stands: the generator, the current pass's order and the position in it."""
        return {"rng": self.rng.bit_generator.state, "order": None if self.order is None else self.order.copy(),
                "pos": self.pos}

    def restore(self, st):
        order = st["order"]
        if order is not None:
            order = np.asarray(order)
            if order.shape != self.rows.shape or order.dtype != self.rows.dtype or \
                    not np.array_equal(np.sort(order), np.sort(self.rows)):
                raise ValueError("the checkpoint's shard order of this worker is not an order of its rows: resume needs "
                                 "the data and the number of ranks of the interrupted fit")
            order = order.copy()
        self.rng.bit_generator.state = st["rng"]
        self.order, self.pos = order, int(st["pos"])

    def next(self):
        if self.order is None or self.pos >= self.order.shape[0]:
            self.order = self.rng.permutation(self.rows) if self.shuffle else self.rows
            self.pos = 0
        batch = self.order[self.pos:self.pos + self.size]
        self.pos += batch.shape[0]
        return np.ascontiguousarray(batch, dtype=np.int64)


class Worker:
    """What every worker does: read, send, wait with a timeout, count. A subclass defines ``width``
    and ``n_extra`` (the message shape, see protocol.py), ``n_keys`` (the model's coordinates),
    ``_keys(rows)``, ``_store(keys, values, extras)`` (keep what the server answered) and ``_loop()``."""

    width = 1
    n_extra = 1

    def __init__(self, comm, spec, rank, Xn, shard_rows, rows_per_push):
        self.MPI = mpi()
        self.comm = comm
        self.spec = spec
        self.rank = rank
        self.Xn = Xn
        # The server may hold an answer for up to its own timeout (a sync round waiting to declare a
        # silent worker failed) plus an evaluation: a worker waits twice as long before giving up.
        self.timeout = 2 * spec["timeout"] + 1
        self.poll = spec["poll_interval"]
        self.delay = spec["delay"]
        self.delay_rng = delay_rng(spec["seed"], rank)
        # a resumed asynchronous run walks from a stream of its own (spec["stream"]: the resume's
        # version), not the fit's first passes again
        stream = [spec["seed"], rank] + ([spec["stream"]] if spec.get("stream") else [])
        self.order = ShardOrder(shard_rows, rows_per_push, spec["shuffle"], np.random.default_rng(stream))
        self.resumed = None  # a checkpoint's state of this worker, which the loop starts from (restore)
        self.snapshot_asked = False  # the last answer asked for this worker's state at the round's end
        self.push_buf = Buffer()
        self.reply_buf = Buffer()
        self.keys_buf = np.empty(0, dtype=np.int32)
        self.stats = dict.fromkeys(STAT_FIELDS, 0.0)
        self.version = 0
        self.steps = 0

    def run(self):
        """Train until the server says STOP, then report this worker's counters to it."""
        self._loop()
        buf = np.array([self.stats[k] for k in STAT_FIELDS], dtype=np.float64)
        req = self.comm.Isend(buf, dest=0, tag=TAG_STATS)
        try:
            wait(req, self.timeout, self.poll, "completion of the final report to the server")
        except TimeoutError:
            req.Cancel()
        return self.stats

    # ------------------------------------------------------------------ checkpoints
    def state(self, rows):
        """This worker at a round's end, ``rows`` being its next mini-batch (already drawn: the push
        carried its keys): a tree of numbers and arrays (protocol.py's STATE message)."""
        return {"order": self.order.state(), "rows": rows.copy(), "delay_rng": self.delay_rng.bit_generator.state,
                "version": self.version, "steps": self.steps, "stats": dict(self.stats), "read": self._read_state(rows)}

    def restore(self, st):
        """Take a checkpoint's state (resume); the loop then starts from it instead of a first read."""
        self.order.restore(st["order"])
        rows = np.asarray(st["rows"])
        if rows.dtype != np.int64 or rows.ndim != 1 or not np.isin(rows, self.order.rows).all():
            raise ValueError("the checkpoint's next mini-batch of this worker is not rows of its shard: resume needs "
                             "the data and the number of ranks of the interrupted fit")
        self.delay_rng.bit_generator.state = st["delay_rng"]
        self.version, self.steps = int(st["version"]), int(st["steps"])
        self.stats.update({k: v for k, v in st["stats"].items() if k in self.stats})
        self.resumed = dict(st, rows=rows.copy())

    def _resume_point(self):
        """The resumed state's next mini-batch (its read values restored), or None for a fresh start."""
        if self.resumed is None:
            return None
        rows = self.resumed["rows"]
        self._restore_read(rows, self.resumed["read"])
        return rows

    def _round_done(self, rows):
        """After a round's answer is applied: send this worker's state if the answer asked for it."""
        if not self.snapshot_asked:
            return
        self.snapshot_asked = False
        req = self.comm.isend(self.state(rows), dest=0, tag=TAG_STATE)
        try:
            wait(req, self.timeout, self.poll, "completion of this worker's state to the server (rank 0)")
        except TimeoutError as e:
            req.Cancel()
            exit_by_abort_at_exit(self.comm, "the server (rank 0) stopped answering")
            raise ServerFailure(f"worker rank {self.rank}: {e}") from None

    # ------------------------------------------------------------------ messages
    def _exchange(self, nbytes, keys):
        """Send the packed push, wait for the answer for keys (None: the whole model) and keep it;
        False on STOP."""
        n = self.n_keys if keys is None else keys.shape[0]
        size = reply_size(n, self.width, self.n_extra)
        h = self._send_and_wait(nbytes, size)
        if h[0] == STOP:
            self.stats["bytes_received"] += reply_size(0, self.width, self.n_extra)
            return False
        self.stats["bytes_received"] += size
        if h[3] != n:
            raise ValueError(f"worker rank {self.rank}: the server answered {h[3]} keys, expected {n}")
        self.version, self.steps = int(h[1]), int(h[2])
        off = 64 + 8 * self.n_extra
        self._store(keys, self.reply_buf.view(off, n * self.width, np.float64),
                    self.reply_buf.view(64, self.n_extra, np.float64))
        return True

    def _exchange_packed(self, nbytes, payload_bytes):
        """Send the packed push and wait for a round's packed broadcast of payload_bytes bytes; returns
        a view of the payload, or None on STOP."""
        size = packed_reply_size(payload_bytes)
        h = self._send_and_wait(nbytes, max(size, reply_size(0, self.width, self.n_extra)))
        if h[0] == STOP:
            self.stats["bytes_received"] += reply_size(0, self.width, self.n_extra)
            return None
        if h[0] != PACKED or h[3] != payload_bytes:
            raise ValueError(f"worker rank {self.rank}: the server answered kind {h[0]} with {h[3]} bytes, expected "
                             f"a packed broadcast of {payload_bytes}")
        self.stats["bytes_received"] += size
        self.version, self.steps = int(h[1]), int(h[2])
        return self.reply_buf.view(64, payload_bytes, np.uint8)

    def _send_and_wait(self, nbytes, size):
        """Send the packed push and wait for an answer of at most size bytes; returns its header."""
        self.reply_buf.ensure(size)
        rreq = self.comm.Irecv([self.reply_buf.raw[:size], self.MPI.BYTE], source=0, tag=TAG_REPLY)
        sreq = self.comm.Isend([self.push_buf.raw[:nbytes], self.MPI.BYTE], dest=0, tag=TAG_PUSH)
        try:
            waited = wait(rreq, self.timeout, self.poll, "answer from the server (rank 0)")
            wait(sreq, self.timeout, self.poll, "completion of a send to the server (rank 0)")
        except TimeoutError as e:
            rreq.Cancel()
            exit_by_abort_at_exit(self.comm, "the server (rank 0) stopped answering")
            raise ServerFailure(f"worker rank {self.rank}: {e}") from None
        self.stats["messages"] += 1
        self.stats["bytes_sent"] += nbytes
        self.stats["wait_time"] += waited
        h = self.reply_buf.view(0, 8, np.int64)
        self.snapshot_asked = bool(h[0] != STOP and h[4] & SNAPSHOT)
        return h

    def _batch_keys(self, rows):
        """The distinct coordinates (columns) of rows, in first-occurrence order."""
        indptr = self.Xn[0]
        bound = int((indptr[rows + 1] - indptr[rows]).sum())
        if self.keys_buf.shape[0] < bound:
            self.keys_buf = np.empty(max(bound, 2 * self.keys_buf.shape[0]), dtype=np.int32)
        n = _core.batch_features(*self.Xn, self.n_keys, rows, self.keys_buf, check_input=False)
        return self.keys_buf[:n].copy()

    def _pull(self, keys):
        nbytes = pack_push(self.push_buf, PULL, 0, None, None, 0.0, keys, 0, 0, 0, False, self.width)
        return self._exchange(nbytes, keys)

    def _first_read(self):
        """The first rows to train on and their keys, read from the server; (None, None) on STOP."""
        rows = self.order.next()
        keys = self._keys(rows)
        if not self._pull(keys):
            return None, None
        return rows, keys

    def _sleep_delay(self, compute):
        """The artificial delay of a straggler experiment (options.Delay), after compute seconds of work."""
        if self.delay is None:
            return
        extra = self.delay.seconds(compute, self.delay_rng)
        if extra > 0:
            time.sleep(extra)
            self.stats["delay_time"] += extra

    def _finish(self, t0, rows, keys=True):
        """After the local work on rows (started at t0): the next rows and keys (None without keys: a
        method that reads the whole model), the timing, the delay."""
        next_rows = self.order.next()
        next_keys = self._keys(next_rows) if keys else None
        compute = time.perf_counter() - t0
        self.stats["compute_time"] += compute
        self._sleep_delay(compute)
        return next_rows, next_keys, compute


class LogisticWorker(Worker):
    """Logistic regression: gradients ('async', 'picky', 'sync') or local Hogwild! changes ('dpsgd')."""

    def __init__(self, comm, spec, rank, Xn, ypm, shard_rows, reg_scale, n_threads):
        self.dpsgd = spec["method"] == "dpsgd"
        self.efficient_adam = spec.get("efficient_adam")
        self.settings = spec["settings"]  # the frozen LogisticSettings every rank agreed on
        super().__init__(comm, spec, rank, Xn, shard_rows,
                         self.settings.batch_size * (spec["local_updates"] if self.dpsgd else 1))
        self.ypm = ypm
        self.d = self.n_keys = spec["n_features"]
        self.reg_scale = reg_scale
        self.n_threads = n_threads
        self.w = np.zeros(self.d + 1, dtype=np.float64)  # the model as last read (only the read keys are current)
        self.idx_buf = np.empty(0, dtype=np.int32)
        self.g_buf = np.empty(0, dtype=np.float64)

    def _keys(self, rows):
        """The features of rows; None when reading the whole model is cheaper (12 bytes per key
        asked and answered against 8 per feature)."""
        keys = self._batch_keys(rows)
        return None if 12 * keys.shape[0] > 8 * (self.d + 1) else keys

    def _store(self, keys, values, extras):
        if keys is None:
            self.w[:self.d] = values
        else:
            self.w[keys] = values
        self.w[self.d] = extras[0]

    def _read_state(self, rows):
        if self.efficient_adam is not None:  # the replica, the moments and the residuals
            return {"replica": self.w.copy(), "side": self.side.state()}
        keys = self._keys(rows)
        return {"values": (self.w[:self.d] if keys is None else self.w[keys]).copy(), "intercept": self.w[self.d]}

    def _restore_read(self, rows, st):
        if self.efficient_adam is not None:
            replica = np.asarray(st["replica"])
            if replica.shape != self.w.shape:
                raise ValueError(f"the checkpoint's replica of this worker has {replica.shape[0]} values, this model "
                                 f"{self.w.shape[0]}")
            self.w[:] = replica
            self.side.restore(st["side"])
            return
        keys = self._keys(rows)
        values = np.asarray(st["values"], dtype=np.float64)
        if values.shape != ((self.d,) if keys is None else keys.shape):
            raise ValueError("the checkpoint's read of this worker's next mini-batch does not fit its features: "
                             "resume needs the data of the interrupted fit")
        self._store(keys, values, [float(st["intercept"])])

    def _loop(self):
        if self.dpsgd:
            self._run_dpsgd()
        elif self.efficient_adam is not None and self.efficient_adam["bounds"] is not None:
            self._run_sharded()
        elif self.efficient_adam is not None:
            self._run_efficient_adam()
        else:
            self._run_gradients()

    # ------------------------------------------------------------------ loops
    def _run_gradients(self):
        rows = self._resume_point()
        if rows is None:
            rows, _ = self._first_read()  # self.w holds what was read for the batch's features
        while rows is not None:
            t0 = time.perf_counter()
            n, g0 = self._gradient(rows)
            next_rows, next_keys, compute = self._finish(t0, rows)
            idx, g = self.idx_buf[:n], self.g_buf[:n]
            dense = 12 * n > 8 * self.d
            if dense:
                full = np.zeros(self.d, dtype=np.float64)
                full[idx] = g
                g = full
            nbytes = pack_push(self.push_buf, GRAD, self.version, g, idx, g0, next_keys, rows.shape[0], 1,
                               int(compute * 1e9), dense)
            if not self._exchange(nbytes, next_keys):
                return
            self.stats["rows"] += rows.shape[0]
            rows = next_rows
            self._round_done(rows)

    def _run_efficient_adam(self):
        ea = self.efficient_adam
        side = self.side = WorkerSide(self.settings, ea["layout"], ea["worker_q"], ea["server_q"], ea["moments"],
                                      self.spec["seed"], self.rank)
        rows = self._resume_point()  # a resumed worker has its replica, moments and residual back
        if rows is None:
            rows = self.order.next()
            if not self._pull(None):  # x_0, the whole model, as rank 0 holds it
                return
        while True:
            t0 = time.perf_counter()
            n, g0 = self._gradient(rows)
            packed, _ = side.message(self.idx_buf[:n], self.g_buf[:n], g0, self.w)
            next_rows, _, compute = self._finish(t0, rows, keys=False)
            nbytes = pack_packed_push(self.push_buf, self.version, packed, (np.linalg.norm(side.residual), 0.0),
                                      rows.shape[0], int(compute * 1e9))
            step = self._exchange_packed(nbytes, side.reply_bytes)
            if step is None:
                break
            side.apply(self.w, step)
            self.stats["rows"] += rows.shape[0]
            rows = next_rows
            self._round_done(rows)
        self.stats["replica_sha256"] = hashlib.sha256(self.w.tobytes()).hexdigest()  # this rank's copy of x
        self.stats["residual_norm"] = float(np.linalg.norm(side.residual))

    def _run_sharded(self):
        """topology='sharded': each round, the slices of this worker's message to their owners (every
        other worker), the server step of its own slice from theirs, that step to every other rank,
        and the other owners' steps in; rank 0 only answers go on or STOP."""
        ea = self.efficient_adam
        bounds = ea["bounds"]
        side = self.side = ShardedWorkerSide(self.settings, ea["layout"], ea["worker_q"], ea["server_q"],
                                             self.spec["seed"], self.rank, bounds)
        n_workers = len(bounds)
        peers = [r for r in range(1, n_workers + 1) if r != self.rank]
        own_in = side.slice_bytes(side.own)[0]
        inbox = {r: np.empty(own_in, dtype=np.uint8) for r in peers}  # their slices of our coordinates
        steps_in = {r: np.empty(side.slice_bytes(r - 1)[1], dtype=np.uint8) for r in peers}  # their server steps
        rows = self._resume_point()
        if rows is None:
            rows = self.order.next()
            if not self._pull(None):
                return
        while True:
            t0 = time.perf_counter()
            n, g0 = self._gradient(rows)
            slices, _ = side.messages(self.idx_buf[:n], self.g_buf[:n], g0, self.w)
            next_rows, _, compute = self._finish(t0, rows, keys=False)
            recvs = [self.comm.Irecv([inbox[r], self.MPI.BYTE], source=r, tag=TAG_SLICE) for r in peers]
            sends = [self.comm.Isend([slices[r - 1], self.MPI.BYTE], dest=r, tag=TAG_SLICE) for r in peers]
            self._peer_wait(recvs, "its slice of a worker's message")
            served = side.serve([slices[side.own] if r == self.rank else inbox[r] for r in range(1, n_workers + 1)])
            recvs = [self.comm.Irecv([steps_in[r], self.MPI.BYTE], source=r, tag=TAG_STEP) for r in peers]
            sends += [self.comm.Isend([served, self.MPI.BYTE], dest=r, tag=TAG_STEP) for r in peers]
            self.stats["bytes_sent"] += sum(slices[r - 1].shape[0] for r in peers) + len(peers) * served.shape[0]
            norms = (np.linalg.norm(side.residual), np.linalg.norm(side.server_residual))
            nbytes = pack_packed_push(self.push_buf, self.version, served, norms, rows.shape[0], int(compute * 1e9))
            go = self._exchange_packed(nbytes, 0)  # rank 0 gets this slice's step too (it holds a replica)
            self._peer_wait(recvs, "a server step")  # every peer sent it before asking rank 0: always completes
            self._peer_wait(sends, "a send to a worker")
            self.stats["bytes_received"] += len(peers) * own_in + sum(b.shape[0] for b in steps_in.values())
            if go is None:
                break
            side.apply(self.w, [served if r == self.rank else steps_in[r] for r in range(1, n_workers + 1)])
            self.stats["rows"] += rows.shape[0]
            rows = next_rows
            self._round_done(rows)
        self.stats["replica_sha256"] = hashlib.sha256(self.w.tobytes()).hexdigest()
        self.stats["residual_norm"] = float(np.linalg.norm(side.residual))

    def _peer_wait(self, requests, what):
        t0 = time.perf_counter()
        try:
            for req in requests:
                wait(req, self.timeout, self.poll, what)
        except TimeoutError as e:
            for req in requests:
                try:
                    req.Cancel()
                except Exception:  # noqa: BLE001 - already completed: nothing to cancel
                    pass
            exit_by_abort_at_exit(self.comm, "a worker stopped answering (topology='sharded')")
            raise ServerFailure(f"worker rank {self.rank}: {e} (topology='sharded' needs every worker)") from None
        self.stats["wait_time"] += time.perf_counter() - t0

    def _gradient(self, rows):
        """The mini-batch gradient of rows at self.w into idx_buf / g_buf; returns (count, g0)."""
        bound = int((self.Xn[0][rows + 1] - self.Xn[0][rows]).sum())
        if self.idx_buf.shape[0] < bound:
            self.idx_buf = np.empty(max(bound, 2 * self.idx_buf.shape[0]), dtype=np.int32)
            self.g_buf = np.empty(self.idx_buf.shape[0], dtype=np.float64)
        return _core.logistic_batch_gradient(*self.Xn, self.d, self.ypm, rows, self.w, self.reg_scale,
                                             self.settings.sparse_alpha, self.settings.fit_intercept, self.idx_buf,
                                             self.g_buf, check_input=False)

    def _run_dpsgd(self):
        dtype = np.dtype(self.spec["dtype"])
        settings = self.settings  # SGD (checked before the run), without exact L2
        local = aligned_zeros(self.d + 1, state_dtype(settings.optimizer.name, dtype))
        sc = settings.step_config()
        cfg = settings.native_config(self.n_threads)
        cfg.shuffle = False  # the chunk is already in this pass's shuffled order
        reg_scale = self.reg_scale if settings.sparse_alpha > 0 else None
        all_keys = np.arange(self.d, dtype=np.int32)

        rows, keys = self._first_read()
        while rows is not None:
            t0 = time.perf_counter()
            k = all_keys if keys is None else keys
            local["w"][k] = self.w[k]
            local["w"][self.d] = self.w[self.d]
            read = local["w"][k].astype(np.float64)  # as the local model holds them (float32 rounds)
            read0 = float(local["w"][self.d])
            cfg.k0 = self.steps
            cfg.seed = int(self.order.rng.integers(2 ** 63))
            res = _core.logistic_epoch(*self.Xn, self.d, self.ypm, rows.copy(), local, reg_scale, k,
                                       settings.optimizer.native, sc, cfg,
                                       check_input=False)
            delta = local["w"][k].astype(np.float64) - read
            delta0 = float(local["w"][self.d]) - read0
            self.stats["local_updates"] += int(res["updates"])
            self.stats["local_staleness_sum"] += int(res["sum"])
            self.stats["local_staleness_count"] += int(res["count"])
            self.stats["local_staleness_max"] = max(self.stats["local_staleness_max"], int(res["max"]))
            next_rows, next_keys, compute = self._finish(t0, rows)
            nbytes = pack_push(self.push_buf, DELTA, self.version, delta, k, delta0, next_keys, rows.shape[0],
                               int(res["updates"]), int(compute * 1e9), keys is None)
            if not self._exchange(nbytes, next_keys):
                return
            self.stats["rows"] += rows.shape[0]
            rows, keys = next_rows, next_keys
            self._round_done(rows)


class LdaWorker(Worker):
    """DPSVI's worker: the E-steps of a mini-batch of its documents over its threads against lambda as
    the server sent it, pushing sstats x exp(E[log beta]) of the batch's words (K values each)."""

    def __init__(self, comm, spec, rank, Xn, shard_rows, config, n_threads):
        super().__init__(comm, spec, rank, Xn, shard_rows, spec["batch_size"])
        self.n_keys = spec["n_features"]
        self.width = self.n_extra = config.n_components
        self.config = config
        self.n_threads = n_threads
        self.mu = None  # lambda - eta of the current batch's words, K per word (as read)
        self.mass = np.zeros(config.n_components, dtype=np.float64)

    def _keys(self, rows):
        return self._batch_keys(rows)  # asking for words costs 4 bytes against K x 8 answered: never dense

    def _store(self, keys, values, extras):
        self.mu = values.reshape(keys.shape[0], self.width).copy()
        self.mass[:] = extras

    def _read_state(self, rows):
        return {"mu": self.mu.copy(), "mass": self.mass.copy()}

    def _restore_read(self, rows, st):
        keys = self._keys(rows)
        mu = np.asarray(st["mu"], dtype=np.float64)
        if mu.shape != (keys.shape[0], self.width):
            raise ValueError("the checkpoint's read of this worker's next mini-batch does not fit its words: resume "
                             "needs the data of the interrupted fit")
        self._store(keys, mu, np.asarray(st["mass"], dtype=np.float64))

    def _loop(self):
        rows = self._resume_point()
        if rows is not None:
            keys = self._keys(rows)
        else:
            rows, keys = self._first_read()
        while rows is not None:
            t0 = time.perf_counter()
            stats = np.empty((keys.shape[0], self.width), dtype=np.float64)
            iterations = _core.lda_batch_stats(*self.Xn, self.n_keys, rows, keys, self.mu, self.mass, self.config,
                                               self.n_threads, stats, check_input=False)
            self.stats["local_updates"] += iterations  # E-step iterations
            next_rows, next_keys, compute = self._finish(t0, rows)
            nbytes = pack_push(self.push_buf, GRAD, self.version, stats, keys, 0.0, next_keys, rows.shape[0], 1,
                               int(compute * 1e9), False, self.width)
            if not self._exchange(nbytes, next_keys):
                return
            self.stats["rows"] += rows.shape[0]
            rows, keys = next_rows, next_keys
            self._round_done(rows)
