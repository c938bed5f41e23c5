"""The MPI backend, run for real: mpiexec in a subprocess with a hard timeout (tests/mpi_fit.py is the
script every rank runs). K = 3 and 4 ranks oversubscribe this 2-core machine on purpose: nothing
may depend on a rank getting a core when it wants one.

- sync with one worker is the one-thread estimator, update for update; sync with two workers is
  the dense reference's mini-batch run on the union of the workers' batches, round for round;
- every method reaches the optimum's test log-loss on a9a (within 1%), which a server that drops,
  misapplies or double-applies updates cannot;
- staleness is 0 for sync and > 0 for the asynchronous methods; Picky SGD drops updates when its
  threshold is tiny and none when it is huge;
- a worker killed or stopped mid-run gives WorkerFailure naming its rank (or, with
  on_failure='drop', a completed run without it), the model reached so far, and no hang; a worker
  stopped by an exception is named with its error at once, not after the timeout;
- with sharding='split' a rank given other data of the same size (-y, one value, one nonzero
  moved) is refused before training, on every rank, naming the rank and what differs.
"""
import json
import re
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")

import asyncopt  # noqa: E402
from conftest import shared_data, sparse_problem  # noqa: E402
from reference import logistic_reference  # noqa: E402

SCRIPT = Path(__file__).with_name("mpi_fit.py")
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'asyncopt[mpi]')")

OPTIMUM_TEST_LOSS = None  # filled once per session by a9a_optimum


