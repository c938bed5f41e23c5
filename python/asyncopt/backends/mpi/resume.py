"""Checkpoints and resume of an MPI fit: what rank 0 writes besides the model, and the checks that
every rank makes before a resumed run starts.

Rank 0 writes the checkpoint (the estimator's usual file: the model, its optimizer state, the
history and the epoch loop's position) with the MPI run's own part in the position's ``backend``
entry: the number of ranks, the method, the run's seed, each rank's data checksum and the server's
state (``ParameterServer.state``: its counters, its model's own state such as Efficient-Adam's
replica and server residual, and in the synchronous methods every worker's state at the round of
the checkpoint). That part is a tree of JSON values whose arrays are stored as the file's
``fit.mpi.*`` members (:func:`split`, :func:`join`).

To resume, every rank loads the same file and calls ``resume`` with its data. Nothing is trusted
to be the same on every rank: in the handshake each worker reports a fingerprint of the checkpoint
it loaded and the checksum of its data, and rank 0 refuses the run (on every rank, with the
reason) when a rank loaded another checkpoint or called fit, when the number of ranks or the
method differs from the interrupted fit's, when a rank's data differ from what it trained on, or
when the checkpoint lacks a worker's state that a synchronous method needs. A resume whose
parameters changed (the estimator's check, deferred for this backend) is refused the same way.
"""
from __future__ import annotations

import hashlib
import json
import numbers

import numpy as np

from ...training import data_checksum

SYNCHRONOUS = ("sync", "efficient-adam")
_ARRAY = "__array__"


# ---------------------------------------------------------------------- trees of values and arrays
def split(tree, prefix):
    """(meta, arrays): ``tree`` (dicts, lists, numbers, strings, None and numpy arrays) as JSON data
    in which each array is replaced by a reference to its member name in ``arrays`` (prefix.path)."""
    arrays = {}

    def walk(v, path):
        if isinstance(v, np.ndarray):
            arrays[path] = v
            return {_ARRAY: path}
        if isinstance(v, dict):
            return {str(k): walk(x, f"{path}.{k}") for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, f"{path}.{i}") for i, x in enumerate(v)]
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, numbers.Integral):
            return int(v)
        if isinstance(v, numbers.Real):
            return float(v)
        return v

    return walk(tree, prefix), arrays


def join(meta, arrays):
    """The inverse of :func:`split`, from a checkpoint's arrays (a missing member raises ValueError)."""
    def walk(v):
        if isinstance(v, dict):
            if set(v) == {_ARRAY}:
                if v[_ARRAY] not in arrays:
                    raise ValueError(f"checkpoint lacks the array {v[_ARRAY]!r} of the MPI run's state")
                return arrays[v[_ARRAY]]
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(meta)


# ---------------------------------------------------------------------- what rank 0 writes
def writer(server, world_size, method, seed, crcs):
    """The epoch loop's keep_state getter of rank 0: the MPI part of every checkpoint."""
    def get():
        tree, arrays = split(server.state(), "fit.mpi.server")
        meta = {"backend": "mpi", "world_size": world_size, "method": method, "seed": seed,
                "data_crc32": {str(r): c for r, c in crcs.items()}, "server": tree}
        return meta, arrays
    return get


def saved(loop):
    """The checkpoint's MPI part of a resumed fit (its meta tree), or None for a new fit."""
    return None if loop.resume is None else loop.resume[0].get("backend")


def server_state(loop):
    """The server's state of a resumed fit, its arrays joined back (ParameterServer.restore takes it)."""
    return join(saved(loop)["server"], loop.resume[1])


def worker_state(loop, rank):
    """Worker rank's state in the resumed checkpoint (a synchronous method's), or None."""
    point = saved(loop)
    workers = point["server"].get("workers") if point is not None else None
    if not workers or str(rank) not in workers:
        return None
    return join(workers[str(rank)], loop.resume[1])


def order_stream(loop):
    """The stream a resumed asynchronous worker walks its shard with (0: a new fit's)."""
    point = saved(loop)
    return 0 if point is None else int(point["server"]["version"]) + 1


