"""The delay simulator (backend='simulate'): every test deterministic.

- zero delay is the one-thread threads fit bit for bit;
- constant, uniform and traced delays equal a dense NumPy reference of delayed SGD / AMSGrad
  (tests/reference.py: each update's gradient at the iterate d updates earlier, the step applied to
  the current one), across epoch ends (where the lazy rules rebase their stamps) and decaying
  schedules (per-segment tables);
- Picky SGD: threshold infinity is delayed SGD, threshold 0 applies only gradients read at the
  current model, a middle threshold drops what the dense reference drops;
- the same seed gives the same bits; a trace is replayed exactly; virtual workers with a straggler
  give the delays of their event order; bad options raise ValueError.
"""
import math

import numpy as np
import pytest

import asyncopt
from asyncopt import simulate
from asyncopt.simulate import SimOptions, constant, trace, uniform
from conftest import sparse_problem
from reference import delayed_reference


def fit_sim(X, y, sim, **kw):
    params = dict(tol=None, epochs=3, shuffle=False, n_threads=1, random_state=0, backend="simulate", simulate=sim)
    params.update(kw)
    return asyncopt.LogisticRegression(**params).fit(X, y)


def reference_of(clf, X, y, delays, picky_threshold=None, **kw):
    """The dense delayed reference with the estimator's settings (rows in order)."""
    rule = clf.optimizer_
    n_batches = -(-X.shape[0] // clf.batch_size) * clf.n_iter_
    return delayed_reference(X, y, np.broadcast_to(delays, (n_batches,)), optimizer=rule.name,
                             learning_rate=rule.learning_rate, schedule=rule.schedule,
                             bias_correction=getattr(rule, "bias_correction", False), alpha=clf.alpha,
                             regularization=clf.regularization_, batch_size=clf.batch_size, epochs=clf.n_iter_,
                             eps=getattr(rule, "eps", 1e-8), picky_threshold=picky_threshold,
                             intercept_scale=0.01 if rule.schedule == "optimal" else 1.0,
                             **kw)


def signed(y):
    return np.where(y == np.unique(y)[1], 1.0, -1.0)


# ---------------------------------------------------------------------- zero delay
@pytest.mark.parametrize("optimizer,case", [("sgd", {}), ("sgd", dict(alpha=0.05, regularization="exact")),
                                            ("amsgrad", {}), ("amsgrad", dict(alpha=0.05, regularization="sparse"))])
@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("shuffle", [False, True])
def test_zero_delay_is_the_one_thread_threads_fit_bit_for_bit(optimizer, case, batch_size, shuffle):
    X, y = sparse_problem()
    kw = dict(optimizer=optimizer, batch_size=batch_size, shuffle=shuffle, epochs=3, tol=None, random_state=11,
              n_threads=1, **case)
    threads = asyncopt.LogisticRegression(backend="threads", **kw).fit(X, y)
    sim = asyncopt.LogisticRegression(backend="simulate", simulate=constant(0), **kw).fit(X, y)
    np.testing.assert_array_equal(sim.coef_, threads.coef_)
    np.testing.assert_array_equal(sim.intercept_, threads.intercept_)
    assert sim.t_ == threads.t_
    assert sim.history_.column("objective").tolist() == threads.history_.column("objective").tolist()
    assert sim.staleness_.max == 0 and sim.staleness_.count == sim.t_
    assert sim.backend_ == "simulate" and sim.simulate_stats_["dropped"] == 0


def test_zero_delays_with_a_history_kept_are_the_threads_fit_too():
    """A trace whose delays are all 0 once capped (its first, 4, would reach before step 0): the
    history is kept (max delay 4) but never read, and the fit is still the threads fit."""
    X, y = sparse_problem()
    n_updates = X.shape[0] * 2
    delays = np.zeros(n_updates, dtype=np.int64)
    delays[0] = 4  # capped to 0: the first update has nothing earlier to read
    kw = dict(optimizer="amsgrad", epochs=2, tol=None, random_state=3, n_threads=1)
    threads = asyncopt.LogisticRegression(backend="threads", **kw).fit(X, y)
    sim = asyncopt.LogisticRegression(backend="simulate", simulate=trace(delays), **kw).fit(X, y)
    np.testing.assert_array_equal(sim.coef_, threads.coef_)
    assert sim.simulate_stats_["delays"].max() == 0


# ---------------------------------------------------------------------- delayed SGD and AMSGrad
DELAYED_CASES = [
    ("sgd", {}, "constant"),
    ("sgd", dict(alpha=0.05, regularization="exact"), "constant"),  # scaled SGD: reads S_r u
    ("sgd", dict(alpha=0.05, regularization="sparse"), "invsqrt"),
    ("amsgrad", {}, "constant"),
    ("amsgrad", dict(alpha=0.05, regularization="decoupled"), "invsqrt"),
    ("amsgrad", dict(alpha=0.05, regularization="sparse", bias_correction=True), "constant"),
]


@pytest.mark.parametrize("optimizer,case,schedule", DELAYED_CASES)
@pytest.mark.parametrize("delay", [1, 3, 40])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_constant_delay_equals_the_dense_delayed_reference(optimizer, case, schedule, delay, batch_size):
    """40 updates of delay with 80 rows per epoch: reads reach back across the epoch ends, where the
    lazy rules finish every coordinate and rebase their stamps."""
    X, y = sparse_problem()
    lr = 0.5 if optimizer == "sgd" else 0.05
    clf = fit_sim(X, y, SimOptions(delay=constant(delay)), optimizer=optimizer, learning_rate=lr, schedule=schedule,
                  batch_size=batch_size, **case)
    w, b, _ = reference_of(clf, X, signed(y), delay)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)
    # the delays applied: min(delay, k - 1) for update k
    k = np.arange(1, clf.t_ + 1)
    np.testing.assert_array_equal(clf.simulate_stats_["delays"], np.minimum(delay, k - 1))
    assert clf.staleness_.max == min(delay, clf.t_ - 1)
    assert clf.staleness_.total == np.minimum(delay, k - 1).sum()


