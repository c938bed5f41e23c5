"""The estimator's plumbing into the registries: optimizer objects and names, backend names, and the
settings each backend owns."""
import pickle

import numpy as np
import pytest

import asyncopt
from asyncopt import backends, optim
from asyncopt.settings import LogisticSettings
from conftest import sparse_problem


def test_an_optimizer_object_is_the_same_fit_as_its_flat_parameters():
    X, y = sparse_problem(n=300, d=60, seed=1)
    kw = dict(n_threads=1, epochs=2, random_state=0)
    flat = asyncopt.LogisticRegression(optimizer="amsgrad", beta1=0.8, learning_rate=0.01, **kw).fit(X, y)
    obj = asyncopt.LogisticRegression(optimizer=asyncopt.AMSGrad(beta1=0.8, learning_rate=0.01), **kw).fit(X, y)
    np.testing.assert_array_equal(flat.coef_, obj.coef_)
    # the fitted object has its schedule filled in: the rule's default
    assert obj.optimizer_ == asyncopt.AMSGrad(beta1=0.8, learning_rate=0.01, schedule="constant")
    assert flat.optimizer_ == obj.optimizer_  # the flat form builds the same object
    with pytest.raises(ValueError, match=r"set \['beta1'\] on it instead"):
        asyncopt.LogisticRegression(optimizer=asyncopt.AMSGrad(), beta1=0.5).fit(X, y)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        asyncopt.LogisticRegression(optimizer="adamw").fit(X, y)


def test_the_rule_registry_fills_in_defaults():
    assert optim.names()[:2] == ("sgd", "amsgrad")
    # SGD's default schedule is 'optimal' (first step alpha^(-1/4)), or 'constant' (0.1) without L2
    sgd = optim.get("sgd").resolved(1e-4)
    assert sgd.schedule == "optimal" and sgd.learning_rate == pytest.approx(1e-4 ** -0.25)
    assert optim.get("sgd").resolved(0.0) == optim.SGD(learning_rate=0.1, schedule="constant")
    assert optim.get("sgd", schedule="constant").resolved(1e-4).learning_rate == 0.1
    amsgrad = optim.get("amsgrad").resolved(1e-4)
    assert amsgrad.schedule == "constant" and amsgrad.learning_rate == 0.003
    assert optim.SGD().resolve_regularization("auto", 1e-4) == "exact"
    assert optim.AMSGrad().resolve_regularization("auto", 1e-4) == "sparse"
    assert optim.AMSGrad().resolve_regularization("auto", 0.0) == "none"
    with pytest.raises(ValueError, match="regularization for 'amsgrad'"):
        optim.AMSGrad().resolve_regularization("exact", 1e-4)


def test_the_registry_and_the_compiled_rule_kinds_agree():
    """Every Python rule names a compiled kind and every compiled kind has its class; what a rule
    can do is the compiled rule's declaration (csrc/asyncopt/optim/rules.hpp)."""
    from asyncopt import _core

    assert set(optim.names()) == set(_core.Rule.__members__)
    caps = {name: optim.get(name).capabilities for name in optim.names()}
    assert caps["sgd"]["additive"] and not any(c["additive"] for n, c in caps.items() if n != "sgd")
    assert [n for n, c in caps.items() if c["series"]] == ["adam"]
    assert [n for n, c in caps.items() if c["drift"]] == ["amsgrad"]
    assert optim.SGD().atomic_writes and not optim.Adam().atomic_writes
    # the estimator's rule constants default to each rule's own
    assert optim.get("adam", bias_correction=None).bias_correction is True
    assert optim.get("amsgrad", bias_correction=None).bias_correction is False
    assert optim.get("adagrad", eps=None).eps == 1e-10


def test_settings_are_frozen_picklable_and_compared_by_value():
    s = LogisticSettings(optim.AMSGrad(learning_rate=0.01), 1e-4, "sparse", 4, True, True, 1.0)
    assert pickle.loads(pickle.dumps(s)) == s
    assert s != LogisticSettings(optim.AMSGrad(learning_rate=0.02), 1e-4, "sparse", 4, True, True, 1.0)
    with pytest.raises(Exception):
        s.alpha = 1.0


def test_backend_names_auto_and_unknown():
    X, y = sparse_problem(n=200, d=40, seed=2)
    clf = asyncopt.LogisticRegression(backend="auto", n_threads=1, epochs=1).fit(X, y)
    expected = "cuda" if asyncopt.gpu.is_available() else "threads"
    assert clf.backend_ == expected
    with pytest.raises(ValueError,
                       match=r"backend must be 'auto' or one of \('cuda', 'threads', 'mpi', 'simulate'\).*built here"):
        asyncopt.LogisticRegression(backend="gpu").fit(X, y)
    with pytest.raises(ValueError, match="backend 'cuda' does not train this model"):
        asyncopt.LDA(backend="cuda").fit(np.ones((4, 3)))
    assert "threads" in backends.built("logistic") and "cuda" not in backends.built("lda")


def test_a_setting_of_another_backend_is_refused_not_ignored():
    X, y = sparse_problem(n=50, d=20, seed=3)
    with pytest.raises(ValueError, match="mpi=.* is a setting of backend='mpi', but backend is 'threads'"):
        asyncopt.LogisticRegression(mpi={"method": "sync"}).fit(X, y)
    with pytest.raises(ValueError, match="gpu_update='racy' is a setting of backend='cuda'"):
        asyncopt.LogisticRegression(gpu_update="racy").fit(X, y)
    with pytest.raises(ValueError, match="is a setting of backend='mpi', but backend is 'threads'"):
        asyncopt.LDA(mpi={"method": "async"}).fit(np.ones((4, 3)))
    # device='cpu' means no GPU: accepted by the CPU backends
    asyncopt.LogisticRegression(device="cpu", n_threads=1, epochs=1).fit(X, y)
