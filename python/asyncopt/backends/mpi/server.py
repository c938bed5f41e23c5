"""The parameter server's loop (rank 0): receive, apply, answer, never wait on one worker.

Receives are non-blocking (a matched probe for any worker's message, then a receive of exactly its
size), so a slow worker only delays itself. Each message is applied by the native model
(``_core.ServerModel``: the optimizer rules of csrc/asyncopt/optim with the GIL released), and
the worker is answered with the values of the features it asked for, as of the latest step.

Synchronous methods ('sync', 'efficient-adam') collect one message from every live worker per round
and answer all of them once the round is applied: with the model's values at each worker's keys
('sync'), or with the one broadcast the model made of the round ('efficient-adam': the packed
server step every rank applies).

A worker stopped by an exception sends its text (kind ERROR) instead of its next message: the
server loses it at once, as it would a silent worker after the timeout, and names its error.

Ctrl-C on rank 0 (in its main thread, under Python's default handler) stops the run the way the
epoch budget does: the handler only raises a flag, the loop's next turn tells every worker to stop
with its next message (a sync round in progress is answered with STOP), their counters are
collected, the model is brought up to date and recorded, and the fit raises KeyboardInterrupt with
its bookkeeping consistent; the workers' fits return normally. A second Ctrl-C raises at once. A
worker interrupted itself (a terminal's Ctrl-C reaches every rank) reports it as its error, so the
drain does not wait for it.

Checkpoints: a fit with checkpoint_every writes rank 0's state (``state()``: the counters below,
the model's own state) with every checkpoint record. In the synchronous methods, before a round
whose record writes a checkpoint, the round's answers ask every worker for its state (SNAPSHOT,
protocol.py), which the server gathers before it records: the checkpoint then holds the whole run
at that round's end, and a resumed run (``restore()``) repeats the uninterrupted one. The last
record of a run that a failure or Ctrl-C ended writes no checkpoint, so the previous one, which
can be resumed, is kept.

Versions count the applied messages (one per round in the synchronous methods); a message's staleness tau is the
number of versions applied between the worker's read and its own application: 0 in 'sync', and
what AsySG-con's and APAM's bounds are stated in otherwise.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time

import numpy as np

from ..._core import STALENESS_BINS
from .options import WorkerFailure
from .protocol import (DELTA, ERROR, GRAD, HEADER, PACKED, PULL, SNAPSHOT, STAT_FIELDS, STOP, TAG_PUSH, TAG_REPLY,
                       TAG_STATE, TAG_STATS, VALUES, Buffer, Push, error_text, packed_reply_size, push_kind,
                       reply_size)

_H = HEADER * 8
from .session import exit_by_abort_at_exit


@contextlib.contextmanager
def _ctrl_c_stops(server):
    """While rank 0 serves: the first SIGINT sets server.interrupted (the loop drains the workers at
    its next turn; see the module docstring), and puts Python's handler back, so a second one raises
    KeyboardInterrupt at once. Only in the main thread and only over Python's default handler."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def first(signum, frame):
        server.interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class StalenessCounter:
    """count, sum, max and log2 histogram of tau, in the native counters' format (history.Staleness)."""

    def __init__(self):
        self.count = self.sum = self.max = 0
        self.hist = np.zeros(STALENESS_BINS, dtype=np.int64)

    def add(self, tau):
        self.count += 1
        self.sum += tau
        self.max = max(self.max, tau)
        self.hist[min(int(tau).bit_length(), STALENESS_BINS - 1)] += 1

    def as_native(self):
        return {"count": self.count, "sum": self.sum, "max": self.max, "hist": self.hist.copy()}

    def restore(self, st):
        self.count, self.sum, self.max = int(st["count"]), int(st["sum"]), int(st["max"])
        hist = np.asarray(st["hist"], dtype=np.int64)
        if hist.shape != self.hist.shape:
            raise ValueError(f"checkpoint's staleness histogram has {hist.shape[0]} bins, this build {self.hist.shape[0]}")
        self.hist = hist.copy()