@pytest.mark.parametrize("optimizer,case", [("adagrad", dict(alpha=0.05, regularization="sparse")),
                                            ("adam", dict(alpha=0.05, regularization="decoupled")),
                                            ("adam", dict(alpha=0.0, regularization="auto", bias_correction=False))])
@pytest.mark.parametrize("schedule", ["constant", "invsqrt"])
def test_the_other_rules_under_a_constant_delay_equal_the_reference(optimizer, case, schedule):
    X, y = sparse_problem()
    clf = fit_sim(X, y, constant(7), optimizer=optimizer, learning_rate=0.05, schedule=schedule, batch_size=2, **case)
    w, b, _ = reference_of(clf, X, signed(y), 7)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)


def test_the_delay_changes_the_fit():
    """The reference check above would pass for a simulator that ignored its delays only if the
    delays made no difference: they do."""
    X, y = sparse_problem()
    a = fit_sim(X, y, constant(0), learning_rate=0.5)
    b = fit_sim(X, y, constant(3), learning_rate=0.5)
    assert np.abs(a.coef_ - b.coef_).max() > 1e-3


@pytest.mark.parametrize("optimizer", ["sgd", "amsgrad"])
def test_uniform_delays_equal_the_reference_with_the_drawn_delays(optimizer):
    X, y = sparse_problem()
    clf = fit_sim(X, y, uniform(12), optimizer=optimizer, learning_rate=0.5 if optimizer == "sgd" else 0.05,
                  batch_size=2)
    delays = clf.simulate_stats_["delays"]
    assert delays.shape == (clf.t_,) and delays.max() <= 11 and len(np.unique(delays)) == 12
    w, b, _ = reference_of(clf, X, signed(y), delays)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)
    assert clf.staleness_.total == delays.sum() and clf.staleness_.count == clf.t_


def test_the_same_seed_gives_the_same_bits():
    X, y = sparse_problem()
    kw = dict(optimizer="amsgrad", shuffle=True, random_state=7)
    one, two = fit_sim(X, y, uniform(8), **kw), fit_sim(X, y, uniform(8), **kw)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    np.testing.assert_array_equal(one.simulate_stats_["delays"], two.simulate_stats_["delays"])
    other = fit_sim(X, y, uniform(8), **dict(kw, random_state=8))
    assert not np.array_equal(one.simulate_stats_["delays"], other.simulate_stats_["delays"])
    assert not np.array_equal(one.coef_, other.coef_)


