"""Starting and ending an MPI run: the communicator, the handshake that checks every rank was given
the same settings and compatible data (with sharding='split', the same data to the byte: see
data_digest), and the end of the job (every rank together, or MPI_Abort after a failure or when a
rank does not get there).

The handshake uses point-to-point messages polled with a timeout rather than collectives: a
collective waits forever for a rank that failed before reaching it; this waits ``timeout`` seconds
and names the rank.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import sys
import time

import numpy as np

from ... import _core
from ..._checks import native_csr, resolve_n_threads
from .options import ServerFailure, WorkerFailure
from .protocol import TAG_SETUP

INSTALL = "pip install 'asyncopt[mpi]'  (or, on a cluster, mpi4py built against the site's MPI)"


def mpi():
    """mpi4py's MPI module, or ImportError with the install line."""
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - exercised where mpi4py is absent
        raise ImportError(f"backend='mpi' needs mpi4py: {INSTALL}") from e
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
            exit_by_abort_at_exit(comm, f"worker rank {r} did not join the run")
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


def open_run(comm, spec, opts, X, noun, own_checks=None, go_extra=None, labels=None, check_replies=None):
    """Rank 0's side of a fit's handshake. Every worker checks spec against its own settings and
    data and reports its shard (with sharding='split', also the digests of its data); rank 0 runs
    own_checks() meanwhile (a ValueError is reported to the workers too), then
    check_replies(replies) (a list of errors: a resume's checks, resume.py) and compares each
    worker's digests with those of its own X and labels() (the signed labels it trains on, None
    for LDA); then every worker hears go, with the rows of all shards, the ranks on its host and
    go_extra(replies, n_total), or every error. noun names X's rows ('rows', 'documents').
    Returns (replies, n_total)."""
    n, nnz = X.shape[0], int(X.nnz)

    def check_reply(r, reply):
        if opts.sharding == "split" and (reply["n_rows_given"], reply["nnz_given"]) != (n, nnz):
            return (f"sharding='split' needs the same data on every rank: rank 0 has {n} {noun} and {nnz} "
                    f"nonzeros, rank {r} {reply['n_rows_given']} and {reply['nnz_given']} (pass "
                    f"sharding='local' if each rank holds its own shard)")
        return None

    replies, errors = server_handshake(comm, spec, check_reply, opts.timeout, opts.poll_interval)
    try:
        if own_checks is not None:
            own_checks()
    except ValueError as e:
        errors.append(f"rank 0: {e}")
    else:
        if opts.sharding == "split":
            errors += digest_mismatches(data_digest(native_csr(X), None if labels is None else labels()), replies,
                                        (n, nnz), noun)
    if check_replies is not None:
        errors += check_replies(replies)
    n_total = 0 if errors else sum(rep["n_rows"] for rep in replies.values())
    if not errors and any(rep["n_rows"] == 0 for rep in replies.values()):
        empty = [r for r, rep in replies.items() if rep["n_rows"] == 0]
        errors.append(f"worker rank(s) {empty} got no {noun}: fewer {noun} ({n_total}) than workers?")
    extra = go_extra(replies, n_total) if go_extra is not None and not errors else {}
    hosts = [processor_name()] + [rep.get("host") for rep in replies.values()]
    send_go(comm, {r: ({"go": False, "error": "; ".join(errors)} if errors else
                       dict(extra, go=True, n_total=n_total, ranks_here=hosts.count(rep["host"])))
                   for r, rep in replies.items()}, opts.timeout, opts.poll_interval)
    if errors:
        raise ValueError("the MPI run did not start: " + "; ".join(errors))
    return replies, n_total


def data_digest(Xn, labels=None):
    """SHA-256 digests of what a rank trains on, by part: X's sparsity pattern (indptr and indices),
    X's values, and the signed labels (+1 for the second class, -1 for the first) when given.

    With sharding='split' every rank holds the whole data and trains on its share of the rows, so
    every part must be the same on every rank; equal row and nonzero counts do not show it (a
    worker given -y, or another file of the same size, would train on other data without a word).
    The native arrays are hashed (their dtype and shape first, then their bytes), so two ranks that
    loaded the same data in the same dtype agree however they built the matrix (check_matrix made it
    canonical). O(nonzeros), once per fit."""
    parts = {"X's sparsity pattern": Xn[:2], "X's values": Xn[2:]}
    if labels is not None:
        parts["labels y"] = (np.asarray(labels, dtype=np.float64),)
    out = {}
    for name, arrays in parts.items():
        h = hashlib.sha256()
        for a in arrays:
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a)
        out[name] = h.hexdigest()
    return out


