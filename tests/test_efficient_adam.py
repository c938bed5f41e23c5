"""Efficient-Adam over MPI (Chen et al. 2023; backends/mpi/efficient_adam.py): two-way quantized
messages with error feedback on both sides.

In one process, the round arithmetic the MPI ranks run:
- the exact error-feedback identity for every quantizer: y_t = x_t - mean_i e_i - e_s moves by
  y_{t+1} = y_t - mean_i delta_i (float64, 1e-12), and every worker's replica is the server's, bit
  for bit;
- the residuals stay bounded over 10^4 rounds on a quadratic for the contractive quantizers.

Under mpiexec (tests/test_distributed.py's run_mpi):
- identity quantizers with worker moments are the NumPy reference "mean of local Adam steps"; with
  one worker they are the one-thread Adam fit; with moments='server' they are Adam / AMSGrad on the
  averaged gradient;
- with sign / ternary quantizers the MPI run is the in-process drive of the same rounds, to the bit;
- the bytes reported are the lengths of the buffers sent, and every rank ends with the same model;
- a9a with K = 3 reaches the optimum's test log-loss within 1% for sign/sign and identity/identity.
"""
import json

import numpy as np
import pytest

import asyncopt
from asyncopt import _core, compress
from asyncopt._checks import native_csr
from asyncopt.backends.mpi.efficient_adam import (Layout, ServerSide, ShardedWorkerSide, WorkerSide, apply_server_step,
                                                  apply_sharded_step, slice_bounds)
from conftest import shared_data, sparse_problem
from reference import efficient_adam_reference, logistic_reference

QUANTIZERS = ["identity", "sign", "ternary", "qsgd2", "qsgd4", "qsgd8"]


def resolved_settings(**kw):
    """The frozen LogisticSettings an estimator with these parameters trains with."""
    return asyncopt.LogisticRegression(**kw)._resolve()[3]


# ---------------------------------------------------------------------- the rounds, in one process
def drive_rounds(settings, layout, gradients, wq, sq, moments="worker", seed=7):
    """Run len(gradients) rounds of N = len(gradients[0]) workers on the given sparse gradients
    (idx, g, g0) with the real worker and server halves; yields per round (x before, the workers'
    residuals before and after, the server's residual before and after, the deltas, the replicas)."""
    N = len(gradients[0])
    workers = [WorkerSide(settings, layout, wq, sq, moments, seed, rank) for rank in range(1, N + 1)]
    server = ServerSide(layout, wq, sq, seed)
    x = np.zeros(layout.d + 1)
    replicas = [x.copy() for _ in range(N)]
    for grads in gradients:
        e_before = np.mean([w.residual for w in workers], axis=0)
        es_before = server.residual.copy()
        msgs, deltas = [], []
        for w, rep, (idx, g, g0) in zip(workers, replicas, grads):
            packed, meant = w.message(idx, g, g0, rep)
            msgs.append(packed)
            deltas.append(meant)
        broadcast = server.round(msgs)
        x_before = x.copy()
        apply_server_step(x, sq, broadcast, layout.n)
        for w, rep in zip(workers, replicas):
            w.apply(rep, broadcast)
        yield dict(x_before=x_before, x=x, e_before=e_before, es_before=es_before,
                   e_after=np.mean([w.residual for w in workers], axis=0), es_after=server.residual.copy(),
                   deltas=deltas, replicas=replicas)


def random_gradients(rounds, n_workers, d, seed=0, nnz=6):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(rounds):
        rnd = []
        for _ in range(n_workers):
            idx = np.sort(rng.choice(d, size=nnz, replace=False)).astype(np.int32)
            rnd.append((idx, rng.normal(size=nnz), float(rng.normal())))
        out.append(rnd)
    return out


