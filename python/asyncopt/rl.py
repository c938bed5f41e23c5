"""Asynchronous advantage actor-critic: HSA2C's threads level (Mohamad et al. 2022), A3C-style.

``ActorCritic(env="CartPole-v1").fit(total_steps=...)`` trains a policy/value network with
``n_threads`` actor-learner threads, each with its own environments, that update ONE shared
parameter vector without locks through the core's update rules (``optimizer=``: 'rmsprop', A3C's
shared RMSProp, by default; 'sgd', 'amsgrad', 'adagrad', 'adam'). Everything per step runs in C++
with the GIL released (``csrc/asyncopt/threads/actor_critic.hpp``):

- network: one shared tanh trunk (default two layers of 64), a linear policy head (logits) and a
  linear value head (``csrc/asyncopt/rl/mlp.hpp`` says why the trunk is shared);
- n-step returns with bootstrapping: a time-limit truncation bootstraps with V of the last
  observation, a termination does not (``rl/returns.hpp``);
- loss: ``-A log pi(a|s) + value_coef (G - V)^2 - entropy_coef H(pi)``, averaged over the
  rollout's ``n_steps x n_envs`` samples, its gradient clipped to a global norm of ``max_grad_norm``
  (``rl/a2c.hpp``);
- environments built in: CartPole-v1 and Acrobot-v1, exactly as gymnasium defines them
  (``rl/cartpole.hpp``, ``rl/acrobot.hpp``). Any other gymnasium environment (an id or an
  ``gymnasium.Env`` instance with a Box observation and a Discrete action space) trains through a
  slower path: Python steps ``n_envs`` copies of it and the native learner does every update.

What the DPSGD paper leaves unstated is assumed here (README "Reinforcement learning"): the task
(CartPole-v1), the network (4-64-64-2+1, tanh, shared trunk), A3C's hyperparameters where they
apply (n_steps 5, gamma 0.99), stable-baselines3's A2C constants elsewhere (value_coef 0.5,
max_grad_norm 0.5, RMSProp alpha 0.99, eps 1e-5), and the learning rate and envs per thread tuned
here for CartPole (bench/README.md).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import time

import numpy as np

import warnings

from . import _core, checkpoint, optim
from ._checks import check_int, check_n_threads, check_real, resolve_n_threads
from .training import interruptible

# name -> (native kind, observation size, actions, solved threshold, time limit)
BUILTIN_ENVS = {
    "CartPole-v1": (0, 4, 2, 475.0, 500),
    "Acrobot-v1": (1, 6, 3, -100.0, 500),
}
BACKENDS = ("threads",)
# learning_rate=None per rule, tuned on CartPole-v1 with the other defaults (bench/README.md)
DEFAULT_LEARNING_RATES = {"rmsprop": 0.001}


def init_params(obs_dim, hidden, n_actions, random_state=0):
    """The network's initial flat parameter vector (layout: csrc/asyncopt/rl/mlp.hpp): orthogonal
    weights as in the A2C/PPO baselines (gain sqrt(2) in the trunk, 0.01 on the policy head so the
    first policy is near uniform, 1 on the value head) and zero biases."""
    rng = np.random.default_rng(random_state)
    sizes = [obs_dim, *hidden]
    parts = []

    def orthogonal(rows, cols, gain):
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        q = q if rows >= cols else q.T
        return gain * q[:rows, :cols]

    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        parts += [orthogonal(fan_out, fan_in, math.sqrt(2)).ravel(), np.zeros(fan_out)]
    parts += [orthogonal(n_actions, sizes[-1], 0.01).ravel(), np.zeros(n_actions)]
    parts += [orthogonal(1, sizes[-1], 1.0).ravel(), np.zeros(1)]
    theta = np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)
    assert theta.size == _core.mlp_n_params(obs_dim, list(hidden), n_actions)
    return theta


def _seed(random_state):
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral) or random_state < 0:
        raise ValueError(f"random_state must be a non-negative integer, got {random_state!r}")
    return int(random_state)


_PARAMS = ("env", "n_threads", "optimizer", "learning_rate", "n_steps", "n_envs", "gamma", "value_coef", "entropy_coef",
           "max_grad_norm", "hidden_sizes", "backend", "random_state", "stop_when_solved", "solve_window", "log_interval",
           "verbose")
_FITTED = ("obs_dim_", "n_actions_", "hidden_", "solve_threshold_", "solved_step_", "env_steps_", "n_updates_",
           "n_threads_", "history_", "interrupted_")


@checkpoint.register
class ActorCritic:
    """Lock-free asynchronous advantage actor-critic (A3C / HSA2C's threads level).

    Parameters
    ----------
    env : str or gymnasium.Env
        'CartPole-v1' or 'Acrobot-v1' (native, fast), any other registered gymnasium id, or an
        environment instance (Box observations of at most 64 values, Discrete actions): those are
        stepped from Python, one thread, the updates native.
    n_threads : int or None
        Actor-learner threads (None: every usable core, honouring OMP_NUM_THREADS).
    optimizer : str or asyncopt optimizer object
        A registered rule (``asyncopt.optim.names()``); its statistics are shared by all threads.
        Constant steps only (``schedule='constant'``, no bias correction).
    learning_rate : float or None
        None: 0.001 for rmsprop (tuned on CartPole-v1 at n_envs=4; bench/README.md), else the rule's default.
    n_steps : int
        Steps per environment per update (A3C's t_max).
    n_envs : int
        Environments per thread; an update averages over ``n_steps * n_envs`` samples.
    gamma, value_coef, entropy_coef, max_grad_norm : float
        Discount, value-loss weight c_v, entropy bonus c_H, global gradient-norm clip (0: none).
    hidden_sizes : tuple of int
        Widths of the shared tanh trunk.
    backend : 'threads'
        The MPI parameter-server level of HSA2C is not built yet.
    random_state : int
        Seeds the initial parameters and every thread's stream (thread s: stream s). One thread is
        reproducible to the bit.
    stop_when_solved : bool
        Stop as soon as the mean return of the last ``solve_window`` episodes reaches the
        environment's threshold (475 for CartPole-v1, -100 for Acrobot-v1; gymnasium's
        ``reward_threshold`` for other ids).
    log_interval : int
        Environment steps between two records of ``history_`` (and rows of ``verbose`` output).
    verbose : bool
        Print one table row per record while training.

    Attributes after fit: ``history_`` (one dict per record: env_steps, updates, episodes,
    mean_return (of the last ``solve_window`` episodes), steps_per_s, staleness_mean,
    staleness_max, wall_s), ``episodes_`` (per episode: step, return, length, thread),
    ``solved_step_`` (the environment step at which the criterion was first met, else None),
    ``params_`` (the flat parameter vector), ``staleness_`` (count, sum, max, histogram).
    """

    def __init__(self, env="CartPole-v1", n_threads=None, optimizer="rmsprop", learning_rate=None, n_steps=5,
                 n_envs=4, gamma=0.99, value_coef=0.5, entropy_coef=0.0, max_grad_norm=0.5, hidden_sizes=(64, 64),
                 backend="threads", random_state=0, stop_when_solved=True, solve_window=100, log_interval=10_000,
                 verbose=False):
        self.env = env
        self.n_threads = n_threads
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.n_steps = n_steps
        self.n_envs = n_envs
        self.gamma = gamma
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.max_grad_norm = max_grad_norm
        self.hidden_sizes = hidden_sizes
        self.backend = backend
        self.random_state = random_state
        self.stop_when_solved = stop_when_solved
        self.solve_window = solve_window
        self.log_interval = log_interval
        self.verbose = verbose

    # ------------------------------------------------------------------ validation
    def _resolve_env(self):
        """(kind, obs_dim, n_actions, threshold, env_or_None): kind -1 for a Python-stepped env."""
        env = self.env
        if isinstance(env, str) and env in BUILTIN_ENVS:
            kind, d, a, thr, _ = BUILTIN_ENVS[env]
            return kind, d, a, thr, None
        try:
            import gymnasium
        except ImportError:
            raise ValueError(f"env must be one of {tuple(BUILTIN_ENVS)} (built in), or a gymnasium id or environment "
                             f"with gymnasium installed; got {env!r}") from None
        if isinstance(env, str):
            try:
                env = gymnasium.make(env)
            except gymnasium.error.Error as e:
                raise ValueError(f"env {self.env!r} is neither built in {tuple(BUILTIN_ENVS)} nor a gymnasium id: "
                                 f"{e}") from None
        if not isinstance(env, gymnasium.Env):
            raise ValueError(f"env must be a name or a gymnasium.Env, got {type(env).__name__}")
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(act_space, gymnasium.spaces.Discrete) or act_space.n < 2 or act_space.n > 64:
            raise ValueError(f"env: ActorCritic needs a Discrete action space of 2..64 actions, got {act_space}")
        if not isinstance(obs_space, gymnasium.spaces.Box) or len(obs_space.shape) != 1 or obs_space.shape[0] > 64:
            raise ValueError(f"env: ActorCritic needs a 1-d Box observation space of at most 64 values, got {obs_space}")
        spec = getattr(env, "spec", None)
        thr = spec.reward_threshold if spec is not None and spec.reward_threshold is not None else math.inf
        return -1, int(obs_space.shape[0]), int(act_space.n), float(thr), env

    def _validate(self, total_steps):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} for ActorCritic, got {self.backend!r} (the MPI "
                             "workers x threads level of HSA2C is not built yet)")
        total_steps = check_int("total_steps", total_steps, low=1)
        n_threads = resolve_n_threads(check_n_threads(self.n_threads))
        n_steps = check_int("n_steps", self.n_steps, low=1, high=10_000)
        n_envs = check_int("n_envs", self.n_envs, low=1, high=10_000)
        check_real("gamma", self.gamma, low=0, high=1)
        check_real("value_coef", self.value_coef, low=0)
        check_real("entropy_coef", self.entropy_coef, low=0)
        check_real("max_grad_norm", self.max_grad_norm, low=0)
        check_int("solve_window", self.solve_window, low=1, high=1_000_000)
        check_int("log_interval", self.log_interval, low=1)
        if not isinstance(self.stop_when_solved, bool):
            raise ValueError(f"stop_when_solved must be True or False, got {self.stop_when_solved!r}")
        hidden = self.hidden_sizes
        if (isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__") or len(hidden) == 0
                or any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or not 1 <= h <= 4096 for h in hidden)):
            raise ValueError(f"hidden_sizes must be a non-empty sequence of integers in [1, 4096], got {hidden!r}")
        seed = _seed(self.random_state)
        flat = {} if self.learning_rate is None else {"learning_rate": self.learning_rate}
        opt = optim.get(self.optimizer, **flat)
        if opt.learning_rate is None and opt.name in DEFAULT_LEARNING_RATES:
            opt = dataclasses.replace(opt, learning_rate=DEFAULT_LEARNING_RATES[opt.name])
        opt = opt.resolved(0.0)
        if opt.schedule != "constant" or getattr(opt, "bias_correction", False):
            raise ValueError(f"ActorCritic runs constant steps: set schedule='constant' (got {opt.schedule!r})"
                             + (" and bias_correction=False" if getattr(opt, "bias_correction", False) else ""))
        return total_steps, n_threads, n_steps, n_envs, [int(h) for h in hidden], seed, opt

    # ------------------------------------------------------------------ training
    def fit(self, total_steps=200_000):
        """Train for at most ``total_steps`` environment steps (fewer once solved, with
        ``stop_when_solved``). Ctrl-C stops after the rollouts in flight; the model keeps what they
        applied. Returns self."""
        total_steps, n_threads, n_steps, n_envs, hidden, seed, opt = self._validate(total_steps)
        kind, obs_dim, n_actions, threshold, env = self._resolve_env()
        self.obs_dim_, self.n_actions_, self.hidden_ = obs_dim, n_actions, hidden
        self.solve_threshold_ = threshold
        self.optimizer_ = opt
        theta0 = init_params(obs_dim, hidden, n_actions, seed)
        cfg = _core.ActorCriticConfig()
        cfg.n_steps, cfg.n_envs, cfg.seed = n_steps, n_envs, seed
        cfg.gamma, cfg.value_coef = float(self.gamma), float(self.value_coef)
        cfg.entropy_coef, cfg.max_grad_norm = float(self.entropy_coef), float(self.max_grad_norm)
        cfg.solve_window, cfg.solve_return, cfg.stop_when_solved = int(self.solve_window), threshold, self.stop_when_solved
        if kind < 0:
            n_threads = 1  # a Python environment is stepped by this one Python thread
        self.n_threads_ = n_threads
        self._trainer = _core.ActorCriticTrainer(kind, obs_dim, hidden, n_actions, opt.native, opt.step_config(0.0, "none"),
                                                 cfg, theta0, n_threads)
        self.history_ = []
        self.staleness_ = {"count": 0, "sum": 0, "max": 0, "hist": None}
        self.interrupted_ = False
        with interruptible():
            if kind >= 0:
                self._fit_native(total_steps, n_threads)
            else:
                self._fit_python(env, total_steps, n_steps, n_envs, seed)
        self._finish()
        return self

    def _record(self, steps, seconds, result):
        st = self.staleness_
        if result is not None:
            st["count"] += result["count"]
            st["sum"] += result["sum"]
            st["max"] = max(st["max"], int(result["max"]))
            st["hist"] = result["hist"] if st["hist"] is None else st["hist"] + result["hist"]
        eps = self._trainer.episodes(0)
        window = eps["return"][-self.solve_window:]
        rec = {"env_steps": int(self._trainer.env_steps), "updates": int(self._trainer.updates),
               "episodes": int(eps["return"].size),
               "mean_return": float(window.mean()) if window.size else float("nan"),
               "steps_per_s": steps / seconds if seconds > 0 else float("nan"),
               "staleness_mean": (result["sum"] / result["count"]) if result and result["count"] else 0.0,
               "staleness_max": int(result["max"]) if result else 0,
               "wall_s": (self.history_[-1]["wall_s"] if self.history_ else 0.0) + seconds}
        self.history_.append(rec)
        if self.verbose:
            if len(self.history_) == 1:
                print(f"{'steps':>9} {'episodes':>8} {'mean return':>11} {'steps/s':>9} {'staleness':>9} {'wall s':>7}",
                      flush=True)
            print(f"{rec['env_steps']:>9} {rec['episodes']:>8} {rec['mean_return']:>11.1f} {rec['steps_per_s']:>9.0f} "
                  f"{rec['staleness_mean']:>9.2f} {rec['wall_s']:>7.2f}", flush=True)

    def _fit_native(self, total_steps, n_threads):
        done = 0
        while done < total_steps:
            budget = min(int(self.log_interval), total_steps - done)
            t0 = time.perf_counter()
            r = self._trainer.train(budget, n_threads)
            dt = time.perf_counter() - t0
            done += max(1, int(r["env_steps"]))
            self._record(r["env_steps"], dt, r)
            if r["interrupted"]:
                self.interrupted_ = True
                break
            if self.stop_when_solved and self._trainer.solved_step >= 0:
                break

    def _fit_python(self, env, total_steps, n_steps, n_envs, seed):
        """Python steps n_envs copies of a gymnasium environment; the native learner acts (one batched
        forward per step) and updates (one call per rollout)."""
        import copy

        envs = [env] + [copy.deepcopy(env) for _ in range(n_envs - 1)]
        D = self.obs_dim_
        obs = np.stack([np.asarray(e.reset(seed=seed + i)[0], dtype=np.float32).reshape(D) for i, e in enumerate(envs)])
        ep_ret = np.zeros(n_envs)
        ep_len = np.zeros(n_envs, dtype=np.int64)
        steps = 0
        t_rec, steps_rec = time.perf_counter(), 0
        O = np.empty((n_steps, n_envs, D), dtype=np.float32)
        A = np.empty((n_steps, n_envs), dtype=np.int32)
        R = np.empty((n_steps, n_envs))
        TERM = np.empty((n_steps, n_envs), dtype=np.uint8)
        TRUNC = np.empty((n_steps, n_envs), dtype=np.uint8)
        BOOT = np.zeros((n_steps, n_envs))
        while steps < total_steps:
            if _core.stop_requested():
                self.interrupted_ = True
                break
            finals = []
            for t in range(n_steps):
                O[t] = obs
                A[t] = self._trainer.sample_actions(obs)
                for e, en in enumerate(envs):
                    o, r, term, trunc, _ = en.step(int(A[t, e]))
                    o = np.asarray(o, dtype=np.float32).reshape(D)
                    if not np.isfinite(o).all() or not math.isfinite(float(r)):
                        raise ValueError(f"env returned a non-finite observation or reward at step {steps}: {o}, {r}")
                    R[t, e], TERM[t, e], TRUNC[t, e] = float(r), bool(term), bool(trunc)
                    ep_ret[e] += float(r)
                    ep_len[e] += 1
                    if term or trunc:
                        if trunc and not term:
                            finals.append((t, e, o))
                        self._trainer.record_episode(steps + t * n_envs + e + 1, float(ep_ret[e]), int(ep_len[e]))
                        ep_ret[e], ep_len[e] = 0.0, 0
                        o = np.asarray(en.reset()[0], dtype=np.float32).reshape(D)
                    obs[e] = o
            BOOT[:] = 0.0
            if finals:
                _, v = self._trainer.evaluate(np.stack([f[2] for f in finals]))
                for (t, e, _), val in zip(finals, v):
                    BOOT[t, e] = val
            _, last_v = self._trainer.evaluate(obs)
            self._trainer.update_external(O, A, R, TERM, TRUNC, BOOT, np.ascontiguousarray(last_v))
            steps += n_steps * n_envs
            steps_rec += n_steps * n_envs
            solved = self.stop_when_solved and self._trainer.solved_step >= 0
            if steps_rec >= self.log_interval or steps >= total_steps or solved:
                now = time.perf_counter()
                self._record(steps_rec, now - t_rec, None)
                t_rec, steps_rec = now, 0
            if solved:
                break

    def _finish(self):
        self.params_ = self._trainer.params()
        if not np.isfinite(self.params_).all():
            raise FloatingPointError("ActorCritic diverged: the parameters hold NaN or infinity; lower learning_rate "
                                     "or max_grad_norm")
        self.episodes_ = self._trainer.episodes(0)
        s = self._trainer.solved_step
        self.solved_step_ = int(s) if s >= 0 else None
        self.env_steps_ = int(self._trainer.env_steps)
        self.n_updates_ = int(self._trainer.updates)
        self._rule_state = self._trainer.state_bytes()  # weights and the rule's statistics, for save

    # ------------------------------------------------------------------ checkpoints
    def get_params(self, deep=False):
        return {k: getattr(self, k) for k in _PARAMS}

    def save(self, path):
        """Write the fitted model to ``path`` (asyncopt's npz checkpoint, no pickle: see
        :mod:`asyncopt.checkpoint`): parameters, the fitted network, the rule's whole shared state
        (weights and statistics), history and episodes. ``asyncopt.load(path)`` reads it back
        ready to ``predict``; a new ``fit`` starts from the initial parameters again. An ``env``
        that is an environment object (not a name) is not written and loads as None."""
        if not hasattr(self, "params_"):
            raise ValueError("save: this ActorCritic is not fitted yet (call fit first)")
        params, unsaved = {}, []
        for k, v in self.get_params().items():
            try:
                params[k] = checkpoint.to_json(v, k)
            except TypeError:
                checkpoint.unsaved_parameter(k, v)
                params[k], unsaved = None, unsaved + [k]
        fitted = {k: checkpoint.to_json(getattr(self, k), k) for k in _FITTED}
        st = self.staleness_
        fitted["staleness_"] = {"count": int(st["count"]), "sum": int(st["sum"]), "max": int(st["max"])}
        fitted["optimizer_"] = checkpoint.to_json(self.optimizer_, "optimizer_")
        arrays = {"params": self.params_, "rule_state": self._rule_state,
                  "staleness_hist": np.asarray(st["hist"] if st["hist"] is not None else [], dtype=np.uint64)}
        arrays.update({f"episodes_{k}": np.asarray(v) for k, v in self.episodes_.items()})
        meta = {"asyncopt_version": _core.build_info()["version"], "estimator": "ActorCritic", "params": params,
                "unsaved_params": unsaved, "fitted": fitted, "model": {}, "fit": None}
        return checkpoint.write(path, meta, arrays)

    @classmethod
    def _from_checkpoint(cls, meta, arrays):
        params = {k: checkpoint.from_json(v) for k, v in meta["params"].items()}
        unknown = set(params) - set(_PARAMS)
        if unknown:
            raise ValueError(f"checkpoint has parameters {sorted(unknown)} that this version's ActorCritic lacks")
        if meta.get("unsaved_params"):
            warnings.warn(f"checkpoint did not hold the parameters {meta['unsaved_params']} (not data); they are None "
                          "in the loaded estimator", stacklevel=3)
        if isinstance(params.get("hidden_sizes"), list):
            params["hidden_sizes"] = tuple(params["hidden_sizes"])
        est = cls(**params)
        fitted = meta["fitted"]
        for k in _FITTED:
            setattr(est, k, checkpoint.from_json(fitted[k]))
        est.optimizer_ = checkpoint.from_json(fitted["optimizer_"])
        est.staleness_ = dict(fitted["staleness_"], hist=arrays["staleness_hist"] if arrays["staleness_hist"].size else None)
        est.params_ = np.ascontiguousarray(arrays["params"], dtype=np.float64)
        est._rule_state = arrays["rule_state"]
        est.episodes_ = {k[len("episodes_"):]: v for k, v in arrays.items() if k.startswith("episodes_")}
        if est.params_.size != _core.mlp_n_params(est.obs_dim_, list(est.hidden_), est.n_actions_):
            raise ValueError("corrupt checkpoint: the parameter vector does not fit the network it names")
        return est

    # ------------------------------------------------------------------ inference
    def _check_obs(self, observations):
        if not hasattr(self, "params_"):
            raise ValueError("this ActorCritic is not fitted yet: call fit first")
        X = np.asarray(observations, dtype=np.float64)
        single = X.ndim == 1
        if single:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.obs_dim_:
            raise ValueError(f"observations must have shape (n, {self.obs_dim_}) or ({self.obs_dim_},), got "
                             f"{np.shape(observations)}")
        if not np.isfinite(X).all():
            raise ValueError("observations contain NaN or infinity")
        return np.ascontiguousarray(X, dtype=np.float32), single

    def policy(self, observations):
        """(action probabilities (n, n_actions), state values (n,)) of the trained network."""
        X, single = self._check_obs(observations)
        logp, v = _core.mlp_forward(self.params_, X, self.obs_dim_, self.hidden_, self.n_actions_)
        p = np.exp(logp)
        return (p[0], v[0]) if single else (p, v)

    def predict_proba(self, observations):
        """The policy's action probabilities."""
        return self.policy(observations)[0]

    def predict(self, observations):
        """The greedy action (argmax of the policy) for each observation."""
        p = self.predict_proba(observations)
        return np.argmax(p, axis=-1)
