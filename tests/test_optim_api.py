"""The update rules on the user's own arrays (asyncopt.optim.Attached, csrc/asyncopt/optim/attached.hpp).

Exact tier: one thread against the dense NumPy reference of each rule (tests/reference.py), dense
and row-sparse gradients with long idle stretches, 1-d and 2-d, float32 and float64, through stamp
rebases, on np.memmap and shared-memory buffers. Statistical tier: two Python threads training an
embedding model reach the one-thread loss. Validation: every bad input names its problem.
"""
import threading
from multiprocessing import shared_memory

import numpy as np
import pytest

import asyncopt
from asyncopt import optim
from reference import rule_reference

# (rule, its parameters, attach's alpha): every schedule, bias correction and shrink path
CONFIGS = {
    "sgd": (asyncopt.SGD(learning_rate=0.1, schedule="constant"), 0.0),
    "sgd-exact-l2-optimal": (asyncopt.SGD(), 0.05),  # Bottou's schedule, lr = alpha^-1/4: tabled steps
    "sgd-exact-l2-constant": (asyncopt.SGD(learning_rate=0.2, schedule="constant"), 0.1),
    "adagrad": (asyncopt.AdaGrad(learning_rate=0.3), 0.0),
    "adagrad-decoupled-invsqrt": (asyncopt.AdaGrad(learning_rate=0.3, schedule="invsqrt"), 0.2),
    "amsgrad": (asyncopt.AMSGrad(learning_rate=0.05), 0.0),
    "amsgrad-bias-invsqrt-decoupled": (asyncopt.AMSGrad(learning_rate=0.05, schedule="invsqrt",
                                                        bias_correction=True), 0.3),
    "adam": (asyncopt.Adam(learning_rate=0.05), 0.0),  # bias correction on: tabled steps
    "adam-constant-decoupled": (asyncopt.Adam(learning_rate=0.05, bias_correction=False, beta1=0.8), 0.4),
}


def reference_kwargs(opt, alpha):
    r = opt.resolved(alpha)
    kw = {"optimizer": r.name, "learning_rate": r.learning_rate, "schedule": r.schedule, "alpha": alpha,
          "regularization": ("exact" if r.name == "sgd" else "decoupled") if alpha else "none"}
    for f in ("beta1", "beta2", "eps", "bias_correction"):
        if hasattr(r, f):
            kw[f] = getattr(r, f)
    return kw


def tolerances(dtype):
    return {"rtol": 1e-9, "atol": 1e-12} if dtype == np.float64 else {"rtol": 2e-4, "atol": 2e-5}