class Timeline:
    """When one worker's updates reached the server (wall seconds since the fit began) and their
    delay tau (-1: dropped), for the per-worker timeline figure (:func:`asyncopt.plot.mpi_timeline`).

    At most ``cap`` events are kept: when full, every other one is dropped and from then on only
    every ``stride``-th arrival is recorded, so a long run costs O(cap) memory and the kept events
    still cover it evenly."""

    def __init__(self, cap=4096):
        self.cap = cap
        self.stride = 1
        self.seen = 0
        self.time = []
        self.tau = []

    def add(self, t, tau):
        if self.seen % self.stride == 0:
            self.time.append(t)
            self.tau.append(int(tau))
            if len(self.time) >= self.cap:
                del self.time[1::2], self.tau[1::2]
                self.stride *= 2
        self.seen += 1

    def as_dict(self):
        return {"time": list(self.time), "tau": list(self.tau), "stride": self.stride, "events": self.seen}


class WorkerLink:
    """The server's view of one worker."""

    def __init__(self, rank, now):
        self.rank = rank
        self.slot = rank - 1
        self.last_heard = now  # the later of its last message and our last answer to it
        self.alive = True
        self.stopped = False  # told to stop
        self.reply = Buffer()
        self.reply_req = None
        self.messages_in = self.messages_out = self.bytes_in = self.bytes_out = 0
        self.rows = self.applied = self.dropped = 0
        self.stats = None  # the worker's own counters, received after STOP
        self.error = None  # the exception that stopped it (its ERROR message), if one did
        self.timeline = Timeline()


