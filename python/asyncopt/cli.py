"""The ``asyncopt`` command: ``demo`` (the main job), ``train``, ``simulate``, ``rl`` and ``info``.

``asyncopt demo`` trains sparse logistic regression with SGD and AMSGrad at 1..N threads on a data
file, or on a built-in deterministic synthetic problem when none is given, and prints one table:
fit wall time, loss and speedup per optimizer and thread count, with scikit-learn's SGDClassifier
(its defaults) fit on the same data in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from . import backends, build_info, optim
from .datasets import load_libsvm, make_sparse_classification
from .distributed import ServerFailure, WorkerFailure
from .logistic import LogisticRegression


def _thread_counts(spec):
    if spec:
        counts = sorted({int(t) for t in spec.split(",")})
        if not counts or counts[0] < 1:
            raise SystemExit(f"--threads needs positive integers, got {spec!r}")
        return counts
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return list(range(1, n + 1))


def _load(args):
    """(X, y, X_test, y_test, description) from --data/--test, else the built-in synthetic set."""
    if args.data:
        X, y = load_libsvm(args.data)
        if args.test:
            Xt, yt = load_libsvm(args.test, n_features=X.shape[1])
        else:  # hold out the last 20% (the file order), deterministic
            cut = int(0.8 * X.shape[0])
            X, y, Xt, yt = X[:cut], y[:cut], X[cut:], y[cut:]
        return X, y, Xt, yt, f"{args.data}: {X.shape[0]} train rows x {X.shape[1]} features, {X.nnz} nonzeros"
    n = args.samples
    X, y = make_sparse_classification(n_samples=n + n // 4, n_features=args.features, random_state=0)
    return (X[:n], y[:n], X[n:], y[n:],
            f"built-in synthetic problem (Zipf features, tf-idf-like rows): {n} train rows x {X.shape[1]} "
            f"features, {X[:n].nnz} nonzeros")


def _epochs(args):
    """The estimator's stopping rule, or exactly --epochs passes when the user gave that."""
    return {} if args.epochs is None else {"epochs": args.epochs, "tol": None}


def _steps(args, optimizer):
    """(learning_rate, schedule) of one optimizer from the demo's options; the rules without options
    of their own (adagrad, adam) run at their defaults."""
    if optimizer == "sgd":
        return args.sgd_lr, args.sgd_schedule
    if optimizer == "amsgrad":
        return args.amsgrad_lr, args.amsgrad_schedule
    if optimizer not in optim.names():
        raise ValueError(f"--optimizers: unknown rule {optimizer!r}; the rules are {', '.join(optim.names())}")
    return None, None


def _scores(clf, X, y, Xt, yt, alpha):
    """(training objective mean log-loss + alpha/2 ||w||^2, test log-loss, test accuracy) of a fitted
    binary linear classifier, asyncopt's or scikit-learn's, measured once after its fit (not timed)."""
    from sklearn.metrics import log_loss

    coef = clf.coef_.astype(np.float64).ravel()
    z = np.asarray(X @ coef).ravel() + float(clf.intercept_[0])
    ypm = np.where(y == clf.classes_[1], 1.0, -1.0)
    objective = float(np.mean(np.logaddexp(0.0, -ypm * z)) + 0.5 * alpha * np.sum(coef ** 2))
    test_loss = float(log_loss(yt, clf.predict_proba(Xt)[:, 1], labels=clf.classes_))
    return objective, test_loss, float(clf.score(Xt, yt))