def sparse_steps(rng, shape, n_steps, hot=3):
    """(rows, grad_rows) per step: each step touches 1..hot rows, drawn so that some rows sit idle for
    long stretches (rows of the upper half only every tenth step)."""
    n = shape[0]
    out = []
    for k in range(n_steps):
        pool = np.arange(n) if k % 10 == 0 else np.arange(max(1, n // 2))
        rows = np.sort(rng.choice(pool, size=min(len(pool), int(rng.integers(1, hot + 1))), replace=False))
        out.append((rows, rng.normal(size=(len(rows),) + shape[1:])))
    return out


def dense_of(shape, rows, grad_rows):
    g = np.zeros(shape)
    g[rows] = grad_rows
    return g


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(12, 3), (17,)], ids=["2d", "1d"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_sparse_steps_match_the_dense_reference(config, shape, dtype):
    opt, alpha = CONFIGS[config]
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=shape)
    steps = sparse_steps(rng, shape, 60)
    W = w0.astype(dtype)
    att = opt.attach(W, alpha=alpha)
    tol = tolerances(dtype)
    ref = rule_reference(w0, (dense_of(shape, r, g) for r, g in steps), **reference_kwargs(opt, alpha))
    for (rows, g), want in zip(steps, ref):
        att.step(g.astype(dtype), rows=rows)
        # W is the authority: every row the step touched holds its exact value at this step
        np.testing.assert_allclose(W[rows], want[rows], **tol)
    assert att.steps == len(steps)
    att.finish()
    np.testing.assert_allclose(W, want, **tol)
    # and training continues after finish (new segment from the current step)
    more = sparse_steps(rng, shape, 15)
    ref = rule_reference(w0, [dense_of(shape, r, g) for r, g in steps + more], **reference_kwargs(opt, alpha))
    for rows, g in more:
        att.step(g.astype(dtype), rows=rows)
    att.finish()
    np.testing.assert_allclose(W, list(ref)[-1], **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_dense_steps_match_the_dense_reference(config, dtype):
    opt, alpha = CONFIGS[config]
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=(6, 4))
    grads = [rng.normal(size=w0.shape) for _ in range(25)]
    W = w0.astype(dtype)
    att = opt.attach(W, alpha=alpha)
    for g, want in zip(grads, rule_reference(w0, grads, **reference_kwargs(opt, alpha))):
        att.step(g.astype(dtype))
        np.testing.assert_allclose(W, want, **tolerances(dtype))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_exact_across_stamp_rebases(config):
    """Segments of 7 steps: 80 steps rebase the 32-bit stamps 11 times, idle rows included."""
    opt, alpha = CONFIGS[config]
    rng = np.random.default_rng(11)
    shape = (9, 2)
    w0 = rng.normal(size=shape)
    steps = sparse_steps(rng, shape, 80)
    W = w0.copy()
    att = opt.attach(W, alpha=alpha, segment_steps=7)
    assert att.segment_steps == 7
    ref = list(rule_reference(w0, [dense_of(shape, r, g) for r, g in steps], **reference_kwargs(opt, alpha)))
    for k, (rows, g) in enumerate(steps):
        att.step(g, rows=rows)
        np.testing.assert_allclose(W[rows], ref[k][rows], **tolerances(np.float64))
    assert att._native.rebases == 80 // 7
    att.finish()
    np.testing.assert_allclose(W, ref[-1], **tolerances(np.float64))


def test_catch_up_gives_the_current_iterate_for_a_model_that_reads_w():
    """A gradient computed from W: rows are caught up before they are read (AMSGrad's idle rows
    drift), so the sequence equals dense AMSGrad on the same loss 1/2 ||W[rows] - T[rows]||^2."""
    rng = np.random.default_rng(2)
    shape = (10, 3)
    T = rng.normal(size=shape)
    batches = [np.sort(rng.choice(10, size=2, replace=False)) for _ in range(50)]
    opt = asyncopt.AMSGrad(learning_rate=0.1, bias_correction=True)
    W = np.zeros(shape)
    att = opt.attach(W)
    for rows in batches:
        att.catch_up(rows)
        att.step(W[rows] - T[rows], rows=rows)

    def grad(rows):
        def g(w):
            out = np.zeros(shape)
            out[rows] = w[rows] - T[rows]
            return out
        return g

    want = list(rule_reference(np.zeros(shape), [grad(r) for r in batches], **reference_kwargs(opt, 0.0)))[-1]
    att.finish()
    np.testing.assert_allclose(W, want, rtol=1e-9, atol=1e-12)
    # without the catch-up the gradients would be taken at stale rows: a different sequence
    W2 = np.zeros(shape)
    att2 = opt.attach(W2)
    for rows in batches:
        att2.step(W2[rows] - T[rows], rows=rows)
    att2.finish()
    assert np.abs(W2 - want).max() > 1e-3


def test_untouched_rows_are_lazy_until_finish():
    """What W holds between finish() calls: an idle row keeps its value as of its last update."""
    W = np.ones((4, 2))
    att = asyncopt.AMSGrad(learning_rate=0.1).attach(W)
    att.step(np.ones((4, 2)))  # every row gets momentum
    after_first = W.copy()
    for _ in range(5):
        att.step(np.ones((1, 2)), rows=[0])
    np.testing.assert_array_equal(W[1:], after_first[1:])  # idle, not yet caught up
    att.catch_up([1])
    assert (W[1] < after_first[1]).all()  # momentum kept pushing row 1
    np.testing.assert_array_equal(W[2:], after_first[2:])
    att.finish()
    assert (W[2:] < after_first[2:]).all()


def test_memmap_is_trained_in_place(tmp_path):
    path = tmp_path / "table.f32"
    rng = np.random.default_rng(7)
    w0 = rng.normal(size=(20, 4))
    W = np.memmap(path, dtype=np.float32, mode="w+", shape=w0.shape)
    W[:] = w0
    opt, alpha = CONFIGS["adam"]
    att = opt.attach(W, alpha=alpha)
    steps = sparse_steps(rng, w0.shape, 40)
    for rows, g in steps:
        att.step(g, rows=rows)
    att.finish()
    W.flush()
    want = list(rule_reference(w0, [dense_of(w0.shape, r, g) for r, g in steps], **reference_kwargs(opt, alpha)))[-1]
    on_disk = np.fromfile(path, dtype=np.float32).reshape(w0.shape)
    np.testing.assert_allclose(on_disk, want, **tolerances(np.float32))


def test_shared_memory_buffer_is_trained_in_place():
    rng = np.random.default_rng(8)
    w0 = rng.normal(size=(16, 2))
    shm = shared_memory.SharedMemory(create=True, size=w0.nbytes)
    try:
        W = np.ndarray(w0.shape, dtype=np.float64, buffer=shm.buf)
        W[:] = w0
        opt, alpha = CONFIGS["amsgrad-bias-invsqrt-decoupled"]
        att = opt.attach(W, alpha=alpha)
        steps = sparse_steps(rng, w0.shape, 30)
        for rows, g in steps:
            att.step(g, rows=rows)
        att.finish()
        other = shared_memory.SharedMemory(name=shm.name)  # what another process would see
        seen = np.ndarray(w0.shape, dtype=np.float64, buffer=other.buf).copy()
        other.close()
        want = list(rule_reference(w0, [dense_of(w0.shape, r, g) for r, g in steps],
                                   **reference_kwargs(opt, alpha)))[-1]
        np.testing.assert_allclose(seen, want, **tolerances(np.float64))
        del att, W
    finally:
        shm.close()
        shm.unlink()


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("param,match", [
    (np.zeros((3, 2), dtype=np.int64), "float32 or float64"),
    (np.zeros((3, 2), dtype=np.float16), "float32 or float64"),
    (np.zeros((4, 4))[:, ::2], "C-contiguous"),
    (np.zeros((4, 3)).T, "C-contiguous"),
    (np.zeros((2, 2, 2)), "1-d or 2-d"),
    (np.zeros((0, 3)), "empty"),
    ([[0.0, 1.0]], "numpy array"),
])
def test_bad_param_is_refused(param, match):
    with pytest.raises(ValueError, match=match):
        asyncopt.SGD(learning_rate=0.1).attach(param)


def test_read_only_param_is_refused():
    W = np.zeros((3, 2))
    W.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        asyncopt.Adam().attach(W)


def test_unaligned_param_is_refused():
    raw = np.zeros(8 * 7 + 1, dtype=np.uint8)
    W = raw[1:].view(np.float64)
    assert not W.flags.aligned
    with pytest.raises(ValueError, match="aligned"):
        asyncopt.SGD(learning_rate=0.1).attach(W)


@pytest.mark.parametrize("call,match", [
    (lambda a: a.step(np.zeros((4, 2))), r"shape \(5, 2\)"),
    (lambda a: a.step(np.zeros((2, 3)), rows=[0, 1]), r"shape \(2, 2\)"),
    (lambda a: a.step(np.zeros((2, 2)), rows=[0, 5]), r"in \[0, 5\)"),
    (lambda a: a.step(np.zeros((2, 2)), rows=[-1, 2]), r"in \[0, 5\)"),
    (lambda a: a.step(np.zeros((2, 2)), rows=[3, 3]), "distinct"),
    (lambda a: a.step(np.zeros((2, 2)), rows=[0.0, 1.0]), "integers"),
    (lambda a: a.step(np.zeros((1, 2)), rows=[[0]]), "1-d array of integers"),
    (lambda a: a.step(np.full((5, 2), np.nan)), "NaN or inf"),
    (lambda a: a.step(np.array([[np.inf, 0.0]]), rows=[1]), "NaN or inf"),
    (lambda a: a.step(np.array([["a", "b"]] * 5)), "real numbers"),
    (lambda a: a.catch_up([7]), r"in \[0, 5\)"),
])
def test_bad_step_input_is_refused_before_native_code(call, match):
    W = np.ones((5, 2))
    att = asyncopt.AMSGrad().attach(W)
    with pytest.raises(ValueError, match=match):
        call(att)
    np.testing.assert_array_equal(W, 1.0)  # nothing ran
    assert att.steps == 0


def test_regularization_modes():
    W = np.zeros(4)
    assert asyncopt.SGD(learning_rate=0.1).attach(W, alpha=0.1).regularization == "exact"
    assert asyncopt.AMSGrad().attach(W, alpha=0.1).regularization == "decoupled"
    assert asyncopt.Adam().attach(W).regularization == "none"
    with pytest.raises(ValueError, match="feature counts"):
        asyncopt.Adam().attach(W, alpha=0.1, regularization="sparse")
    with pytest.raises(ValueError, match="must be < "):
        asyncopt.AMSGrad(learning_rate=1.0).attach(W, alpha=0.5)
    with pytest.raises(ValueError, match="segment_steps"):
        asyncopt.SGD().attach(W, segment_steps=0)


def test_grad_is_converted_but_param_never_copied():
    W = np.zeros((3, 2), dtype=np.float32)
    att = asyncopt.SGD(learning_rate=1.0, schedule="constant").attach(W)
    att.step(np.ones((1, 2), dtype=np.float64), rows=np.array([1], dtype=np.int32))
    np.testing.assert_array_equal(W, [[0, 0], [-1, -1], [0, 0]])
    assert att.param is W


# ---------------------------------------------------------------------- threads
@pytest.mark.parametrize("name", ["sgd", "adagrad"])
def test_two_threads_on_disjoint_rows_lose_nothing(name):
    """SGD and AdaGrad without shrink move a coordinate only at its own steps, so two threads on
    disjoint rows must give exactly the serial result whatever the interleaving, also while the
    stamp segments (5 steps) are closed and reopened under them."""
    opt = CONFIGS[name][0]
    rng = np.random.default_rng(4)
    shape = (40, 4)
    w0 = rng.normal(size=shape)
    work = [[(np.sort(rng.choice(np.arange(t, 40, 2), size=3, replace=False)), rng.normal(size=(3, 4)))
             for _ in range(400)] for t in range(2)]
    W = w0.copy()
    att = opt.attach(W, segment_steps=5)

    def run(t):
        for rows, g in work[t]:
            att.step(g, rows=rows)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    att.finish()
    assert att.steps == 800
    W1 = w0.copy()
    serial = opt.attach(W1)
    for t in range(2):
        run_steps = work[t]
        for rows, g in run_steps:
            serial.step(g, rows=rows)
    serial.finish()
    np.testing.assert_allclose(W, W1, rtol=1e-12, atol=1e-14)


def embedding_problem(seed, n_ids=300, dim=8, n_samples=6000, bag=5):
    """Embedding-bag logistic regression: sample i's score is c . sum of the rows of its bag; labels
    drawn from a planted table."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=dim) / np.sqrt(dim)
    true = rng.normal(size=(n_ids, dim))
    bags = rng.integers(0, n_ids, size=(n_samples, bag))
    z = true[bags].sum(axis=1) @ c
    y = np.where(rng.random(n_samples) < 1 / (1 + np.exp(-z)), 1.0, -1.0)
    return bags, y, c


def embedding_loss(E, bags, y, c):
    z = E[bags].sum(axis=1) @ c
    return float(np.mean(np.logaddexp(0.0, -y * z)))


def train_embedding(seed, n_threads, epochs=5, batch=32):
    """AMSGrad through step() from n_threads Python threads (batches dealt round-robin), each
    catching up the rows it reads; returns (final loss, loss of the zero start)."""
    bags, y, c = embedding_problem(seed)
    E = np.zeros((300, 8), dtype=np.float32)
    att = asyncopt.AMSGrad(learning_rate=0.1, schedule="invsqrt", bias_correction=True).attach(E)
    batches = [np.arange(s, min(s + batch, len(y))) for s in range(0, len(y), batch)] * epochs

    def run(t):
        for b in batches[t::n_threads]:
            ids, inverse = np.unique(bags[b], return_inverse=True)
            att.catch_up(ids)
            z = E[bags[b]].sum(axis=1) @ c
            coef = -y[b] / (1 + np.exp(y[b] * z)) / len(b)
            g = np.zeros((len(ids), 8))
            np.add.at(g, inverse.reshape(bags[b].shape), coef[:, None, None] * c[None, None, :])
            att.step(g, rows=ids)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert att.steps == len(batches)
    st = att.staleness()
    assert st["count"] == len(batches) and sum(st["histogram"]) == len(batches)
    if n_threads == 1:
        assert st["max"] == 0
    att.finish()
    return embedding_loss(E, bags, y, c), embedding_loss(np.zeros_like(E), bags, y, c)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_threads_reach_the_one_thread_loss(seed):
    """Margins measured over seeds 0..11, three 2-thread runs each (this build, 2 cores): start
    log 2 = 0.693, one thread 0.31-0.50, two threads within 0.0017 of it. A driver that loses every
    second step ends at least 0.022 above the one-thread loss (measured by training on half the
    batches), so the bound 0.008 (5x the measured spread) tells the two apart. (Whether idle rows
    drift exactly is the exact tier's business: on this problem the drift barely moves the loss.)"""
    one, start = train_embedding(seed, 1)
    two, _ = train_embedding(seed, 2)
    assert start == pytest.approx(np.log(2))
    assert one < start - 0.15
    assert abs(two - one) < 0.008


def test_staleness_counts_the_steps_other_threads_began_since_the_read():
    """Thread A reads (catch_up), the main thread takes 3 steps, A steps: tau = 3; A's next step,
    read at its own previous step, has tau 0. A runs commands from a queue, one at a time, so the
    order is fixed and no scheduling is involved."""
    import queue

    W = np.zeros((4, 2))
    att = asyncopt.AMSGrad().attach(W)
    g = np.ones((1, 2))
    todo, done = queue.Queue(), queue.Queue()

    def thread_a():
        for f in iter(todo.get, None):
            f()
            done.put(True)

    a = threading.Thread(target=thread_a)
    a.start()

    def in_a(f):
        todo.put(f)
        assert done.get(timeout=30)

    try:
        in_a(lambda: att.catch_up([0]))
        for _ in range(3):
            att.step(g, rows=[1])
        assert att.staleness() == {"count": 3, "mean": 0.0, "max": 0, "histogram": [3]}
        in_a(lambda: att.step(g, rows=[0]))
        in_a(lambda: att.step(g, rows=[0]))
    finally:
        todo.put(None)
        a.join()
    st = att.staleness()
    assert st["count"] == 5 and st["max"] == 3 and st["mean"] == pytest.approx(3 / 5)
    assert st["histogram"] == [4, 0, 1]  # tau = 3 falls in [2, 4)


def _process_steps(t):
    rng = np.random.default_rng(100 + t)
    return [(np.sort(rng.choice(np.arange(t, 40, 2), size=3, replace=False)), rng.normal(size=(3, 4)))
            for _ in range(300)]


def _train_in_process(name, t):
    shm = shared_memory.SharedMemory(name=name)
    try:
        W = np.ndarray((40, 4), dtype=np.float64, buffer=shm.buf)
        att = asyncopt.SGD(learning_rate=0.1, schedule="constant").attach(W)
        for rows, g in _process_steps(t):
            att.step(g, rows=rows)
        att.finish()
        del att, W
    finally:
        shm.close()


def test_two_processes_on_one_shared_memory_buffer():
    """Two processes, each with its own attached SGD, on one shared-memory table (disjoint rows):
    without statistics or shrink a step only adds to its own rows, so the table must equal the
    serial result. (Rules with statistics keep them per process: see the optim docstring.)"""
    import multiprocessing as mp

    w0 = np.random.default_rng(9).normal(size=(40, 4))
    shm = shared_memory.SharedMemory(create=True, size=w0.nbytes)
    try:
        W = np.ndarray(w0.shape, dtype=np.float64, buffer=shm.buf)
        W[:] = w0
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_train_in_process, args=(shm.name, t)) for t in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0]
        serial = w0.copy()
        att = asyncopt.SGD(learning_rate=0.1, schedule="constant").attach(serial)
        for t in range(2):
            for rows, g in _process_steps(t):
                att.step(g, rows=rows)
        np.testing.assert_allclose(W, serial, rtol=1e-12, atol=1e-14)
        assert np.abs(W - w0).min() > 0  # every row moved
        del W
    finally:
        shm.close()
        shm.unlink()