class ParameterServer:
    """One run of the server loop.

    model : models.LogisticModel or models.LdaModel (what a message does to the model)
    opts : MPIOptions (method, timeout, eval_every, ...)
    n_rows : rows (documents for LDA) of all shards together; the run ends after ``epochs`` times
        that many computed rows, with a history point every ``opts.eval_every`` passes
    evaluate(final=False, write=True) : called at each history point with the model settled
        (``record()`` gives the shared fields); returns True to stop the run early (tol, callback).
        final: the run's last record; write: False when that record must not write a checkpoint
    snapshot_due() : (synchronous methods, set by the fit) whether the next record writes a checkpoint,
        whose round must then gather every worker's state; None: never
    epoch0 : passes before this fit (a warm start's), for the records' epoch numbers
    """

    def __init__(self, comm, model, opts, n_rows, epochs, evaluate, epoch0=0):
        from .session import mpi

        self.MPI = mpi()
        self.comm = comm
        self.model = model
        self.method = opts.method
        self.synchronous = opts.method in ("sync", "efficient-adam")
        self.opts = opts
        self.n_rows = n_rows
        self.epoch0 = epoch0
        self.budget_rows = epochs * n_rows
        self.eval_rows = max(1, int(round(opts.eval_every * n_rows)))
        self.evaluate = evaluate
        now = time.perf_counter()
        self.t_begin = now  # the timelines' zero
        self.links = {r: WorkerLink(r, now) for r in range(1, comm.Get_size())}
        self.version = 0
        self.rows_done = 0
        self.next_eval = self.eval_rows
        self.staleness = StalenessCounter()
        self._recorded = (0, 0, 0.0, 0)  # staleness count and sum, train time, rows at the last record
        self._recorded_bytes = (0, 0)  # bytes in and out at the last record
        self.stopping = False
        self.interrupted = False  # Ctrl-C on rank 0 asked the run to stop (run() then drains the workers)
        self.failed = []
        self.train_time = 0.0
        self.recv = Buffer(1 << 16)
        self.status = self.MPI.Status()
        self.round = {}  # sync: rank -> (model.entry(push), keys) of this round
        self.snapshot_due = None
        self.worker_states = {}  # rank -> its state at the end of round states_version (checkpoints)
        self.states_version = None

    # ------------------------------------------------------------------ a fit
    def fit(self):
        """run(), then a last history point for the rows done since the previous one. Returns (wall
        seconds, the WorkerFailure that ended the run or None). Any other error ends the job with
        MPI_Abort when this process exits (the workers would wait for answers that will not come)."""
        try:
            wall, failure = self.run(), None
        except WorkerFailure as e:
            wall, failure = self.train_time, e
        except BaseException as e:
            exit_by_abort_at_exit(self.comm, f"the server stopped with {type(e).__name__} during fit")
            raise
        if self.rows_done > self._recorded[3]:
            self.model.settle()
            # a run ended by a failure or Ctrl-C keeps its previous checkpoint, which can be resumed
            self.evaluate(final=True, write=failure is None and not self.interrupted)
        return wall, failure

    def record(self):
        """The fields every estimator's history record shares, the means over the updates applied
        since the previous record: passes over the data (an int at whole passes), training time since
        the previous record, steps, staleness (mean of the interval, max of the run), rows, drops."""
        st = self.staleness
        count, total = st.count - self._recorded[0], st.sum - self._recorded[1]
        epoch = self.epoch0 + self.rows_done / self.n_rows
        rec = {"epoch": int(epoch) if float(epoch).is_integer() else round(epoch, 4),
               "epoch_time": self.train_time - self._recorded[2], "updates": int(self.model.steps),
               "staleness_mean": total / max(count, 1), "staleness_max": int(st.max), "rows": self.rows_done,
               "dropped": sum(lk.dropped for lk in self.links.values())}
        self._recorded = (st.count, st.sum, self.train_time, self.rows_done)
        bytes_in = sum(lk.bytes_in for lk in self.links.values())
        bytes_out = sum(lk.bytes_out for lk in self.links.values())
        rec.update(bytes_in=bytes_in - self._recorded_bytes[0], bytes_out=bytes_out - self._recorded_bytes[1])
        self._recorded_bytes = (bytes_in, bytes_out)
        if hasattr(self.model, "record"):  # the model's own fields (efficient-adam: rounds, residual norms)
            rec.update(self.model.record())
        return rec

    def train(self, model, run, loop, catch_up):
        """fit(); then, whatever happened, the model brought up to date (catch_up()) with its
        staleness, pass and time counters, and the run's report. Raises the WorkerFailure or the
        divergence (recorded by the epoch loop) that ended the run; returns the model."""
        try:
            wall, failure = self.fit()  # a divergence stops the run at its record: no rows are left unrecorded
        finally:
            catch_up()
            model.staleness.add(self.staleness.as_native())
        self.report_to(model, run, wall)
        if failure is not None:
            raise failure
        if self.interrupted:
            raise KeyboardInterrupt(f"fit interrupted (Ctrl-C) on rank 0 after {self.version} updates; the workers "
                                    "were stopped and the estimator holds the model reached so far")
        if loop.divergence is not None:
            raise FloatingPointError(loop.divergence)
        return model

    def report_to(self, model, run, wall):
        """After a fit on rank 0: the model's pass and time counters, and the run's MPI attributes."""
        model.n_iter = int(np.ceil(self.rows_done / self.n_rows))
        model.epochs_done += model.n_iter
        model.train_time += self.train_time
        model.changed()
        run.report.update(n_threads=None, mpi_rank=0, mpi_stats=self.summary(wall))

    # ------------------------------------------------------------------ checkpoints
    def state(self):
        """Rank 0's part of a checkpoint: the run's counters, the model's own state and, when the last
        round gathered them (synchronous methods), every worker's state at that round's end."""
        st = self.staleness
        links = {str(r): {k: getattr(lk, k) for k in ("messages_in", "messages_out", "bytes_in", "bytes_out", "rows",
                                                     "applied", "dropped")} for r, lk in self.links.items()}
        workers = None
        if self.states_version == self.version and self.worker_states:
            workers = {str(r): w for r, w in sorted(self.worker_states.items())}
        return {"version": self.version, "rows_done": self.rows_done, "next_eval": self.next_eval,
                "train_time": self.train_time, "recorded": list(self._recorded),
                "recorded_bytes": list(self._recorded_bytes), "failed": sorted(self.failed),
                "staleness": {"count": st.count, "sum": st.sum, "max": st.max, "hist": st.hist.copy()},
                "links": links, "model": self.model.state(), "workers": workers}

    def restore(self, st):
        """Continue from a checkpoint's state() (resume): the counters and the model's own state."""
        self.version, self.rows_done, self.next_eval = int(st["version"]), int(st["rows_done"]), int(st["next_eval"])
        self.train_time = float(st["train_time"])
        count, total, train_time, rows = st["recorded"]
        self._recorded = (int(count), int(total), float(train_time), int(rows))
        self._recorded_bytes = tuple(int(v) for v in st["recorded_bytes"])
        self.staleness.restore(st["staleness"])
        for r, counters in st["links"].items():
            link = self.links.get(int(r))
            if link is not None:
                for k, v in counters.items():
                    setattr(link, k, int(v))
        self.model.restore(st["model"])

    def _gather_states(self, ranks):
        """Each of ranks' state (TAG_STATE), which the round's answers asked for; a worker silent for the
        timeout is lost as in the loop."""
        self.worker_states = {}
        pending = set(ranks)
        deadline = time.perf_counter() + self.opts.timeout
        while pending:
            msg = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=TAG_STATE, status=self.status)
            if msg is None:
                if time.perf_counter() > deadline:
                    for r in sorted(pending):
                        exit_by_abort_at_exit(self.comm, f"worker rank {r} failed during fit (sent no state for "
                                                         f"{self.opts.timeout:g} s)")
                        self._lose(self.links[r])
                    break
                time.sleep(self.opts.poll_interval)
                continue
            rank = self.status.Get_source()
            self.worker_states[rank] = msg.recv()
            self.links[rank].last_heard = time.perf_counter()
            pending.discard(rank)
        self.states_version = self.version

    # ------------------------------------------------------------------ loop
    def run(self):
        with _ctrl_c_stops(self):
            return self._run()

    def _run(self):
        t_start = time.perf_counter()
        self.segment_start = t_start
        check_every = min(0.25 * self.opts.timeout, 0.5)  # seconds between checks for silent workers
        next_check = t_start + check_every
        while True:
            if self.interrupted and not self.stopping:
                self._stop_all()  # here, between two messages: the handler itself changes nothing
            live = [lk for lk in self.links.values() if lk.alive and not lk.stopped]
            if not live:
                break
            msg = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=TAG_PUSH, status=self.status)
            now = time.perf_counter()
            if now > next_check:  # also while busy: the other workers' messages must not hide a silent one
                self._check_failures()
                next_check = now + check_every
            if msg is None:
                time.sleep(self.opts.poll_interval)
                continue
            rank = self.status.Get_source()
            nbytes = self.status.Get_count(self.MPI.BYTE)
            self.recv.ensure(nbytes)
            msg.Recv([self.recv.raw[:nbytes], self.MPI.BYTE])
            link = self.links[rank]
            link.last_heard = time.perf_counter()
            if push_kind(self.recv) == ERROR:  # its last message: it waits for no answer
                self._worker_error(link, error_text(self.recv, nbytes), nbytes)
                continue
            if not link.alive:  # a dropped worker came back: it is told to stop
                self._send_stop(link)
                continue
            link.messages_in += 1
            link.bytes_in += nbytes
            self._handle(link, Push(self.recv, nbytes, self.model.width))
        self.train_time += time.perf_counter() - self.segment_start
        self._collect_stats()
        self.model.settle()
        if self.interrupted:
            # workers interrupted with rank 0 (one Ctrl-C at the terminal) are not failures
            self.failed = [r for r in self.failed if not (self.links[r].error or "").startswith("KeyboardInterrupt")]
        if self.failed and (self.opts.on_failure == "raise" or self.rows_done < self.budget_rows
                            and not any(lk.alive for lk in self.links.values())):
            ranks = sorted(self.failed)
            raise WorkerFailure(
                f"{self._failures(ranks)}; the run stopped after {self.version} updates and the model reached so "
                f"far is kept (pass mpi={{'on_failure': 'drop'}} to continue without failed workers)", ranks)
        return time.perf_counter() - t_start

    def _failures(self, ranks):
        """What happened to the failed workers: each one's exception, then the silent ones."""
        parts = [f"worker rank {r} failed with {self.links[r].error}" for r in ranks if self.links[r].error]
        silent = [r for r in ranks if not self.links[r].error]
        if silent:
            parts.append(f"worker rank(s) {silent} sent nothing for {self.opts.timeout:g} s (dead or hung)")
        return "; ".join(parts)

    def _handle(self, link, push):
        if push.kind == PULL:
            self._reply(link, push)
            return
        if self.stopping:
            self._send_stop(link)
            return
        if push.kind not in (GRAD, DELTA, PACKED):
            raise ValueError(f"worker rank {link.rank} sent a message of unknown kind {push.kind}")
        if self.synchronous:
            self.round[link.rank] = (self.model.entry(push, link.rank),
                                     None if push.keys is None else push.keys.copy())
            self._maybe_finish_round()
            return
        tau = self.version - push.version
        if self.model.apply(push, link.slot):
            self.version += 1
            self.staleness.add(tau)
            link.applied += 1
        else:
            link.dropped += 1
            tau = -1
        link.timeline.add(link.last_heard - self.t_begin, tau)
        link.rows += push.rows
        self.rows_done += push.rows
        self._reply(link, push)
        self._after_update()

    # ------------------------------------------------------------------ sync rounds
    def _maybe_finish_round(self):
        """Once every live worker has sent this round's message: one step from all of them, then the
        answers (in rank order, so a fixed seed gives a fixed run)."""
        waiting = [lk for lk in self.links.values() if lk.alive and not lk.stopped]
        if not waiting or any(lk.rank not in self.round for lk in waiting):
            return
        ranks = sorted(self.round)
        self.model.apply_round([self.round[r][0] for r in ranks])
        self.version += 1
        for r in ranks:
            link, rows = self.links[r], self.round[r][0][3]
            self.staleness.add(0)
            link.applied += 1
            link.timeline.add(link.last_heard - self.t_begin, 0)  # its message's arrival; the round ends now
            link.rows += rows
            self.rows_done += rows
        answers, self.round = self.round, {}
        # a checkpoint at this round's record: the answers ask the workers for their states at its end
        snapshot = (self.snapshot_due is not None and self.rows_done < self.budget_rows
                    and self.rows_done >= self.next_eval and self.snapshot_due())
        flag = SNAPSHOT if snapshot else 0
        broadcast = getattr(self.model, "broadcast", None)  # efficient-adam: the same bytes to everyone
        for r in ranks:
            if broadcast is not None:
                self._reply_packed(self.links[r], broadcast, flag)
            else:
                self._reply_keys(self.links[r], answers[r][1], flag)
        if snapshot:
            self._gather_states([r for r in ranks if not self.links[r].stopped])
        self._after_update()

    # ------------------------------------------------------------------ answers
    def _reply(self, link, push):
        self._reply_keys(link, push.keys)

    def _reply_keys(self, link, keys, flag=0):
        """Send link the model's values at keys (None: all) as of now: the worker's new read point
        (flag SNAPSHOT: and ask for its state once it has them)."""
        if link.stopped:
            return
        m = self.model
        n = m.n_keys if keys is None else keys.shape[0]
        size = reply_size(n, m.width, m.n_extra)
        self._wait_reply_sent(link)
        buf = link.reply
        buf.ensure(size)
        buf.view(0, HEADER, np.int64)[:] = (VALUES, self.version, m.steps, n, flag, 0, 0, 0)
        m.read(keys, buf.view(_H + 8 * m.n_extra, n * m.width, np.float64), buf.view(_H, m.n_extra, np.float64),
               link.slot)
        link.reply_req = self.comm.Isend([buf.raw[:size], self.MPI.BYTE], dest=link.rank, tag=TAG_REPLY)
        link.messages_out += 1
        link.bytes_out += size
        link.last_heard = time.perf_counter()  # silence counts from when the worker has its answer

    def _reply_packed(self, link, payload, flag=0):
        """Send link a round's packed broadcast (method 'efficient-adam'): the header and the payload."""
        if link.stopped:
            return
        size = packed_reply_size(payload.shape[0])
        self._wait_reply_sent(link)
        buf = link.reply
        buf.ensure(size)
        buf.view(0, HEADER, np.int64)[:] = (PACKED, self.version, self.model.steps, payload.shape[0], flag, 0, 0, 0)
        buf.view(_H, payload.shape[0], np.uint8)[:] = payload
        link.reply_req = self.comm.Isend([buf.raw[:size], self.MPI.BYTE], dest=link.rank, tag=TAG_REPLY)
        link.messages_out += 1
        link.bytes_out += size
        link.last_heard = time.perf_counter()

    def _send_stop(self, link):
        self._wait_reply_sent(link)
        buf = link.reply
        size = reply_size(0, self.model.width, self.model.n_extra)
        buf.ensure(size)
        buf.view(0, HEADER, np.int64)[:] = (STOP, self.version, self.model.steps, 0, 0, 0, 0, 0)
        buf.view(_H, self.model.n_extra, np.float64)[:] = 0.0
        link.reply_req = self.comm.Isend([buf.raw[:size], self.MPI.BYTE], dest=link.rank, tag=TAG_REPLY)
        link.messages_out += 1
        link.bytes_out += size
        link.stopped = True

    def _wait_reply_sent(self, link, timeout=None):
        req = link.reply_req
        if req is None:
            return
        deadline = time.perf_counter() + (self.opts.timeout if timeout is None else timeout)
        while not req.Test():
            if time.perf_counter() > deadline:
                req.Cancel()
                link.reply = Buffer()  # the cancelled send may still read the old one
                break
            time.sleep(self.opts.poll_interval)
        link.reply_req = None

    # ------------------------------------------------------------------ progress, failures
    def _after_update(self):
        if self.rows_done >= self.budget_rows:
            self._stop_all()
            return
        if self.rows_done >= self.next_eval:
            while self.next_eval <= self.rows_done:
                self.next_eval += self.eval_rows
            now = time.perf_counter()
            self.train_time += now - self.segment_start
            self.model.settle()
            stop = self.evaluate()
            self.segment_start = time.perf_counter()
            pause = self.segment_start - now
            for lk in self.links.values():  # the evaluation's pause is not the workers' silence
                lk.last_heard += pause
            if stop:
                self._stop_all()

    def _stop_all(self):
        """Every worker is told to stop with its next message; a sync round in progress is answered now."""
        self.stopping = True
        for r in list(self.round):
            self._send_stop(self.links[r])
        self.round = {}

    def _check_failures(self):
        now = time.perf_counter()
        for lk in self.links.values():
            if lk.rank in self.round:
                continue  # waiting for the sync round's answer: its silence is the server's doing
            if lk.alive and not lk.stopped and now - lk.last_heard > self.opts.timeout:
                # a silent rank may never reach MPI_Finalize, which would then wait for it forever
                exit_by_abort_at_exit(self.comm, f"worker rank {lk.rank} failed during fit (silent for "
                                                 f"{self.opts.timeout:g} s)")
                self._lose(lk)

    def _worker_error(self, link, text, nbytes):
        """A worker's ERROR message: it stopped with an exception, which it propagates on its own
        rank. It is lost now, as a silent worker is after the timeout, but without MPI_Abort at
        exit: its process goes on to its own exit and MPI_Finalize like every other rank."""
        link.messages_in += 1
        link.bytes_in += nbytes
        if link.error is None:
            link.error = text
        if link.alive:
            self._lose(link)

    def _lose(self, link):
        """A failed worker: it gets no more answers; with on_failure='raise' every other worker is
        told to stop, with 'drop' a sync round goes on without it."""
        link.alive = False
        self.failed.append(link.rank)
        if self.opts.on_failure == "raise":
            self._stop_all()
        elif self.synchronous:
            self.round.pop(link.rank, None)
            self._maybe_finish_round()

    def _collect_stats(self):
        """Each stopped worker's own counters (throughput, compute and waiting time)."""
        deadline = time.perf_counter() + self.opts.timeout
        expecting = {lk.rank for lk in self.links.values() if lk.alive and lk.stopped}
        while expecting and time.perf_counter() < deadline:
            msg = self.comm.improbe(source=self.MPI.ANY_SOURCE, tag=TAG_STATS, status=self.status)
            if msg is None:
                time.sleep(self.opts.poll_interval)
                continue
            rank = self.status.Get_source()
            buf = np.empty(len(STAT_FIELDS), dtype=np.float64)
            msg.Recv(buf)
            self.links[rank].stats = dict(zip(STAT_FIELDS, buf.tolist()))
            expecting.discard(rank)
        for lk in self.links.values():
            self._wait_reply_sent(lk, timeout=1.0 if not lk.alive else None)

    def summary(self, wall_time):
        workers = {}
        for lk in self.links.values():
            w = {"alive": lk.alive, "messages_in": lk.messages_in, "messages_out": lk.messages_out,
                 "bytes_in": lk.bytes_in, "bytes_out": lk.bytes_out, "rows": lk.rows, "applied": lk.applied,
                 "dropped": lk.dropped, "rows_per_second": lk.rows / wall_time if wall_time > 0 else 0.0,
                 "timeline": lk.timeline.as_dict()}
            if lk.stats is not None:
                w["worker"] = lk.stats
            workers[lk.rank] = w
        tot = lambda key: sum(w[key] for w in workers.values())  # noqa: E731
        extra = self.model.summary() if hasattr(self.model, "summary") else {}
        return {**extra, "method": self.method, "workers": workers, "versions": self.version,
                "steps": int(self.model.steps), "applied": tot("applied"), "dropped": tot("dropped"),
                "messages_in": tot("messages_in"),
                "messages_out": tot("messages_out"), "bytes_in": tot("bytes_in"), "bytes_out": tot("bytes_out"),
                "rows": self.rows_done, "train_time": self.train_time, "wall_time": wall_time,
                "failed": sorted(self.failed),
                "errors": {lk.rank: lk.error for lk in self.links.values() if lk.error is not None}}
