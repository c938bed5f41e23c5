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
DPSVI (LDA)        LDA(backend='mpi'),  workers run E-steps of their documents over their threads;
                   method='async'       the server applies SVI's global step to each message
=================  ===================  ==============================================================

Only the estimator's module imports mpi4py, and only for ``backend="mpi"``; ``import asyncopt``
works without it. Install with ``pip install 'asyncopt[mpi]'`` (mpi4py and, on Linux and macOS,
the MPICH wheel that provides ``mpiexec``); on a cluster, build mpi4py against the site's MPI.
"""
from .options import Delay, MPIOptions, ServerFailure, WorkerFailure, resolve_options

__all__ = ["Delay", "MPIOptions", "ServerFailure", "WorkerFailure", "resolve_options", "available"]


def available():
    """True when mpi4py can be imported (the MPI backend can run)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True
