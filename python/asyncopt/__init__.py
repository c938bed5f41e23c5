"""asyncopt: asynchronous (lock-free) stochastic optimizers at native speed.

Public names: :class:`LogisticRegression`, :class:`LDA`, the :mod:`asyncopt.datasets` loaders and generators,
:func:`load` (checkpoints: :mod:`asyncopt.checkpoint`), the update rules :class:`SGD`, :class:`AMSGrad`, :class:`AdaGrad`, :class:`Adam` and :class:`RMSProp` (``optimizer=``
takes their names or objects; the registry is :mod:`asyncopt.optim`; ``rule.attach(W)`` runs one on your own
numpy array, :class:`asyncopt.optim.Attached`), the message quantizers of
:mod:`asyncopt.compress`, the delay simulator's options and delay models (:mod:`asyncopt.simulate`,
for ``backend='simulate'``), and :func:`build_info`.

The layers, each importing only the ones below it: validation (``_checks``) and the compiled core;
update rules (``optim``); frozen per-workload settings (``settings``); model states (``state``); the
one epoch loop (``training``); the backends (``backends``: threads, cuda, mpi, simulate); the estimators on top
(``logistic``, ``lda``).
"""
from . import _core, backends, compress, datasets, gpu, simulate
from .checkpoint import load
from .history import History, Staleness
from .lda import LDA
from .logistic import LogisticRegression
from .optim import SGD, AdaGrad, Adam, AMSGrad, RMSProp

__version__ = _core.build_info()["version"]


def build_info():
    """What this build contains: version, compiler, OpenMP (and its thread count), CUDA (and its
    architectures), backends. Never initialises CUDA."""
    info = dict(_core.build_info())
    # built (whether a GPU is present: asyncopt.gpu.is_available()), never asking CUDA or MPI
    info["backends"] = [name for name in backends.names() if backends.module(name).built()]
    return info


__all__ = ["LogisticRegression", "LDA", "load", "SGD", "AMSGrad", "AdaGrad", "Adam", "RMSProp", "History", "Staleness", "build_info", "datasets", "simulate"]
