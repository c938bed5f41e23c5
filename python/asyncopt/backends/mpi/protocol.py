"""Messages between the parameter server (rank 0) and its workers: flat numpy byte buffers, never
pickles, on the hot path; and waiting without spinning.

A worker's message (tag PUSH), one buffer:

    header   int64[8]  kind, version read, n, n keys, rows, steps, compute ns, flags
    g0       float64   the intercept's gradient (or change); unused by LDA
    values   float64[n x width]  width values per coordinate: 1 for logistic regression, K (topics)
                                 for LDA's word rows
    idx      int32[n]            their coordinates (absent when the values are dense: flags & DENSE,
                                 n = every coordinate)
    keys     int32[n keys]       the coordinates of the worker's next mini-batch, to read;
                                 n keys = -1 asks for the whole model

kind PULL carries no values (the first read), GRAD a mini-batch gradient, DELTA a DPSGD worker's
change of the model. kind PACKED (method 'efficient-adam') carries, after the header and two float64
(diagnostics: the norms of the worker's error-feedback residual and, with topology='sharded', of
the server residual of the slice it serves), n bytes: a quantized message in its packed wire
format (asyncopt.compress), and no keys. A sparse message costs 12 bytes per nonzero, a dense one 8 per feature: the
worker sends whichever is smaller, and asks for the whole model when its keys would cost more than
the model itself.

kind ERROR is a worker's last word when an exception stopped it: after the header (n = the text's
bytes) the UTF-8 text of the exception (its type, message and where it was raised), so rank 0
names it at once instead of declaring the worker silent after the timeout; the worker sends
nothing more and waits for no answer.

The server's answer (tag REPLY): header int64[8] (kind VALUES or STOP, version, steps, n keys),
then the model's extras (logistic: the intercept; LDA: the K topic sums) and the width values of
each key asked for, as of the server's latest step. A round's broadcast of method 'efficient-adam'
(kind PACKED) is the header (n = the payload's bytes) and the packed server step, nothing else
(with topology='sharded', no payload: the workers send each other the server's slices, tags SLICE
and STEP, raw packed bytes whose sizes both sides know; rank 0's answer only says go on or STOP).

After STOP the worker sends its counters (tag STATS, float64[len(STAT_FIELDS)]).

Checkpoints of the synchronous methods ('sync', 'efficient-adam'): a round's answer whose header
field 4 is SNAPSHOT asks the worker for its state at the end of that round (the consistent cut of
the run: every worker has the round's answer and nothing of the next round is computed). Once it
has applied the answer, the worker sends its state (tag STATE; a pickled dict of numbers and numpy
arrays, as the handshake's messages: its shard order's generator, order and position, the rows and
what it read of the next mini-batch, its delay generator, its Efficient-Adam moments and
residuals and, with topology='sharded', the server residual of its slice) and goes on; rank 0
receives every worker's before it records the round and writes them into the checkpoint.
"""
from __future__ import annotations

import time

import numpy as np

TAG_PUSH, TAG_REPLY, TAG_STATS, TAG_SETUP = 11, 12, 13, 14
TAG_SLICE, TAG_STEP = 15, 16  # efficient-adam, topology='sharded': worker to worker
TAG_STATE = 17  # a worker's state for a checkpoint, after an answer flagged SNAPSHOT

PULL, GRAD, DELTA, PACKED, ERROR = 0, 1, 2, 3, 4  # push kinds
VALUES, STOP = 0, 1  # reply kinds (and PACKED)
DENSE = 1  # flags
SNAPSHOT = 1  # a reply's field 4: send your state after applying this answer

HEADER = 8  # int64 fields
_H = HEADER * 8  # bytes

STAT_FIELDS = ("rows", "messages", "bytes_sent", "bytes_received", "compute_time", "delay_time", "wait_time",
               "local_updates", "local_staleness_sum", "local_staleness_count", "local_staleness_max")


class Buffer:
    """A growable byte buffer: messages are packed into it without allocating per message."""

    def __init__(self, nbytes=1 << 12):
        self.raw = np.empty(nbytes, dtype=np.uint8)

    def ensure(self, nbytes):
        if nbytes > self.raw.shape[0]:
            self.raw = np.empty(max(nbytes, 2 * self.raw.shape[0]), dtype=np.uint8)
        return self.raw

    def view(self, offset, count, dtype):
        dtype = np.dtype(dtype)
        return self.raw[offset:offset + count * dtype.itemsize].view(dtype)


def push_size(n, n_keys, dense, width=1):
    return _H + 8 + 8 * n * width + (0 if dense else 4 * n) + 4 * max(n_keys, 0)


