"""The one epoch loop: history records, verbose output, divergence, callback and tol, for every
backend and both workloads.

A single-process backend (threads, cuda) hands :meth:`EpochLoop.run` a function that trains one
epoch and one that evaluates the model; the MPI server, which decides itself when a record is due,
hands each of its records to :meth:`EpochLoop.record`. Either way a record goes through the same
steps: appended to the model's history, printed when verbose, checked for divergence, shown to the
callback, and counted for early stopping; every ``checkpoint_every`` records the loop hands where
the fit stands to its ``checkpoint`` writer.

Resuming a fit from a checkpoint is the loop's business too, so that no backend keeps its own
bookkeeping of it: a backend draws its generator through :meth:`EpochLoop.fit_rng` and registers
the arrays its epochs change in place (the visiting order) through :meth:`EpochLoop.carry`; a
checkpoint holds their current values with the loop's counters, and a resumed loop hands them back
so that a one-thread resume repeats the uninterrupted fit bit for bit.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import _core
from .progress import reporter

CONTINUE, STOP, DIVERGED = "continue", "stop", "diverged"


@contextlib.contextmanager
def interruptible():
    """Ctrl-C reaches the native epochs while this block runs: SIGINT sets the core's stop flag
    (csrc/asyncopt/core/interrupt.hpp) instead of waiting for Python's handler, which would run only
    when the epoch returns. Yields whether it took SIGINT over: only in the main thread, only where
    SIGINT has Python's default handler (a program's own handler, or SIG_IGN, is left alone) and not
    inside another such block (a fit started from a callback)."""
    take = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler and _core.sigint_install())
    try:
        yield bool(take)
    finally:
        if take:
            _core.sigint_restore()


def data_checksum(*arrays):
    """CRC-32 of the arrays' bytes, one after the other: what a checkpoint keeps of the training data."""
    crc = 0
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1), crc)
    return crc


