"""Checkpoints: save / asyncopt.load round trips, fit(checkpoint_every=...) files written
atomically, and resume of an interrupted fit, which with one thread must equal the uninterrupted fit
bit for bit (every rule, both workloads, the GPU engine through its host emulator). Corrupt,
truncated, foreign and mismatched files raise errors that name the problem."""
import io
import json
import os
import pickle
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import asyncopt
from asyncopt import _core, checkpoint
from asyncopt.backends import cuda as cuda_backend
from asyncopt.datasets import make_sparse_classification
from asyncopt.training import EpochLoop


class Crash(Exception):
    """What the tests raise from a callback to stand for a process dying mid-fit."""


def crash_at(epoch):
    def callback(rec):
        if rec["epoch"] == epoch:
            raise Crash
    return callback


def quiet(f, *args, **kwargs):
    """Call f with the 'parameter not saved' warnings (the crashing callback) silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return f(*args, **kwargs)


def interrupted(make, fit_args, path, at, every, **fit_kwargs):
    """The estimator loaded from the last checkpoint of a fit that died after epoch ``at``."""
    est = make(callback=crash_at(at))
    with pytest.raises(Crash):
        quiet(est.fit, *fit_args, checkpoint_every=every, checkpoint_path=path, **fit_kwargs)
    return quiet(asyncopt.load, path)


def same_history(a, b):
    skip = {"time", "epoch_time", "eval_time"}
    return [{k: v for k, v in r.items() if k not in skip} for r in a] == \
        [{k: v for k, v in r.items() if k not in skip} for r in b]


@pytest.fixture(scope="module")
def problem():
    X, y = make_sparse_classification(n_samples=2000, n_features=400, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(0)
    return sp.random(300, 200, density=0.06, random_state=1, data_rvs=lambda n: rng.integers(1, 5, n)).tocsr()


# ------------------------------------------------------------------ resume equals the uninterrupted fit
@pytest.mark.parametrize("optimizer", ["sgd", "amsgrad", "adam", "adagrad"])
@pytest.mark.parametrize("tol", [None, 0.01])
def test_logistic_resume_is_bit_exact_with_one_thread(problem, tmp_path, optimizer, tol):
    X, y = problem
    kw = dict(optimizer=optimizer, n_threads=1, random_state=3, epochs=10, tol=tol)
    full = asyncopt.LogisticRegression(**kw).fit(X, y)
    ck = interrupted(lambda **c: asyncopt.LogisticRegression(**kw, **c), (X, y), tmp_path / "ck.npz", at=5, every=2)
    assert ck.n_iter_ == 4 and ck.t_ == 4 * X.shape[0]  # the epoch-4 checkpoint, not the crashed epoch
    ck.resume(X, y)
    assert np.array_equal(ck.coef_, full.coef_) and np.array_equal(ck.intercept_, full.intercept_)
    assert (ck.t_, ck.n_iter_) == (full.t_, full.n_iter_)
    assert same_history(ck.history_, full.history_)
    assert ck.staleness_.as_dict() == full.staleness_.as_dict()


@pytest.mark.parametrize("kw", [dict(regularization="sparse", batch_size=7, shuffle=False),
                                dict(optimizer="amsgrad", regularization="decoupled", batch_size=3),
                                dict(schedule="invsqrt", learning_rate=0.5, plateau_drops=2, tol=0.05)])
def test_logistic_resume_is_exact_in_other_modes(problem, tmp_path, kw):
    X, y = problem
    X = X.astype(np.float32)
    kw = dict(kw, n_threads=1, random_state=11, epochs=7)
    full = asyncopt.LogisticRegression(**kw).fit(X, y, eval_set=(X[:300], y[:300]))
    ck = interrupted(lambda **c: asyncopt.LogisticRegression(**kw, **c), (X, y), tmp_path / "ck.npz", at=4, every=3,
                     eval_set=(X[:300], y[:300]))
    ck.resume(X, y, eval_set=(X[:300], y[:300]))
    assert np.array_equal(ck.coef_, full.coef_) and ck.t_ == full.t_
    assert same_history(ck.history_, full.history_)


def test_lda_resume_is_bit_exact_with_one_thread(corpus, tmp_path):
    kw = dict(n_components=4, n_threads=1, random_state=0, epochs=8, evaluate_every=2, perp_tol=1e-12,
              batch_size=16, train_perplexity_docs=50)
    full = asyncopt.LDA(**kw).fit(corpus, eval_set=corpus[:40])
    ck = interrupted(lambda **c: asyncopt.LDA(**kw, **c), (corpus,), tmp_path / "lda.npz", at=5, every=2,
                     eval_set=corpus[:40])
    assert ck.n_iter_ == 4
    ck.resume(corpus, eval_set=corpus[:40])
    assert np.array_equal(ck.components_, full.components_) and ck.t_ == full.t_
    assert same_history(ck.history_, full.history_)


def test_lda_perp_tol_stops_a_resumed_fit_where_it_stops_the_whole_one(corpus, tmp_path):
    # a tolerance loose enough to stop mid-fit: the rule must see the evaluations before the checkpoint
    kw = dict(n_components=3, n_threads=1, random_state=2, epochs=20, evaluate_every=1, perp_tol=5.0)
    full = asyncopt.LDA(**kw).fit(corpus)
    assert 2 < full.n_iter_ < 20
    ck = interrupted(lambda **c: asyncopt.LDA(**kw, **c), (corpus,), tmp_path / "lda.npz", at=2, every=1)
    ck.resume(corpus)
    assert ck.n_iter_ == full.n_iter_ and np.array_equal(ck.components_, full.components_)


@pytest.fixture
def emulated(monkeypatch):
    """backend='cuda' fits run on the host emulator (as in test_gpu.py)."""
    monkeypatch.setattr(cuda_backend, "built", lambda: True)
    monkeypatch.setattr(cuda_backend, "engine_module", lambda device: _core.gpu_emulator)
    monkeypatch.setattr(cuda_backend, "device_limits", lambda module, device: (4, 8))


def test_gpu_engine_resume_is_exact_with_one_worker(problem, tmp_path, emulated):
    """The visiting order lives on the device and is reshuffled there: the checkpoint reads it back."""
    X, y = problem
    kw = dict(backend="cuda", gpu_workers=1, random_state=5, epochs=6, tol=None, optimizer="amsgrad")
    full = asyncopt.LogisticRegression(**kw).fit(X, y)
    ck = interrupted(lambda **c: asyncopt.LogisticRegression(**kw, **c), (X, y), tmp_path / "g.npz", at=4, every=3)
    ck.resume(X, y)
    assert np.array_equal(ck.coef_, full.coef_) and same_history(ck.history_, full.history_)


def test_two_thread_resume_reaches_the_same_quality(problem, tmp_path):
    X, y = problem
    kw = dict(n_threads=2, random_state=0, epochs=8, tol=None)
    full = asyncopt.LogisticRegression(**kw).fit(X, y)
    ck = interrupted(lambda **c: asyncopt.LogisticRegression(**kw, **c), (X, y), tmp_path / "ck.npz", at=3, every=2)
    ck.resume(X, y)
    assert ck.n_iter_ == 8 and ck.t_ == full.t_
    # a broken resume (restarted schedule, lost moments, zeroed model) lands far from this
    assert abs(ck.log_loss(X, y) - full.log_loss(X, y)) < 0.01


def test_resume_writes_checkpoints_of_its_own(problem, tmp_path):
    X, y = problem
    kw = dict(n_threads=1, random_state=0, epochs=9, tol=None)
    full = asyncopt.LogisticRegression(**kw).fit(X, y)
    ck = interrupted(lambda **c: asyncopt.LogisticRegression(**kw, **c), (X, y), tmp_path / "a.npz", at=3, every=2)
    ck.callback = crash_at(6)
    with pytest.raises(Crash):
        ck.resume(X, y, checkpoint_every=2, checkpoint_path=tmp_path / "b.npz")
    again = quiet(asyncopt.load, tmp_path / "b.npz")
    assert again.n_iter_ == 4  # resumed after epoch 2, checkpointed every 2 epochs, died in epoch 6
    again.resume(X, y)
    assert np.array_equal(again.coef_, full.coef_)


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip_of_a_logistic_model(tmp_path):
    X, y = make_sparse_classification(n_samples=500, n_features=60, random_state=1)
    labels = np.where(y > 0, "spam", "ham")
    est = asyncopt.LogisticRegression(optimizer=asyncopt.AMSGrad(beta1=0.8), n_threads=1, random_state=4,
                                      epochs=3, alpha=1e-3).fit(X, labels)
    path = est.save(tmp_path / "m.npz")
    # nothing in the file is a pickle: numpy reads every member with pickles refused
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["__meta__"].tobytes())
        assert all(z[k].dtype != object for k in z.files)
    assert meta["asyncopt_version"] == asyncopt.__version__ and meta["estimator"] == "LogisticRegression"
    back = asyncopt.load(path)
    assert back.get_params() == est.get_params()
    assert np.array_equal(back.coef_, est.coef_) and np.array_equal(back.classes_, est.classes_)
    assert list(back.predict(X)) == list(est.predict(X))
    assert (back.t_, back.n_iter_, back.regularization_, back.optimizer_) == \
        (est.t_, est.n_iter_, est.regularization_, est.optimizer_)
    assert same_history(back.history_, est.history_) and back.staleness_.as_dict() == est.staleness_.as_dict()
    assert back._model.array.dtype == est._model.array.dtype  # the AMSGrad moments and maxima, all of them
    assert np.array_equal(back._model.array, est._model.array)
    with pytest.raises(ValueError, match="unfinished fit"):
        back.resume(X, labels)


def test_a_loaded_model_continues_as_the_saved_one_would(tmp_path):
    X, y = make_sparse_classification(n_samples=800, n_features=90, random_state=2)
    kw = dict(optimizer="adam", n_threads=1, random_state=6, epochs=2, tol=None, warm_start=True)
    a = asyncopt.LogisticRegression(**kw).fit(X, y)
    back = asyncopt.load(a.save(tmp_path / "m.npz"))
    a.fit(X, y)
    back.fit(X, y)
    assert np.array_equal(a.coef_, back.coef_) and a.t_ == back.t_
    a.partial_fit(X[:100], y[:100])
    back.partial_fit(X[:100], y[:100])
    assert np.array_equal(a.coef_, back.coef_)


def test_save_load_round_trip_of_an_lda_model(corpus, tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(corpus.toarray(), columns=[f"w{i}" for i in range(corpus.shape[1])])
    est = asyncopt.LDA(n_components=3, n_threads=1, random_state=0, epochs=2).fit(frame)
    back = asyncopt.load(est.save(tmp_path / "lda.npz"))
    assert np.array_equal(back.components_, est.components_)
    assert list(back.feature_names_in_) == list(est.feature_names_in_)
    assert np.allclose(back.transform(frame), est.transform(frame))
    assert back.get_params() == est.get_params()


def test_parameters_that_are_not_data_are_left_out_with_a_warning(problem, tmp_path):
    X, y = problem
    est = asyncopt.LogisticRegression(n_threads=1, epochs=1, callback=lambda r: None,
                                      random_state=np.random.default_rng(0)).fit(X, y)
    with pytest.warns(UserWarning, match="callback"):
        est.save(tmp_path / "m.npz")
    with pytest.warns(UserWarning, match="random_state"):
        back = asyncopt.load(tmp_path / "m.npz")
    assert back.callback is None and back.random_state is None


def test_pickle_keeps_working_beside_save(problem):
    X, y = problem
    est = asyncopt.LogisticRegression(n_threads=1, epochs=2, random_state=0).fit(X, y)
    back = pickle.loads(pickle.dumps(est))
    assert np.array_equal(back.coef_, est.coef_)


# ------------------------------------------------------------------ the file on disk
def test_checkpoints_are_written_atomically(problem, tmp_path, monkeypatch):
    X, y = problem
    path = tmp_path / "ck.npz"
    est = asyncopt.LogisticRegression(n_threads=1, epochs=2, random_state=0).fit(X, y)
    est.save(path)
    good = path.read_bytes()
    real = np.savez

    def dies_midway(f, **members):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        est.save(path)
    monkeypatch.setattr(np, "savez", real)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left
    assert np.array_equal(asyncopt.load(path).coef_, est.coef_)


def test_fit_checkpoints_every_n_epochs_and_at_the_end(problem, tmp_path):
    X, y = problem
    seen = []
    path = tmp_path / "ck.npz"

    def look(rec):
        if path.exists():
            seen.append(quiet(asyncopt.load, path).n_iter_)

    quiet(asyncopt.LogisticRegression(n_threads=1, epochs=7, tol=None, callback=look).fit, X, y,
          checkpoint_every=3, checkpoint_path=path)
    # epoch e's callback runs before e's checkpoint: it sees the file of the last multiple of 3 before e
    assert seen == [3, 3, 3, 6]
    final = asyncopt.load(path)
    assert final.n_iter_ == 7 and "_resume_point" not in final.__dict__  # a finished fit


def corrupt_variants(good):
    """(bytes, what the error must say) for damaged versions of a good checkpoint."""
    out = [(good[: len(good) // 2], "not an asyncopt checkpoint|corrupt"),
           (b"", "not an asyncopt checkpoint"),
           (os.urandom(4096), "not an asyncopt checkpoint"),
           (b"\x93NUMPY" + good[6:200], "not an asyncopt checkpoint")]
    # one flipped byte inside a stored array: the zip member's CRC-32 no longer matches
    z = zipfile.ZipFile(io.BytesIO(good))
    info = z.getinfo("model.array.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    flipped = bytearray(good)
    flipped[start] ^= 0xFF
    out.append((bytes(flipped), "corrupt"))
    return out


def test_corrupt_and_truncated_files_raise_naming_the_problem(problem, tmp_path):
    X, y = problem
    good = asyncopt.LogisticRegression(n_threads=1, epochs=1).fit(X, y).save(tmp_path / "good.npz")
    good = open(good, "rb").read()
    for i, (data, message) in enumerate(corrupt_variants(good)):
        bad = tmp_path / f"bad{i}.npz"
        bad.write_bytes(data)
        with pytest.raises(ValueError, match=message) as e:
            asyncopt.load(bad)
        assert str(bad) in str(e.value)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        asyncopt.load(tmp_path / "missing.npz")


def rewrite(path, edit_meta=None, edit_arrays=None):
    meta, arrays = checkpoint.read(path)
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    members = {"__meta__": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays}
    with open(path, "wb") as f:
        np.savez(f, **members)


def test_mismatched_files_raise_naming_the_problem(problem, tmp_path):
    X, y = problem
    est = asyncopt.LogisticRegression(n_threads=1, epochs=1).fit(X, y)
    cases = [
        (lambda m: m.update(format_version=99), None, "format 99.*upgrade asyncopt"),
        (lambda m: m.update(format="something-else"), None, "not an asyncopt checkpoint"),
        (lambda m: m.update(estimator="SGDClassifier"), None, "not an asyncopt estimator"),
        (lambda m: m["params"].update(penalty="l1"), None, "parameters \\['penalty'\\]"),
        (lambda m: m["model"].update(kind="lda"), None, "not a logistic regression one"),
        (None, lambda a: a.update({"model.array": a["model.array"][:-5]}), "model.array.*needs"),
        (lambda m: m["model"].update(rule="adam"), None, "laid out as"),
        (None, lambda a: a.pop("model.seen"), "lacks the array 'model.seen'"),
        (lambda m: m["model"].pop("t"), None, "corrupt checkpoint \\(missing or malformed entry"),
    ]
    for i, (em, ea, message) in enumerate(cases):
        path = est.save(tmp_path / f"m{i}.npz")
        rewrite(path, em, ea)
        with pytest.raises(ValueError, match=message):
            asyncopt.load(path)


def test_a_foreign_dataclass_is_never_imported(problem, tmp_path):
    X, y = problem
    path = asyncopt.LogisticRegression(n_threads=1, epochs=1).fit(X, y).save(tmp_path / "m.npz")
    rewrite(path, lambda m: m["params"].update(mpi={"__dataclass__": "os:system", "fields": {}}))
    with pytest.raises(ValueError, match="not asyncopt's"):
        asyncopt.load(path)


# ------------------------------------------------------------------ what resume refuses
def test_resume_refuses_other_data_changed_parameters_and_finished_fits(problem, tmp_path):
    X, y = problem
    kw = dict(n_threads=1, random_state=0, epochs=6, tol=None)
    path = tmp_path / "ck.npz"
    ck = interrupted(lambda **c: asyncopt.LogisticRegression(**kw, **c), (X, y), path, at=3, every=2)
    with pytest.raises(ValueError, match="data of the interrupted fit"):
        ck.resume(X, -y)
    with pytest.raises(ValueError, match="data of the interrupted fit"):
        ck.resume(X[:-1], y[:-1])
    ck.set_params(alpha=0.5)
    with pytest.raises(ValueError, match="\\['alpha'\\] differ"):
        ck.resume(X, y)
    ck.set_params(alpha=1e-4, n_threads=2, verbose=0)  # resources may change
    ck.resume(X, y)
    with pytest.raises(ValueError, match="unfinished fit"):
        ck.resume(X, y)  # it is finished now
    with pytest.raises(ValueError, match="unfinished fit"):
        asyncopt.LogisticRegression().resume(X, y)


def test_checkpoint_arguments_are_checked_before_training(problem, tmp_path):
    X, y = problem
    est = asyncopt.LogisticRegression(n_threads=1, epochs=1)
    with pytest.raises(ValueError, match="go together"):
        est.fit(X, y, checkpoint_every=2)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        est.fit(X, y, checkpoint_every=0, checkpoint_path=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="does not exist"):
        est.fit(X, y, checkpoint_every=1, checkpoint_path=tmp_path / "no" / "c.npz")
    with pytest.raises(ValueError, match="is a directory"):
        est.fit(X, y, checkpoint_every=1, checkpoint_path=tmp_path)
    every, writer = est._checkpoint_writer(1, tmp_path / "c.npz", "mpi")  # MPI fits write checkpoints too
    assert every == 1 and callable(writer)
    assert "_model" not in est.__dict__
    with pytest.raises(ValueError, match="fit it first"):
        est.save(tmp_path / "c.npz")


def test_a_loop_without_the_generator_cannot_resume():
    """A checkpoint that holds the model but not its fit's generator: resume says what to do."""
    loop = EpochLoop(3, str, lambda m, r: None, resume=({"records": 1, "epochs": 3, "best": 1.0, "stale": 0,
                                                          "drops": 0, "step_scale": 1.0}, {}))
    with pytest.raises(ValueError, match="warm_start=True"):
        loop.fit_rng(lambda: np.random.default_rng(0))