@pytest.mark.parametrize("server_q", ["identity", "sign"])
@pytest.mark.parametrize("worker_q", QUANTIZERS)
def test_error_feedback_identity_is_exact(worker_q, server_q):
    """y_t = x_t - mean_i e_i - e_s obeys y_{t+1} = y_t - mean_i delta_i in every round, whatever the
    quantizers drop (block size 16 over 41 coordinates: a short last block), and every replica equals
    the server's model bit for bit. The bound is 1e-12 relative to the largest value involved, which
    is 1e-12 absolute for all but QSGD with 2 bits: not a contraction (variance factor 4 here), its
    residuals grow without bound under error feedback (to ~1e10 in 200 rounds), which is why
    MPIOptions refuses it; the identity still holds to the rounding of those magnitudes."""
    settings = resolved_settings(optimizer="adam", learning_rate=0.05, alpha=1e-3, regularization="decoupled")
    layout = Layout(40, True, 1.0)
    wq, sq = compress.get(worker_q, block_size=16), compress.get(server_q, block_size=16)
    worst = 0.0
    for r in drive_rounds(settings, layout, random_gradients(200, 3, 40), wq, sq):
        n = layout.n
        y_before = r["x_before"][:n] - r["e_before"] - r["es_before"]
        y_after = r["x"][:n] - r["e_after"] - r["es_after"]
        scale = max(1.0, np.abs(r["x"]).max(), np.abs(r["e_after"]).max(), np.abs(r["es_after"]).max())
        worst = max(worst, np.abs(y_after - (y_before - np.mean(r["deltas"], axis=0))).max() / scale)
        for rep in r["replicas"]:
            assert np.array_equal(rep, r["x"])
    assert worst <= 1e-12, worst


def test_server_moments_error_feedback_follows_the_server_iterate():
    """moments='server': what the replicas lack of the server optimizer's own iterate is exactly the
    server's residual: x_t - e_s = x^S_t (1e-12)."""
    from asyncopt.backends.mpi.models import EfficientAdamModel
    from asyncopt.state import aligned_zeros, state_dtype

    settings = resolved_settings(optimizer="amsgrad", learning_rate=0.05)
    d = 30
    layout = Layout(d, True, 1.0)
    wq, sq = compress.get("sign", 8), compress.get("ternary", 8)
    state = aligned_zeros(d + 1, state_dtype("amsgrad", np.float64))
    core_state = aligned_zeros(d + 1, state_dtype("amsgrad", np.float64))
    core = _core.ServerModel(core_state, d, settings.optimizer.native, "float64", settings.step_config(), 0, True, 1.0,
                             np.zeros(0, np.int32))
    model = EfficientAdamModel(state, layout, wq, sq, 3, core)
    workers = [WorkerSide(settings, layout, wq, sq, "server", 3, r) for r in (1, 2)]
    replica = np.zeros(d + 1)
    for grads in random_gradients(100, 2, d, seed=4):
        entries = []
        for w, (idx, g, g0) in zip(workers, grads):
            packed, _ = w.message(idx, g, g0, replica)
            entries.append((packed, None, 0.0, 1))
        model.apply_round(entries)
        workers[0].apply(replica, model.broadcast)
        assert np.array_equal(replica, model.x)
        assert np.abs(model.x[:layout.n] - model.server.residual - model.xs).max() <= 1e-12


def test_slices_are_runs_of_whole_blocks():
    assert slice_bounds(41, 16, 2) == [(0, 16), (16, 41)]
    assert slice_bounds(41, 16, 3) == [(0, 16), (16, 32), (32, 41)]
    assert slice_bounds(41, 16, 4) == [(0, 0), (0, 16), (16, 32), (32, 41)]  # fewer blocks than workers
    assert slice_bounds(100, 8, 3) == [(0, 32), (32, 64), (64, 100)]