@dataclass
class EpochLoop:
    """epochs : passes in this call (at most, with tol or a callback)
    tol, n_iter_no_change : ``objective`` has stalled when it has not improved by at least tol for
        that many records in a row (tol None: never); a stall stops the run, or first drops the step
    step_drops, drop_factor : the first ``step_drops`` stalls multiply every later step by
        drop_factor (``step_scale``, which a backend applies to its steps) instead of stopping: the
        plateau schedule (scikit-learn's 'adaptive' learning rate, on top of any schedule)
    verbose : show the progress (:mod:`asyncopt.progress`: 1, a bar on a terminal with tqdm, else one
        line per record through ``format``; 2, always the lines)
    callback : ``callback(record)`` after each record; True stops
    stop : ``stop(record, earlier)`` after the callback, ``earlier`` being this fit's previous
        records: a workload's own convergence rule (LDA's perp_tol); True stops
    format : record -> line of text
    check : (model, record) -> None, or the message of a divergence (a non-finite model)
    checkpoint_every, checkpoint : every this many records (and at the last), ``checkpoint(position,
        arrays)`` writes the model with where the fit stands (:meth:`position`); 0: never
    resume : (position, arrays) of a checkpoint to continue instead of starting the fit
    """

    epochs: int
    format: Callable
    check: Callable
    tol: Optional[float] = None
    n_iter_no_change: int = 5
    verbose: int = 0
    callback: Optional[Callable] = None
    step_drops: int = 0
    drop_factor: float = 0.1
    stop: Optional[Callable] = None
    checkpoint_every: int = 0
    checkpoint: Optional[Callable] = None
    resume: Optional[tuple] = None

    def __post_init__(self):
        self._best = np.inf
        self._stale = 0
        self.drops = 0  # stalls so far that dropped the step
        self.step_scale = 1.0  # what every step is multiplied by now
        self.divergence = None  # the message of the divergence that stopped the run, if any
        self.records = 0  # records of this fit so far
        self._first = None  # index in the model's history of this fit's first record
        self._rng = self._rng_start = None
        self._carried = {}
        self._backend_state = None  # () -> (meta, arrays): a backend's own state for the checkpoints
        self._data_digest = None
        if self.resume is not None:
            position = self.resume[0]
            self._best = float(position["best"])
            self._stale, self.drops = int(position["stale"]), int(position["drops"])
            self.step_scale, self.records = float(position["step_scale"]), int(position["records"])
        self.display = reporter(self.verbose, self.epochs, self.format)

    # ------------------------------------------------------------------ what a resume needs
    def fit_rng(self, make):
        """The fit's generator: ``make()`` for a new fit, the checkpoint's (as it was when the fit
        started; :meth:`run` then moves it to where the checkpoint left it) for a resumed one."""
        if self.resume is not None:
            if "rng_start" not in self.resume[0]:
                raise ValueError("this checkpoint holds the model but not the generator of its backend's fit: "
                                 "continue the fit with warm_start=True instead of resume")
            rng = np.random.Generator(getattr(np.random, self.resume[0]["rng_start"]["bit_generator"])())
            rng.bit_generator.state = self.resume[0]["rng_start"]
        else:
            rng = make()
        self._rng, self._rng_start = rng, rng.bit_generator.state
        return rng

    def carry(self, name, array, current=None):
        """Register an array the epochs change in place (``current()`` reads it where it is kept
        elsewhere, e.g. on a GPU). A resumed loop first overwrites it with the checkpoint's copy."""
        if self.resume is not None:
            saved = self.resume[1].get("fit." + name)
            if saved is None or saved.shape != array.shape or saved.dtype != array.dtype:
                raise ValueError(f"checkpoint's {name} ({None if saved is None else saved.shape}) does not fit this "
                                 f"fit's ({array.shape}): resume needs the data of the interrupted fit")
            array[...] = saved
        self._carried[name] = (array, current)
        return array

    def keep_state(self, get):
        """Register ``get() -> (meta, arrays)``: state a backend keeps outside the model and the carried
        arrays (the MPI backend's server counters and its workers' states), written into every
        checkpoint (meta as JSON under the position's 'backend', the arrays under their own names,
        which start with 'fit.'). Returns the checkpoint's (meta, arrays) of it when resuming, else None."""
        self._backend_state = get
        if self.resume is None:
            return None
        meta = self.resume[0].get("backend")
        if meta is None:
            raise ValueError("this checkpoint holds no state of the backend's fit (it was written by another backend): "
                             "resume with the backend that wrote it, or continue with warm_start=True")
        return meta, self.resume[1]

    def checkpoint_due(self):
        """Whether the next record writes a checkpoint at the checkpoint_every cadence (a backend that must
        prepare one, e.g. gather its workers' states, asks this before the record)."""
        return self.checkpoint is not None and (self.records + 1) % self.checkpoint_every == 0

    def bind_data(self, *arrays):
        """The training data's checksum (CRC-32 of its arrays' bytes): a resume on other data is refused."""
        if self.checkpoint is None and self.resume is None:
            return  # an O(nnz) pass only a checkpointed or resumed fit needs
        crc = data_checksum(*arrays)
        self._data_digest = crc
        if self.resume is not None and self.resume[0].get("data_crc32") not in (None, crc):
            raise ValueError("resume needs the data of the interrupted fit: this X (or y) differs from it (its "
                             "checksum does not match the checkpoint's)")

    def position(self):
        """(position, arrays): where the fit stands, for a checkpoint."""
        position = {"records": self.records, "epochs": self.epochs, "best": self._best, "stale": self._stale,
                    "drops": self.drops, "step_scale": self.step_scale, "data_crc32": self._data_digest}
        if self._rng is not None:
            position.update(rng_start=self._rng_start, rng=self._rng.bit_generator.state)
        arrays = {}
        for name, (array, current) in self._carried.items():
            arrays["fit." + name] = current() if current is not None else array
        if self._backend_state is not None:
            meta, extra = self._backend_state()
            position["backend"] = meta
            arrays.update(extra)
        return position, arrays

    def record(self, model, rec, sync=None, final=None, write=True):
        """One record: into model.history, printed, checked, shown to the callback (after sync(),
        which brings a copy of the model the callback may read up to date), counted for tol.
        Returns CONTINUE, STOP or DIVERGED (self.divergence then says why).

        final : whether this record ends the fit (None: when it is the epochs-th record); a backend
            that decides itself when records are due says so (the MPI server)
        write : False skips this record's checkpoint (a record of a run that ended by a failure or
            Ctrl-C: the previous checkpoint, which can still be resumed, is kept)"""
        if self.step_drops:
            rec["step_scale"] = self.step_scale  # the steps of the record's epoch, before a drop below
        previous = model.history[-1] if model.history else None
        if self._first is None:
            self._first = len(model.history) - self.records
        model.history.append(rec)
        self.records += 1
        if self.display is not None:
            self.display.show(rec, previous)
        message = self.check(model, rec)
        if message is not None:
            self.divergence = message
            return DIVERGED
        status = CONTINUE
        if self.callback is not None:
            if sync is not None:
                sync()
            if self.callback(rec) is True:
                status = STOP
        if self.stop is not None and self.stop(rec, model.history[self._first:-1]):
            status = STOP
        if self.tol is not None:
            if rec["objective"] > self._best - self.tol:
                self._stale += 1
            else:
                self._stale = 0
            self._best = min(self._best, rec["objective"])
            if self._stale >= self.n_iter_no_change:
                if self.drops < self.step_drops:
                    self.drops += 1
                    self.step_scale *= self.drop_factor
                    self._stale = 0
                else:
                    status = STOP
        last = self.records == self.epochs if final is None else final
        if write and self.checkpoint is not None and (self.records % self.checkpoint_every == 0 or status == STOP
                                                      or last):
            if sync is not None:
                sync()
            position, arrays = self.position()
            self.checkpoint(dict(position, finished=status == STOP or last), arrays)
        return status

    def close(self):
        """The fit is over: close the progress bar (the estimator calls this whatever happened)."""
        if self.display is not None:
            self.display.close()

    def run(self, model, epoch, evaluate, rng, sync=None):
        """Train up to ``epochs`` passes: ``epoch(seed, k0)`` trains one on the model and returns the
        native counters (updates, staleness); ``evaluate(counters)`` gives the record's
        workload-specific fields; ``sync()`` brings the host copy of the model up to date (a GPU's)
        before anyone reads it. Raises FloatingPointError on a divergence.

        Ctrl-C (:func:`interruptible`) stops the running epoch after the mini-batches in flight; that
        partial epoch is recorded like any other (``interrupted`` True in its record, its updates in
        ``t_`` and ``staleness_``), so the model, the step count and the history agree, and then
        KeyboardInterrupt is raised: the estimator keeps the model reached so far."""
        model.n_iter = self.records
        if self.resume is not None:
            if self._rng is not rng:
                raise RuntimeError("a resumed fit must draw its generator through EpochLoop.fit_rng")
            rng.bit_generator.state = self.resume[0]["rng"]
        with interruptible() as routed:
            try:
                for _ in range(self.epochs - self.records):
                    if routed and _core.stop_requested():
                        break  # Ctrl-C between two epochs: nothing partial to record
                    t0 = time.perf_counter()
                    res = epoch(int(rng.integers(2 ** 63)), model.t)
                    epoch_time = time.perf_counter() - t0
                    interrupted = routed and _core.stop_requested()
                    model.advance(res, epoch_time)
                    t1 = time.perf_counter()
                    rec = evaluate(res)
                    rec.update(epoch=model.epochs_done, time=model.train_time, epoch_time=epoch_time,
                               eval_time=time.perf_counter() - t1, updates=model.t,
                               staleness_mean=float(res["sum"]) / max(int(res["count"]), 1),
                               staleness_max=int(res["max"]))
                    if interrupted:
                        rec["interrupted"] = True
                        # a partial pass: its checkpoint could not resume to the uninterrupted fit
                        writer, self.checkpoint = self.checkpoint, None
                        try:
                            status = self.record(model, rec, sync)
                        finally:
                            self.checkpoint = writer
                        break
                    status = self.record(model, rec, sync)
                    if status == DIVERGED:
                        raise FloatingPointError(self.divergence)
                    if status == STOP:
                        break
            finally:
                if sync is not None:
                    sync()
            if routed and _core.stop_requested():
                _core.clear_stop()
                raise KeyboardInterrupt(f"fit interrupted (Ctrl-C) in epoch {model.epochs_done} after {model.t} updates "
                                        "in all; the estimator holds the model reached so far")
        return model
