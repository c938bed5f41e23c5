"""The CUDA path.

Everywhere: the kernels' per-worker code (csrc/asyncopt/gpu) run by the host emulator
(_core.gpu_emulator) against the CPU threads backend and quality thresholds; the estimator's GPU
flow driven through the emulator; errors; device-array intake; and, in a CUDA build, that the
kernels were compiled. Where a GPU is present: GPU vs CPU parity on a9a and news20 (skipped here,
with the reason).
"""
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import asyncopt
from asyncopt import _core, gpu, optim
from asyncopt.backends import cuda as cuda_backend
from asyncopt.datasets import make_sparse_classification
from asyncopt.datasets import load_libsvm
from asyncopt.state import aligned_zeros, state_dtype
from conftest import shared_data, sparse_problem

GPU = gpu.is_available()
needs_gpu = pytest.mark.skipif(not GPU, reason="no CUDA device here" + (
    f" ({gpu.load().no_device_reason()})" if gpu.built() else " (and this build has no CUDA)"))


@pytest.fixture
def emulated(monkeypatch):
    """backend='cuda' fits run on the host emulator (a pretend device of 4 SMs x 8 warps)."""
    monkeypatch.setattr(cuda_backend, "built", lambda: True)  # a build without CUDA has the emulator too
    monkeypatch.setattr(cuda_backend, "engine_module", lambda device: _core.gpu_emulator)
    monkeypatch.setattr(cuda_backend, "device_limits", lambda module, device: (4, 8))


@pytest.fixture(scope="module")
def a9a():
    X, y = load_libsvm(shared_data("libsvm", "a9a.xz"))
    Xt, yt = load_libsvm(shared_data("libsvm", "a9a.t.xz"), n_features=X.shape[1])
    return X.astype(np.float32), y, Xt.astype(np.float32), yt


# ------------------------------------------------------------------ kernel code vs CPU threads
CASES = [("sgd", 1, "none", "constant"), ("sgd", 1, "exact", "constant"), ("sgd", 5, "sparse", "constant"),
         ("sgd", 3, "exact", "invsqrt"), ("amsgrad", 1, "sparse", "constant"), ("amsgrad", 4, "decoupled", "constant"),
         ("amsgrad", 2, "sparse", "invsqrt"), ("adagrad", 1, "sparse", "constant"), ("adagrad", 3, "decoupled", "invsqrt"),
         ("adam", 1, "sparse", "constant"), ("adam", 4, "decoupled", "constant"), ("adam", 2, "none", "invsqrt")]


def _both_engines(opt_name, B, reg, schedule, atomic, workers=1, max_segment=None, epochs=3):
    """One CPU thread (logistic_epoch) and the emulated GPU engine on the same problem; returns the
    two states, the epochs' results and the evaluations."""
    X, y = sparse_problem(n=300, d=120, nnz_per_row=6, seed=3, dtype=np.float32)
    n, d = X.shape
    opt = optim.get(opt_name, schedule=schedule).resolved(0.0)
    alpha = 0.0 if reg == "none" else 1e-3
    sc = opt.step_config(alpha, reg)
    states = [aligned_zeros(d + 1, state_dtype(opt_name, np.float32)) for _ in range(2)]
    counts = np.bincount(X.indices, minlength=d)
    present = np.flatnonzero(counts)
    reg_scale = None
    if reg == "sparse":
        if "reg" in states[0].dtype.names:  # the rule keeps n/d_j in its state
            for st in states:
                st["reg"][present] = n / counts[present]
        else:
            reg_scale = np.zeros(d, np.float32)
            reg_scale[present] = n / counts[present]
    indptr, indices = X.indptr.astype(np.int64), X.indices.astype(np.int32)
    cfg = _core.LogisticConfig()
    cfg.n_threads, cfg.batch_size = 1, B
    cfg.sparse_alpha = alpha if reg == "sparse" else 0.0
    g = _core.GpuConfig()
    g.workers, g.batch_size, g.sparse_alpha, g.atomic = workers, B, cfg.sparse_alpha, atomic
    g.max_batch_nnz = int(np.sort(np.diff(X.indptr))[-B:].sum())
    if max_segment:
        g.max_segment_updates = max_segment
    perm = np.random.default_rng(0).permutation(n).astype(np.int64)
    data = _core.gpu_emulator.Dataset(indptr, indices, X.data, y, d)
    engine = _core.gpu_emulator.LogisticEngine(data, opt.native, states[1], reg_scale, present.astype(np.int32),
                                               perm.copy(), sc, g)
    k, results = 0, []
    for epoch in range(epochs):
        cfg.seed, cfg.k0 = epoch + 11, k
        r_cpu = _core.logistic_epoch(indptr, indices, X.data, d, y, perm, states[0], reg_scale,
                                     present.astype(np.int32), opt.native, sc, cfg)
        r_gpu = engine.epoch(epoch + 11, k)
        results.append((r_cpu, r_gpu))
        k += r_cpu["updates"]
    engine.download_state(states[1])
    evals = (_core.logistic_evaluate(indptr, indices, X.data, d, y, states[0], opt.native, True, 1),
             engine.evaluate(data))
    return states, results, evals, engine