# ---------------------------------------------------------------------- checks before a resumed run
def problem(loop):
    """Why this rank cannot resume (a parameter changed since the interrupted fit, or the checkpoint
    was not written by an MPI run), or None. Raised inside the handshake, so every rank hears it."""
    if loop.resume is None:
        return None
    position = loop.resume[0]
    if position.get("refused"):
        return position["refused"]
    point = position.get("backend")
    if not isinstance(point, dict) or point.get("backend") != "mpi":
        return ("resume: this checkpoint was not written by a fit with backend='mpi' (it holds no state of an MPI "
                "run); resume with the backend that wrote it, or continue with warm_start=True")
    return None


def fingerprint(loop):
    """A digest of the checkpoint position this rank resumes (None for a new fit): the ranks of one
    resumed run must have loaded the same checkpoint."""
    if loop.resume is None:
        return None
    position = {k: v for k, v in loop.resume[0].items() if k != "refused"}
    return hashlib.sha256(json.dumps(position, sort_keys=True, default=str).encode()).hexdigest()


def worker_reply(loop, spec, rank, Xn, labels=None):
    """A worker's part of the handshake reply: the fingerprint of its checkpoint and, when rank 0 asks
    (a checkpointed or resumed fit), the checksum of its data. Raises this rank's problem, if any
    (a changed parameter, a checkpoint that is not an MPI run's or lacks members of its state)."""
    why = problem(loop)
    if why is not None:
        raise ValueError(why)
    if loop.resume is not None:
        worker_state(loop, rank)  # every member of this worker's state is there (a ValueError names the missing)
    reply = {"checkpoint": fingerprint(loop)}
    if spec.get("checksum"):
        reply["data_crc32"] = data_checksum(*Xn, *(() if labels is None else (labels,)))
    return reply


def check_replies(loop, world_size, method, replies):
    """Rank 0, in the handshake: the errors that refuse the run (each one naming its rank), given the
    workers' replies. Empty for a new fit whose workers all called fit too."""
    ours = fingerprint(loop)
    errors = []
    for r, rep in sorted(replies.items()):
        theirs = rep.get("checkpoint")
        if ours is None and theirs is not None:
            errors.append(f"rank {r} called resume but rank 0 called fit (every rank resumes, from the same file)")
        elif ours is not None and theirs is None:
            errors.append(f"rank {r} called fit but rank 0 called resume (every rank resumes, from the same file)")
        elif ours != theirs:
            errors.append(f"rank {r} loaded another checkpoint than rank 0 (an older or newer file): every rank "
                          "resumes from the same file")
    point = saved(loop)
    if errors or point is None:
        return errors
    try:
        server_state(loop)  # every member of the server's state is there
    except (ValueError, KeyError, TypeError) as e:
        return [f"rank 0: the checkpoint's MPI state is incomplete or corrupt ({e})"]
    if int(point["world_size"]) != world_size:
        return [f"resume: the checkpoint was written by a run of {point['world_size']} ranks (the server and "
                f"{int(point['world_size']) - 1} workers), this run has {world_size}: resume with "
                f"mpiexec -n {point['world_size']}"]
    if point["method"] != method:
        return [f"resume: the checkpoint was written by method {point['method']!r}, this run is {method!r}"]
    crcs = point.get("data_crc32", {})
    for r, rep in sorted(replies.items()):
        if str(r) in crcs and rep.get("data_crc32") != crcs[str(r)]:
            errors.append(f"rank {r}: resume needs the data of the interrupted fit: this rank's X (or y) differs "
                          "from the data it trained on (its checksum does not match the checkpoint's)")
    if method in SYNCHRONOUS:
        workers = point["server"].get("workers") or {}
        missing = [r for r in sorted(replies) if str(r) not in workers]
        if missing:
            errors.append(f"resume: the checkpoint holds no state of worker rank(s) {missing} (it was written after a "
                          "worker failed and was dropped): it cannot resume this run; continue with warm_start=True")
    return errors
