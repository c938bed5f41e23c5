"""asyncopt: asynchronous (lock-free) stochastic optimizers at native speed."""
from . import _core

__version__ = _core.build_info()["version"]