@pytest.mark.parametrize("worker_q,server_q", [("identity", "identity"), ("sign", "sign"), ("qsgd8", "ternary")])
def test_sharded_rounds_keep_the_identity_and_the_replicas(worker_q, server_q):
    """topology='sharded': the same error-feedback identity with e_s the concatenation of the slice
    owners' residuals (1e-12), every worker's replica equal to rank 0's (which applies the owners'
    steps with the same function), and with identity quantizers the central run's model, bit for bit."""
    settings = resolved_settings(optimizer="adam", learning_rate=0.05)
    layout = Layout(60, True, 1.0)
    N, bounds = 3, slice_bounds(61, 16, 3)
    wq, sq = compress.get(worker_q, 16), compress.get(server_q, 16)
    workers = [ShardedWorkerSide(settings, layout, wq, sq, 5, r, bounds) for r in range(1, N + 1)]
    x0, replicas = np.zeros(61), [np.zeros(61) for _ in range(N)]
    worst = 0.0
    grads = random_gradients(150, N, 60, seed=2)
    for grad in grads:
        y_before = x0[:61] - np.mean([w.residual for w in workers], axis=0) - np.concatenate(
            [w.server_residual for w in workers])
        out = [w.messages(idx, g, g0, rep) for w, rep, (idx, g, g0) in zip(workers, replicas, grad)]
        steps = [w.serve([out[i][0][w.own] for i in range(N)]) for w in workers]
        apply_sharded_step(x0, sq, steps, bounds)
        for w, rep in zip(workers, replicas):
            w.apply(rep, steps)
            assert np.array_equal(rep, x0)
        y_after = x0 - np.mean([w.residual for w in workers], axis=0) - np.concatenate(
            [w.server_residual for w in workers])
        worst = max(worst, np.abs(y_after - (y_before - np.mean([o[1] for o in out], axis=0))).max())
    assert worst <= 1e-12, worst
    if worker_q == "identity":
        central = list(drive_rounds(settings, layout, grads, wq, sq))[-1]["x"]
        assert np.array_equal(central, x0)


@pytest.mark.parametrize("quantizer", ["sign", "ternary"])
def test_residuals_stay_bounded_over_ten_thousand_rounds(quantizer):
    """On the quadratic f(x) = 1/2 ||x - c||^2 (each worker's gradient x - c plus noise), the
    contractive quantizers' residuals do not grow: the largest norm of the last 5000 rounds is no
    more than 1.5x that of the first 5000, and the model ends near c."""
    d, N, rounds = 20, 2, 10_000
    settings = resolved_settings(optimizer="adam", learning_rate=0.01, alpha=0.0)
    layout = Layout(d, False, 1.0)
    q = compress.get(quantizer, block_size=8)
    rng = np.random.default_rng(1)
    c = rng.normal(size=d)
    workers = [WorkerSide(settings, layout, q, q, "worker", 0, r) for r in range(1, N + 1)]
    server = ServerSide(layout, q, q, 0)
    x = np.zeros(d + 1)
    idx = np.arange(d, dtype=np.int32)
    norms = np.empty((rounds, 2))
    for t in range(rounds):
        msgs = [w.message(idx, x[:d] - c + 0.1 * rng.normal(size=d), 0.0, x)[0] for w in workers]
        b = server.round(msgs)
        apply_server_step(x, q, b, d)
        norms[t] = (max(np.linalg.norm(w.residual) for w in workers), np.linalg.norm(server.residual))
    half = rounds // 2
    assert (norms[half:].max(axis=0) <= 1.5 * norms[:half].max(axis=0)).all(), norms.max(axis=0)
    assert np.linalg.norm(x[:d] - c) < 0.1 * np.linalg.norm(c)


# ---------------------------------------------------------------------- settings, before any MPI
@pytest.mark.parametrize("mpi,kw,match", [
    ({"method": "efficient-adam"}, dict(optimizer="sgd"), "set optimizer='adam' or 'amsgrad'"),
    ({"method": "efficient-adam"}, dict(optimizer="adagrad"), "set optimizer='adam' or 'amsgrad'"),
    ({"method": "efficient-adam", "worker_compressor": "sgn"}, {}, "worker_compressor: quantizer must be one of"),
    ({"method": "efficient-adam", "server_compressor": "qsgd9"}, {}, "server_compressor: bits must be in"),
    ({"method": "efficient-adam", "block_size": 0}, {}, "block_size must be >= 1"),
    ({"method": "efficient-adam", "topology": "ring"}, {}, "topology must be one of"),
    ({"method": "efficient-adam", "topology": "sharded", "moments": "server"}, {}, "runs the paper's worker moments"),
    ({"method": "efficient-adam", "topology": "sharded", "on_failure": "drop"}, {}, "on_failure must be 'raise'"),
    ({"method": "efficient-adam", "moments": "both"}, {}, "moments must be one of"),
    ({"method": "sync", "worker_compressor": "identity"}, {}, "settings of method='efficient-adam'"),
    ({"method": "efficient-adam", "worker_compressor": "qsgd4"}, {}, "is not a contraction"),
    ({"method": "efficient-adam", "server_compressor": "qsgd2", "block_size": 4}, {}, "is not a contraction"),
    ({"method": "efficient-adam"}, dict(n_threads=2), "is method='dpsgd'"),
])
def test_bad_settings_raise_before_any_mpi(mpi, kw, match):
    X, y = sparse_problem(n=20, d=30)
    kw = dict(dict(optimizer="adam"), **kw)
    with pytest.raises(ValueError, match=match):
        asyncopt.LogisticRegression(backend="mpi", mpi=mpi, **kw).fit(X, y)


