#!/usr/bin/env python3
"""HSA2C's threads level on CartPole-v1: wall time and environment steps to solve.

    python bench/bench_rl.py [--quick] [--out DIR] [--seeds 5] [--threads 1,2] [--budget 500000]

``asyncopt.rl.ActorCritic()`` (its defaults: RMSProp with shared statistics, n_steps 5, 4
environments per thread) at each thread count and seed, interleaved (seed s at 1 thread, then at 2
threads, then seed s + 1), so the ratios compare runs measured side by side. "Solved": the mean
return of the last 100 episodes reaches 475 (gymnasium's reward_threshold); the fit stops there and
its wall time is the time to solve. Throughput: a separate fixed run of --rate-steps steps per
thread count (stop_when_solved=False), env steps per second of fit wall time. stable-baselines3's
A2C and PPO (MlpPolicy, their defaults) are timed on the same task when SB3 is installed.

Writes DIR/rl.json (every raw number) and DIR/rl.md (tables and each target with PASS/MISS).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import asyncopt
from asyncopt.rl import ActorCritic
from benchenv import cpu_model, git_commit, jsonable

# Issue 16's targets
SOLVE_WALL_2T = 1.5  # median seconds to solve at 2 threads
RATE_RATIO_2T = 1.7  # env steps/s at 2 threads / at 1 thread


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="CI smoke run: 1 seed, small budget, no SB3")
    p.add_argument("--out", default="bench-results", help="output folder (default bench-results)")
    p.add_argument("--seeds", type=int, help="seeds per thread count (default 5, quick 1)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--budget", type=int, help="env steps per solve attempt (default 500000, quick 20000)")
    p.add_argument("--rate-steps", type=int, help="env steps of the throughput runs (default 200000, quick 20000)")
    p.add_argument("--no-sb3", action="store_true", help="skip stable-baselines3 even when installed")
    return p.parse_args(argv)


def solve_run(n_threads, seed, budget):
    t0 = time.perf_counter()
    clf = ActorCritic(n_threads=n_threads, random_state=seed, log_interval=budget).fit(total_steps=budget)
    wall = time.perf_counter() - t0
    st = clf.staleness_
    return {"threads": n_threads, "seed": seed, "solved": clf.solved_step_ is not None,
            "solve_steps": clf.solved_step_, "env_steps": clf.env_steps_, "wall_s": wall,
            "episodes": int(clf.episodes_["return"].size), "updates": clf.n_updates_,
            "staleness_mean": st["sum"] / st["count"] if st["count"] else 0.0, "staleness_max": int(st["max"])}


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rate_run(n_threads, steps):
    """Env steps per second of wall time, and per second of this process's CPU time: on a machine
    shared with other work the first is bounded by the cores the OS gives, the second shows whether
    a step costs more with more threads (contention on the shared parameters)."""
    c0, t0 = cpu_seconds(), time.perf_counter()
    clf = ActorCritic(n_threads=n_threads, random_state=0, stop_when_solved=False, log_interval=steps).fit(steps)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    return {"threads": n_threads, "env_steps": clf.env_steps_, "wall_s": wall, "cpu_s": cpu,
            "steps_per_s": clf.env_steps_ / wall, "steps_per_cpu_s": clf.env_steps_ / cpu, "cores_used": cpu / wall}


def sb3_runs(seeds, budget):
    """SB3 A2C and PPO on gymnasium's CartPole-v1 until the same criterion, when installed."""
    try:
        import gymnasium as gym
        import stable_baselines3 as sb3
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        return None

    class Solved(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns, self.solved_at = [], None

        def _on_step(self):
            for info in self.locals.get("infos", []):
                if "episode" in info:
                    self.returns.append(info["episode"]["r"])
                    if len(self.returns) >= 100 and np.mean(self.returns[-100:]) >= 475:
                        self.solved_at = self.num_timesteps
                        return False
            return True

    out = []
    for algo in ("A2C", "PPO"):
        for seed in range(seeds):
            env = sb3.common.env_util.make_vec_env("CartPole-v1", n_envs=8 if algo == "A2C" else 1, seed=seed)
            model = getattr(sb3, algo)("MlpPolicy", env, seed=seed, verbose=0, device="cpu")
            cb = Solved()
            t0 = time.perf_counter()
            model.learn(total_timesteps=budget, callback=cb)
            out.append({"algo": algo, "seed": seed, "solve_steps": cb.solved_at, "wall_s": time.perf_counter() - t0})
    return out


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def report_md(rep):
    lines = [f"# bench_rl: CartPole-v1 ({rep['when']}, {rep['cpu']}, {rep['cores']} cores, commit {rep['commit']})", "",
             "## Steps and wall time to solve (mean return of the last 100 episodes >= 475)", "",
             "| threads | seed | solved at step | wall s | episodes | staleness mean / max |", "|---|---|---|---|---|---|"]
    for r in rep["solve"]:
        lines.append(f"| {r['threads']} | {r['seed']} | {r['solve_steps'] if r['solved'] else 'not solved'} | "
                     f"{r['wall_s']:.2f} | {r['episodes']} | {r['staleness_mean']:.2f} / {r['staleness_max']} |")
    lines += ["", "| threads | median steps to solve | median wall s | solved |", "|---|---|---|---|"]
    for t, s in rep["summary"].items():
        lines.append(f"| {t} | {s['median_steps']} | {s['median_wall_s']:.2f} | {s['solved']}/{s['runs']} |"
                     if s["median_wall_s"] is not None else f"| {t} | - | - | {s['solved']}/{s['runs']} |")
    lines += ["", f"## Throughput (fixed steps, not stopping; load average at the start {rep['load_avg']})", "",
              "| threads | env steps | wall s | steps/s | CPU s | steps per CPU s | cores used |",
              "|---|---|---|---|---|---|---|"]
    for r in rep["rate"]:
        lines.append(f"| {r['threads']} | {r['env_steps']} | {r['wall_s']:.2f} | {r['steps_per_s']:.0f} | {r['cpu_s']:.2f} | "
                     f"{r['steps_per_cpu_s']:.0f} | {r['cores_used']:.2f} |")
    if rep.get("sb3"):
        lines += ["", "## stable-baselines3 (same criterion)", "", "| algo | seed | solved at step | wall s |", "|---|---|---|---|"]
        for r in rep["sb3"]:
            lines.append(f"| {r['algo']} | {r['seed']} | {r['solve_steps']} | {r['wall_s']:.2f} |")
    else:
        lines += ["", "stable-baselines3 not installed (or --no-sb3): no peer figures in this run."]
    lines += ["", "## Targets", ""]
    for name, t in rep["targets"].items():
        lines.append(f"- {name}: {t['value']} (target {t['target']}): **{'PASS' if t['pass'] else 'MISS'}**")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    seeds = args.seeds or (1 if args.quick else 5)
    budget = args.budget or (20_000 if args.quick else 500_000)
    rate_steps = args.rate_steps or (20_000 if args.quick else 200_000)
    threads = sorted({int(t) for t in args.threads.split(",")})
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    ActorCritic(n_threads=max(threads), stop_when_solved=False).fit(2000)  # warm the pool and the caches
    solve = []
    for seed in range(seeds):
        for t in threads:
            r = solve_run(t, seed, budget)
            solve.append(r)
            print(f"threads {t} seed {seed}: solved at {r['solve_steps']} in {r['wall_s']:.2f} s", flush=True)
    rate = []
    for _ in range(1 if args.quick else 2):  # interleaved, twice
        for t in threads:
            rate.append(rate_run(t, rate_steps))
    summary = {}
    for t in threads:
        rs = [r for r in solve if r["threads"] == t]
        ok = [r for r in rs if r["solved"]]
        summary[t] = {"runs": len(rs), "solved": len(ok), "median_steps": median([r["solve_steps"] for r in ok]),
                      "median_wall_s": median([r["wall_s"] for r in ok])}
    rates = {t: statistics.median([r["steps_per_s"] for r in rate if r["threads"] == t]) for t in threads}
    targets = {}
    if 2 in summary and summary[2]["median_wall_s"] is not None:
        v = summary[2]["median_wall_s"]
        targets["median wall s to solve at 2 threads"] = {"value": round(v, 2), "target": f"<= {SOLVE_WALL_2T}",
                                                          "pass": v <= SOLVE_WALL_2T and summary[2]["solved"] == seeds}
    if 1 in rates and 2 in rates:
        v = rates[2] / rates[1]
        targets["steps/s 2 threads / 1 thread"] = {"value": round(v, 2), "target": f">= {RATE_RATIO_2T}",
                                                   "pass": v >= RATE_RATIO_2T}
    sb3 = None if (args.quick or args.no_sb3) else sb3_runs(seeds, budget)
    rep = {"when": when, "cpu": cpu_model(),
           "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "load_avg": load, "python": platform.python_version(),
           "asyncopt": asyncopt.__version__, "commit": git_commit(), "budget": budget, "solve": solve, "rate": rate,
           "rates": rates, "summary": summary, "targets": targets, "sb3": sb3}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rl.json").write_text(json.dumps(jsonable(rep), indent=1))
    (out / "rl.md").write_text(report_md(rep))
    print(report_md(rep))


if __name__ == "__main__":
    main()
