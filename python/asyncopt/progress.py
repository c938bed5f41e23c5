"""How a fit shows its progress: nothing, one line per history record, or a progress bar.

``verbose=0`` (the default) is quiet. ``verbose=1`` draws a tqdm bar (epochs done out of the
fit's budget, with the last record's loss, throughput and staleness) when the output stream is a
terminal and tqdm is installed (the ``progress`` extra), and prints one line per record otherwise:
a log file or a pipe gets readable lines instead of carriage-return redraws, and a user without
tqdm loses nothing. ``verbose>=2`` always prints the lines.
"""
from __future__ import annotations

import sys


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Lines:
    """One line per record, through ``format(record)``."""

    def __init__(self, format, stream):
        self.format = format
        self.stream = stream

    def show(self, rec, previous):
        print(self.format(rec), file=self.stream, flush=True)

    def close(self):
        pass


class Bar:
    """A tqdm bar over the fit's epoch budget, drawn from the first record on. An MPI record may
    fall between passes (fractional ``epoch``), so the bar is set to the record's pass count instead
    of counting records; passes of earlier fits (warm start) are not this fit's progress."""

    def __init__(self, tqdm, total, stream):
        self.tqdm, self.total, self.stream = tqdm, total, stream
        self.bar = None
        self.start = 0.0

    def show(self, rec, previous):
        """rec : the new record; previous : the record before it in the history, or None."""
        if self.bar is None:
            self.start = float(previous["epoch"]) if previous is not None else 0.0
            self.bar = self.tqdm(total=self.total, file=self.stream, unit="epoch", dynamic_ncols=True, leave=True,
                                 bar_format="{l_bar}{bar}| {n:.4g}/{total} epochs [{elapsed}<{remaining}{postfix}]")
        self.bar.update(min(float(rec["epoch"]) - self.start, float(self.total)) - self.bar.n)
        self.bar.set_postfix(postfix(rec, previous), refresh=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def postfix(rec, previous):
    """What the bar shows beside the count: the record's loss (a logistic fit's objective, an LDA
    fit's perplexity), updates per second of training time since the previous record, staleness."""
    post = {}
    for key, name in (("objective", "loss"), ("perplexity", "perplexity"), ("train_perplexity", "train perplexity")):
        if rec.get(key) is not None:
            post[name] = f"{rec[key]:.5g}"
            break
    updates = rec["updates"] - (previous["updates"] if previous is not None else 0)
    if rec.get("epoch_time"):
        post["updates/s"] = f"{updates / rec['epoch_time']:.3g}"
    post["staleness"] = f"{rec.get('staleness_mean', 0.0):.3g}/{rec.get('staleness_max', 0)}"
    return post


def reporter(verbose, total, format, stream=None):
    """The display of one fit: None when quiet, else an object with ``show(record, previous)`` and
    ``close()``.

    total : the fit's epoch budget (the bar's length; a stopping rule may end it early)
    format : record -> line of text
    stream : where it writes (default sys.stdout as the fit starts)
    """
    if not verbose:
        return None
    stream = sys.stdout if stream is None else stream
    tqdm = _tqdm()
    isatty = getattr(stream, "isatty", None)
    if verbose == 1 and tqdm is not None and isatty is not None and isatty():
        return Bar(tqdm, total, stream)
    return Lines(format, stream)