def digest_mismatches(ours, replies, counts, noun):
    """The handshake's errors, one per worker whose data digests differ from rank 0's (ours), naming
    the parts that differ. Workers that failed their own checks, or hold another number of rows or
    nonzeros (already reported), are skipped."""
    errors = []
    for r, rep in replies.items():
        theirs = rep.get("digest")
        if theirs is None or (rep["n_rows_given"], rep["nnz_given"]) != counts:
            continue
        differ = [name for name in ours if theirs.get(name) != ours[name]]
        if differ:
            what = ", ".join(f"{name} (sha256 {theirs.get(name, 'none')[:12]}, rank 0's {ours[name][:12]})"
                             for name in differ)
            errors.append(f"rank {r}: sharding='split' needs the same data on every rank, and rank {r}'s {what} differ "
                          f"from rank 0's, with the same {counts[0]} {noun} and {counts[1]} nonzeros (pass "
                          f"sharding='local' if each rank holds its own shard)")
    return errors


def join_run(comm, rank, X, common, opts, noun, check=None, labels=None, loop=None):
    """A worker's side of a fit's handshake: check that rank 0 was given the same settings (common)
    and as many columns, validate X, take this rank's shard, and add check(spec, Xn, rows) (a dict;
    it may raise ValueError) to the reply; with sharding='split', also the digests of this rank's X
    and of labels() (its signed labels, computed by check; None for LDA), which rank 0 compares
    with its own; and what rank 0 checks of a checkpointed or resumed fit (the epoch loop's
    checkpoint, the data's checksum: resume.worker_reply). Returns (spec, go, Xn, shard rows)."""
    state = {}

    def make_reply(spec):
        if spec["settings"] != common:
            raise ValueError(f"this rank's estimator settings differ from rank 0's in "
                             f"{settings_diff(spec['settings'], common)}")
        if X.shape[1] != spec["n_features"]:
            raise ValueError(f"X has {X.shape[1]} {noun}, rank 0's {spec['n_features']}")
        Xn = native_csr(X)
        _core.validate_csr(*Xn, X.shape[1])
        rows = shard_rows(spec, rank, X.shape[0], opts.sharding)
        reply = {"n_rows": int(rows.shape[0]), "n_rows_given": int(X.shape[0]), "nnz_given": int(X.nnz),
                 "host": processor_name()}
        if check is not None:
            reply.update(check(spec, Xn, rows))
        if loop is not None:
            from .resume import worker_reply

            reply.update(worker_reply(loop, spec, rank, Xn, None if labels is None else labels()))
        if opts.sharding == "split":
            reply["digest"] = data_digest(Xn, None if labels is None else labels())
        state.update(Xn=Xn, rows=rows)
        return reply

    spec, go = worker_handshake(comm, make_reply, opts.timeout, opts.poll_interval)
    return spec, go, state["Xn"], state["rows"]


def settings_diff(theirs, ours, prefix=""):
    """The dotted names where two settings differ, descending into dicts and dataclasses (e.g.
    'settings.optimizer.learning_rate'); a different type is a difference of the name itself."""
    if type(theirs) is not type(ours):
        return [prefix.rstrip(".") or "(type)"]
    if dataclasses.is_dataclass(ours):
        theirs, ours = ({f.name: getattr(o, f.name) for f in dataclasses.fields(o)} for o in (theirs, ours))
    if isinstance(ours, dict):
        out = []
        for k in sorted(set(theirs) | set(ours), key=str):
            if k not in theirs or k not in ours:
                out.append(f"{prefix}{k}")
            else:
                out += settings_diff(theirs[k], ours[k], f"{prefix}{k}.")
        return out
    return [] if theirs == ours else [prefix.rstrip(".")]


def worker_handshake(comm, make_reply, timeout, poll_interval):
    """A worker: receive the spec, answer with make_reply(spec) (a dict; {'error': ...} on a
    mismatch), then wait for the server's go. Returns (spec, go)."""
    try:
        spec = recv_object(comm, 0, TAG_SETUP, timeout, poll_interval, "settings from the server (rank 0)")
    except TimeoutError as e:
        exit_by_abort_at_exit(comm, "the server (rank 0) did not start the run")
        raise ServerFailure(f"{e}: did rank 0 call fit with backend='mpi'?") from None
    try:
        reply = make_reply(spec)
    except Exception as e:  # the server must hear about it, or it would wait for this rank
        reply = {"error": f"{type(e).__name__}: {e}"}
    req = comm.isend(reply, dest=0, tag=TAG_SETUP)
    try:
        go = recv_object(comm, 0, TAG_SETUP, 2 * timeout + 1, poll_interval, "the server's go (rank 0)")
    except TimeoutError as e:
        exit_by_abort_at_exit(comm, "the server (rank 0) stopped answering")
        raise ServerFailure(str(e)) from None
    wait_sends([req], timeout, poll_interval)
    if not go.get("go"):
        raise ValueError(f"the MPI run did not start: {go.get('error')}")
    return spec, go