# ---------------------------------------------------------------------- under mpiexec
try:
    import mpi4py  # noqa: F401
    from test_distributed import MPIEXEC, problem_cfg, run_mpi
except ImportError:  # the tests above run without MPI
    MPIEXEC = None

needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'asyncopt[mpi]')")


def worker_stats(tmp_path, rank):
    """The mpi_stats_ of worker rank's fits (tests/mpi_fit.py writes them), from the latest job."""
    files = sorted(tmp_path.glob(f"out-*.rank{rank}.json"))
    return json.loads(files[-1].read_text())


def contiguous_batches(n, n_workers, B, epochs):
    """shuffle=False: worker w walks rows [n w / N, n (w + 1) / N) in order, pass after pass."""
    shards = [np.arange(n * w // n_workers, n * (w + 1) // n_workers) for w in range(n_workers)]
    return [[s[i:i + B] for _ in range(epochs) for i in range(0, len(s), B)] for s in shards]


def ea(worker="identity", server="identity", **kw):
    return dict({"method": "efficient-adam", "worker_compressor": worker, "server_compressor": server,
                 "timeout": 60}, **kw)


N_ROWS, N_FEATURES, BATCH, EPOCHS = 80, 120, 8, 3
PROBLEM = dict(n=N_ROWS, d=N_FEATURES, seed=5)
COMMON = dict(batch_size=BATCH, epochs=EPOCHS, shuffle=False, random_state=0)
WORKER_CASES = [dict(optimizer="adam", learning_rate=0.05, alpha=0.01, regularization="sparse"),
                dict(optimizer="adam", learning_rate=0.05, schedule="invsqrt", alpha=0.01, regularization="decoupled",
                     bias_correction=False),
                dict(optimizer="amsgrad", learning_rate=0.05, alpha=0.01, regularization="sparse")]


SERVER_CASES = [dict(optimizer="adam", learning_rate=0.05, alpha=0.01, regularization="sparse"),
                dict(optimizer="amsgrad", learning_rate=0.05, schedule="invsqrt", alpha=0.01,
                     regularization="decoupled")]
COMPRESSED_CASE = dict(optimizer="adam", learning_rate=0.05, alpha=0.01)
COMPRESSED_VARIANTS = [("sign", "sign", "worker"), ("ternary", "sign", "server")]


@pytest.fixture(scope="module")
def k3_job(tmp_path_factory):
    """One mpiexec job of 3 ranks (start-up is the slow part) running every K = 3 fit of the tests
    below: {'worker': [...], 'server': [...], 'compressed': [...]}, each a list of (rank 0's
    result, worker rank 1's mpi_stats_, worker rank 2's)."""
    if MPIEXEC is None:
        pytest.skip("no mpiexec (pip install 'asyncopt[mpi]')")
    tmp_path = tmp_path_factory.mktemp("k3")
    runs = ([dict(case, **COMMON, mpi=ea()) for case in WORKER_CASES]
            + [dict(case, **COMMON, mpi=ea(moments="server")) for case in SERVER_CASES]
            + [dict(COMPRESSED_CASE, **COMMON, mpi=ea(wq, sq, moments=m, block_size=16))
               for wq, sq, m in COMPRESSED_VARIANTS])
    rc, results, output, _ = run_mpi(tmp_path, 3, problem_cfg(runs, **PROBLEM))
    assert rc == 0, output
    fits = list(zip(results, worker_stats(tmp_path, 1), worker_stats(tmp_path, 2)))
    a, b = len(WORKER_CASES), len(WORKER_CASES) + len(SERVER_CASES)
    return {"worker": fits[:a], "server": fits[a:b], "compressed": fits[b:]}


def test_identity_quantizers_are_the_mean_of_local_adam_steps(k3_job):
    """K = 3, identity both ways, worker moments: the NumPy reference of the mean of the two workers'
    local Adam (AMSGrad) steps, round for round; every rank holds the same model (hash), and the
    bytes reported are the buffers' lengths: 64-byte header + two 8-byte residual norms + 8 bytes per
    coordinate up, 64 + 8 per coordinate down, per worker and round, besides the first read and STOP."""
    X, y = sparse_problem(**PROBLEM)
    batches = contiguous_batches(N_ROWS, 2, BATCH, EPOCHS)
    rounds = len(batches[0])
    n = N_FEATURES + 1
    for case, (res, *ranks) in zip(WORKER_CASES, k3_job["worker"]):
        ref_kw = dict(case)
        ref_kw.setdefault("bias_correction", case["optimizer"] == "adam")  # the rules' defaults
        w, b = efficient_adam_reference(X, y, batches, **ref_kw)
        np.testing.assert_allclose(res["coef"], w, rtol=1e-9, atol=1e-12, err_msg=str(case))
        assert res["intercept"] == pytest.approx(b, rel=1e-9, abs=1e-12)
        s = res["stats"]
        assert res["t"] == s["rounds"] == rounds and res["staleness"]["max"] == 0
        assert all(r["replica_sha256"] == s["replica_sha256"] for r in ranks)
        assert s["server_residual_norm"] == 0 and set(s["worker_residual_norms"].values()) == {0.0}
        up, down = 64 + 16 + 8 * n, 64 + 8 * n
        first_read, model_answer, stop = 72, 72 + 8 * N_FEATURES, 72
        for r, wst in s["workers"].items():
            # every round's push, plus the one answered STOP after the last round
            assert wst["bytes_in"] == first_read + (rounds + 1) * up, r
            assert wst["bytes_out"] == model_answer + rounds * down + stop, r
            assert wst["worker"]["bytes_sent"] == wst["bytes_in"]
            assert wst["worker"]["bytes_received"] == wst["bytes_out"]
        assert s["payload_in"] == 2 * rounds * 8 * n and s["payload_out"] == 2 * rounds * 8 * n
        assert sum(rec["bytes_in"] for rec in res["history"]) == s["bytes_in"]
        assert sum(rec["bytes_out"] for rec in res["history"]) == s["bytes_out"]


@needs_mpiexec
def test_one_worker_with_identity_is_single_process_adam(tmp_path):
    """K = 2: one worker's local Adam step, sent and applied exactly, is the one-thread Adam fit (with
    its bias correction and eps, and the lazy catch-up of idle coordinates) to rounding."""
    cases = [dict(optimizer="adam", learning_rate=0.05, alpha=0.01, regularization="sparse"),
             dict(optimizer="adam", learning_rate=0.05, schedule="invsqrt", alpha=0.01, regularization="decoupled")]
    runs = [dict(case, **COMMON, mpi=ea()) for case in cases]
    rc, results, output, _ = run_mpi(tmp_path, 2, problem_cfg(runs, **PROBLEM))
    assert rc == 0, output
    X, y = sparse_problem(**PROBLEM)
    for case, res in zip(cases, results):
        ref = asyncopt.LogisticRegression(**case, **COMMON, n_threads=1).fit(X, y)
        np.testing.assert_allclose(res["coef"], ref.coef_[0], rtol=1e-9, atol=1e-12, err_msg=str(case))
        assert res["intercept"] == pytest.approx(ref.intercept_[0], rel=1e-9, abs=1e-12)
        assert res["t"] == ref.t_


def test_server_moments_with_identity_are_adam_on_the_averaged_gradient(k3_job):
    """K = 3, moments='server', identity: Adam / AMSGrad on the mean of the two workers' gradients
    (equal batch sizes: the mini-batch step on the union of their rows), as method 'sync' runs it."""
    X, y = sparse_problem(**PROBLEM)
    batches = contiguous_batches(N_ROWS, 2, BATCH, EPOCHS)
    union = [np.concatenate([b1, b2]) for b1, b2 in zip(*batches)]
    for case, (res, *ranks) in zip(SERVER_CASES, k3_job["server"]):
        kw = dict(case)
        kw.setdefault("bias_correction", case["optimizer"] == "adam")
        w, b = logistic_reference(X, y, batches=union, **kw)
        np.testing.assert_allclose(res["coef"], w, rtol=1e-8, atol=1e-11, err_msg=str(case))
        assert res["intercept"] == pytest.approx(b, rel=1e-8, abs=1e-11)
        assert all(r["replica_sha256"] == res["stats"]["replica_sha256"] for r in ranks)


def drive_fit(X, y, n_workers, case, wq, sq, moments):
    """The MPI fit of mpi_fit.py (shuffle=False, contiguous shards) driven in one process: the same
    worker and server halves, the native mini-batch gradient, the rounds in rank order."""
    from asyncopt.backends.mpi.models import EfficientAdamModel
    from asyncopt.state import aligned_zeros, state_dtype

    settings = resolved_settings(**case, **COMMON)
    n, d = X.shape
    layout = Layout(d, True, settings.intercept_scale)
    Xn = native_csr(X)
    ypm = np.where(y == 1, 1.0, -1.0)
    counts = np.bincount(X.indices, minlength=d)
    reg_scale = np.divide(n, counts, out=np.zeros(d), where=counts > 0)
    state = aligned_zeros(d + 1, state_dtype(case["optimizer"], np.float64))
    core = None
    if moments == "server":
        core = _core.ServerModel(aligned_zeros(d + 1, state_dtype(case["optimizer"], np.float64)), d,
                                 settings.optimizer.native, "float64", settings.step_config(), 0, True, 1.0,
                                 np.zeros(0, np.int32))
    server = EfficientAdamModel(state, layout, wq, sq, 0, core)
    workers = [WorkerSide(settings, layout, wq, sq, moments, 0, r) for r in range(1, n_workers + 1)]
    replicas = [np.zeros(d + 1) for _ in workers]
    idx, g = np.empty(X.nnz, np.int32), np.empty(X.nnz)
    for round_rows in zip(*contiguous_batches(n, n_workers, BATCH, EPOCHS)):
        entries = []
        for w, rep, rows in zip(workers, replicas, round_rows):
            cnt, g0 = _core.logistic_batch_gradient(*Xn, d, ypm, rows.astype(np.int64), rep, reg_scale,
                                                    settings.sparse_alpha, True, idx, g)
            entries.append((w.message(idx[:cnt], g[:cnt], g0, rep)[0], None, 0.0, len(rows)))
        server.apply_round(entries)
        for w, rep in zip(workers, replicas):
            w.apply(rep, server.broadcast)
    return server.x


def test_compressed_runs_are_the_in_process_rounds_to_the_bit(k3_job):
    """K = 3 with sign and ternary quantizers (deterministic), both moment placements: the MPI fit is
    the same rounds driven in one process, bit for bit, and every rank holds it. The bytes each way
    are the packed lengths: sign 4 bytes per 16-coordinate block + 1 bit per coordinate."""
    case = COMPRESSED_CASE
    X, y = sparse_problem(**PROBLEM)
    n = N_FEATURES + 1
    for (wq, sq, moments), (res, *ranks) in zip(COMPRESSED_VARIANTS, k3_job["compressed"]):
        qw, qs = compress.get(wq, 16), compress.get(sq, 16)
        x = drive_fit(X, y, 2, case, qw, qs, moments)
        assert np.array_equal(np.asarray(res["coef"]), x[:N_FEATURES]) and res["intercept"] == x[N_FEATURES], wq
        s = res["stats"]
        assert all(r["replica_sha256"] == s["replica_sha256"] for r in ranks)
        assert s["server_residual_norm"] > 0 and min(s["worker_residual_norms"].values()) > 0
        rounds = s["rounds"]
        assert qs.nbytes(n) == 4 * 8 + 16  # 8 blocks of 16 (the last of 9), 121 bits
        for wst in s["workers"].values():
            assert wst["bytes_in"] == 72 + (rounds + 1) * (80 + qw.nbytes(n))
            assert wst["bytes_out"] == 72 + 8 * N_FEATURES + rounds * (64 + qs.nbytes(n)) + 72
        assert s["payload_in"] == 2 * rounds * qw.nbytes(n) and s["payload_out"] == 2 * rounds * qs.nbytes(n)
        assert [rec["rounds"] for rec in res["history"]][-1] == rounds
        assert res["history"][-1]["server_residual"] == pytest.approx(s["server_residual_norm"])


SHARDED_RUNS = [("identity", "identity"), ("sign", "ternary")]


@needs_mpiexec
def test_sharded_topology_over_three_workers(tmp_path):
    """K = 4, topology='sharded', block size 16 (121 coordinates: slices of 2, 3 and 3 blocks): with
    identity quantizers the NumPy mean of the three workers' local Adam steps; with sign / ternary
    every rank holds the same model; rank 0 receives one slice step per worker and round (never a
    whole vector from each), and each worker's own counters are exactly its slices: to each other
    owner its slice of its message, to each other rank its packed step."""
    runs = [dict(COMPRESSED_CASE, **COMMON, mpi=ea(wq, sq, topology="sharded", block_size=16))
            for wq, sq in SHARDED_RUNS]
    rc, results, output, _ = run_mpi(tmp_path, 4, problem_cfg(runs, **PROBLEM))
    assert rc == 0, output
    X, y = sparse_problem(**PROBLEM)
    n = N_FEATURES + 1
    bounds = slice_bounds(n, 16, 3)
    assert [hi - lo for lo, hi in bounds] == [32, 48, 41]
    fits = zip(results, *(worker_stats(tmp_path, r) for r in (1, 2, 3)))
    for (wq, sq), (res, *ranks) in zip(SHARDED_RUNS, fits):
        s = res["stats"]
        assert all(r["replica_sha256"] == s["replica_sha256"] for r in ranks), (wq, sq)
        assert s["slices"] == [list(b) for b in bounds]
        rounds = s["rounds"]
        qw, qs = compress.get(wq, 16), compress.get(sq, 16)
        for r, (lo, hi) in zip((1, 2, 3), bounds):
            wst = s["workers"][str(r)]
            step = qs.nbytes(hi - lo)
            assert wst["bytes_in"] == 72 + (rounds + 1) * (80 + step)  # its slice's step to rank 0
            assert wst["bytes_out"] == 72 + 8 * N_FEATURES + rounds * 64 + 72  # go on, or STOP
            others = [b for b in bounds if b != (lo, hi)]
            peer_out = sum(qw.nbytes(h - lo_) for lo_, h in others) + 2 * step
            peer_in = 2 * qw.nbytes(hi - lo) + sum(qs.nbytes(h - lo_) for lo_, h in others)
            own = wst["worker"]
            # the peers also exchange the last round's slices, which rank 0 answers with STOP
            assert own["bytes_sent"] == wst["bytes_in"] + (rounds + 1) * peer_out, (wq, r)
            assert own["bytes_received"] == wst["bytes_out"] + (rounds + 1) * peer_in, (wq, r)
        if wq == "identity":
            batches = contiguous_batches(N_ROWS, 3, BATCH, EPOCHS)
            assert rounds == len(batches[0])
            w, b = efficient_adam_reference(X, y, batches, **COMPRESSED_CASE, regularization="sparse")  # adam's 'auto'
            np.testing.assert_allclose(res["coef"], w, rtol=1e-9, atol=1e-12)
            assert res["intercept"] == pytest.approx(b, rel=1e-9, abs=1e-12)
        else:
            assert s["server_residual_norm"] > 0 and res["history"][-1]["peer_bytes"] > 0


@needs_mpiexec
def test_a_dead_worker_under_sharding_stops_the_run_with_its_rank_named(tmp_path):
    """topology='sharded', K = 4: worker rank 2 (the owner of a slice) dies without finalizing MPI in
    place of its 101st exchange with rank 0, after its 100th round's slices went to its peers. Rank 0
    names it in a WorkerFailure and keeps the 99 rounds applied, its peers stop (they cannot complete
    a round without its slice), and the job ends through MPI_Abort, not a hang."""
    run = dict(optimizer="adam", learning_rate=0.01, epochs=100000, batch_size=1, random_state=0,
               mpi=ea("sign", "sign", topology="sharded", block_size=64, timeout=3))
    cfg = dict(problem_cfg([run], n=400, d=300), fault={"rank": 2, "exchanges": 100, "signal": "EXIT"})
    rc, results, output, seconds = run_mpi(tmp_path, 4, cfg, timeout=120, mpiexec_args=["-disable-auto-cleanup"])
    assert rc != 0 and results is not None, output
    res = results[0]
    assert res["error"]["type"] == "WorkerFailure" and 2 in res["error"]["ranks"], res["error"]
    assert res["t"] == 99 and np.isfinite(res["coef"]).all()
    assert "asyncopt: rank 0: worker rank 2 failed during fit" in output and "MPI_Abort" in output
    assert seconds < 90


@needs_mpiexec
def test_warm_start_is_refused_on_every_rank(tmp_path):
    kw = dict(optimizer="adam", learning_rate=0.05, batch_size=8, epochs=1, random_state=0, warm_start=True)
    rc, results, output, _ = run_mpi(tmp_path, 3, problem_cfg([dict(kw, fits=2, mpi=ea())], **PROBLEM))
    assert rc != 0 and "cannot continue a model (warm_start)" in output, output[-3000:]


@needs_mpiexec
def test_sign_and_identity_reach_the_optimum_on_a9a(tmp_path, a9a_optimum):
    """K = 3 on a9a: sign compression both ways (1 bit per coordinate and a float per block of 64,
    ~1/40 of the dense payload), no compression, and sign with the two workers each serving half of
    the coordinates (topology='sharded') all end within 1% of the L-BFGS optimum's test log-loss."""
    data = shared_data("libsvm", "a9a.xz")
    best_objective, best_test = a9a_optimum
    pairs = [("sign", "sign", "central"), ("identity", "identity", "central"), ("sign", "sign", "sharded")]
    runs = [dict(optimizer="adam", learning_rate=0.01, alpha=1e-4, epochs=3, batch_size=32, random_state=0,
                 mpi=ea(wq, sq, topology=topology, block_size=64)) for wq, sq, topology in pairs]
    rc, results, output, _ = run_mpi(tmp_path, 3, {"data": "a9a", "data_dir": str(data.parent), "runs": runs})
    assert rc == 0, output
    for (wq, sq, topology), res in zip(pairs, results):
        assert abs(res["test_loss"] / best_test - 1) <= 0.01, (wq, sq, topology, res["test_loss"], best_test)
        assert res["history"][-1]["objective"] <= best_objective * 1.02
        s = res["stats"]
        assert s["rows"] >= 3 * 32561 and s["failed"] == []


def test_command_line_checks_the_compression_options(capsys):
    from asyncopt.cli import main

    path = str(shared_data("libsvm", "a9a.t.xz"))
    assert main(["train", path, "--backend", "mpi", "--method", "sync", "--compress", "sign"]) == 2
    assert "--compress: options of --method efficient-adam" in capsys.readouterr().err
    assert main(["train", path, "--backend", "mpi", "--method", "efficient-adam", "--compress", ":sign"]) == 2
    assert "--compress takes W or W:S" in capsys.readouterr().err
    assert main(["train", path, "--backend", "mpi", "--method", "efficient-adam", "--compress", "sign:qsgd3"]) == 2
    assert "server_compressor: QSGD with 3 bits" in capsys.readouterr().err


@needs_mpiexec
def test_command_line_prints_the_epochs_then_the_traffic(tmp_path):
    import os
    import subprocess
    import sys

    data = shared_data("libsvm", "a9a.t.xz")
    cmd = [MPIEXEC, "-n", "3", sys.executable, "-m", "asyncopt", "train", str(data), "--backend", "mpi", "--method",
           "efficient-adam", "--compress", "sign:ternary", "--block-size", "64", "--learning-rate", "0.01",
           "--batch-size", "64", "--epochs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("epoch") for line in lines) == 2
    assert any("efficient-adam: compress sign:ternary, block size 64, topology central, moments worker" in line
               for line in lines), proc.stdout
    traffic = next(line for line in lines if line.startswith("bytes workers->server"))
    from asyncopt.datasets import load_libsvm

    n = load_libsvm(data)[0].shape[1] + 1  # the weights and the intercept
    sign, ternary = compress.get("sign", 64).nbytes(n), compress.get("ternary", 64).nbytes(n)
    assert f"packed payload {2 * sign}); server->workers" in traffic and f"packed payload {2 * ternary})" in traffic
    assert any(line.startswith("residual norms: server") for line in lines)