def run_mpi(tmp_path, n_ranks, cfg, timeout=240, mpiexec_args=()):
    """Run mpi_fit.py on n_ranks ranks; returns (returncode, results, output, seconds)."""
    out = tmp_path / f"out-{time.monotonic_ns()}.json"
    cfg = dict(cfg, out=str(out))
    cfg_path = out.with_suffix(".cfg.json")
    cfg_path.write_text(json.dumps(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    # a session of its own, so a timeout kills every rank and not only mpiexec
    proc = subprocess.Popen([MPIEXEC, *mpiexec_args, "-n", str(n_ranks), sys.executable, str(SCRIPT), str(cfg_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec did not finish in {timeout} s (a hang):\n{output[-4000:]}")
    seconds = time.perf_counter() - t0
    results = json.loads(out.read_text()) if out.exists() else None
    for rank in range(n_ranks):  # the ranks' stderr, each in a file (mpi_fit.py)
        err = out.with_suffix(f".rank{rank}.err")
        if err.exists():
            output += f"\n[rank {rank} stderr]\n" + err.read_text(errors="replace")
    return proc.returncode, results, output, seconds


def problem_cfg(runs, **problem):
    return {"data": "problem", "problem": problem, "runs": runs}


def worker_results(tmp_path, n_ranks):
    """{rank: its list of per-fit entries} from the workers' .rank<r>.json files (mpi_fit.py) of the
    one job run in tmp_path; a rank whose script ended before writing one is absent."""
    return {r: json.loads(path.read_text()) for r in range(1, n_ranks) for path in tmp_path.glob(f"out-*.rank{r}.json")}


# ---------------------------------------------------------------------- exactness of the sync baseline
EXACT_CASES = [
    dict(optimizer="sgd", learning_rate=0.3, alpha=0.01, regularization="exact"),
    dict(optimizer="sgd", learning_rate=None, schedule="optimal", alpha=0.05, regularization="sparse"),
    dict(optimizer="amsgrad", learning_rate=0.05, alpha=0.01, regularization="sparse", bias_correction=True),
    dict(optimizer="amsgrad", learning_rate=0.05, schedule="invsqrt", alpha=0.01, regularization="decoupled"),
]


def test_sync_with_one_worker_is_the_one_thread_run(tmp_path):
    """K = 2: one worker walking all rows in order, the server applying each of its gradients as one
    step, is the threads backend's one-thread run to rounding (the margin is summed in another order
    under exact L2's scaled weights). The last case has empty rows and batch size 1: mini-batches
    with no feature at all (an empty read, an intercept-only step)."""
    cases = [dict(case, batch_size=4) for case in EXACT_CASES] + [
        dict(optimizer="sgd", learning_rate=0.3, alpha=0.01, regularization="sparse", batch_size=1)]
    common = dict(epochs=3, shuffle=False, random_state=0, tol=None)
    runs = [dict(case, **common, mpi={"method": "sync", "timeout": 60}) for case in cases]
    rc, results, output, _ = run_mpi(tmp_path, 2, problem_cfg(runs, n=60, d=150, seed=3, empty_rows=[5, 6, 40]))
    assert rc == 0, output
    from mpi_fit import sparse_problem as with_empty_rows

    X, y = with_empty_rows(n=60, d=150, seed=3, empty_rows=[5, 6, 40])
    assert np.diff(X.indptr)[[5, 6, 40]].max() == 0
    for case, res in zip(cases, results):
        ref = asyncopt.LogisticRegression(**case, **common, n_threads=1).fit(X, y)
        np.testing.assert_allclose(res["coef"], ref.coef_[0], rtol=1e-9, atol=1e-12, err_msg=str(case))
        assert res["intercept"] == pytest.approx(ref.intercept_[0], rel=1e-9, abs=1e-12)
        assert res["t"] == ref.t_ == 3 * (60 // case["batch_size"])
        assert res["staleness"]["max"] == 0 and res["staleness"]["count"] == res["t"]


@pytest.mark.parametrize("method", ["async", "sync"])
def test_a_divergence_stops_the_distributed_run_with_advice(tmp_path, method):
    """Steps that overflow: rank 0 raises FloatingPointError naming the cure, the workers end cleanly."""
    runs = [dict(optimizer="sgd", learning_rate=1e3, alpha=0.0, epochs=3, random_state=0,
                 mpi={"method": method, "timeout": 60})]
    rc, results, output, _ = run_mpi(tmp_path, 2, problem_cfg(runs, n=60, d=150, seed=3, scale=1e154))
    assert rc == 0, output
    assert results[0]["error"]["type"] == "FloatingPointError", results[0]
    assert "lower learning_rate" in results[0]["error"]["message"]


def test_plateau_drops_reach_the_server_as_they_reach_the_threads(tmp_path):
    """The default stopping rule's step drops on the MPI server: with a tol no epoch can meet, each
    of the first two records cuts the step tenfold and the third stops the fit, and the sync run of
    one worker stays the one-thread run (the server settles and applies the new scale exactly)."""
    kw = dict(optimizer="sgd", learning_rate=0.3, schedule="constant", alpha=0.01, epochs=50, shuffle=False,
              random_state=0, tol=10.0, n_iter_no_change=1, plateau_drops=2, batch_size=4)
    rc, results, output, _ = run_mpi(tmp_path, 2, problem_cfg([dict(kw, mpi={"method": "sync"})], n=60, d=150, seed=3))
    assert rc == 0, output
    X, y = sparse_problem(n=60, d=150, seed=3)
    ref = asyncopt.LogisticRegression(**kw, n_threads=1).fit(X, y)
    res = results[0]
    assert [rec["step_scale"] for rec in res["history"]] == pytest.approx([1, 1, 0.1, 0.01])
    assert ref.history_.column("step_scale").tolist() == pytest.approx([1, 1, 0.1, 0.01])
    np.testing.assert_allclose(res["coef"], ref.coef_[0], rtol=1e-9, atol=1e-12)
    assert res["t"] == ref.t_ == 4 * 15


def test_warm_start_continues_the_distributed_run(tmp_path):
    """Two fits with warm_start: the second continues from the first's model and step count, as
    the threads backend's do."""
    kw = dict(optimizer="amsgrad", learning_rate=0.05, schedule="invsqrt", alpha=0.01, batch_size=4, epochs=2,
              shuffle=False, random_state=0, warm_start=True, tol=None)
    rc, results, output, _ = run_mpi(tmp_path, 2, problem_cfg([dict(kw, fits=2, mpi={"method": "sync"})], n=40,
                                                               d=100, seed=6))
    assert rc == 0, output
    X, y = sparse_problem(n=40, d=100, seed=6)
    ref = asyncopt.LogisticRegression(**kw, n_threads=1)
    ref.fit(X, y).fit(X, y)
    res = results[0]
    np.testing.assert_allclose(res["coef"], ref.coef_[0], rtol=1e-9, atol=1e-12)
    assert res["t"] == ref.t_ == 4 * 10
    assert [r["epoch"] for r in res["history"]] == [1, 2, 3, 4]


def test_dense_messages_give_the_same_run(tmp_path):
    """With 12 features a mini-batch's gradient and keys cost more as index/value pairs than the
    dense vector, so both directions go dense (and the server skips the zero entries): the run is
    still the one-thread run, in float32 too."""
    common = dict(batch_size=8, epochs=2, shuffle=False, random_state=0, alpha=0.01, tol=None)
    cases = [dict(optimizer="sgd", learning_rate=0.3, regularization="sparse"),
             dict(optimizer="amsgrad", learning_rate=0.05, regularization="sparse")]
    runs = [dict(case, **common, mpi={"method": "sync", "timeout": 60}) for case in cases]
    rc, results, output, _ = run_mpi(tmp_path, 2, problem_cfg(runs, n=64, d=12, nnz_per_row=6, seed=4,
                                                              dtype="float32"))
    assert rc == 0, output
    X, y = sparse_problem(n=64, d=12, nnz_per_row=6, seed=4, dtype=np.float32)
    for case, res in zip(cases, results):
        ref = asyncopt.LogisticRegression(**case, **common, n_threads=1).fit(X, y)
        np.testing.assert_allclose(res["coef"], ref.coef_[0], rtol=1e-6, atol=1e-7, err_msg=str(case))
        assert res["intercept"] == pytest.approx(ref.intercept_[0], rel=1e-6, abs=1e-7)
        # a dense push asking for the whole model is header + intercept + 12 values = 168 bytes; a
        # sparse one with its keys would be larger
        stats = res["stats"]
        assert stats["bytes_in"] <= stats["messages_in"] * (64 + 8 + 8 * 12)
        assert stats["bytes_out"] == stats["messages_out"] * (64 + 8 + 8 * 12) - len(stats["workers"]) * 8 * 12


@pytest.mark.parametrize("optimizer,kw", [("sgd", dict(learning_rate=0.3, schedule="constant", alpha=0.01,
                                                       regularization="exact")),
                                          ("amsgrad", dict(learning_rate=0.05, alpha=0.01, regularization="sparse"))])
def test_sync_rounds_match_the_sequential_minibatch_run(tmp_path, optimizer, kw):
    """K = 3: round r applies the mean gradient of worker 1's and worker 2's r-th batches, i.e. one
    mini-batch step on the union of their rows (row-weighted means of means)."""
    n, B, epochs = 80, 8, 3
    runs = [dict(optimizer=optimizer, **kw, batch_size=B, epochs=epochs, shuffle=False, random_state=0,
                 mpi={"method": "sync", "timeout": 60})]
    rc, results, output, _ = run_mpi(tmp_path, 3, problem_cfg(runs, n=n, d=200, seed=5))
    assert rc == 0, output
    X, y = sparse_problem(n=n, d=200, seed=5)
    shards = [np.arange(0, n // 2), np.arange(n // 2, n)]  # shuffle=False: contiguous shares in order
    rounds = [np.concatenate([s[i:i + B] for s in shards]) for _ in range(epochs) for i in range(0, n // 2, B)]
    w, b = logistic_reference(X, y, optimizer=optimizer, batches=rounds, **kw)
    res = results[0]
    np.testing.assert_allclose(res["coef"], w, rtol=1e-9, atol=1e-12)
    assert res["intercept"] == pytest.approx(b, rel=1e-9, abs=1e-12)
    assert res["t"] == len(rounds)
    assert res["stats"]["applied"] == 2 * len(rounds) and res["staleness"]["max"] == 0


# ---------------------------------------------------------------------- every method reaches the optimum
# (a9a_optimum: conftest.py, computed once per session)
# DPSGD at half the SGD rate: each push carries 8 local steps made from one read, and the K - 1
# workers' pushes add up (at 4.0 one CI run of 3 workers ended at test loss 0.333, 2.8% above the
# optimum; at 2.0 four runs at K = 3 and 4 all ended within 0.2% of it)
METHODS = [("async", "sgd", 4.0), ("async", "amsgrad", 0.05), ("picky", "sgd", 4.0), ("dpsgd", "sgd", 2.0),
           ("sync", "sgd", 4.0)]


@pytest.mark.parametrize("n_ranks", [3, 4])
def test_every_method_reaches_the_optimum_on_a9a(tmp_path, a9a_optimum, n_ranks):
    best_objective, best_test = a9a_optimum
    runs = [dict(optimizer=opt, learning_rate=lr, schedule="invsqrt", alpha=1e-4, epochs=5, batch_size=32,
                 random_state=0, mpi={"method": method, "timeout": 60})
            for method, opt, lr in METHODS]
    cfg = {"data": "a9a", "data_dir": str(shared_data("libsvm", "a9a.xz").parent), "runs": runs}
    rc, results, output, _ = run_mpi(tmp_path, n_ranks, cfg)
    assert rc == 0, output
    n_rows = 32561
    for (method, opt, _), res in zip(METHODS, results):
        label = f"{method}/{opt} K={n_ranks}"
        assert res["error"] is None, label
        assert abs(res["test_loss"] / best_test - 1) <= 0.01, (label, res["test_loss"], best_test)
        assert res["history"][-1]["objective"] <= best_objective * 1.02, label
        assert res["history"][-1]["val_loss"] == pytest.approx(res["test_loss"], rel=1e-5), label
        stats = res["stats"]
        assert stats["rows"] >= 5 * n_rows and stats["failed"] == []
        assert len(stats["workers"]) == n_ranks - 1
        assert all(w["applied"] > 0 and w["bytes_in"] > 0 for w in stats["workers"].values()), label
        assert stats["applied"] + stats["dropped"] + (n_ranks - 1) <= stats["messages_in"], label
        stal = res["staleness"]
        if method == "sync":
            assert stal["max"] == 0 and stats["versions"] == res["t"], label
        else:
            # with K - 1 workers pushing, the others' pushes land between a read and its write. Not
            # a matter of scheduling: a worker reads at each answer, so its reads cut its time into
            # intervals, each ending at its next push, and every push of another worker falls in
            # one of them; all workers run from the go to the server's STOP, so tau sums to about
            # (K - 2) per push however the OS interleaves them (mean ~1 at K = 3, ~2 at K = 4)
            assert stal["max"] > 0 and stal["mean"] > 0.5, label
            assert stal["count"] == stats["applied"], label
        if method == "dpsgd":
            assert res["t"] > stats["versions"]  # each push carries several local steps
            assert all(w["worker"]["local_updates"] > 0 for w in stats["workers"].values())
        else:
            assert res["t"] == stats["versions"]


def test_picky_filter_drops_with_a_tiny_threshold_and_never_with_a_huge_one(tmp_path):
    common = dict(optimizer="sgd", learning_rate=0.2, alpha=1e-3, epochs=4, batch_size=2, random_state=1, tol=None)
    runs = [dict(common, mpi={"method": "picky", "picky_threshold": 1e-12, "timeout": 60}),
            dict(common, mpi={"method": "picky", "picky_threshold": 1e300, "timeout": 60})]
    rc, results, output, _ = run_mpi(tmp_path, 4, problem_cfg(runs, n=300, d=400, seed=2))
    assert rc == 0, output
    tiny, huge = (r["stats"] for r in results)
    # a worker's first message only reads; its last is answered STOP once the rows are done
    pushes = lambda s: s["messages_in"] - 2 * len(s["workers"])  # noqa: E731
    # How many pushes meet a moved model depends on how the OS interleaves the workers; what does
    # not: with a tiny threshold every gradient applied was read at the current model (any applied
    # step moves it), and some were not (three workers run side by side until the server's STOP,
    # so another's step lands between some worker's read and its push); with a huge one, none is
    # dropped
    assert tiny["dropped"] > 0 and results[0]["staleness"]["max"] == 0, (tiny, results[0]["staleness"])
    assert tiny["applied"] + tiny["dropped"] == pushes(tiny)
    assert huge["dropped"] == 0 and huge["applied"] == pushes(huge) and results[1]["staleness"]["max"] > 0
    # what is dropped is not applied: the step count is the applied count
    assert results[0]["t"] == tiny["applied"]
    # each worker's timeline (asyncopt.plot.mpi_timeline) holds every push it made, in arrival order,
    # with tau -1 exactly for the dropped ones (few enough events that none were thinned)
    for stats in (tiny, huge):
        for w in stats["workers"].values():
            line = w["timeline"]
            assert line["stride"] == 1 and line["events"] == len(line["tau"]) == w["applied"] + w["dropped"]
            assert sum(t == -1 for t in line["tau"]) == w["dropped"]
            assert all(a <= b for a, b in zip(line["time"], line["time"][1:])) and line["time"][0] >= 0
    assert all(t == 0 for w in tiny["workers"].values() for t in w["timeline"]["tau"] if t != -1)


# ---------------------------------------------------------------------- failures
# Faults happen at a point of the run's progress (tests/mpi_fit.py counts a worker's message
# exchanges), never on a wall-clock timer: how fast the machine runs the fit cannot move them. The
# epochs are more than the run can reach before the failure is noticed, so only the failure ends it.
FAULT_RUN = dict(optimizer="sgd", learning_rate=0.1, alpha=1e-3, epochs=100000, batch_size=1, random_state=0)


def test_a_killed_worker_ends_the_job_at_once_under_default_mpiexec(tmp_path):
    """MPICH's mpiexec ends the whole job as soon as a rank is killed by a signal (auto-cleanup, and
    even with -disable-auto-cleanup): no hang, a nonzero status, no result written."""
    run = dict(FAULT_RUN, mpi={"method": "async", "timeout": 30})
    cfg = dict(problem_cfg([run], n=400, d=300), fault={"rank": 2, "exchanges": 100, "signal": "KILL"})
    rc, results, output, seconds = run_mpi(tmp_path, 3, cfg, timeout=60)
    assert rc != 0 and results is None, output
    assert seconds < 30  # far below the 30 s MPI timeout: mpiexec, not the library, ended the job


def test_a_dead_worker_stops_the_run_with_its_rank_named(tmp_path):
    """A worker process that ends without finalizing MPI (a crash): with -disable-auto-cleanup the
    server sees the silence, raises WorkerFailure naming the rank, keeps the model reached, and the
    job then ends through MPI_Abort (nonzero status, the reason on stderr), not a hang."""
    run = dict(FAULT_RUN, mpi={"method": "async", "timeout": 3})
    cfg = dict(problem_cfg([run], n=400, d=300), fault={"rank": 2, "exchanges": 100, "signal": "EXIT"})
    rc, results, output, seconds = run_mpi(tmp_path, 3, cfg, timeout=120, mpiexec_args=["-disable-auto-cleanup"])
    assert rc != 0
    assert results is not None, output
    res = results[0]
    assert res["error"]["type"] == "WorkerFailure" and res["error"]["ranks"] == [2], res["error"]
    assert "rank(s) [2]" in res["error"]["message"]
    assert res["t"] > 0 and np.isfinite(res["coef"]).all() and np.any(np.asarray(res["coef"]) != 0)
    stats = res["stats"]
    assert stats["failed"] == [2]
    # its first exchange only read; 'async' applies every push: exactly its 99 pushes made it in
    assert stats["workers"]["2"]["applied"] == stats["workers"]["2"]["rows"] == 99
    assert stats["workers"]["1"]["applied"] > 0
    assert "asyncopt: rank 0: worker rank 2 failed during fit" in output and "MPI_Abort" in output
    assert seconds < 90


def test_a_hung_worker_is_dropped_and_the_run_completes_without_it(tmp_path):
    """A worker that stops answering (SIGSTOP: alive, silent) is detected by the timeout; with
    on_failure='drop' the server finishes the run with the others, and the job then ends through
    MPI_Abort (the stopped rank would hold MPI_Finalize forever)."""
    n, epochs = 400, 40
    run = dict(FAULT_RUN, epochs=epochs, mpi={"method": "sync", "timeout": 3, "on_failure": "drop"})
    cfg = dict(problem_cfg([run], n=n, d=300), fault={"rank": 1, "exchanges": 200, "signal": "STOP"})
    rc, results, output, seconds = run_mpi(tmp_path, 4, cfg, timeout=120)
    assert results is not None, output
    res = results[0]
    assert res["error"] is None
    stats = res["stats"]
    assert stats["failed"] == [1] and stats["rows"] >= epochs * n
    # rank 1 read once and pushed 199 rows, each applied in its sync round, before it stopped; the
    # others carried the run's row budget to its end without it
    w = stats["workers"]
    assert w["1"]["applied"] == w["1"]["rows"] == 199 and not w["1"]["alive"]
    assert w["2"]["rows"] + w["3"]["rows"] == stats["rows"] - 199
    assert min(w["2"]["applied"], w["3"]["applied"]) > (epochs * n - 3 * 199) // 2 - 1
    assert res["history"][-1]["objective"] < res["history"][0]["objective"]
    assert rc != 0 and "asyncopt: rank 0: worker rank 1 failed during fit" in output, output[-3000:]
    assert seconds < 110


def test_a_rank_that_hangs_after_fit_does_not_hang_the_job(tmp_path):
    """Every fit completes, then worker rank 2 stops (SIGSTOP) before its script ends: the other
    ranks would wait for it in MPI_Finalize forever. They wait at their exit for at most the
    largest exit timeout of their fits (here max(2 x 3 + 1, 8) s: the second run sets
    exit_timeout), then end the job with MPI_Abort, saying so. What rank 0 computed was written
    before."""
    small = dict(optimizer="sgd", learning_rate=0.1, alpha=1e-3, epochs=2, batch_size=4, random_state=0)
    runs = [dict(small, mpi={"method": "async", "timeout": 3}),
            dict(small, mpi={"method": "sync", "timeout": 2, "exit_timeout": 8})]
    cfg = dict(problem_cfg(runs, n=80, d=50), fault={"rank": 2, "at_exit": True, "signal": "STOP"})
    rc, results, output, seconds = run_mpi(tmp_path, 3, cfg, timeout=120)
    assert results is not None and len(results) == 2, output
    for res in results:
        assert res["error"] is None and res["stats"]["failed"] == [] and res["stats"]["rows"] >= 2 * 80
    assert rc != 0
    assert "not every rank reached the end of the job within 8 s (a rank stopped or hung after fit); ending the " \
           "job with MPI_Abort" in output, output[-3000:]
    assert seconds < 60


@pytest.mark.parametrize("method", ["async", "sync"])
def test_ctrl_c_on_rank_0_drains_the_workers_and_keeps_the_model(tmp_path, method):
    """Rank 0 presses Ctrl-C at its first record of a run that could not end by itself within the
    test's limit (100000 epochs; the MPI timeout is 300 s): it stops every worker, settles and
    records the model, and raises KeyboardInterrupt with t_, history_ and staleness_ agreeing; each
    worker's fit returns normally and the job ends without MPI_Abort."""
    run = dict(FAULT_RUN, mpi={"method": method, "timeout": 300, "eval_every": 0.5}, ctrl_c_at_record=1)
    rc, results, output, seconds = run_mpi(tmp_path, 3, problem_cfg([run], n=400, d=300), timeout=60)
    assert results is not None, output
    res = results[0]
    assert res["error"]["type"] == "KeyboardInterrupt" and "workers were stopped" in res["error"]["message"]
    # t_ counts steps (a sync round is one), staleness_ the workers' messages (two per sync round)
    assert res["t"] > 0 and res["t"] == res["history"][-1]["updates"]
    assert res["staleness"]["count"] == res["t"] * (2 if method == "sync" else 1)
    assert res["history"][-1]["rows"] == res["stats"]["rows"]  # nothing applied after the last record
    assert np.isfinite(res["coef"]).all() and res["stats"]["failed"] == []
    workers = worker_results(tmp_path, 3)
    assert sorted(workers) == [1, 2] and all(w[0]["rows"] > 0 for w in workers.values())  # their fits returned
    assert rc == 0 and "MPI_Abort" not in output, output[-3000:]
    assert seconds < 60


def test_a_late_rank_and_piped_output_as_under_srun(tmp_path):
    """As under srun: ranks start at different times (rank 2 initialises MPI 3 s after the others)
    and the job's stdout is a pipe through another process (mpiexec ... | cat): the handshake waits
    for the late rank, nothing blocks on the pipe, and the fit completes on every rank."""
    run = dict(FAULT_RUN, epochs=2, mpi={"method": "async", "timeout": 60})
    cfg = dict(problem_cfg([run], n=400, d=300), start_delay={"2": 3.0})
    out = tmp_path / "out-late.json"
    cfg = dict(cfg, out=str(out))
    cfg_path = tmp_path / "late.cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    cmd = f"{shlex.quote(MPIEXEC)} -n 3 {shlex.quote(sys.executable)} {shlex.quote(str(SCRIPT))} " \
          f"{shlex.quote(str(cfg_path))} 2>&1 | cat"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    res = json.loads(out.read_text())[0]
    assert res["error"] is None and res["stats"]["failed"] == []
    assert res["stats"]["rows"] >= 2 * 400 and np.isfinite(res["coef"]).all()
    assert sorted(worker_results(tmp_path, 3)) == [1, 2]  # both workers' fits returned


WORKER_ERROR_CASES = [("async", "raise", "ValueError"), ("sync", "raise", "RuntimeError"),
                      ("sync", "drop", "ValueError"),
                      ("async", "raise", "KeyboardInterrupt")]  # a worker's own Ctrl-C is reported too


@pytest.mark.parametrize("method, on_failure, exception", WORKER_ERROR_CASES)
def test_a_worker_exception_reaches_rank_0_at_once_with_its_message(tmp_path, method, on_failure, exception):
    """Worker rank 2 raises a Python exception in place of its 51st exchange (tests/mpi_fit.py):
    it sends the error to rank 0 before the exception propagates on its own rank, and rank 0 names
    rank 2 with the worker's message in a WorkerFailure (or, with on_failure='drop', completes the
    run without it). The MPI timeout is 300 s and the job must end within 60 s: only the error
    message, never the silence of the timeout path, can end it. Rank 1 is stopped cleanly (its
    counters reach rank 0, its fit returns) and no MPI_Abort is needed: every rank reaches its exit."""
    n, epochs = 400, (10 if on_failure == "drop" else 100000)
    run = dict(FAULT_RUN, epochs=epochs, mpi={"method": method, "timeout": 300, "on_failure": on_failure})
    cfg = dict(problem_cfg([run], n=n, d=300), fault={"rank": 2, "exchanges": 50, "raise": exception})
    rc, results, output, seconds = run_mpi(tmp_path, 3, cfg, timeout=60)
    assert results is not None, output
    res = results[0]
    said = f"{exception}: fault injected in worker rank 2 at exchange 50 (at mpi_fit.py:"
    stats = res["stats"]
    assert stats["failed"] == [2] and stats["errors"]["2"].startswith(said), stats["errors"]
    if on_failure == "raise":
        assert res["error"]["type"] == "WorkerFailure" and res["error"]["ranks"] == [2], res["error"]
        assert res["error"]["message"].startswith(f"worker rank 2 failed with {said}"), res["error"]
        assert "sent nothing" not in res["error"]["message"]
        assert res["t"] > 0 and np.isfinite(res["coef"]).all()
    else:
        assert res["error"] is None and stats["rows"] >= epochs * n
    # its first exchange only read: its 49 pushes were applied, each in its own round with 'sync'
    w = stats["workers"]
    assert w["2"]["applied"] == w["2"]["rows"] == 49 and not w["2"]["alive"]
    assert w["1"]["alive"] and w["1"]["applied"] > 0 and "worker" in w["1"]  # stopped, counters sent
    workers = worker_results(tmp_path, 3)
    assert workers[1][0]["rows"] == w["1"]["rows"] and 2 not in workers  # rank 1's fit returned, rank 2's raised
    assert "Traceback" in output and f"{exception}: fault injected in worker rank 2" in output  # on rank 2
    assert "MPI_Abort" not in output, output[-3000:]
    assert rc != 0  # rank 2's script ended with its exception
    assert seconds < 60


def test_an_lda_worker_exception_reaches_rank_0_at_once(tmp_path):
    """The same for DPSVI's workers: LDA worker rank 1 raises in place of its 21st exchange; rank 0
    names it with its message long before the 300 s MPI timeout, with its 19 pushes applied."""
    kw = dict(n_components=3, epochs=100000, batch_size=1, random_state=0, n_threads=1, train_perplexity_docs=0)
    cfg = {"estimator": "lda", "data": "tiny_corpus", "problem": {"n_docs": 40, "n_words": 30},
           "runs": [dict(kw, mpi={"method": "async", "timeout": 300})],
           "fault": {"rank": 1, "exchanges": 20, "raise": "ValueError"}}
    rc, results, output, seconds = run_mpi(tmp_path, 3, cfg, timeout=60)
    assert results is not None, output
    res = results[0]
    assert res["error"]["type"] == "WorkerFailure" and res["error"]["ranks"] == [1], res["error"]
    assert res["error"]["message"].startswith("worker rank 1 failed with ValueError: fault injected in worker rank 1 "
                                              "at exchange 20"), res["error"]
    w = res["stats"]["workers"]
    assert w["1"]["applied"] == w["1"]["rows"] == 19 and w["2"]["alive"] and "worker" in w["2"]
    assert "MPI_Abort" not in output and rc != 0 and seconds < 60, output[-3000:]


def test_split_sharding_refuses_a_rank_with_other_data_of_the_same_size(tmp_path):
    """sharding='split': every rank holds all the data and trains on its share of the rows, so every
    rank must hold the same data; equal row and nonzero counts do not show it (issue 13: a worker
    given -y trained on a9a without a word, to accuracy 0.488 instead of 0.685). The handshake
    compares digests of X's sparsity pattern, X's values and the labels: each change below is
    refused before training, on every rank with the same message naming the rank(s) and the part(s)
    that differ. With sharding='local' each worker's shard is its own and cannot be compared: the
    same -y trains; and the same data starts as before."""
    base = dict(optimizer="sgd", learning_rate=0.1, alpha=1e-3, epochs=1, batch_size=4, random_state=0)
    split, local = {"method": "async", "timeout": 60}, {"method": "async", "timeout": 60, "sharding": "local"}
    refused = [({"2": "negate_y"}, [(2, "labels y")]),
               ({"1": "scale_value"}, [(1, "X's values")]),
               ({"2": "move_nonzero"}, [(2, "X's sparsity pattern")]),
               ({"1": "negate_y", "2": "scale_value"}, [(1, "labels y"), (2, "X's values")])]
    runs = [dict(base, mpi=split, rank_data=change) for change, _ in refused]
    runs += [dict(base, mpi=local, rank_data={"2": "negate_y"}), dict(base, mpi=split)]
    cfg = dict(problem_cfg(runs, n=60, d=150, seed=3), catch=True)
    rc, results, output, _ = run_mpi(tmp_path, 3, cfg)
    assert rc == 0, output
    workers = worker_results(tmp_path, 3)
    parts = ("labels y", "X's values", "X's sparsity pattern")
    for i, (_, expected) in enumerate(refused):
        error = results[i]["error"]
        assert error["type"] == "ValueError", (i, error)
        message = error["message"]
        assert message.startswith("the MPI run did not start: "), message
        for r, part in expected:
            assert f"rank {r}: sharding='split' needs the same data on every rank, and rank {r}'s {part} (sha256 " \
                   in message, (r, part, message)
            assert "with the same 60 rows and" in message and "pass sharding='local'" in message
        assert sum(message.count(p) for p in parts) == len(expected), message  # only what differs is named
        assert all(workers[r][i] == {"error": error} for r in (1, 2)), (i, workers)  # every rank, the same words
    for i in (len(refused), len(refused) + 1):
        assert results[i]["error"] is None and results[i]["stats"]["rows"] >= 60, results[i]
        assert all("rows" in workers[r][i] for r in (1, 2))


def test_lda_split_sharding_refuses_a_rank_with_other_counts(tmp_path):
    """The same rule for LDA (X only: documents have no labels): one doubled count on rank 1 is
    refused on every rank; the same corpus starts."""
    kw = dict(n_components=3, epochs=1, batch_size=8, random_state=0, n_threads=1, train_perplexity_docs=0)
    runs = [dict(kw, mpi={"method": "async", "timeout": 60}, rank_data={"1": "scale_value"}),
            dict(kw, mpi={"method": "async", "timeout": 60})]
    cfg = {"estimator": "lda", "data": "tiny_corpus", "problem": {"n_docs": 40, "n_words": 30}, "runs": runs,
           "catch": True}
    rc, results, output, _ = run_mpi(tmp_path, 3, cfg)
    assert rc == 0, output
    message = results[0]["error"]["message"]
    assert "rank 1: sharding='split' needs the same data on every rank, and rank 1's X's values (sha256 " in message
    assert "with the same 40 documents and" in message and "rank 2" not in message, message
    workers = worker_results(tmp_path, 3)
    assert all(workers[r][0] == {"error": results[0]["error"]} for r in (1, 2))
    assert results[1]["error"] is None and results[1]["stats"]["rows"] >= 40


def test_command_line_train_over_mpi_prints_the_epoch_table_and_the_workers(tmp_path):
    data = shared_data("libsvm", "a9a.xz")
    cmd = [MPIEXEC, "-n", "3", sys.executable, "-m", "asyncopt", "train", str(data), "--backend", "mpi",
           "--method", "sync", "--learning-rate", "4", "--schedule", "invsqrt", "--batch-size", "64",
           "--epochs", "2", "--straggler", "2:2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("epoch") for line in lines) == 2  # rank 0 only prints
    assert any("by 2 workers (sync" in line and "0 dropped" in line for line in lines)
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"]
    assert float(rows[1][5]) > 0  # the straggler's delay time


# ---------------------------------------------------------------------- LDA: DPSVI over MPI
def test_lda_sync_with_one_worker_is_the_one_thread_fit(tmp_path):
    """The server's global step and the worker's E-steps are the threads backend's arithmetic: one
    worker's rounds are the one-thread fit, to the bit."""
    kw = dict(n_components=3, epochs=2, shuffle=False, random_state=0, n_threads=1, train_perplexity_docs=0,
              learning_offset=4.0)
    # batch size 1 meets tiny_corpus's empty document alone: a global step from no word at all
    runs = [dict(kw, batch_size=b, mpi={"method": "sync", "timeout": 60}) for b in (8, 1)]
    cfg = {"estimator": "lda", "data": "tiny_corpus", "problem": {"n_docs": 40, "n_words": 30}, "runs": runs}
    rc, results, output, _ = run_mpi(tmp_path, 2, cfg)
    assert rc == 0, output
    from test_lda_exact import tiny_corpus

    for run, res in zip(runs, results):
        ref = asyncopt.LDA(**kw, batch_size=run["batch_size"]).fit(tiny_corpus(n_docs=40, n_words=30))
        np.testing.assert_allclose(res["components"], ref.components_, rtol=1e-13, atol=0)
        assert res["t"] == ref.t_ == 2 * (40 // run["batch_size"])
        assert res["staleness"]["max"] == 0
        assert [r["epoch"] for r in res["history"]] == [1, 2]


@pytest.mark.parametrize("n_ranks", [3, 4])
def test_dpsvi_recovers_the_true_topics(tmp_path, n_ranks):
    """Asynchronous DPSVI (and the sync baseline) on documents drawn from LDA find the generating
    topics (best-matched cosine >= 0.9, the threads backend's criterion; best of up to three starts,
    as SVI has merged-topic local optima), with delays measured for async and none for sync."""
    from test_lda_statistical import best_match_cosine, lda_corpus

    problem = dict(n_docs=3000, n_topics=4, doc_len=150, alpha=0.1, eta=0.05)
    kw = dict(n_components=4, doc_topic_prior=0.1, topic_word_prior=0.05, batch_size=64, epochs=10,
              train_perplexity_docs=500, n_threads=1)
    runs = [dict(kw, random_state=seed, mpi={"method": method, "timeout": 60})
            for method in ("async", "sync") for seed in range(3)]
    rc, results, output, _ = run_mpi(tmp_path, n_ranks, {"estimator": "lda", "data": "lda_corpus",
                                                         "problem": problem, "runs": runs}, timeout=300)
    assert rc == 0, output
    _, beta = lda_corpus(**problem)
    for method, block in (("async", results[:3]), ("sync", results[3:])):
        best = 0.0
        for res in block:
            comp = np.asarray(res["components"])
            best = max(best, best_match_cosine(comp / comp.sum(axis=1, keepdims=True), beta))
            tp = [r["train_perplexity"] for r in res["history"]]
            assert tp[-1] < tp[0], method
            assert res["stats"]["rows"] >= 10 * 3000
            if method == "sync":
                assert res["staleness"]["max"] == 0
            else:
                assert res["staleness"]["max"] > 0 and res["staleness"]["count"] == res["t"]
        assert best >= 0.9, (method, best)


# ---------------------------------------------------------------------- checkpoints and resume
# Each case is three runs of one job: the uninterrupted fit; the same fit with checkpoint_every=2,
# stopped by Ctrl-C on rank 0 at its record CTRL_C (the last record of an interrupted run writes no
# checkpoint: the file holds record 2 x floor((CTRL_C - 1) / 2)); and every rank's
# asyncopt.load(file).resume(X, y).
CTRL_C = 5
TIMING = {"time", "epoch_time", "eval_time"}


def interrupted_and_resumed(kw, path):
    return [dict(kw), dict(kw, checkpoint={"every": 2, "path": str(path)}, ctrl_c_at_record=CTRL_C),
            dict(resume=str(path))]


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def assert_resumed_exactly(full, stopped, resumed, key="coef"):
    assert stopped["error"]["type"] == "KeyboardInterrupt", stopped
    assert len(stopped["history"]) == CTRL_C  # the interrupted run got there; its checkpoint is 4 records in
    assert resumed["error"] is None, resumed
    assert resumed[key] == full[key]  # bit for bit (JSON keeps every float64 digit)
    assert resumed["t"] == full["t"] and resumed["staleness"] == full["staleness"]
    assert without_timing(resumed["history"]) == without_timing(full["history"])  # bytes and residual norms too


def test_sync_resume_equals_the_uninterrupted_run(tmp_path):
    """method='sync' with two workers (one thread each): the resumed run is the uninterrupted run bit for
    bit, its history included: the shard orders, the next mini-batches and what the workers had read
    for them come back from the checkpoint. The second case stalls on purpose (tol=1): its plateau
    drops (step scale 0.1, then 0.01, at records 2 and 4) and the stop at record 6 come back too."""
    base = dict(batch_size=4, epochs=6, shuffle=True, random_state=0, mpi={"method": "sync", "timeout": 60})
    cases = [dict(base, optimizer="amsgrad", learning_rate=0.05, alpha=0.01, regularization="sparse", tol=None),
             dict(base, optimizer="sgd", learning_rate=0.3, alpha=0.01, regularization="exact", epochs=10, tol=1.0,
                  n_iter_no_change=2, plateau_drops=2)]
    runs = [r for i, case in enumerate(cases) for r in interrupted_and_resumed(case, tmp_path / f"ck{i}.npz")]
    rc, results, output, _ = run_mpi(tmp_path, 3, problem_cfg(runs, n=60, d=150, seed=3))
    assert rc == 0, output
    for i in range(len(cases)):
        assert_resumed_exactly(*results[3 * i:3 * i + 3])
    plateau = results[5]["history"]
    assert [r["step_scale"] for r in plateau] == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    assert results[5]["t"] == 7 * 8  # stopped by the rule at record 7, before the budget of 10


@pytest.mark.parametrize("n_ranks", [3])
def test_efficient_adam_resume_keeps_every_residual(tmp_path, n_ranks):
    """Efficient-Adam with sign and QSGD quantizers, worker and server moments, central and sharded
    topologies: the resumed run equals the uninterrupted one bit for bit, replicas included (each
    worker's replica hash), which needs the workers' moments and error-feedback residuals, the server
    residual (rank 0's, or the slice owners' with topology='sharded'), the server optimizer's state
    and the QSGD streams' positions back from the checkpoint: a residual reset to zero (DeepSpeed's
    1-bit Adam on load) would change the next round's quantized step."""
    kw = dict(optimizer="adam", learning_rate=0.05, alpha=0.01, batch_size=4, epochs=6, shuffle=True, random_state=0,
              tol=None)
    ea = {"method": "efficient-adam", "timeout": 60, "block_size": 16}
    cases = [dict(ea, worker_compressor="sign", server_compressor="sign"),
             dict(ea, worker_compressor="qsgd", server_compressor="ternary", moments="server"),
             dict(ea, worker_compressor="qsgd", server_compressor="sign", topology="sharded")]
    runs = [r for i, mpi in enumerate(cases) for r in interrupted_and_resumed(dict(kw, mpi=mpi),
                                                                              tmp_path / f"ea{i}.npz")]
    rc, results, output, _ = run_mpi(tmp_path, n_ranks, problem_cfg(runs, n=60, d=150, seed=3))
    assert rc == 0, output
    workers = worker_results(tmp_path, n_ranks)
    for i, mpi in enumerate(cases):
        full, stopped, resumed = results[3 * i:3 * i + 3]
        assert_resumed_exactly(full, stopped, resumed)
        assert resumed["history"][-1]["server_residual"] > 0 and resumed["history"][-1]["worker_residual"] > 0
        assert resumed["stats"]["replica_sha256"] == full["stats"]["replica_sha256"]
        for r in range(1, n_ranks):
            assert workers[r][3 * i + 2]["replica_sha256"] == workers[r][3 * i]["replica_sha256"], (mpi, r)


def test_lda_resume_over_mpi(tmp_path):
    """LDA over MPI, method='sync' (one global step per round on the union of the workers' mini-batches):
    lambda after the resume is the uninterrupted run's bit for bit. DPSVI ('async') resumes with the
    checkpoint's lambda, step count and records and runs the remaining passes."""
    kw = dict(n_components=3, batch_size=8, epochs=6, random_state=0, n_threads=1, train_perplexity_docs=20)
    runs = [r for m in ("sync", "async")
            for r in interrupted_and_resumed(dict(kw, mpi={"method": m, "timeout": 60}), tmp_path / f"{m}.npz")]
    rc, results, output, _ = run_mpi(tmp_path, 3, {"estimator": "lda", "data": "tiny_corpus", "runs": runs})
    assert rc == 0, output
    assert_resumed_exactly(*results[:3], key="components")
    full, stopped, resumed = results[3:]
    assert resumed["error"] is None and len(resumed["history"]) == 6
    assert without_timing(resumed["history"][:4]) == without_timing(stopped["history"][:4])
    assert abs(resumed["t"] - full["t"]) <= 2 and resumed["t"] > stopped["history"][3]["updates"]


def test_async_resume_reaches_the_uninterrupted_quality(tmp_path):
    """The asynchronous methods have no round at which every worker stands still, so their checkpoint
    holds rank 0's state only (model, optimizer state, step count, counters) and the resumed workers
    walk new passes: the resumed run keeps the checkpoint's records, runs the remaining budget and
    makes up at least half of what the uninterrupted run gains in those passes; a resume that lost
    the model (or, with AMSGrad's decaying invsqrt steps, the step count), or ran the whole budget
    again, would not."""
    kw = dict(learning_rate=0.3, alpha=0.01, batch_size=4, epochs=8, shuffle=True, random_state=0, tol=None)
    cases = [dict(kw, optimizer="amsgrad", learning_rate=0.05, schedule="invsqrt",
                  mpi={"method": "async", "timeout": 60}),
             dict(kw, optimizer="sgd", mpi={"method": "dpsgd", "timeout": 60}, n_threads=1)]
    runs = [r for i, case in enumerate(cases) for r in interrupted_and_resumed(case, tmp_path / f"as{i}.npz")]
    rc, results, output, _ = run_mpi(tmp_path, 3, problem_cfg(runs, n=300, d=150, seed=3))
    assert rc == 0, output
    workers = worker_results(tmp_path, 3)
    for i in range(len(cases)):
        full, stopped, resumed = results[3 * i:3 * i + 3]
        assert stopped["error"]["type"] == "KeyboardInterrupt" and resumed["error"] is None, resumed
        assert without_timing(resumed["history"][:4]) == without_timing(stopped["history"][:4])
        assert len(resumed["history"]) == 8 and resumed["history"][-1]["epoch"] >= 8
        # the uninterrupted run improves by gain over its last four passes; the resumed one must make at
        # least half of that up (a resume from a fresh model gets no further than 4 passes do)
        start, end = resumed["history"][3]["objective"], resumed["history"][-1]["objective"]
        gain = full["history"][3]["objective"] - full["history"][-1]["objective"]
        assert gain > 0 and end <= full["history"][-1]["objective"] + 0.5 * gain, (cases[i], start, end, gain)
        rows = sum(workers[r][3 * i + 2]["rows"] for r in (1, 2))  # the workers' rows after the resume
        assert 3.9 * 300 <= rows < 5 * 300  # the remaining four passes, not the whole budget again
        assert abs(resumed["t"] - full["t"]) <= 0.02 * full["t"]


def test_a_mismatched_resume_is_refused_on_every_rank(tmp_path):
    """A resume that cannot continue the interrupted fit is refused before any training, on every rank,
    with the reason: another number of ranks, a changed method, other data, a checkpoint lacking a
    worker's state, a truncated file."""
    from asyncopt import checkpoint

    path = tmp_path / "ck.npz"
    kw = dict(optimizer="sgd", learning_rate=0.3, alpha=0.01, batch_size=4, epochs=6, random_state=0, tol=None,
              mpi={"method": "sync", "timeout": 60})
    everyone = {str(r): "scale_value" for r in range(3)}
    runs = interrupted_and_resumed(kw, path)[1:2] + [
        dict(resume=str(path), mpi={"method": "async", "timeout": 60}),
        dict(resume=str(path), rank_data=everyone),
        dict(resume=str(path)),  # and it still resumes
    ]
    jobs = [tmp_path / name for name in ("a", "b", "c")]
    for job in jobs:
        job.mkdir()
    rc, results, output, _ = run_mpi(jobs[0], 3, dict(problem_cfg(runs, n=60, d=150, seed=3), catch=True))
    assert rc == 0, output
    workers = worker_results(jobs[0], 3)
    expected = [None, "parameters \\['mpi'\\] differ from the interrupted fit's",
                "rank 1: resume needs the data of the interrupted fit.*checksum"]
    for i, pattern in enumerate(expected):
        if pattern is None:
            continue
        for r, message in [(0, results[i]["error"]["message"])] + [(r, workers[r][i]["error"]["message"])
                                                                    for r in (1, 2)]:
            assert results[i]["error"]["type"] == "ValueError"
            assert re.search(pattern, message), (r, message)
    assert "rank 0: resume needs the data" in results[2]["error"]["message"]
    assert results[3]["error"] is None and results[3]["t"] == 6 * 8

    # two ranks for a checkpoint of three; one without worker rank 2's state; a truncated file
    meta, arrays = checkpoint.read(path)
    del meta["fit"]["backend"]["server"]["workers"]["2"]
    checkpoint.write(tmp_path / "no_worker.npz", {k: v for k, v in meta.items() if not k.startswith("format")},
                     arrays)
    (tmp_path / "truncated.npz").write_bytes(path.read_bytes()[:2000])
    runs = [dict(resume=str(path)), dict(resume=str(tmp_path / "truncated.npz"))]
    rc, results, output, _ = run_mpi(jobs[1], 2, dict(problem_cfg(runs, n=60, d=150, seed=3), catch=True))
    assert rc == 0, output
    workers = worker_results(jobs[1], 2)
    for message in (results[0]["error"]["message"], workers[1][-2]["error"]["message"]):
        assert "written by a run of 3 ranks" in message and "mpiexec -n 3" in message, message
    for message in (results[1]["error"]["message"], workers[1][-1]["error"]["message"]):
        assert "truncated" in message, message
    runs = [dict(resume=str(tmp_path / "no_worker.npz")), dict(resume={"*": str(tmp_path / "no_worker.npz"),
                                                                     "1": str(path)})]
    rc, results, output, _ = run_mpi(jobs[2], 3, dict(problem_cfg(runs, n=60, d=150, seed=3), catch=True))
    assert rc == 0, output
    workers = worker_results(jobs[2], 3)
    patterns = ["no state of worker rank\\(s\\) \\[2\\]", "rank 1 loaded another checkpoint than rank 0"]
    for i, pattern in enumerate(patterns):
        for message in [results[i]["error"]["message"]] + [workers[r][i]["error"]["message"] for r in (1, 2)]:
            assert re.search(pattern, message), message