def _sklearn_row(X, y, Xt, yt, args):
    """scikit-learn's SGDClassifier with its defaults (log loss, the same alpha) on the same data,
    timed the same way: its fit, on the float64 matrix it needs (converted before the clock)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    X64, Xt64 = X.astype(np.float64), Xt.astype(np.float64)
    clf = SGDClassifier(loss="log_loss", alpha=args.alpha, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        clf.fit(X64, y)
        seconds = time.perf_counter() - t
    objective, loss, acc = _scores(clf, X64, y, Xt64, yt, args.alpha)
    return dict(optimizer="sklearn-sgd", threads=1, fit_time=seconds, epochs=int(clf.n_iter_), objective=objective,
                test_loss=loss, test_accuracy=acc, staleness_mean=0.0, staleness_max=0)


def _check_plot(args):
    """--plot needs matplotlib: say so before training, not after."""
    if args.plot:
        from .plot import _pyplot

        _pyplot()


def cmd_demo(args):
    _check_plot(args)
    X, y, Xt, yt, what = _load(args)
    threads = _thread_counts(args.threads)
    print(f"asyncopt {build_info()['version']} demo: {what}")
    epochs = "the default stopping rule" if args.epochs is None else f"{args.epochs} epochs"
    print(f"objective: mean log-loss + alpha/2 ||w||^2, alpha={args.alpha}; {epochs}; "
          f"batch size {args.batch_size}; scikit-learn's SGDClassifier with its defaults beside\n")
    header = (f"{'optimizer':11s} {'threads':>7s} {'fit s':>8s} {'vs sklearn':>10s} {'speedup':>7s} {'epochs':>6s} "
              f"{'objective':>10s} {'test loss':>9s} {'test acc':>8s} {'staleness mean/max':>19s}")
    print(header)
    print("-" * len(header))

    def show(row):
        vs = sk["fit_time"] / row["fit_time"]
        speedup = f"{row['speedup']:6.2f}x" if "speedup" in row else f"{'':7s}"
        print(f"{row['optimizer']:11s} {row['threads']:7d} {row['fit_time']:8.3f} {vs:9.2f}x {speedup} "
              f"{row['epochs']:6d} {row['objective']:10.5f} {row['test_loss']:9.5f} {row['test_accuracy']:8.4f} "
              f"{row['staleness_mean']:10.3f} / {row['staleness_max']:<6d}", flush=True)

    sk = _sklearn_row(X, y, Xt, yt, args)
    show(sk)
    rows, fits = [sk], []
    for optimizer in args.optimizers.split(","):
        base = None
        for nt in threads:
            learning_rate, schedule = _steps(args, optimizer)
            clf = LogisticRegression(optimizer=optimizer, learning_rate=learning_rate,
                                     schedule=schedule, alpha=args.alpha, batch_size=args.batch_size,
                                     n_threads=nt, random_state=0, **_epochs(args))
            t = time.perf_counter()
            clf.fit(X, y)
            seconds = time.perf_counter() - t
            base = base or seconds
            objective, loss, acc = _scores(clf, X, y, Xt, yt, args.alpha)
            row = dict(optimizer=optimizer, threads=nt, fit_time=seconds, speedup=base / seconds,
                       epochs=int(clf.n_iter_), objective=objective, test_loss=loss, test_accuracy=acc,
                       mnnz_per_s=X.nnz * clf.n_iter_ / seconds / 1e6, staleness_mean=clf.staleness_.mean,
                       staleness_max=clf.staleness_.max)
            rows.append(row)
            fits.append(clf)
            show(row)
    print("\nfit s: wall time of fit(X, y), what a user times (scikit-learn's on float64, converted beforehand); "
          "vs sklearn: its fit time / this one; speedup: 1-thread fit time / this one, same optimizer.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": what, "rows": rows}, f, indent=2)
    if args.plot:
        _demo_figures(fits, args.plot)


def _demo_figures(fits, directory):
    """The demo's figures: every fit's objective against training time and against updates, the
    throughput speedup of each optimizer, and the staleness of each optimizer's most-threaded fit."""
    import matplotlib.pyplot as plt

    from . import plot

    os.makedirs(directory, exist_ok=True)
    by_rule = {}
    for clf in fits:
        by_rule.setdefault(clf.optimizer_.name, []).append(clf)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    plot.loss(fits, x="time", ax=axes[0])
    plot.loss(fits, x="updates", ax=axes[1])
    paths = [os.path.join(directory, "loss.png")]
    fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(6, 4))
    plot.speedup(by_rule, ax=ax)
    paths.append(os.path.join(directory, "speedup.png"))
    fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    fig, axes = plt.subplots(1, len(by_rule), figsize=(6 * len(by_rule), 4), squeeze=False)
    for ax, (rule, group) in zip(axes[0], by_rule.items()):
        top = max(group, key=lambda c: c.n_threads_)
        plot.staleness(top, ax=ax)
        ax.set_title(f"{rule}, {top.n_threads_} threads\n" + ax.get_title(), fontsize=10)
    paths.append(os.path.join(directory, "staleness.png"))
    fig.savefig(paths[-1], dpi=120, bbox_inches="tight")
    plt.close("all")
    print("figures: " + ", ".join(paths))


