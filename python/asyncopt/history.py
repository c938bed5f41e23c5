"""Training history and staleness statistics, shared by every backend."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _core


def staleness_bin_edges(n_bins=None):
    """Edges of the staleness histogram: bin 0 is tau = 0, bin b >= 1 is tau in [2^(b-1), 2^b)."""
    n_bins = _core.STALENESS_BINS if n_bins is None else n_bins
    return np.array([0, 1] + [2 ** b for b in range(1, n_bins)], dtype=np.float64)


@dataclass
class Staleness:
    """Delay tau of the applied updates: how many updates other workers applied between an
    update's read of the model and its write (Lian et al. 2015's tau; APAM states its speedup in it).

    ``histogram[b]`` counts updates with tau = 0 (b = 0) or 2^(b-1) <= tau < 2^b (b >= 1);
    ``bin_edges`` has one more entry than ``histogram``.
    """

    count: int = 0
    total: int = 0
    max: int = 0
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(_core.STALENESS_BINS, dtype=np.int64))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def bin_edges(self) -> np.ndarray:
        return staleness_bin_edges(len(self.histogram))

    def add(self, native: dict) -> None:
        """Merge the counters one native epoch returned."""
        self.count += int(native["count"])
        self.total += int(native["sum"])
        self.max = max(self.max, int(native["max"]))
        self.histogram += np.asarray(native["hist"], dtype=np.int64)

    def as_dict(self) -> dict:
        last = int(np.flatnonzero(self.histogram)[-1]) + 1 if self.histogram.any() else 1
        return {"count": self.count, "mean": self.mean, "max": self.max,
                "histogram": self.histogram[:last].tolist(), "bin_edges": self.bin_edges[:last + 1].tolist()}

    def __repr__(self) -> str:
        return f"Staleness(count={self.count}, mean={self.mean:.4g}, max={self.max})"


HISTORY_FIELDS = ("epoch", "time", "epoch_time", "eval_time", "objective", "train_loss", "train_accuracy",
                  "train_loss_kind", "updates", "staleness_mean", "staleness_max", "val_loss", "val_accuracy",
                  "step_scale")


def format_epoch(epoch) -> str:
    """A record's pass count: an int, or fractional where an MPI run records between passes."""
    return f"{epoch:3d}" if isinstance(epoch, int) else f"{epoch:7.3f}"


class History(list):
    """One dict per epoch (see HISTORY_FIELDS); ``column(name)`` gives one field as an array.

    ``time`` is cumulative training time in seconds, excluding the evaluation that produced the
    record (``eval_time``), so it compares with other libraries' training time.

    A logistic record's ``train_loss``, ``train_accuracy`` and ``objective`` are of the kind its
    ``train_loss_kind`` names: 'progressive', the mean over the epoch's rows of each row's loss at
    the model its update read (measured while training, like scikit-learn SGD's stopping test;
    it lags the epoch's final model), or 'exact', the loss of the final model on every training row
    (an extra pass). The objective adds alpha/2 ||w||^2 of the final model either way.
    ``step_scale`` (with plateau drops) is what the record's epoch multiplied every step by.
    """

    def column(self, name):
        return np.array([rec.get(name, np.nan) for rec in self], dtype=np.float64)

    @staticmethod
    def format_row(rec) -> str:
        """A logistic record as one line of text (verbose output)."""
        kind = " (progressive)" if rec.get("train_loss_kind") == "progressive" else ""
        s = (f"epoch {format_epoch(rec['epoch'])}  time {rec['time']:8.3f}s  objective {rec['objective']:.6f}{kind}  "
             f"train acc {rec['train_accuracy']:.4f}  staleness mean {rec['staleness_mean']:.3g} max {rec['staleness_max']}")
        if rec.get("val_loss") is not None:
            s += f"  val loss {rec['val_loss']:.6f}  val acc {rec['val_accuracy']:.4f}"
        if rec.get("bytes_in") is not None:  # an MPI run: the epoch's traffic, each way
            s += f"  kB in/out {rec['bytes_in'] / 1e3:.1f}/{rec['bytes_out'] / 1e3:.1f}"
        if rec.get("peer_bytes") is not None:  # efficient-adam, topology='sharded': between the workers
            s += f"  kB peers {rec['peer_bytes'] / 1e3:.1f}"
        if rec.get("server_residual") is not None:  # efficient-adam's error-feedback residual norms
            s += f"  residual worker/server {rec['worker_residual']:.3g}/{rec['server_residual']:.3g}"
        return s