def test_a_backends_own_state_goes_into_every_checkpoint_and_comes_back():
    """EpochLoop.keep_state: what a backend keeps outside the model (the MPI run's counters and worker
    states, as a JSON tree with its arrays as members: backends/mpi/resume.py) is in every position
    and is handed back on resume; record(final=True) ends the fit, write=False writes nothing."""
    from asyncopt.backends.mpi import resume

    written = []
    loop = EpochLoop(10, str, lambda m, r: None, checkpoint_every=2, checkpoint=lambda p, a: written.append((p, a)))
    tree = {"version": np.int64(7), "workers": {"1": {"order": np.arange(5), "rng": {"state": 2 ** 70}}}, "x": None}
    loop.keep_state(lambda: resume.split(tree, "fit.mpi.server"))
    model = type("M", (), {"history": []})()
    assert not loop.checkpoint_due()
    loop.record(model, {"objective": 1.0})
    assert loop.checkpoint_due() and not written
    loop.record(model, {"objective": 0.9}, write=False)
    assert not written  # a record of a failed or interrupted run keeps the previous checkpoint
    loop.record(model, {"objective": 0.8}, final=True)
    position, arrays = written[-1]
    assert position["finished"] and position["records"] == 3
    meta = json.loads(json.dumps(position))["backend"]  # what the file's JSON holds
    assert meta["version"] == 7 and meta["workers"]["1"]["order"] == {"__array__": "fit.mpi.server.workers.1.order"}
    again = EpochLoop(10, str, lambda m, r: None, resume=(dict(position, finished=False), arrays))
    back = resume.join(*again.keep_state(lambda: ({}, {})))
    assert np.array_equal(back["workers"]["1"]["order"], np.arange(5)) and back["workers"]["1"]["rng"]["state"] == 2 ** 70
    with pytest.raises(ValueError, match="lacks the array 'fit.mpi.server.workers.1.order'"):
        resume.join(meta, {})
    plain = EpochLoop(10, str, lambda m, r: None, resume=({"records": 1, "epochs": 3, "best": 1.0, "stale": 0,
                                                           "drops": 0, "step_scale": 1.0}, {}))
    with pytest.raises(ValueError, match="written by another backend"):
        plain.keep_state(lambda: ({}, {}))