# --method of `train --backend mpi`, in the papers' names: (MPIOptions.method, optimizer or None for
# the --optimizer given)
MPI_METHODS = {"asgd": ("async", "sgd"), "apam": ("async", "amsgrad"), "dpsgd": ("dpsgd", "sgd"),
               "picky": ("picky", "sgd"), "sync": ("sync", None), "efficient-adam": ("efficient-adam", None)}
# the MPI methods' --optimizer default when it is not fixed by the method (efficient-adam runs Adam)
MPI_DEFAULT_OPTIMIZER = {"efficient-adam": "adam"}


def _mpi_options(args):
    """(optimizer, MPIOptions kwargs) of `train --backend mpi`."""
    args.method = args.method or "asgd"
    method, optimizer = MPI_METHODS[args.method]
    if optimizer is not None and args.optimizer not in (None, optimizer):
        raise ValueError(f"--method {args.method} runs {optimizer!r}; drop --optimizer {args.optimizer}")
    delays = {}
    for spec in args.straggler or []:
        rank, _, factor = spec.partition(":")
        try:
            delays[int(rank)] = float(factor)
        except ValueError:
            raise ValueError(f"--straggler takes RANK:FACTOR (e.g. 2:3), got {spec!r}") from None
    if args.heavy_tail is not None:
        from .distributed import Delay

        from mpi4py import MPI  # the workers' ranks; only reached with backend mpi

        delays = {r: Delay(factor=delays.get(r, 1.0), pareto_shape=args.heavy_tail)
                  for r in range(1, MPI.COMM_WORLD.Get_size())}
    kw = {"method": method, "timeout": args.timeout, "on_failure": args.on_failure, "delays": delays,
          "eval_every": args.eval_every}
    if args.picky_threshold is not None:
        kw["picky_threshold"] = args.picky_threshold
    if args.local_updates is not None:
        kw["local_updates"] = args.local_updates
    compression = {"--compress": args.compress, "--topology": args.topology, "--block-size": args.block_size,
                   "--moments": args.moments}
    if method != "efficient-adam":
        given = [k for k, v in compression.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: options of --method efficient-adam")
    else:
        if args.compress is not None:
            worker, _, server = args.compress.partition(":")
            if not worker:
                raise ValueError(f"--compress takes W or W:S (e.g. sign or sign:identity), got {args.compress!r}")
            kw.update(worker_compressor=worker, server_compressor=server or worker)
        for key in ("topology", "block_size", "moments"):
            if getattr(args, key) is not None:
                kw[key] = getattr(args, key)
    return optimizer or args.optimizer or MPI_DEFAULT_OPTIMIZER.get(method, "sgd"), kw


def cmd_train(args):
    _check_plot(args)
    X, y = load_libsvm(args.data)
    eval_set = load_libsvm(args.test, n_features=X.shape[1]) if args.test else None
    optimizer, mpi, stopping = args.optimizer or "sgd", None, _epochs(args)
    if args.backend == "mpi":
        optimizer, mpi = _mpi_options(args)
        if mpi["method"] in ("dpsgd", "efficient-adam"):  # their workers compute the steps: no plateau drops
            stopping.setdefault("plateau_drops", 0)
    elif args.method is not None:
        raise ValueError("--method needs --backend mpi")
    clf = LogisticRegression(optimizer=optimizer, learning_rate=args.learning_rate, schedule=args.schedule,
                             alpha=args.alpha, batch_size=args.batch_size, **stopping,
                             n_threads=args.n_threads, random_state=args.seed, verbose=2, backend=args.backend,
                             mpi=mpi, device=args.device)
    t = time.perf_counter()
    clf.fit(X, y, eval_set=eval_set)
    seconds = time.perf_counter() - t
    if clf.backend_ == "threads":
        print(f"trained in {seconds:.3f}s ({optimizer}, {clf.n_threads_} threads, regularization "
              f"{clf.regularization_!r}); staleness {clf.staleness_}")
    elif clf.backend_ == "cuda":
        print(f"trained in {seconds:.3f}s on {clf.device_} ({optimizer}, {clf.gpu_workers_} workers, regularization "
              f"{clf.regularization_!r}); staleness {clf.staleness_}")
    elif clf.mpi_rank_ == 0:
        _print_mpi_summary(clf, args.method, seconds)
    if args.plot and (clf.backend_ != "mpi" or clf.mpi_rank_ == 0):
        from . import plot

        print("figures: " + ", ".join(plot.save_figures(clf, args.plot)))


SIM_METHODS = ("sgd", "picky", "adaptive", "sync", "apam", "adam")


def simulate_fit(X, y, method, delay, *, steps, record_every, learning_rate, batch_size=1, alpha=1e-4,
                 picky_threshold=1.0, adaptive_c=None, seed=0):
    """One simulated fit of ``method`` (SIM_METHODS) under ``delay`` for ``steps`` server steps,
    constant steps, a history record (exact objective) every ``record_every`` steps. picky_threshold
    is relative to the learning rate; adaptive_c None: the delay model's number of workers, else 1."""
    from .simulate import SimOptions

    if method not in SIM_METHODS:
        raise ValueError(f"--method: {method!r} is not one of {', '.join(SIM_METHODS)}")
    kw = {}
    if method == "picky":
        kw = dict(picky_threshold=picky_threshold, picky_relative=True)
    elif method == "adaptive":
        kw = dict(delay_adaptive=adaptive_c if adaptive_c is not None else float(getattr(delay, "workers", 1)))
    elif method == "sync":
        kw = dict(synchronous=True)
    records = max(1, -(-steps // record_every))
    opts = SimOptions(delay=delay, record_every=record_every, **kw)
    optimizer = {"apam": "amsgrad", "adam": "adam"}.get(method, "sgd")
    clf = LogisticRegression(optimizer=optimizer, learning_rate=learning_rate, schedule="constant", alpha=alpha,
                             regularization="sparse", batch_size=batch_size, epochs=records, tol=None,
                             train_loss="exact", random_state=seed, backend="simulate", simulate=opts)
    with np.errstate(over="ignore"):
        try:
            clf.fit(X, y)
        except FloatingPointError:  # the step is too large for this delay: a result of the study, not an error
            clf.diverged_ = True
    return clf


def simulate_row(clf, method, target):
    """The CLI's and the study's row of one simulated fit."""
    from .simulate import to_target

    hist = list(getattr(clf, "history_", None) or [])
    stats = clf.simulate_stats_
    steps, time_ = to_target(hist, target)
    delays = stats["delays"][stats["accepted"]] if len(stats["delays"]) else np.zeros(0)
    return {"method": method, "learning_rate": clf.learning_rate, "steps_to_target": steps,
            "time_to_target": time_, "final_objective": hist[-1]["objective"] if hist else None,
            "accepted_fraction": stats["accepted_fraction"], "steps": stats["iterations"],
            "delay_mean": float(delays.mean()) if delays.size else 0.0,
            "delay_max": int(delays.max()) if delays.size else 0, "diverged": bool(getattr(clf, "diverged_", False))}


def cmd_simulate(args):
    from .simulate import batch_objective, parse_delay

    _check_plot(args)
    delay = parse_delay(args.delay)
    X, y = load_libsvm(args.data)
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    for m in methods:
        if m not in SIM_METHODS:
            raise ValueError(f"--method: {m!r} is not one of {', '.join(SIM_METHODS)}")
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    optimum = batch_objective(X, y, args.alpha)
    target = args.target * optimum
    print(f"{args.data}: {X.shape[0]} rows x {X.shape[1]} features; delay {delay}; batch optimum {optimum:.5f}, "
          f"target {target:.5f} ({args.target} x)")
    print(f"{'method':<9} {'lr':>7} {'steps to target':>16} {'time to target':>15} {'final obj':>10} "
          f"{'accepted':>9} {'mean delay':>11} {'max delay':>10}")
    rows, fits = [], {}
    record_every = args.record_every or max(1, args.steps // 100)
    for m in methods:
        lr = args.amsgrad_lr if m in ("apam", "adam") else args.learning_rate
        clf = simulate_fit(X, y, m, delay, steps=args.steps, record_every=record_every, learning_rate=lr,
                           batch_size=args.batch_size, alpha=args.alpha, picky_threshold=args.picky_threshold,
                           adaptive_c=args.adaptive_c, seed=args.seed)
        r = simulate_row(clf, m, target)
        rows.append(r)
        fits[m] = clf
        show = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        final = "diverged" if r["diverged"] else show(r["final_objective"], ".5f")
        print(f"{m:<9} {lr:>7g} {show(r['steps_to_target'], 'd'):>16} {show(r['time_to_target'], '.1f'):>15} "
              f"{final:>10} {r['accepted_fraction']:>9.3f} {r['delay_mean']:>11.2f} {r['delay_max']:>10d}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": args.data, "delay": args.delay, "optimum": optimum, "target": target, "rows": rows},
                      f, indent=1)
    if args.plot:
        from . import plot

        os.makedirs(args.plot, exist_ok=True)
        fig, ax = plot._pyplot().subplots(figsize=(6, 4))
        for m, clf in fits.items():
            h = [r for r in (clf.history_ or []) if r["objective"] is not None]
            ax.plot([r["updates"] for r in h], [r["objective"] - optimum for r in h], label=m)
        ax.axhline(target - optimum, color="gray", ls=":", label="target")
        ax.set_yscale("log")
        ax.set_xlabel("server steps")
        ax.set_ylabel("objective - batch optimum")
        ax.set_title(f"delay {args.delay}")
        ax.legend()
        path = os.path.join(args.plot, "simulate.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        print("figures: " + path)


def _print_mpi_summary(clf, method, seconds):
    s = clf.mpi_stats_
    print(f"trained in {seconds:.3f}s by {len(s['workers'])} workers ({method}, regularization "
          f"{clf.regularization_!r}): {s['applied']} updates applied, {s['dropped']} dropped; staleness "
          f"{clf.staleness_}; messages in/out {s['messages_in']}/{s['messages_out']}, MB in/out "
          f"{s['bytes_in'] / 1e6:.2f}/{s['bytes_out'] / 1e6:.2f}")
    header = f"{'rank':>4s} {'rows/s':>9s} {'applied':>8s} {'dropped':>8s} {'compute s':>9s} {'delay s':>8s} {'wait s':>8s}"
    print(header)
    for rank, w in sorted(s["workers"].items()):
        own = w.get("worker", {})
        print(f"{rank:4d} {w['rows_per_second']:9.0f} {w['applied']:8d} {w['dropped']:8d} "
              f"{own.get('compute_time', float('nan')):9.3f} {own.get('delay_time', float('nan')):8.3f} "
              f"{own.get('wait_time', float('nan')):8.3f}" + ("" if w["alive"] else "  failed"))
    if "rounds" in s:
        _print_compression(clf, s)


def _print_compression(clf, s):
    """Efficient-Adam's traffic: bytes each way (the buffers MPI sent), per round, the rounds, the residuals."""
    opts = clf.mpi if isinstance(clf.mpi, dict) else vars(clf.mpi)
    rounds = max(s["rounds"], 1)
    n = clf.n_features_in_ + (1 if clf.fit_intercept else 0)
    print(f"efficient-adam: compress {opts.get('worker_compressor', 'sign')}:{opts.get('server_compressor', 'sign')}, "
          f"block size {opts.get('block_size', 2048)}, topology {opts.get('topology', 'central')}, moments "
          f"{opts.get('moments', 'worker')}; {s['rounds']} rounds")
    print(f"bytes workers->server {s['bytes_in']} ({s['bytes_in'] / rounds:.0f} per round, packed payload "
          f"{s['payload_in'] / rounds:.0f}); server->workers {s['bytes_out']} ({s['bytes_out'] / rounds:.0f} per "
          f"round, packed payload {s['payload_out'] / rounds:.0f}); dense float64 would be "
          f"{8 * n * len(s['workers'])} per round each way")
    if "peer_bytes" in s:  # topology='sharded': the slices and the slice steps the workers sent each other
        print(f"bytes between workers (sharded, {len(s['slices'])} slices) {s['peer_bytes']} "
              f"({s['peer_bytes'] / rounds:.0f} per round)")
    norms = ", ".join(f"rank {r} {v:.3g}" for r, v in sorted(s["worker_residual_norms"].items()))
    print(f"residual norms: server {s['server_residual_norm']:.3g}; workers {norms}")


def runtime_info():
    """build_info() and what this machine and process give the build at run time: the CPU's
    vector extensions and which variant of the LDA E-step they select (its kernels are compiled
    for the default target and for haswell, AVX2 + FMA, and picked when the library loads), the
    threads the native pool may use, the OpenMP runtimes loaded in the process (threadpoolctl),
    mpi4py and mpiexec, and whether a CUDA device answers."""
    import shutil

    from . import _checks, _core, gpu

    info = dict(build_info())
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    wanted = ("SSE42", "AVX", "AVX2", "FMA3", "AVX512F", "ASIMD", "SVE")
    have = [f for f in wanted if features.get(f)]
    info["cpu"] = {"vector_extensions": have,
                   "lda_e_step_variant": "haswell (AVX2+FMA)" if {"AVX2", "FMA3"} <= set(have) else "default"}
    pools = []
    try:
        from threadpoolctl import threadpool_info

        pools = [{"runtime": p.get("internal_api"), "threads": p.get("num_threads"), "library": p.get("filepath")}
                 for p in threadpool_info() if p.get("user_api") == "openmp"]
    except ImportError:
        pass
    info["threads"] = {"usable": _checks.resolve_n_threads(None), "max": _core.MAX_THREADS,
                       "native_pool_started": _core.thread_pool_size(), "openmp_runtimes_loaded": pools}
    try:
        import mpi4py

        mpi_version = mpi4py.__version__
    except ImportError:
        mpi_version = None
    info["mpi"] = {"mpi4py": mpi_version, "mpiexec": shutil.which("mpiexec")}
    info["cuda_device"] = (gpu.is_available() if gpu.built() else False)
    return info


def cmd_info(_args):
    print(json.dumps(runtime_info(), indent=2, default=str))


def cmd_rl(args):
    """Train the lock-free actor-critic on a built-in environment (or a gymnasium id), printing one
    row of the table every --log-interval environment steps."""
    from .rl import ActorCritic

    print(f"asyncopt rl {args.env}: {args.threads or 'all'} threads, optimizer {args.optimizer}, "
          f"n_steps {args.n_steps}, n_envs {args.n_envs}, seed {args.seed}", flush=True)
    clf = ActorCritic(env=args.env, n_threads=args.threads, optimizer=args.optimizer, learning_rate=args.learning_rate,
                      n_steps=args.n_steps, n_envs=args.n_envs, gamma=args.gamma, backend=args.backend,
                      random_state=args.seed, stop_when_solved=not args.no_stop, log_interval=args.log_interval,
                      verbose=True)
    clf.fit(total_steps=args.total_steps)
    wall = clf.history_[-1]["wall_s"] if clf.history_ else 0.0
    st = clf.staleness_
    mean_tau = st["sum"] / st["count"] if st["count"] else 0.0
    if clf.solved_step_ is not None:
        print(f"solved at step {clf.solved_step_} (mean return of the last {clf.solve_window} episodes >= "
              f"{clf.solve_threshold_:g}) in {wall:.2f} s", flush=True)
    else:
        print(f"not solved in {clf.env_steps_} steps ({wall:.2f} s)", flush=True)
    print(f"{clf.n_updates_} updates, staleness mean {mean_tau:.2f} max {st['max']}", flush=True)


def build_parser():
    p = argparse.ArgumentParser(prog="asyncopt", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="SGD and AMSGrad at 1..N threads, one table (the main job)")
    d.add_argument("--data", help="LIBSVM file (.gz/.bz2/.xz too); default: built-in synthetic problem")
    d.add_argument("--test", help="LIBSVM test file; default: the last 20%% of --data")
    d.add_argument("--samples", type=int, default=200_000, help="synthetic training rows (default 200000)")
    d.add_argument("--features", type=int, default=2 ** 20, help="synthetic features (default 2^20)")
    d.add_argument("--threads", help="comma-separated thread counts (default 1..number of cores)")
    d.add_argument("--optimizers", default="sgd,amsgrad",
                   help=f"comma-separated rules among {','.join(optim.names())} (default sgd,amsgrad)")
    d.add_argument("--epochs", type=int,
                   help="exactly this many passes (default: the estimator's stopping rule, tol and plateau drops)")
    d.add_argument("--alpha", type=float, default=1e-5)
    d.add_argument("--batch-size", type=int, default=1)
    d.add_argument("--sgd-schedule", choices=["constant", "invsqrt", "optimal"], help="default: SGD's, 'optimal'")
    d.add_argument("--sgd-lr", type=float, help="SGD's first step (default: alpha^(-1/4) for 'optimal', else 0.1)")
    d.add_argument("--amsgrad-schedule", choices=["constant", "invsqrt", "optimal"], help="default: 'constant'")
    d.add_argument("--amsgrad-lr", type=float, help="default 0.003")
    d.add_argument("--json", help="also write the table as JSON to this file")
    d.add_argument("--plot", metavar="DIR", help="write the loss, speedup and staleness figures (PNG) into DIR "
                                                 "(needs matplotlib: pip install asyncopt[plot])")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train one model on a LIBSVM file, printing every epoch")
    t.add_argument("data")
    t.add_argument("--test")
    t.add_argument("--backend", default="threads", choices=["auto", *backends.names()],
                   help="cuda: one GPU (--device); mpi: run as  mpiexec -n K python -m asyncopt train ... --backend "
                        "mpi  (rank 0 serves); auto: cuda when built and a GPU is present, else threads")
    t.add_argument("--device", help="backend cuda: which GPU ('cuda:N' or N; default the first)")
    t.add_argument("--optimizer", choices=optim.names(), help="default sgd (apam: amsgrad)")
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--schedule", choices=["constant", "invsqrt", "optimal"], help="default: the rule's")
    t.add_argument("--alpha", type=float, default=1e-4)
    t.add_argument("--batch-size", type=int, default=1)
    t.add_argument("--epochs", type=int,
                   help="exactly this many passes (default: the estimator's stopping rule, tol and plateau drops)")
    t.add_argument("--n-threads", type=int)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--plot", metavar="DIR", help="write the loss and staleness figures (and with --backend mpi the "
                                                 "workers' timeline) as PNG into DIR (needs matplotlib)")
    m = t.add_argument_group("MPI backend (asyncopt.distributed.MPIOptions)")
    m.add_argument("--method", choices=sorted(MPI_METHODS),
                   help="asgd: AsySG-con; apam: asynchronous AMSGrad; dpsgd: Hogwild! in each worker; picky: Picky "
                        "SGD; sync: synchronous rounds; efficient-adam: Adam with quantized messages both ways and "
                        "error feedback (default asgd)")
    m.add_argument("--timeout", type=float, default=60.0, help="seconds of silence before a worker counts as failed")
    m.add_argument("--on-failure", default="raise", choices=["raise", "drop"])
    m.add_argument("--picky-threshold", type=float)
    m.add_argument("--local-updates", type=int, help="DPSGD: mini-batch updates per push")
    m.add_argument("--straggler", action="append", metavar="RANK:FACTOR",
                   help="slow worker RANK down FACTOR times (repeatable)")
    m.add_argument("--heavy-tail", type=float, metavar="SHAPE",
                   help="add Pareto(SHAPE)-distributed delays to every worker")
    m.add_argument("--eval-every", type=float, default=1.0, help="epochs between history rows")
    m.add_argument("--compress", metavar="W[:S]",
                   help="efficient-adam: the workers' quantizer W and the server's S (default W): identity, sign, "
                        "ternary, qsgdK (K bits); default sign:sign")
    m.add_argument("--topology", choices=["central", "sharded"], help="efficient-adam: default central")
    m.add_argument("--block-size", type=int, help="efficient-adam: coordinates per quantizer scale (default 2048)")
    m.add_argument("--moments", choices=["worker", "server"],
                   help="efficient-adam: the optimizer's moments on each worker (the paper) or on the server "
                        "(COMP-AMS)")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("rl", help="lock-free asynchronous advantage actor-critic (HSA2C threads level) on an "
                                  "environment, printing a table while it trains")
    r.add_argument("env", nargs="?", default="CartPole-v1",
                   help="CartPole-v1 or Acrobot-v1 (native), or any gymnasium id (stepped from Python)")
    r.add_argument("--threads", type=int, help="actor-learner threads (default: every core)")
    r.add_argument("--backend", default="threads", choices=["threads"])
    r.add_argument("--optimizer", default="rmsprop", choices=optim.names())
    r.add_argument("--learning-rate", type=float)
    r.add_argument("--n-steps", type=int, default=5)
    r.add_argument("--n-envs", type=int, default=4, help="environments per thread")
    r.add_argument("--gamma", type=float, default=0.99)
    r.add_argument("--total-steps", type=int, default=500_000)
    r.add_argument("--log-interval", type=int, default=10_000)
    r.add_argument("--no-stop", action="store_true", help="train all --total-steps even once solved")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_rl)

    s = sub.add_parser("simulate", help="methods under a simulated delay model (asyncopt.simulate), one table: "
                                        "steps and simulated time to 1.01 x the batch optimum")
    s.add_argument("data", help="LIBSVM file (binary labels)")
    s.add_argument("--method", default="sgd,picky,apam",
                   help=f"comma-separated among {','.join(SIM_METHODS)} (sgd: delayed SGD; apam: delayed AMSGrad; "
                        "adaptive: delay-adaptive SGD; sync: synchronous mini-batch SGD over the workers)")
    s.add_argument("--delay", default="straggler:16:100",
                   help="constant:D, uniform:D, straggler:N:SLOWDOWN, workers:N[:exponential], pareto:N:SHAPE or "
                        "mixture:P:SMALL:LARGE (default straggler:16:100)")
    s.add_argument("--steps", type=int, default=20000, help="server steps of every method (default 20000)")
    s.add_argument("--record-every", type=int, help="steps between objective evaluations (default steps/100)")
    s.add_argument("--learning-rate", type=float, default=0.5, help="SGD-family constant step (default 0.5)")
    s.add_argument("--amsgrad-lr", type=float, default=0.01, help="apam and adam constant step (default 0.01)")
    s.add_argument("--picky-threshold", type=float, default=1.0,
                   help="picky: threshold on ||x_t - x_{t-d}|| in units of the learning rate (default 1)")
    s.add_argument("--adaptive-c", type=float, help="adaptive: c of min(1, c/d) (default: the number of workers)")
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--alpha", type=float, default=1e-4)
    s.add_argument("--target", type=float, default=1.01, help="target = this x the batch optimum (default 1.01)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", help="also write the table as JSON to this file")
    s.add_argument("--plot", metavar="DIR", help="write the objective-gap figure (PNG) into DIR (needs matplotlib)")
    s.set_defaults(func=cmd_simulate)

    i = sub.add_parser("info", help="what this build contains (OpenMP, CUDA, compiler) and what this machine gives it "
                                    "(vector extensions, threads, OpenMP runtimes, MPI, a GPU)")
    i.set_defaults(func=cmd_info)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"asyncopt: error: {e}", file=sys.stderr)
        return 2
    except (WorkerFailure, ServerFailure) as e:
        print(f"asyncopt: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