def test_a_trace_is_replayed_exactly():
    X, y = sparse_problem()
    rng = np.random.default_rng(5)
    n_updates = X.shape[0] * 3
    given = rng.integers(0, 30, size=n_updates)
    clf = fit_sim(X, y, trace(given), learning_rate=0.5)
    k = np.arange(1, n_updates + 1)
    applied = np.minimum(given, k - 1)
    np.testing.assert_array_equal(clf.simulate_stats_["delays"], applied)
    st = clf.staleness_
    assert (st.count, st.total, st.max) == (n_updates, applied.sum(), applied.max())
    bins = np.zeros_like(st.histogram)
    np.add.at(bins, np.where(applied == 0, 0, np.floor(np.log2(np.maximum(applied, 1))).astype(int) + 1), 1)
    np.testing.assert_array_equal(st.histogram, bins)
    w, b, _ = reference_of(clf, X, signed(y), applied)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    # a trace shorter than the fit repeats from its start
    short = fit_sim(X, y, trace([2, 0, 5]), epochs=1)
    np.testing.assert_array_equal(short.simulate_stats_["delays"][3:12], np.tile([2, 0, 5], 3))


# ---------------------------------------------------------------------- Picky SGD
def test_picky_with_infinite_threshold_is_delayed_sgd():
    X, y = sparse_problem()
    kw = dict(learning_rate=0.5, alpha=0.01, regularization="sparse")  # what 'auto' resolves to with Picky
    plain = fit_sim(X, y, SimOptions(delay=uniform(10)), **kw)
    picky = fit_sim(X, y, SimOptions(delay=uniform(10), picky_threshold=math.inf), **kw)
    assert picky.regularization_ == plain.regularization_ == "sparse"
    np.testing.assert_array_equal(picky.coef_, plain.coef_)
    np.testing.assert_array_equal(picky.intercept_, plain.intercept_)
    w, b, _ = reference_of(picky, X, signed(y), picky.simulate_stats_["delays"], picky_threshold=math.inf)
    np.testing.assert_allclose(picky.coef_[0], w, rtol=1e-5, atol=1e-12)
    assert picky.simulate_stats_["dropped"] == 0 and picky.simulate_stats_["accepted_fraction"] == 1.0


def test_picky_with_threshold_zero_applies_only_gradients_read_at_the_current_model():
    """Delays alternate 0, 3: every delayed read has an applied zero-delay update after it, so the
    model moved and threshold 0 drops it; the zero-delay updates are all applied."""
    X, y = sparse_problem()
    n_updates = X.shape[0] * 3
    delays = np.tile([0, 3], n_updates // 2)
    clf = fit_sim(X, y, SimOptions(delay=trace(delays), picky_threshold=0.0), learning_rate=0.5)
    stats = clf.simulate_stats_
    applied = np.minimum(delays, np.arange(n_updates))
    np.testing.assert_array_equal(stats["accepted"], applied == 0)
    assert stats["dropped"] == np.count_nonzero(applied) and clf.staleness_.max == 0
    assert clf.staleness_.count == np.count_nonzero(applied == 0) and clf.t_ == n_updates
    assert sum(r["dropped"] for r in clf.history_) == stats["dropped"]
    w, b, ok = reference_of(clf, X, signed(y), applied, picky_threshold=0.0)
    np.testing.assert_array_equal(ok, applied == 0)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)


def test_picky_drops_what_the_dense_reference_drops():
    X, y = sparse_problem()
    clf = fit_sim(X, y, SimOptions(delay=uniform(20), picky_threshold=0.6), learning_rate=0.5, batch_size=2,
                  alpha=0.01, regularization="sparse")
    stats = clf.simulate_stats_
    w, b, ok = reference_of(clf, X, signed(y), stats["delays"], picky_threshold=0.6)
    assert 0.1 < stats["accepted_fraction"] < 0.95, "the threshold must drop some updates and keep others"
    np.testing.assert_array_equal(stats["accepted"], ok)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)
    assert clf.staleness_.count == np.count_nonzero(ok)
    assert clf.staleness_.total == stats["delays"][ok].sum()