class _JobExit:
    """The MPI backend's one at-exit hook, registered by the first fit on a rank (any later fit only
    widens the deadline), for the one moment none of the fit's timeouts covers: from the end of
    the script to MPI_Finalize, whose barrier waits forever for a rank that never gets there.

    Python runs atexit hooks last-in first-out and mpi4py registers its finalizer when it is
    imported, before any fit, so this hook runs first, after the user's code (saving the model)
    and after any traceback was printed. It ends the job with MPI_Abort, so with a nonzero status:

    - at once, when a failure during a fit armed it (``abort``): a lost rank never reaches
      MPI_Finalize;
    - otherwise after a non-blocking barrier of every rank, polled for ``deadline`` seconds (the
      largest exit timeout of this rank's fits): a rank that stopped or hung after its fit
      returned would hold the others in MPI_Finalize forever. When every rank arrives in time, the
      hook returns and MPI finalizes as usual.
    """

    # the at-exit wait is for other ranks' shutdown, not a hot loop: test the barrier every
    # millisecond, which leaves the cores to ranks still working
    POLL = 1e-3

    def __init__(self):
        self.comm = None
        self.deadline = 0.0
        self.abort_reason = None

    def register(self, comm):
        if self.comm is None:
            self.comm = comm
            atexit.register(self.run)

    def run(self):
        sys.stdout.flush()  # MPI_Abort, here or on another rank, kills this process unflushed
        sys.stderr.flush()
        MPI = mpi()
        if MPI.Is_finalized():  # the script finalized MPI itself
            return
        rank = self.comm.Get_rank()
        if self.abort_reason is not None:
            self._abort(f"asyncopt: rank {rank}: {self.abort_reason}; ending the job with MPI_Abort "
                        f"(MPI_Finalize would wait for the lost rank)")
        request = self.comm.Ibarrier()
        limit = time.perf_counter() + self.deadline
        while not request.Test():
            if time.perf_counter() > limit:
                self._abort(f"asyncopt: rank {rank}: not every rank reached the end of the job within "
                            f"{self.deadline:g} s (a rank stopped or hung after fit); ending the job with MPI_Abort")
            time.sleep(self.POLL)

    def _abort(self, message):
        print(message, file=sys.stderr, flush=True)
        self.comm.Abort(1)


_job_exit = _JobExit()


def exit_timeout(opts):
    """Seconds a rank waits at its exit for the other ranks: MPIOptions.exit_timeout, or by default
    a worker's own patience for the server (2 timeout + 1), which covers rank 0's end of a fit
    (collecting the workers' counters, the last history point)."""
    return opts.exit_timeout if opts.exit_timeout is not None else 2 * opts.timeout + 1


def end_job_together(comm, opts):
    """Every rank at the start of every MPI fit: at this process's exit, wait for every other rank
    to reach its own exit within exit_timeout(opts) (the largest over this rank's fits), and end
    the job with MPI_Abort and a message on stderr if one does not (see _JobExit)."""
    _job_exit.register(comm)
    _job_exit.deadline = max(_job_exit.deadline, exit_timeout(opts))


def exit_by_abort_at_exit(comm, reason):
    """After a rank failed, MPI_Finalize would wait for it forever; end the job with MPI_Abort when
    this process exits instead (after Python has printed any traceback and run the user's code,
    e.g. saving the model), saying why on stderr. The job's exit status is then nonzero. The first
    reason given is the one reported."""
    _job_exit.register(comm)
    if _job_exit.abort_reason is None:
        _job_exit.abort_reason = reason


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
    order = (np.random.default_rng([spec["seed"], 0x5A]).permutation(n_rows) if spec["settings"]["settings"].shuffle
             else np.arange(n_rows))
    w = rank - 1
    lo, hi = n_rows * w // n_workers, n_rows * (w + 1) // n_workers
    return np.ascontiguousarray(order[lo:hi], dtype=np.int64)