@pytest.mark.parametrize("opt_name,B,reg,schedule", CASES)
def test_one_worker_racy_equals_one_cpu_thread(opt_name, B, reg, schedule):
    """One emulated worker with the CPU's write (load + store) is the CPU's one-thread run to the bit:
    same visiting order (the same per-worker RNG streams), same update rule, same arithmetic."""
    states, results, evals, _ = _both_engines(opt_name, B, reg, schedule, atomic=False)
    for r_cpu, r_gpu in results:
        assert r_gpu["updates"] == r_cpu["updates"] and r_gpu["max"] == 0
    for f in states[0].dtype.names:  # every field of the rule's state
        np.testing.assert_array_equal(states[0][f], states[1][f])
    assert evals[1][1] == evals[0][1]
    assert evals[1][0] == pytest.approx(evals[0][0], rel=1e-12)


@pytest.mark.parametrize("opt_name,B,reg,schedule", [c for c in CASES if c[0] == "sgd"])
def test_one_worker_atomic_matches_cpu_to_rounding(opt_name, B, reg, schedule):
    """The atomic write rounds the step to float32 before adding it: equal up to float32 rounding."""
    states, _, _, _ = _both_engines(opt_name, B, reg, schedule, atomic=True)
    np.testing.assert_allclose(states[1]["w"], states[0]["w"], rtol=1e-4, atol=1e-6)


