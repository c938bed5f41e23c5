"""The MPI backend's public names: its options, its straggler delays and its errors.

The backend itself is :mod:`asyncopt.backends.mpi` (see its documentation for the methods:
AsySG-con, APAM, Picky SGD, DPSGD, synchronous rounds, Efficient-Adam and DPSVI); an estimator
runs it with ``backend="mpi"`` and ``mpi=MPIOptions(...)`` (or a dict of its fields) under
``mpiexec``.
"""
from ..backends.mpi import Delay, MPIOptions, ServerFailure, WorkerFailure, available, resolve_options

__all__ = ["Delay", "MPIOptions", "ServerFailure", "WorkerFailure", "resolve_options", "available"]