# ---------------------------------------------------------------------- options
@pytest.mark.parametrize("make,match", [
    (lambda: constant(-1), "must be >= 0"),
    (lambda: constant(1.5), "must be an integer"),
    (lambda: uniform(0), "must be >= 1"),
    (lambda: trace([]), "non-empty"),
    (lambda: trace([1, -2]), ">= 0"),
    (lambda: trace([0.5]), "integers"),
    (lambda: SimOptions(delay=3), "delay model"),
    (lambda: SimOptions(picky_threshold=-1.0), ">= 0"),
    (lambda: SimOptions(picky_threshold=float("nan")), ">= 0"),
    (lambda: SimOptions(picky_threshold="big"), "a number"),
    (lambda: simulate.resolve_options({"delay": constant(1), "workers": 3}), "unknown options"),
    (lambda: simulate.resolve_options("uniform"), "simulate must be"),
    (lambda: simulate.straggler(0, 2.0), "must be >= 1"),
    (lambda: simulate.straggler(3, 0.5), "slowdown must be"),
    (lambda: simulate.straggler(3, math.inf), "slowdown must be"),
])
def test_bad_options_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_fits_raise():
    X, y = sparse_problem(n=40, d=30)
    with pytest.raises(ValueError, match="is a setting of backend='simulate', but backend is 'threads'"):
        asyncopt.LogisticRegression(simulate=constant(2)).fit(X, y)
    with pytest.raises(ValueError, match="runs SGD"):
        fit_sim(X, y, SimOptions(picky_threshold=1.0), optimizer="amsgrad")
    with pytest.raises(ValueError, match="regularization='exact'"):
        fit_sim(X, y, SimOptions(picky_threshold=1.0), alpha=0.01, regularization="exact")
    with pytest.raises(ValueError, match="trains exactly two classes"):
        fit_sim(X, np.arange(X.shape[0]) % 3, constant(1))
    with pytest.raises(ValueError, match="partial_fit is not available with backend='simulate'"):
        asyncopt.LogisticRegression(backend="simulate").partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="simulate must be"):
        fit_sim(X, y, "uniform")
    # a dict of SimOptions' fields is accepted
    clf = fit_sim(X, y, {"delay": constant(1), "picky_threshold": None}, epochs=1)
    assert clf.staleness_.max == 1


def test_the_native_loop_refuses_delays_beyond_its_history():
    from asyncopt import _core, optim
    from asyncopt.settings import LogisticSettings
    from asyncopt.state import LogisticState

    X, y = sparse_problem(n=10, d=20)
    st = LogisticState(20, np.float64, np.array([0, 1]), "sgd")
    st.active = np.arange(20, dtype=np.int32)
    settings = LogisticSettings(optim.SGD(learning_rate=0.1, schedule="constant"), 0.0, "none", 1, False, True, 1.0)
    sim = _core.DelaySimulator(st.array, 20, _core.Rule.sgd, "float64", settings.step_config(),
                               settings.native_config(1), st.active, None, 2, -1.0, 0)
    Xn = (X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data)
    with pytest.raises(ValueError, match="outside \\[0, max_delay = 2\\]"):
        sim.epoch(*Xn, signed(y), np.arange(10, dtype=np.int64), np.full(10, 3, dtype=np.int64), 0)
    with pytest.raises(ValueError, match="expected length 10"):
        sim.epoch(*Xn, signed(y), np.arange(10, dtype=np.int64), np.zeros(9, dtype=np.int64), 0)


def test_checkpoints_are_refused(tmp_path):
    X, y = sparse_problem(n=40, d=30)
    clf = asyncopt.LogisticRegression(backend="simulate", simulate=constant(1), epochs=2)
    with pytest.raises(ValueError, match="checkpoints are not available with backend='simulate'"):
        clf.fit(X, y, checkpoint_every=1, checkpoint_path=tmp_path / "c.npz")


# ---------------------------------------------------------------------- virtual workers
def naive_worker_delays(compute, count):
    """The same event order by brute force: at each write, the worker whose compute ends first
    (ties: the lower worker) writes; its delay is the writes since its read."""
    finish = list(compute)
    read = [0] * len(compute)
    out = []
    for step in range(1, count + 1):
        w = min(range(len(compute)), key=lambda v: (finish[v], v))
        out.append(step - 1 - read[w])
        read[w] = step
        finish[w] += compute[w]
    return np.array(out)