def test_segments_split_an_epoch_exactly():
    """Capping a segment at 7 updates (tables rebuilt, coordinates settled 40+ times an epoch) changes
    nothing for the decaying schedule with tables."""
    a, _, _, _ = _both_engines("amsgrad", 2, "sparse", "invsqrt", atomic=False)
    b, _, _, _ = _both_engines("amsgrad", 2, "sparse", "invsqrt", atomic=False, max_segment=7)
    np.testing.assert_allclose(b[1]["w"], a[1]["w"], rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("workers,B", [(4, 1), (7, 3)])
def test_lockstep_staleness_is_counted(workers, B):
    """In lockstep rounds of W workers the i-th write of a full round has delay W - 1 - i."""
    _, results, _, _ = _both_engines("sgd", B, "none", "constant", atomic=True, workers=workers, epochs=1)
    r = results[0][1]
    assert r["max"] == workers - 1
    assert r["count"] == r["updates"]
    full_rounds = (300 // workers) // B  # rounds in which every worker still has a batch
    assert r["sum"] >= full_rounds * workers * (workers - 1) // 2
    assert r["hist"].sum() == r["count"]


@pytest.mark.parametrize("opt_name,lr", [("sgd", 0.02), ("amsgrad", 0.003)])
def test_eight_lockstep_workers_reach_the_one_thread_loss_on_a9a(a9a, emulated, opt_name, lr):
    """Eight workers whose updates all read a model 0..7 steps old still end within 3% of the
    one-thread test loss. SGD at a fifth of its default step: at 0.1, 4 epochs of eight stale
    gradients per round end 14% above (with intercept replicas, since removed from the GPU path)."""
    X, y, Xt, yt = a9a
    kw = dict(optimizer=opt_name, learning_rate=lr, epochs=4, random_state=0)
    cpu = asyncopt.LogisticRegression(n_threads=1, **kw).fit(X, y)
    emu = asyncopt.LogisticRegression(backend="cuda", gpu_workers=8, **kw).fit(X, y)
    assert emu.staleness_.max == 7
    assert emu.log_loss(Xt, yt) < 1.03 * cpu.log_loss(Xt, yt)


# ------------------------------------------------------------------ the estimator's GPU flow
def test_estimator_on_the_emulator_equals_the_cpu_fit(emulated):
    X, y = sparse_problem(n=200, d=60, seed=5, dtype=np.float32)
    Xv, yv = sparse_problem(n=50, d=60, seed=6, dtype=np.float32)
    kw = dict(optimizer="amsgrad", epochs=3, random_state=4, alpha=1e-3)
    # the device measures its records exactly: so does the CPU fit compared with it
    cpu = asyncopt.LogisticRegression(n_threads=1, train_loss="exact", **kw).fit(X, y, eval_set=(Xv, yv))
    emu = asyncopt.LogisticRegression(backend="cuda", gpu_workers=1, **kw).fit(X, y, eval_set=(Xv, yv))
    np.testing.assert_array_equal(emu.coef_, cpu.coef_)
    assert emu.intercept_ == cpu.intercept_
    assert emu.coef_.dtype == np.float32 and emu.device_ == "cuda:0" and emu.gpu_workers_ == 1
    assert emu.n_threads_ is None and cpu.device_ == "cpu"
    for a, b in zip(emu.history_, cpu.history_):
        for key in ("train_loss", "objective", "val_loss", "val_accuracy", "updates"):
            assert a[key] == pytest.approx(b[key], rel=1e-9)
    assert emu.t_ == cpu.t_ and emu.staleness_.count == cpu.staleness_.count


def test_float64_input_trains_a_float32_model(emulated):
    X, y = sparse_problem(n=120, d=40, seed=1)
    m = asyncopt.LogisticRegression(backend="cuda", epochs=2, random_state=0).fit(X, y)
    ref = asyncopt.LogisticRegression(backend="cuda", epochs=2, random_state=0).fit(X.astype(np.float32), y)
    assert m.coef_.dtype == np.float32
    np.testing.assert_array_equal(m.coef_, ref.coef_)
    assert m.score(X, y) > 0.8


def test_partial_fit_warm_start_and_callback(emulated):
    X, y = sparse_problem(n=150, d=50, seed=2, dtype=np.float32)
    labels = np.where(y > 0, "spam", "ham")
    m = asyncopt.LogisticRegression(backend="cuda", random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        m.partial_fit(X, labels)
    m.partial_fit(X[:80], labels[:80], classes=["ham", "spam"])
    m.partial_fit(X[80:], labels[80:])
    assert m.n_iter_ == 1 and len(m.history_) == 2 and list(m.classes_) == ["ham", "spam"]
    seen = []

    def callback(rec):
        seen.append(w.coef_.copy())  # the model of that epoch, copied back from the device
        return rec["epoch"] == 4

    w = asyncopt.LogisticRegression(backend="cuda", epochs=2, warm_start=True, random_state=0, callback=callback)
    w.fit(X, labels).fit(X, labels)
    assert w.n_iter_ == 2 and len(w.history_) == 4
    assert not np.array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(seen[-1], w.coef_)
    cpu64 = asyncopt.LogisticRegression(epochs=1, warm_start=True).fit(X.astype(np.float64), labels)
    cpu64.set_params(backend="cuda")
    with pytest.raises(ValueError, match="float32"):
        cpu64.fit(X, labels)


def test_gpu_parameter_errors(emulated):
    X, y = sparse_problem(n=40, d=20, seed=0)
    cases = [
        (dict(backend="cuda", optimizer="amsgrad", gpu_update="atomic"), "not an addition"),
        (dict(backend="cuda", gpu_update="fast"), "gpu_update must be"),
        (dict(backend="cuda", gpu_workers=0), "gpu_workers"),
        (dict(device="gpu"), "device must be"),
        (dict(device="cuda:x"), "device must be"),
        (dict(backend="cuda", device="cpu"), "backend='threads'"),
        (dict(backend="mpi", device="cuda"), "one GPU"),
        (dict(gpu_workers=4), "gpu_workers=4 is a setting of backend='cuda', but backend is 'threads'"),
        (dict(device="cuda"), "pass backend='cuda'"),
        (dict(backend="gpu"), "backend must be"),
    ]
    for kw, msg in cases:
        with pytest.raises(ValueError, match=msg):
            asyncopt.LogisticRegression(**kw).fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        asyncopt.LogisticRegression(backend="cuda").fit(X, np.ones(40))
    with pytest.raises(ValueError, match="trains exactly two classes"):
        asyncopt.LogisticRegression(backend="cuda").fit(X, np.arange(40) % 3)
    bad = X.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        asyncopt.LogisticRegression(backend="cuda").fit(bad, y)
    huge = X.copy()
    huge.data[0] = 1e300
    with pytest.raises(ValueError, match="float32"):
        asyncopt.LogisticRegression(backend="cuda").fit(huge, y)


def test_native_engine_rejects_bad_arguments():
    X, y = sparse_problem(n=30, d=10, seed=0, dtype=np.float32)
    em = _core.gpu_emulator
    indptr, indices = X.indptr.astype(np.int64), X.indices.astype(np.int32)
    with pytest.raises(ValueError, match="-1 and \\+1"):
        em.Dataset(indptr, indices, X.data, np.where(y > 0, 2.0, 0.0), 10)
    with pytest.raises(ValueError, match="dtype"):
        em.Dataset(indptr, indices, X.data.astype(np.float64), y, 10)
    data = em.Dataset(indptr, indices, X.data, y, 10)
    state = aligned_zeros(11, state_dtype("sgd", np.float32))
    sc = optim.SGD().resolved(0.0).step_config(0.0, "none")
    g = _core.GpuConfig()
    active = np.arange(10, dtype=np.int32)
    perm = np.arange(30, dtype=np.int64)
    for field, value, msg in [("workers", 0, "workers"), ("batch_size", 2, "max_batch_nnz")]:
        cfg = _core.GpuConfig()
        setattr(cfg, field, value)
        with pytest.raises(ValueError, match=msg):
            em.LogisticEngine(data, _core.Rule.sgd, state, None, active, perm, sc, cfg)
    with pytest.raises(ValueError, match="out-of-range row"):
        em.LogisticEngine(data, _core.Rule.sgd, state, None, active, perm + 1, sc, g)
    with pytest.raises(ValueError, match="state"):
        em.LogisticEngine(data, _core.Rule.sgd, state[:5], None, active, perm, sc, g)
    with pytest.raises(ValueError, match="state"):  # an SGD state array under Adam's layout
        em.LogisticEngine(data, _core.Rule.adam, state, None, active, perm, sc, g)
    with pytest.raises(TypeError):  # rules are _core.Rule values, not names
        em.LogisticEngine(data, "sgd", state, None, active, perm, sc, g)


# ------------------------------------------------------------------ device arrays (intake)
class _FakeDeviceArray:
    def __init__(self, n, typestr="<f4", strides=None, shape=None, mask=None):
        self.__cuda_array_interface__ = {"shape": shape or (n,), "typestr": typestr, "data": (4096, False),
                                         "version": 3, "strides": strides, "mask": mask}


def test_cuda_array_interface_intake():
    (ptr, kind, size, n), _ = gpu.device_array(_FakeDeviceArray(7, "<i8"), "x")
    assert (ptr, kind, size, n) == (4096, "i", 8, 7)
    for arr, msg in [(_FakeDeviceArray(4, shape=(2, 2)), "1-d"), (_FakeDeviceArray(4, strides=(8,)), "contiguous"),
                     (_FakeDeviceArray(4, "<c8"), "unsupported"), (_FakeDeviceArray(4, mask=1), "masked")]:
        with pytest.raises(ValueError, match=msg):
            gpu.device_array(arr, "x")
    assert gpu.device_array(np.zeros(3), "x") is None  # a host array (its DLPack device is the CPU)


def test_device_csr_recognition():
    X = sp.random(5, 4, density=0.5, format="csr")
    assert gpu.device_csr(X) is None

    class DeviceCsr:
        shape = (3, 4)
        indptr, indices, data = _FakeDeviceArray(4, "<i4"), _FakeDeviceArray(5, "<i4"), _FakeDeviceArray(5)

    arrays, shape = gpu.device_csr(DeviceCsr())
    assert shape == (3, 4) and [a[0][1] for a in arrays] == ["i", "i", "f"]

    class Mixed(DeviceCsr):
        data = np.zeros(5)

    with pytest.raises(ValueError, match="mixes host and device"):
        gpu.device_csr(Mixed())
    with pytest.raises(ValueError, match="dense device array"):
        gpu.device_csr(_FakeDeviceArray(6))


# ------------------------------------------------------------------ build and import
def test_import_does_not_load_cuda():
    code = ("import sys, asyncopt; asyncopt.build_info(); "
            "assert 'asyncopt._cuda' not in sys.modules, 'imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_without_cuda_build_the_gpu_asks_for_a_rebuild(monkeypatch):
    monkeypatch.setattr(gpu, "built", lambda: False)
    assert gpu.device_count() == 0 and not gpu.is_available()
    X, y = sparse_problem(n=30, d=10, seed=0)
    with pytest.raises(ValueError, match="backend 'cuda' is not available in this build.*ASYNCOPT_CUDA=ON"):
        asyncopt.LogisticRegression(backend="cuda").fit(X, y)


@pytest.mark.skipif(not gpu.built(), reason="this build has no CUDA (ASYNCOPT_CUDA=OFF or no nvcc)")
def test_cuda_kernels_were_compiled():
    """The CUDA module's fat binary holds the kernels of every engine variant, for the
    architectures build_info reports."""
    cuda = gpu.load()
    archs = asyncopt.build_info()["cuda_architectures"]
    assert archs and cuda.architectures().split(",") == archs
    blob = Path(cuda.__file__).read_bytes()
    shoff, = struct.unpack_from("<Q", blob, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", blob, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", blob, shoff + i * shentsize) for i in range(shnum)]
    names_at = sections[shstrndx][4]
    found = {blob[names_at + s[0]:blob.index(b"\0", names_at + s[0])].decode(): s for s in sections}
    assert ".nv_fatbin" in found
    _, _, _, _, off, size = found[".nv_fatbin"]
    fatbin = blob[off:off + size]
    assert struct.unpack_from("<I", fatbin, 0)[0] == 0xBA55ED50  # the fat binary's magic
    for kernel in (b"segment_kernel", b"shuffle_kernel", b"finish_kernel", b"evaluate_kernel",
                   b"squared_norm_kernel", b"take_entries", b"label_signs"):
        assert kernel in fatbin, kernel
    # 5 update-rule variants for SGD (atomic and racy) and AMSGrad: 8 segment kernels
    variants = {m for m in fatbin.split(b"\0") if m.startswith(b"_ZN8asyncopt9cuda_exec14segment_kernel")}
    assert len(variants) >= 8


@pytest.mark.skipif(not gpu.built() or GPU, reason="needs a CUDA build on a machine without a GPU")
def test_cuda_build_without_device_says_why():
    X, y = sparse_problem(n=30, d=10, seed=0)
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU"):
        asyncopt.LogisticRegression(backend="cuda").fit(X, y)


# ------------------------------------------------------------------ on a GPU
@needs_gpu
@pytest.mark.parametrize("opt_name,lr", [("sgd", 0.1), ("amsgrad", 0.003)])
def test_gpu_matches_cpu_on_a9a(a9a, opt_name, lr):
    X, y, Xt, yt = a9a
    kw = dict(optimizer=opt_name, learning_rate=lr, epochs=5, random_state=0)
    cpu = asyncopt.LogisticRegression(n_threads=1, **kw).fit(X, y)
    one = asyncopt.LogisticRegression(backend="cuda", gpu_workers=1, gpu_update="racy", **kw).fit(X, y)
    many = asyncopt.LogisticRegression(backend="cuda", **kw).fit(X, y)
    # one warp: the CPU's one-thread run up to the warp's summation order
    np.testing.assert_allclose(one.coef_, cpu.coef_, rtol=1e-3, atol=1e-4)
    assert many.log_loss(Xt, yt) < 1.03 * cpu.log_loss(Xt, yt)


@needs_gpu
def test_gpu_matches_cpu_on_news20():
    X, y = load_libsvm(shared_data("libsvm", "news20bydate_tfidf.binary.train.xz"))
    Xt, yt = load_libsvm(shared_data("libsvm", "news20bydate_tfidf.binary.test.xz"), n_features=X.shape[1])
    kw = dict(optimizer="sgd", learning_rate=1.0, alpha=1e-5, epochs=8, random_state=0)
    cpu = asyncopt.LogisticRegression(**kw).fit(X, y)
    dev = asyncopt.LogisticRegression(backend="cuda", **kw).fit(X, y)
    assert dev.log_loss(Xt, yt) < 1.03 * cpu.log_loss(Xt, yt)


@needs_gpu
def test_cupy_inputs_stay_on_the_device():
    cupy = pytest.importorskip("cupy")
    cusp = pytest.importorskip("cupyx.scipy.sparse")
    X, y = sparse_problem(n=300, d=50, seed=1, dtype=np.float32)
    host = asyncopt.LogisticRegression(backend="cuda", gpu_workers=1, epochs=3, random_state=0).fit(X, y)
    dev = asyncopt.LogisticRegression(backend="cuda", gpu_workers=1, epochs=3, random_state=0)
    dev.fit(cusp.csr_matrix(X), cupy.asarray(y))
    np.testing.assert_allclose(dev.coef_, host.coef_, rtol=1e-5, atol=1e-6)
    bad = cupy.asarray(y).copy()
    bad[0] = 7.0
    with pytest.raises(ValueError, match="third"):
        asyncopt.LogisticRegression(backend="cuda").fit(cusp.csr_matrix(X), bad)


def test_a_divergence_on_the_gpu_raises_with_advice(emulated):
    X, y = make_sparse_classification(n_samples=200, n_features=100, random_state=1)
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        # float32 on the device: features and steps of 1e30 overflow the weights to inf
        asyncopt.LogisticRegression(backend="cuda", learning_rate=1e30, alpha=0.0, epochs=3, tol=None).fit(X * 1e30, y)


def test_ctrl_c_stops_a_device_epoch_before_its_next_segment(emulated, monkeypatch):
    """The engine polls the stop flag before each segment of launches: a stop requested as the third
    epoch begins applies none of its updates (without the poll that epoch would run to its end), and
    the partial epoch is recorded as on the CPU, with KeyboardInterrupt reaching the caller."""
    X, y = make_sparse_classification(n_samples=600, n_features=100, random_state=0)
    real = _core.gpu_emulator.LogisticEngine

    class Engine:  # the emulator's engine, requesting the stop as its third epoch begins
        def __init__(self, *args):
            self._engine = real(*args)
            self.calls = 0

        def epoch(self, *args):
            self.calls += 1
            if self.calls == 3:
                _core.request_stop()  # as the SIGINT handler does, after the epoch loop's own check
            return self._engine.epoch(*args)

        def __getattr__(self, name):
            return getattr(self._engine, name)

    monkeypatch.setattr(_core.gpu_emulator, "LogisticEngine", Engine)
    est = asyncopt.LogisticRegression(backend="cuda", gpu_workers=2, epochs=10, random_state=0, tol=None)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    assert est.history_[-1]["interrupted"] is True and est.n_iter_ == 3
    assert est.t_ == 2 * X.shape[0] == est.history_[-1]["updates"]
    assert np.isfinite(est.coef_).all() and not _core.stop_requested()
