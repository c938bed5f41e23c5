"""Starting and ending an MPI run: the communicator, the handshake that checks every rank was given
the same settings and compatible data, and the exit after a failure.

The handshake uses point-to-point messages polled with a timeout rather than collectives: a
collective waits forever for a rank that failed before reaching it; this waits ``timeout`` seconds
and names the rank.
"""
from __future__ import annotations

import atexit
import sys
import time

import numpy as np

from .._checks import resolve_n_threads
from .options import ServerFailure, WorkerFailure
from .protocol import TAG_SETUP

_INSTALL = "pip install 'asyncopt[mpi]'  (or, on a cluster, mpi4py built against the site's MPI)"


def mpi():
    """mpi4py's MPI module, or ImportError with the install line."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - exercised where mpi4py is absent
        raise ImportError(f"backend='mpi' needs mpi4py: {_INSTALL}") from e
    return MPI


def world(comm=None):
    """The communicator of a run (COMM_WORLD by default), checked to have a server and a worker."""
    MPI = mpi()
    comm = MPI.COMM_WORLD if comm is None else comm
    if comm.Get_size() < 2:
        raise ValueError("backend='mpi' needs at least 2 ranks (rank 0 is the server, the others are workers): "
                         "run the script as  mpiexec -n K python script.py  with K >= 2")
    return comm


def processor_name():
    """This rank's host (ranks on one host share its cores)."""
    return mpi().Get_processor_name()


def recv_object(comm, source, tag, timeout, poll_interval, what, deadline=None):
    """A pickled object from source, polling so a silent peer raises TimeoutError instead of hanging
    (after timeout seconds, or at the given perf_counter deadline)."""
    deadline = time.perf_counter() + timeout if deadline is None else deadline
    while True:
        msg = comm.improbe(source=source, tag=tag)
        if msg is not None:
            return msg.recv()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no {what} for {timeout:g} s")
        time.sleep(poll_interval)


def wait_sends(requests, timeout, poll_interval):
    deadline = time.perf_counter() + timeout
    for r in requests:
        while not r.Test():
            if time.perf_counter() > deadline:
                r.Cancel()
                break
            time.sleep(poll_interval)


def server_handshake(comm, spec, check_reply, timeout, poll_interval):
    """Rank 0: send spec to every worker, collect their replies (check_reply(rank, reply) returns an
    error string or None), then tell all of them to go or to stop. Returns {rank: reply}."""
    size = comm.Get_size()
    sends = [comm.isend(spec, dest=r, tag=TAG_SETUP) for r in range(1, size)]
    replies, errors = {}, []
    deadline = time.perf_counter() + timeout  # for all of them: a worker waits 2 timeout + 1 for the go
    for r in range(1, size):
        try:
            replies[r] = recv_object(comm, r, TAG_SETUP, timeout, poll_interval, f"setup reply from worker rank {r}",
                                     deadline)
        except TimeoutError as e:
            wait_sends(sends, 0.0, poll_interval)
            exit_by_abort_at_exit(comm)
            raise WorkerFailure(f"worker rank {r} did not join the run: {e} (did every rank call fit with "
                                f"backend='mpi'?)", [r]) from None
        err = replies[r].get("error") or check_reply(r, replies[r])
        if err:
            errors.append(f"rank {r}: {err}")
    wait_sends(sends, timeout, poll_interval)
    return replies, errors


def send_go(comm, payloads, timeout, poll_interval):
    """Rank 0: the handshake's last word to each worker ({rank: dict})."""
    sends = [comm.isend(p, dest=r, tag=TAG_SETUP) for r, p in payloads.items()]
    wait_sends(sends, timeout, poll_interval)


def check_settings(spec, common, n_columns, noun):
    """A worker's check that rank 0 sent the settings it was given itself, for as many columns."""
    if spec["settings"] != common:
        diff = sorted(k for k in common if spec["settings"].get(k) != common[k])
        raise ValueError(f"this rank's estimator settings differ from rank 0's in {diff}")
    if n_columns != spec["n_features"]:
        raise ValueError(f"X has {n_columns} {noun}, rank 0's {spec['n_features']}")


def worker_handshake(comm, make_reply, timeout, poll_interval):
    """A worker: receive the spec, answer with make_reply(spec) (a dict; {'error': ...} on a
    mismatch), then wait for the server's go. Returns (spec, go)."""
    try:
        spec = recv_object(comm, 0, TAG_SETUP, timeout, poll_interval, "settings from the server (rank 0)")
    except TimeoutError as e:
        raise ServerFailure(f"{e}: did rank 0 call fit with backend='mpi'?") from None
    try:
        reply = make_reply(spec)
    except Exception as e:  # the server must hear about it, or it would wait for this rank
        reply = {"error": f"{type(e).__name__}: {e}"}
    req = comm.isend(reply, dest=0, tag=TAG_SETUP)
    try:
        go = recv_object(comm, 0, TAG_SETUP, 2 * timeout + 1, poll_interval, "the server's go (rank 0)")
    except TimeoutError as e:
        raise ServerFailure(str(e)) from None
    wait_sends([req], timeout, poll_interval)
    if not go.get("go"):
        raise ValueError(f"the MPI run did not start: {go.get('error')}")
    return spec, go


_abort_installed = False


def exit_by_abort_at_exit(comm):
    """After a rank failed, MPI_Finalize would wait for it forever; end the job with MPI_Abort when
    this process exits instead (after Python has printed any traceback and run the user's code,
    e.g. saving the model). The job's exit status is then nonzero."""
    global _abort_installed
    if _abort_installed:
        return
    _abort_installed = True

    def _abort():
        sys.stdout.flush()
        sys.stderr.flush()
        comm.Abort(1)

    atexit.register(_abort)


def local_threads(n_threads, ranks_here):
    """n_threads of a DPSGD worker: as given, or the usable cores shared among this host's ranks."""
    if n_threads is not None:
        return resolve_n_threads(n_threads)
    return max(1, resolve_n_threads(None) // max(1, ranks_here))


def shard_rows(spec, rank, n_rows, sharding):
    """A worker's rows: all of its own data ('local'), or its contiguous share of one seeded shuffle
    (or of the file order without shuffle) of the data every rank holds ('split')."""
    if sharding == "local":
        return np.arange(n_rows, dtype=np.int64)
    n_workers = spec["n_workers"]
    order = (np.random.default_rng([spec["seed"], 0x5A]).permutation(n_rows) if spec["settings"]["shuffle"]
             else np.arange(n_rows))
    w = rank - 1
    lo, hi = n_rows * w // n_workers, n_rows * (w + 1) // n_workers
    return np.ascontiguousarray(order[lo:hi], dtype=np.int64)
