"""The MPI backend: an asynchronous parameter server for when one machine is not enough.

Run a script under ``mpiexec -n K python script.py`` in which every rank builds the same estimator
(LogisticRegression or LDA) with ``backend="mpi"`` and calls ``fit`` on its data. Rank 0 becomes the parameter server and ends
up holding the model; ranks 1..K-1 are workers, each training on its own shard, and return from
``fit`` when the server ends the run.

=================  ===================  ==============================================================
paper              settings             what runs
=================  ===================  ==============================================================
AsySG-con          method='async',      workers push mini-batch gradients computed at the model they
(Lian et al. 2015) optimizer='sgd'      last read; the server applies each at once
APAM               method='async',      the same with the server owning AMSGrad's m, v and vhat
(Xu et al. 2020)   optimizer='amsgrad'
Picky SGD          method='picky'       a gradient read at x_{t-d} is applied only if
(Cohen et al. 2021)                     ||x_t - x_{t-d}|| <= picky_threshold, else dropped and counted
DPSGD              method='dpsgd',      lock-free Hogwild! over each worker's threads on a copy of the
(Mohamad et al.    n_threads > 1        model; the worker pushes the change, the server adds it
2022)
synchronous        method='sync'        rounds: one gradient from every worker, their mean applied
Efficient-Adam     method=              rounds of Adam steps (worker moments) or gradients (server
(Chen et al. 2023) 'efficient-adam'     moments, COMP-AMS) quantized both ways with error feedback
                                        on both sides; every rank applies the same decoded step
DPSVI (LDA)        LDA(backend='mpi'),  workers run E-steps of their documents over their threads;
                   method='async'       the server applies SVI's global step to each message
=================  ===================  ==============================================================

Checkpoints (``fit(checkpoint_every=..., checkpoint_path=...)`` on every rank, written by rank 0)
and ``resume`` (every rank, from the same file) are resume.py's: the synchronous methods keep every
worker's state at the checkpoint's round and resume bit for bit.

This package is a backend like the others (``asyncopt.backends``): ``fit_logistic`` and ``fit_lda``
train a model state with frozen settings and never see an estimator. Its public names (options,
errors) are re-exported by :mod:`asyncopt.distributed`. mpi4py is imported only when a fit runs;
``import asyncopt`` works without it. Install with ``pip install 'asyncopt[mpi]'`` (mpi4py and, on Linux and macOS,
the MPICH wheel that provides ``mpiexec``); on a cluster, build mpi4py against the site's MPI.
"""
import importlib.util

from .options import Delay, MPIOptions, ServerFailure, WorkerFailure, resolve_options

__all__ = ["Delay", "MPIOptions", "ServerFailure", "WorkerFailure", "resolve_options", "available"]

WORKLOADS = ("logistic", "lda")
PARAMETERS = {"mpi": None}
PARTIAL_FIT = False  # every rank would have to call it in step


def options(mpi=None):
    return resolve_options(mpi)


def check_logistic(optimizer, regularization, alpha, n_threads, options):
    from .logistic import check

    return check(optimizer, regularization, alpha, n_threads, options)


def check_lda(options):
    if options.method not in ("async", "sync"):
        raise ValueError(f"LDA over MPI runs method 'async' (DPSVI) or 'sync', not {options.method!r}")


def available():
    """True when mpi4py can be imported (the MPI backend can run)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def built():
    # asked without importing mpi4py (whose import initialises MPI in some builds)
    return importlib.util.find_spec("mpi4py") is not None


def usable():
    return False  # never picked by backend='auto': a run needs mpiexec and every rank's fit


def unavailable():
    from .session import INSTALL

    return f"mpi4py is not installed: {INSTALL}"


def fit_logistic(model, X, y, eval_set, settings, loop, run):
    from . import logistic

    return logistic.fit(model, X, y, eval_set, settings, loop, run)


def fit_lda(model, X, eval_set, settings, loop, run):
    from . import lda

    return lda.fit(model, X, eval_set, settings, loop, run)
