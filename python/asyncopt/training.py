"""The one epoch loop: history records, verbose output, divergence, callback and tol, for every
backend and both workloads.

A single-process backend (threads, cuda) hands :meth:`EpochLoop.run` a function that trains one
epoch and one that evaluates the model; the MPI server, which decides itself when a record is due,
hands each of its records to :meth:`EpochLoop.record`. Either way a record goes through the same
steps: appended to the model's history, printed when verbose, checked for divergence, shown to the
callback, and counted for early stopping.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .progress import reporter

CONTINUE, STOP, DIVERGED = "continue", "stop", "diverged"


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
    stop : ``stop(record)`` after the callback: a workload's own convergence rule (LDA's perp_tol);
        True stops
    format : record -> line of text
    check : (model, record) -> None, or the message of a divergence (a non-finite model)
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

    def __post_init__(self):
        self._best = np.inf
        self._stale = 0
        self.drops = 0  # stalls so far that dropped the step
        self.step_scale = 1.0  # what every step is multiplied by now
        self.divergence = None  # the message of the divergence that stopped the run, if any
        self.display = reporter(self.verbose, self.epochs, self.format)

    def record(self, model, rec, sync=None):
        """One record: into model.history, printed, checked, shown to the callback (after sync(),
        which brings a copy of the model the callback may read up to date), counted for tol.
        Returns CONTINUE, STOP or DIVERGED (self.divergence then says why)."""
        if self.step_drops:
            rec["step_scale"] = self.step_scale  # the steps of the record's epoch, before a drop below
        previous = model.history[-1] if model.history else None
        model.history.append(rec)
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
        if self.stop is not None and self.stop(rec):
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
        return status

    def close(self):
        """The fit is over: close the progress bar (the estimator calls this whatever happened)."""
        if self.display is not None:
            self.display.close()

    def run(self, model, epoch, evaluate, rng, sync=None):
        """Train up to ``epochs`` passes: ``epoch(seed, k0)`` trains one on the model and returns the
        native counters (updates, staleness); ``evaluate(counters)`` gives the record's
        workload-specific fields; ``sync()`` brings the host copy of the model up to date (a GPU's)
        before anyone reads it. Raises FloatingPointError on a divergence."""
        model.n_iter = 0
        try:
            for _ in range(self.epochs):
                t0 = time.perf_counter()
                res = epoch(int(rng.integers(2 ** 63)), model.t)
                epoch_time = time.perf_counter() - t0
                model.advance(res, epoch_time)
                t1 = time.perf_counter()
                rec = evaluate(res)
                rec.update(epoch=model.epochs_done, time=model.train_time, epoch_time=epoch_time,
                           eval_time=time.perf_counter() - t1, updates=model.t,
                           staleness_mean=float(res["sum"]) / max(int(res["count"]), 1),
                           staleness_max=int(res["max"]))
                status = self.record(model, rec, sync)
                if status == DIVERGED:
                    raise FloatingPointError(self.divergence)
                if status == STOP:
                    break
        finally:
            if sync is not None:
                sync()
        return model