def test_homogeneous_workers_give_n_minus_one_once_started():
    X, y = sparse_problem()
    clf = fit_sim(X, y, simulate.straggler(4, 1), learning_rate=0.5)
    delays = clf.simulate_stats_["delays"]
    np.testing.assert_array_equal(delays[:4], [0, 1, 2, 3])
    assert (delays[4:] == 3).all()
    # four writes per time unit: 80 updates an epoch take 20 units of simulated time
    assert [r["simulated_time"] for r in clf.history_] == [20.0, 40.0, 60.0]
    assert fit_sim(X, y, constant(2), epochs=1).history_[0]["simulated_time"] is None


@pytest.mark.parametrize("n,slowdown", [(3, 7.0), (5, 2.5), (2, 30.0)])
def test_a_straggler_gives_the_event_order_delays_and_the_reference_fit(n, slowdown):
    X, y = sparse_problem()
    model = simulate.straggler(n, slowdown)
    clf = fit_sim(X, y, model, learning_rate=0.5, batch_size=2)
    delays = clf.simulate_stats_["delays"]
    np.testing.assert_array_equal(delays, naive_worker_delays([slowdown] + [1.0] * (n - 1), clf.t_))
    assert delays.max() <= model.max_delay and delays.max() >= (n - 1) * int(slowdown) - n
    w, b, _ = reference_of(clf, X, signed(y), delays)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)


def test_one_worker_is_the_threads_fit():
    X, y = sparse_problem()
    kw = dict(optimizer="amsgrad", shuffle=True, epochs=2, tol=None, random_state=4, n_threads=1)
    threads = asyncopt.LogisticRegression(backend="threads", **kw).fit(X, y)
    sim = asyncopt.LogisticRegression(backend="simulate", simulate=simulate.straggler(1, 5.0), **kw).fit(X, y)
    np.testing.assert_array_equal(sim.coef_, threads.coef_)


def test_plateau_drops_and_a_warm_start_follow_the_threads_fit():
    """The estimator's defaults (tol, plateau drops of the step between epochs), then a warm-started
    second fit: at zero delay still the threads fit bit for bit; a continued fit's delays start
    again at 0 (its history holds only its own updates)."""
    X, y = sparse_problem()
    kw = dict(n_threads=1, random_state=2, epochs=12, warm_start=True)
    threads = asyncopt.LogisticRegression(backend="threads", **kw).fit(X, y)
    sim = asyncopt.LogisticRegression(backend="simulate", simulate=constant(0), **kw).fit(X, y)
    assert len({r.get("step_scale") for r in threads.history_}) > 1, "the defaults must drop the step here"
    np.testing.assert_array_equal(sim.coef_, threads.coef_)
    threads.fit(X, y)
    sim.fit(X, y)
    np.testing.assert_array_equal(sim.coef_, threads.coef_)
    t0 = sim.t_
    sim.set_params(simulate=constant(5)).fit(X, y)
    delays = sim.simulate_stats_["delays"]
    np.testing.assert_array_equal(delays[:6], [0, 1, 2, 3, 4, 5])
    assert sim.t_ > t0