def pack_push(buf, kind, version, values, idx, g0, keys, rows, steps, compute_ns, dense, width=1):
    """Pack a worker message into buf; returns its byte count. values: n x width (flat or 2-d);
    keys None asks for the whole model."""
    n = 0 if values is None else values.size // width
    nk = -1 if keys is None else keys.shape[0]
    size = push_size(n, nk, dense, width)
    buf.ensure(size)
    buf.view(0, HEADER, np.int64)[:] = (kind, version, n, nk, rows, steps, compute_ns, DENSE if dense else 0)
    buf.view(_H, 1, np.float64)[0] = g0
    off = _H + 8
    if n:
        buf.view(off, n * width, np.float64)[:] = values.reshape(-1)
        off += 8 * n * width
        if not dense:
            buf.view(off, n, np.int32)[:] = idx
            off += 4 * n
    if nk > 0:
        buf.view(off, nk, np.int32)[:] = keys
    return size


def packed_push_size(nbytes):
    return _H + 16 + nbytes


def pack_packed_push(buf, version, payload, residual_norms, rows, compute_ns):
    """Pack a worker's quantized message (method 'efficient-adam') with its two residual norms;
    returns its byte count."""
    n = payload.shape[0]
    size = packed_push_size(n)
    buf.ensure(size)
    buf.view(0, HEADER, np.int64)[:] = (PACKED, version, n, 0, rows, 1, compute_ns, 0)
    buf.view(_H, 2, np.float64)[:] = residual_norms
    buf.view(_H + 16, n, np.uint8)[:] = payload
    return size


def pack_error(buf, text):
    """Pack a worker's error message (kind ERROR: the header, then text in UTF-8); returns its byte count."""
    raw = np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8)
    size = _H + raw.shape[0]
    buf.ensure(size)
    buf.view(0, HEADER, np.int64)[:] = (ERROR, 0, raw.shape[0], 0, 0, 0, 0, 0)
    buf.view(_H, raw.shape[0], np.uint8)[:] = raw
    return size


def push_kind(buf):
    """The kind of the worker message in buf (read before parsing it: an ERROR is not a Push)."""
    return int(buf.view(0, 1, np.int64)[0])


def error_text(buf, nbytes):
    """The text of a worker's ERROR message of nbytes bytes in buf."""
    n = int(buf.view(0, HEADER, np.int64)[2])
    if nbytes != _H + n or n < 0:
        raise ValueError(f"malformed error message: {nbytes} bytes for a text of {n}")
    return buf.view(_H, n, np.uint8).tobytes().decode("utf-8", "replace")


def packed_reply_size(nbytes):
    return _H + nbytes


class Push:
    """A received worker message, as views into the receive buffer (valid until the next receive)."""

    __slots__ = ("kind", "version", "n", "n_keys", "rows", "steps", "compute_ns", "dense", "g0", "values", "idx",
                 "keys", "nbytes", "server_residual")

    def __init__(self, buf, nbytes, width=1):
        h = buf.view(0, HEADER, np.int64)
        self.kind, self.version, self.n, self.n_keys = int(h[0]), int(h[1]), int(h[2]), int(h[3])
        self.rows, self.steps, self.compute_ns = int(h[4]), int(h[5]), int(h[6])
        self.dense = bool(h[7] & DENSE)
        self.nbytes = nbytes
        if self.kind == PACKED:
            if nbytes != packed_push_size(self.n) or self.n < 0 or self.n_keys != 0:
                raise ValueError(f"malformed message: {nbytes} bytes for header {h.tolist()}")
            self.g0 = float(buf.view(_H, 1, np.float64)[0])  # the sender's residual norm
            self.server_residual = float(buf.view(_H + 8, 1, np.float64)[0])  # sharded: its slice's
            self.values = buf.view(_H + 16, self.n, np.uint8)
            self.idx, self.keys = None, np.zeros(0, dtype=np.int32)
            return
        if nbytes != push_size(self.n, self.n_keys, self.dense, width) or self.n < 0 or self.n_keys < -1:
            raise ValueError(f"malformed message: {nbytes} bytes for header {h.tolist()}")
        self.g0 = float(buf.view(_H, 1, np.float64)[0])
        off = _H + 8
        self.values = buf.view(off, self.n * width, np.float64)
        if width > 1:
            self.values = self.values.reshape(self.n, width)
        off += 8 * self.n * width
        self.idx = None
        if not self.dense:
            self.idx = buf.view(off, self.n, np.int32)
            off += 4 * self.n
        self.keys = buf.view(off, self.n_keys, np.int32) if self.n_keys >= 0 else None  # -1: all


def reply_size(n, width=1, n_extra=1):
    return _H + 8 * n_extra + 8 * n * width


def wait(request, timeout, poll_interval, what):
    """Wait for an MPI request to complete, sleeping between tests; TimeoutError after timeout s.
    Returns the seconds waited."""
    t0 = time.perf_counter()
    if request.Test():
        return 0.0
    deadline = t0 + timeout
    while not request.Test():
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"no {what} for {timeout:g} s")
        time.sleep(poll_interval)
    return time.perf_counter() - t0
