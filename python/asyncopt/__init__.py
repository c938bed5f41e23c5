"""asyncopt: asynchronous (lock-free) stochastic optimizers at native speed.

Public names: :class:`LogisticRegression`, :class:`LDA`, the :mod:`asyncopt.datasets` loaders and generators,
the optimizer configs :class:`SGD` and :class:`AMSGrad`, and :func:`build_info`.
"""
from . import _core, datasets, gpu
from .history import History, Staleness
from .lda import LDA
from .linear import LogisticRegression
from .optim import SGD, AMSGrad

__version__ = _core.build_info()["version"]


def build_info():
    """What this build contains: version, compiler, OpenMP (and its thread count), CUDA (and its
    architectures), backends. Never initialises CUDA."""
    info = dict(_core.build_info())
    info["backends"] = ["threads"]
    from .distributed import available

    if available():
        info["backends"].append("mpi")
    if info["cuda"]:
        info["backends"].append("cuda")  # built; whether a GPU is present: asyncopt.gpu.is_available()
    return info


__all__ = ["LogisticRegression", "LDA", "SGD", "AMSGrad", "History", "Staleness", "build_info", "datasets"]