@pytest.mark.parametrize("optimizer", ["sgd", "amsgrad"])
def test_float32_and_sample_weights(optimizer):
    """float32 models (the rules' float arithmetic) and per-row weights: at zero delay the threads
    fit bit for bit, under a delay the float64 reference up to float32 rounding."""
    X, y = sparse_problem(dtype=np.float32)
    weight = np.random.default_rng(1).uniform(0.5, 2.0, size=X.shape[0])
    kw = dict(optimizer=optimizer, epochs=2, tol=None, random_state=5, n_threads=1)
    threads = asyncopt.LogisticRegression(backend="threads", **kw).fit(X, y, sample_weight=weight)
    sim = asyncopt.LogisticRegression(backend="simulate", simulate=constant(0), **kw).fit(X, y, sample_weight=weight)
    assert sim.coef_.dtype == np.float32
    np.testing.assert_array_equal(sim.coef_, threads.coef_)
    lr = 0.5 if optimizer == "sgd" else 0.05
    delayed = fit_sim(X, y, constant(4), optimizer=optimizer, learning_rate=lr, schedule="constant")
    w, b, _ = reference_of(delayed, X.astype(np.float64), signed(y), 4)
    np.testing.assert_allclose(delayed.coef_[0], w, rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(delayed.intercept_[0], b, rtol=2e-3, atol=1e-5)


def test_workers_with_exponential_times_are_seeded_and_average_n_minus_one():
    """n workers with i.i.d. exponential job times: every update's delay is the writes of the others
    during its job, whose mean is n - 1 once started (each of the n jobs in flight is equally likely
    to end next); seeded like the rest, and the fit is the dense reference with those delays."""
    X, y = sparse_problem()
    model = simulate.workers(8, "exponential")
    one = fit_sim(X, y, model, learning_rate=0.5, shuffle=True, random_state=3, epochs=6)
    two = fit_sim(X, y, model, learning_rate=0.5, shuffle=True, random_state=3, epochs=6)
    delays = one.simulate_stats_["delays"]
    np.testing.assert_array_equal(delays, two.simulate_stats_["delays"])
    np.testing.assert_array_equal(one.coef_, two.coef_)
    assert 5.5 < delays[20:].mean() < 8.5 and len(np.unique(delays)) > 8 and delays.max() <= model.max_delay
    times = [r["simulated_time"] for r in one.history_]
    assert all(0 < a < b for a, b in zip(times, times[1:]))
    rows = fit_sim(X, y, model, learning_rate=0.5, random_state=3, epochs=2)
    w, b, _ = reference_of(rows, X, signed(y), rows.simulate_stats_["delays"])
    np.testing.assert_allclose(rows.coef_[0], w, rtol=1e-5, atol=1e-12)
    # constant job times are straggler(n, 1)
    np.testing.assert_array_equal(fit_sim(X, y, simulate.workers(5, "constant"), epochs=1).simulate_stats_["delays"],
                                  fit_sim(X, y, simulate.straggler(5, 1), epochs=1).simulate_stats_["delays"])


def test_workers_beyond_the_history_bound_stop_with_an_error():
    X, y = sparse_problem()
    with pytest.raises(ValueError, match="beyond the 2 updates the iterate history keeps"):
        fit_sim(X, y, simulate.workers(6, "exponential", max_delay=2))
    with pytest.raises(ValueError, match="compute must be one of"):
        simulate.workers(3, "pareto")


# ---------------------------------------------------------------------- Pareto and mixture delays
def test_a_mixture_draws_small_or_large_with_its_probability_and_is_seeded():
    X, y = sparse_problem()
    model = simulate.mixture_with_mean(4, large=40)
    assert model == simulate.mixture(0.1, 0, 40) and model.mean == pytest.approx(4) and model.max_delay == 40
    one = fit_sim(X, y, model, learning_rate=0.5, shuffle=True, random_state=3, epochs=4)
    two = fit_sim(X, y, model, learning_rate=0.5, shuffle=True, random_state=3, epochs=4)
    delays = one.simulate_stats_["delays"]
    np.testing.assert_array_equal(delays, two.simulate_stats_["delays"])
    np.testing.assert_array_equal(one.coef_, two.coef_)
    late = delays[40:]  # past the cap of the first 40 updates
    assert set(np.unique(late)) == {0, 40} and 0.04 < np.mean(late == 40) < 0.2
    rows = fit_sim(X, y, model, learning_rate=0.5, epochs=2)
    w, b, _ = reference_of(rows, X, signed(y), rows.simulate_stats_["delays"])
    np.testing.assert_allclose(rows.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(rows.intercept_[0], b, rtol=1e-5, atol=1e-12)


def test_pareto_workers_give_their_event_order_and_a_heavy_tail():
    """n workers with Pareto job times of mean 1: the delays are the event order of the drawn job
    times (brute force over the same draws), mean about n - 1 with a heavy tail; the fit is seeded
    and equals the dense reference with its delays."""
    model = simulate.pareto(6, 1.5)
    count = 4000
    got = model.stream(np.random.default_rng(2))(count)
    rng = np.random.default_rng(2)
    finish = list(model.job_times(rng, 6))
    later = model.job_times(rng, count)
    read = [0] * 6
    want = []
    for step in range(1, count + 1):
        w = min(range(6), key=lambda v: (finish[v], v))
        want.append(step - 1 - read[w])
        read[w] = step
        finish[w] += later[step - 1]
    np.testing.assert_array_equal(got, want)
    assert 3.5 < got[100:].mean() < 6.5 and got.max() > 8 * got.mean()
    assert model.job_times(np.random.default_rng(0), 200_000).mean() == pytest.approx(1.0, rel=0.1)
    X, y = sparse_problem()
    clf = fit_sim(X, y, model, learning_rate=0.5, epochs=3, random_state=9)
    delays = clf.simulate_stats_["delays"]
    again = fit_sim(X, y, model, learning_rate=0.5, epochs=3, random_state=9)
    np.testing.assert_array_equal(delays, again.simulate_stats_["delays"])
    np.testing.assert_array_equal(clf.coef_, again.coef_)
    times = [r["simulated_time"] for r in clf.history_]
    assert all(0 < a < b for a, b in zip(times, times[1:]))
    w, b, _ = reference_of(clf, X, signed(y), delays)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("make,match", [
    (lambda: simulate.mixture(1.5, 0, 10), "p must be in"),
    (lambda: simulate.mixture(0.1, 10, 2), "large must be >= small"),
    (lambda: simulate.mixture(0.1, 0, -1), "must be >= 0"),
    (lambda: simulate.mixture_with_mean(20, large=10), "must lie in"),
    (lambda: simulate.pareto(4, 1.0), "shape must be a finite number > 1"),
    (lambda: simulate.pareto(0, 2.0), "must be >= 1"),
    (lambda: SimOptions(delay_adaptive=0), "delay_adaptive must be a number > 0"),
    (lambda: SimOptions(picky_relative=True), "needs a picky_threshold"),
    (lambda: SimOptions(delay=uniform(4), synchronous=True), "give a straggler, workers or pareto"),
    (lambda: SimOptions(delay=simulate.straggler(3, 2), synchronous=True, picky_threshold=1.0), "do not apply"),
])
def test_bad_new_options_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------------- delay-adaptive and synchronous SGD
def test_delay_adaptive_with_infinite_c_is_delayed_sgd_bit_for_bit():
    X, y = sparse_problem()
    kw = dict(learning_rate=0.5, alpha=0.01, regularization="sparse", batch_size=2)
    plain = fit_sim(X, y, SimOptions(delay=uniform(10)), **kw)
    adaptive = fit_sim(X, y, SimOptions(delay=uniform(10), delay_adaptive=math.inf), **kw)
    np.testing.assert_array_equal(adaptive.coef_, plain.coef_)
    np.testing.assert_array_equal(adaptive.intercept_, plain.intercept_)


@pytest.mark.parametrize("schedule", ["constant", "invsqrt"])
@pytest.mark.parametrize("c", [1.0, 3.5])
def test_delay_adaptive_equals_the_dense_reference(schedule, c):
    X, y = sparse_problem()
    clf = fit_sim(X, y, SimOptions(delay=uniform(12), delay_adaptive=c), learning_rate=0.5, schedule=schedule,
                  alpha=0.01, regularization="sparse")
    delays = clf.simulate_stats_["delays"]
    w, b, _ = reference_of(clf, X, signed(y), delays, delay_adaptive=c)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)
    plain, _, _ = reference_of(clf, X, signed(y), delays)
    assert np.abs(plain - w).max() > 1e-3, "the scaled steps must differ from delayed SGD's"
    with pytest.raises(ValueError, match="delay_adaptive .* runs SGD"):
        fit_sim(X, y, SimOptions(delay_adaptive=c), optimizer="amsgrad")


def test_synchronous_sgd_is_mini_batch_sgd_of_all_the_workers_in_rounds_of_the_slowest():
    X, y = sparse_problem()
    kw = dict(learning_rate=0.5, batch_size=2)
    sync = fit_sim(X, y, SimOptions(delay=simulate.straggler(4, 3.0), synchronous=True), **kw)
    batch = fit_sim(X, y, constant(0), learning_rate=0.5, batch_size=8)
    np.testing.assert_array_equal(sync.coef_, batch.coef_)
    assert sync.t_ == batch.t_ == 3 * 10 and sync.staleness_.max == 0
    # 10 rounds an epoch, each as long as the straggler's job
    assert [r["simulated_time"] for r in sync.history_] == [30.0, 60.0, 90.0]
    expo = fit_sim(X, y, SimOptions(delay=simulate.workers(4), synchronous=True), **kw)
    t = expo.history_[0]["simulated_time"]
    assert 10 * 1.5 < t < 10 * 3.2  # the max of 4 unit exponentials averages 1 + 1/2 + 1/3 + 1/4
    assert SimOptions(delay=simulate.workers(4), synchronous=True).method == "sync"


# ---------------------------------------------------------------------- recorded traces and their replay
def test_a_recorded_two_thread_trace_matches_the_staleness_counts_and_is_replayed_exactly():
    X, y = sparse_problem(n=400, d=60)
    clf = asyncopt.LogisticRegression(n_threads=2, epochs=3, tol=None, random_state=0, record_staleness=True,
                                      batch_size=2).fit(X, y)
    rec = clf.staleness_trace_
    st = clf.staleness_
    assert rec.dtype == np.int64 and rec.shape == (clf.t_,) and (rec >= 0).all()
    assert (rec.sum(), rec.max(), rec.size) == (st.total, st.max, st.count)
    replay = fit_sim(X, y, simulate.trace_of(clf), batch_size=2, epochs=3, learning_rate=0.5)
    # the simulator replays the trace in step order; only the first updates' delays are capped (no
    # earlier iterate to read)
    np.testing.assert_array_equal(replay.simulate_stats_["delays"], np.minimum(rec, np.arange(rec.size)))
    # a simulated fit's own delays are a trace too
    again = fit_sim(X, y, simulate.trace_of(replay), batch_size=2, epochs=3, learning_rate=0.5)
    np.testing.assert_array_equal(again.coef_, replay.coef_)
    one = asyncopt.LogisticRegression(n_threads=1, epochs=1, tol=None, record_staleness=True).fit(X, y)
    assert (one.staleness_trace_ == 0).all() and one.staleness_trace_.size == X.shape[0]
    assert asyncopt.LogisticRegression(n_threads=1, epochs=1, tol=None).fit(X, y).staleness_trace_ is None


def test_recording_refuses_what_it_cannot_record():
    X, y = sparse_problem(n=40, d=30)
    with pytest.raises(ValueError, match="record_staleness must be True or False"):
        asyncopt.LogisticRegression(record_staleness=1).fit(X, y)
    with pytest.raises(ValueError, match="record_staleness=True is a setting of backend='threads'"):
        asyncopt.LogisticRegression(backend="simulate", record_staleness=True).fit(X, y)
    with pytest.raises(ValueError, match="3 classes"):
        asyncopt.LogisticRegression(record_staleness=True, epochs=1).fit(X, np.arange(X.shape[0]) % 3)
    with pytest.raises(ValueError, match="no recorded delays"):
        simulate.trace_of(asyncopt.LogisticRegression(n_threads=1, epochs=1).fit(X, y))


def test_record_every_cuts_the_passes_into_records_and_is_still_the_reference():
    """Records every 20 updates over 80 rows (in order): 12 records are 3 passes, the delayed reads
    reaching back across the records' segment ends; the same fit as the dense reference."""
    X, y = sparse_problem()
    clf = fit_sim(X, y, SimOptions(delay=constant(5), record_every=20), epochs=12, learning_rate=0.5,
                  train_loss="exact")
    assert clf.t_ == 240 and len(clf.history_) == 12
    assert [r["updates"] for r in clf.history_] == list(range(20, 241, 20))
    w, b, _ = delayed_reference(X, signed(y), np.full(240, 5), learning_rate=0.5, schedule="optimal",
                                alpha=clf.alpha, regularization=clf.regularization_, epochs=3,
                                intercept_scale=0.01)
    np.testing.assert_allclose(clf.coef_[0], w, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(clf.intercept_[0], b, rtol=1e-5, atol=1e-12)
    shuffled = fit_sim(X, y, SimOptions(delay=constant(5), record_every=30), epochs=9, shuffle=True)
    assert shuffled.t_ == 270
