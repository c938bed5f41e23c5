"""The parity tier: one test body, run on every backend this build and machine have, for every
update rule of the registry. Each backend trains with one worker in order (threads: one thread;
the GPU engine, on its host emulator and on a real device: one worker; MPI: the synchronous method
with one worker), so each must give the dense NumPy reference's model (tests/reference.py): to
float64 rounding on the CPU backends, to float32 rounding on the GPU (its documented precision).

A backend that is not here is skipped with the reason; a rule added to asyncopt.optim is covered
on every backend without touching this file (the cases are built from the registry)."""
import json

import numpy as np
import pytest

import asyncopt
from asyncopt import _core, gpu, optim
from asyncopt.backends import cuda as cuda_backend
from conftest import sparse_problem
from reference import logistic_reference

PROBLEM = dict(n=60, d=150, seed=3)
COMMON = dict(epochs=3, batch_size=4, shuffle=False, random_state=0, tol=None)


def cases():
    """Two settings per rule: its default regularisation under a constant step, then its other
    mode (or the sparse one) under the decaying invsqrt schedule; the adaptive rules' bias
    correction flipped from their default in the second."""
    out = []
    for name in optim.names():
        cls = optim.REGISTRY[name]
        regs = cls.regularizations
        lr = 0.3 if name == "sgd" else 0.05
        first = dict(optimizer=name, learning_rate=lr, alpha=0.01, regularization=regs[0], schedule="constant")
        second = dict(optimizer=name, learning_rate=lr, alpha=0.01, regularization=regs[-1], schedule="invsqrt")
        if "bias_correction" in {f.name for f in optim.dataclasses.fields(cls)}:
            second["bias_correction"] = not cls().bias_correction
        out += [first, second]
    return out


CASES = cases()


def reference(case, X, y):
    rule = optim.get(case["optimizer"], **{k: v for k, v in case.items() if k not in ("optimizer", "alpha",
                                                                                      "regularization")})
    kw = {f: getattr(rule, f) for f in ("beta1", "beta2", "eps", "bias_correction") if hasattr(rule, f)}
    return logistic_reference(X, y, optimizer=case["optimizer"], learning_rate=case["learning_rate"],
                              schedule=case.get("schedule", "constant"), alpha=case["alpha"],
                              regularization=case["regularization"], batch_size=COMMON["batch_size"],
                              epochs=COMMON["epochs"], **kw)


# ---------------------------------------------------------------------- one worker on each backend
def on_threads(cases, X, y, _):
    return [asyncopt.LogisticRegression(**c, **COMMON, backend="threads", n_threads=1).fit(X, y) for c in cases]


def on_simulate(cases, X, y, _):
    from asyncopt.simulate import constant

    return [asyncopt.LogisticRegression(**c, **COMMON, backend="simulate", simulate=constant(0)).fit(X, y)
            for c in cases]


def on_gpu_emulator(cases, X, y, monkeypatch):
    monkeypatch.setattr(cuda_backend, "built", lambda: True)
    monkeypatch.setattr(cuda_backend, "engine_module", lambda device: _core.gpu_emulator)
    monkeypatch.setattr(cuda_backend, "device_limits", lambda module, device: (4, 8))  # a pretend device
    return on_gpu(cases, X, y, None)


def on_gpu(cases, X, y, _):
    X32 = X.astype(np.float32)
    return [asyncopt.LogisticRegression(**c, **COMMON, backend="cuda", gpu_workers=1, gpu_update="racy").fit(X32, y)
            for c in cases]


def on_mpi_sync(cases, X, y, tmp_path):
    from test_distributed import run_mpi

    runs = [dict(c, **COMMON, mpi={"method": "sync", "timeout": 60}) for c in cases]
    rc, results, output, _ = run_mpi(tmp_path, 2, {"data": "problem", "problem": PROBLEM, "runs": runs})
    assert rc == 0, output

    class Fitted:  # what the body reads of an estimator
        def __init__(self, res):
            self.coef_, self.intercept_ = np.array([res["coef"]]), np.array([res["intercept"]])

    return [Fitted(r) for r in results]


def mpi_missing():
    from test_distributed import MPIEXEC

    return "no mpiexec (pip install 'asyncopt[mpi]')" if MPIEXEC is None else ""


BACKENDS = {
    "threads": (on_threads, lambda: "", 1e-5),
    "simulate": (on_simulate, lambda: "", 1e-5),  # the delay simulator without delay
    "gpu-emulator": (on_gpu_emulator, lambda: "", None),
    "cuda": (on_gpu, lambda: "" if gpu.is_available() else
             "no CUDA device here" + ("" if gpu.built() else " (and this build has no CUDA)"), None),
    "mpi-sync": (on_mpi_sync, mpi_missing, 1e-5),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_rule_with_one_worker_is_the_dense_reference(backend, monkeypatch, tmp_path):
    run, missing, rtol = BACKENDS[backend]
    if missing():
        pytest.skip(missing())
    X, y = sparse_problem(**PROBLEM)
    fitted = run(CASES, X, y, tmp_path if backend == "mpi-sync" else monkeypatch)
    assert len(fitted) == len(CASES)
    for case, est in zip(CASES, fitted):
        w, b = reference(case, X, y)
        if rtol is None:  # a float32 model: rounding of ~1e-7 per step, compounded over 135 steps
            tol = dict(rtol=2e-3, atol=2e-4 * np.abs(w).max())
        else:
            tol = dict(rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(est.coef_[0], w, **tol, err_msg=json.dumps(case))
        np.testing.assert_allclose(est.intercept_[0], b, **tol, err_msg=json.dumps(case))
        # and the model moved far from zero (a rule that did nothing would not be near the reference)
        assert np.abs(w).max() > 0.05


def test_the_cases_cover_every_registered_rule_and_regularisation():
    covered = {(c["optimizer"], c["regularization"]) for c in CASES}
    for name, cls in optim.REGISTRY.items():
        assert {(name, r) for r in cls.regularizations} <= covered
