"""Signatures of the compiled module asyncopt._core (csrc/bindings). Private: use the estimators."""
import types
from collections.abc import Buffer

import numpy as np

STALENESS_BINS: int
MAX_THREADS: int  # the most threads one native call runs (core/parallel.hpp says why)

class Rule:  # csrc/asyncopt/optim/rules.hpp
    sgd: Rule
    amsgrad: Rule
    adagrad: Rule
    adam: Rule
    rmsprop: Rule
    name: str
    value: int
    def __init__(self, value: int) -> None: ...
    __members__: dict

def rule_capabilities(rule: Rule) -> dict: ...  # additive, reg_in_state, moments, drift, series

class Quantizer:  # csrc/asyncopt/compress/quantizers.hpp
    identity: Quantizer
    sign: Quantizer
    ternary: Quantizer
    qsgd: Quantizer

def quantized_bytes(n: int, kind: Quantizer, block_size: int, bits: int) -> int: ...
def quantize(x: np.ndarray, kind: Quantizer, block_size: int, bits: int, seed: int, stream: int) -> np.ndarray: ...
def dequantize(message: np.ndarray, n: int, kind: Quantizer, block_size: int, bits: int) -> np.ndarray: ...

class Schedule:
    constant: Schedule
    invsqrt: Schedule
    optimal: Schedule

class StepConfig:
    learning_rate: float
    schedule: Schedule
    schedule_alpha: float
    bias_correction: bool
    beta1: float
    beta2: float
    eps: float
    decay: float
    scale: float  # multiplies every eta_k, in (0, 1] (plateau drops)
    def __init__(self) -> None: ...

def series_horizon(steps: StepConfig) -> int: ...

class EpochConfig:
    n_threads: int
    batch_size: int
    shuffle: bool
    seed: int
    k0: int
    lockstep: bool  # rounds with exactly determined staleness; for tests and controlled studies (threads/hogwild.hpp)
    record_staleness: bool  # logistic_epoch's result gains 'delays': each update's tau in step order
    def __init__(self) -> None: ...

class LogisticConfig(EpochConfig):
    sparse_alpha: float
    fit_intercept: bool
    intercept_scale: float
    progressive_loss: bool  # the epoch's result gains loss_sum, correct, rows (each row at the model it read)
    def __init__(self) -> None: ...

def build_info() -> dict: ...
def parse_libsvm(
    buffer: Buffer, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]: ...
def parse_uci_docword(buffer: Buffer) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]: ...
def parse_ldac(buffer: Buffer, n_features: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]: ...
def logistic_epoch(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray,
    perm: np.ndarray, state: np.ndarray, reg_scale: np.ndarray | None, active: np.ndarray,
    rule: Rule, steps: StepConfig, config: LogisticConfig, check_input: bool = True,
    sample_weight: np.ndarray | None = None,
) -> dict: ...
def thread_pool_size() -> int: ...
def hold_pool_joiners_for_testing(on: bool) -> None: ...
def validate_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int) -> None: ...
def logistic_evaluate(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray,
    state: np.ndarray, rule: Rule, fit_intercept: bool, n_threads: int, sample_weight: np.ndarray | None = None,
) -> tuple[float, int]: ...
def squared_norm(state: np.ndarray, active: np.ndarray, rule: Rule, dtype: str) -> float: ...
def state_layout(rule: Rule, dtype: str) -> dict: ...

class LdaConfig(EpochConfig):
    n_components: int
    doc_topic_prior: float
    topic_word_prior: float
    learning_offset: float
    learning_decay: float
    total_samples: float
    max_doc_update_iter: int
    mean_change_tol: float
    def __init__(self) -> None: ...

def lda_epoch(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, perm: np.ndarray,
    mu: np.ndarray, topic_mass: np.ndarray, config: LdaConfig,
) -> dict: ...
def lda_infer(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, mu: np.ndarray,
    topic_mass: np.ndarray, config: LdaConfig, n_threads: int, with_loglik: bool,
) -> tuple[np.ndarray, np.ndarray | None]: ...
def lda_doc_loglik(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, mu: np.ndarray,
    topic_mass: np.ndarray, gamma: np.ndarray, config: LdaConfig, n_threads: int,
) -> np.ndarray: ...

class LdaServerModel:
    def __init__(self, mu: np.ndarray, topic_mass: np.ndarray, config: LdaConfig, k0: int) -> None: ...
    @property
    def steps(self) -> int: ...
    def read(self, words: np.ndarray, out: np.ndarray, mass: np.ndarray) -> None: ...
    def apply(self, words: np.ndarray, stats: np.ndarray, n_docs: float) -> None: ...
    def settle(self) -> float: ...

def lda_batch_stats(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, docs: np.ndarray,
    words: np.ndarray, mu: np.ndarray, mass: np.ndarray, config: LdaConfig, n_threads: int, out: np.ndarray,
    check_input: bool = True,
) -> int: ...

class ServerModel:
    def __init__(
        self, state: np.ndarray, n_features: int, rule: Rule, dtype: str, steps: StepConfig, k0: int,
        fit_intercept: bool, intercept_scale: float, active: np.ndarray, n_slots: int = 0,
    ) -> None: ...
    @property
    def steps(self) -> int: ...
    def read(self, keys: np.ndarray, out: np.ndarray) -> None: ...
    def read_intercept(self) -> float: ...
    def apply(self, idx: np.ndarray, g: np.ndarray, g0: float) -> None: ...
    def add(self, idx: np.ndarray, delta: np.ndarray, delta0: float, n_steps: int) -> None: ...
    def distance(self, slot: int) -> float: ...
    def reset(self, slot: int) -> None: ...
    def set_step_scale(self, scale: float) -> None: ...
    def settle(self) -> None: ...
    @property
    def touched(self) -> np.ndarray: ...

class DelaySimulator:
    """One writer whose updates read the iterate d_t steps earlier (csrc/asyncopt/simulate/delayed.hpp)."""
    def __init__(
        self, state: np.ndarray, n_features: int, rule: Rule, dtype: str, steps: StepConfig, config: LogisticConfig,
        active: np.ndarray, reg_scale: np.ndarray | None, max_delay: int, picky_threshold: float, k0: int,
        delay_adaptive: float = ...,
    ) -> None: ...
    def epoch(
        self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, y: np.ndarray, perm: np.ndarray,
        delays: np.ndarray, seed: int, sample_weight: np.ndarray | None = None,
    ) -> dict: ...
    def set_step_scale(self, scale: float) -> None: ...
    @property
    def steps(self) -> int: ...

def logistic_batch_gradient(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray, rows: np.ndarray,
    w: np.ndarray, reg_scale: np.ndarray | None, sparse_alpha: float, fit_intercept: bool, idx_out: np.ndarray,
    g_out: np.ndarray, check_input: bool = True,
) -> tuple[int, float]: ...
def batch_features(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, rows: np.ndarray, out: np.ndarray,
    check_input: bool = True,
) -> int: ...

class GpuConfig:
    workers: int
    batch_size: int
    shuffle: bool
    sparse_alpha: float
    fit_intercept: bool
    intercept_scale: float
    atomic: bool
    max_batch_nnz: int
    max_segment_updates: int
    def __init__(self) -> None: ...

class _GpuEmulator(types.ModuleType):
    # the submodule gpu_emulator; module-local classes, distinct from asyncopt._cuda's (bind_gpu.hpp)
    class Dataset:
        def __init__(
            self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, y: np.ndarray, n_features: int,
            device: int = 0,
        ) -> None: ...
        @property
        def n_rows(self) -> int: ...
        @property
        def n_features(self) -> int: ...
        @property
        def nnz(self) -> int: ...
        @property
        def device(self) -> int: ...
        def column_counts(self) -> np.ndarray: ...
        def indptr(self) -> np.ndarray: ...

    class LogisticEngine:
        def __init__(
            self, data: _GpuEmulator.Dataset, rule: Rule, state: np.ndarray, reg_scale: np.ndarray | None,
            active: np.ndarray, perm: np.ndarray, steps: StepConfig, config: GpuConfig,
        ) -> None: ...
        def epoch(self, seed: int, k0: int, step_scale: float = 1.0) -> dict: ...
        def evaluate(self, data: _GpuEmulator.Dataset) -> tuple[float, int]: ...
        def squared_norm(self) -> float: ...
        def download_state(self, state: np.ndarray) -> None: ...

gpu_emulator: _GpuEmulator

# Ctrl-C during native fits (csrc/asyncopt/core/interrupt.hpp, bind_interrupt.cpp)
def sigint_install() -> bool: ...
def sigint_restore() -> None: ...
def stop_requested() -> bool: ...
def request_stop() -> None: ...
def clear_stop() -> None: ...

# multiclass logistic regression (threads/multinomial.hpp, bind_multinomial.cpp)
def multinomial_epoch(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray,
                      n_classes: int, perm: np.ndarray, state: np.ndarray, reg_scale: np.ndarray | None,
                      active: np.ndarray, rule: Rule, steps: StepConfig, config: LogisticConfig, loss: str = "softmax",
                      check_input: bool = True, sample_weight: np.ndarray | None = None) -> dict: ...
def multinomial_evaluate(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray,
                         n_classes: int, state: np.ndarray, rule: Rule, fit_intercept: bool, loss: str,
                         n_threads: int, sample_weight: np.ndarray | None = None) -> tuple[float, int]: ...

# update rules on a caller's own array (optim/attached.hpp, bind_attached.cpp); asyncopt.optim.Attached wraps it
class AttachedOptimizer:
    def __init__(self, param: np.ndarray, rule: Rule, steps: StepConfig, segment_steps: int = 0) -> None: ...
    def step(self, grad: np.ndarray, rows: np.ndarray | None = None) -> int: ...  # GIL released; its k
    def catch_up(self, rows: np.ndarray | None = None) -> int: ...  # the k caught up to
    def finish(self) -> None: ...
    steps: int  # global steps begun (all completed when no step runs)
    segment_steps: int  # steps per stamp segment
    rebases: int  # segments closed so far

# csrc/bindings/bind_rl.cpp: the actor-critic workload (csrc/asyncopt/rl, threads/actor_critic.hpp)
class CartPoleEnv:  # rl/cartpole.hpp; for tests against gymnasium
    obs_dim: int
    n_actions: int
    max_steps: int
    solved_return: float
    def __init__(self, seed: int = 0) -> None: ...
    def reset(self) -> np.ndarray: ...
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool]: ...  # obs, reward, terminated, truncated
    def state(self) -> np.ndarray: ...
    def set_state(self, state: np.ndarray, elapsed: int = 0) -> None: ...

class AcrobotEnv(CartPoleEnv): ...  # rl/acrobot.hpp (same methods)

def mlp_n_params(obs_dim: int, hidden: list[int], n_actions: int) -> int: ...
def mlp_forward(theta: np.ndarray, obs: np.ndarray, obs_dim: int, hidden: list[int],
                n_actions: int) -> tuple[np.ndarray, np.ndarray]: ...  # log pi (n x A), V (n)
def mlp_backward(theta: np.ndarray, obs: np.ndarray, dlogits: np.ndarray, dvalue: np.ndarray, obs_dim: int,
                 hidden: list[int], n_actions: int) -> np.ndarray: ...
def n_step_returns(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, truncation_value: np.ndarray,
                   last_value: np.ndarray, gamma: float) -> np.ndarray: ...

class ActorCriticConfig:
    n_steps: int
    n_envs: int
    seed: int
    solve_window: int
    solve_return: float
    stop_when_solved: bool
    gamma: float
    value_coef: float
    entropy_coef: float
    max_grad_norm: float
    def __init__(self) -> None: ...

class ActorCriticTrainer:
    updates: int
    env_steps: int
    solved_step: int  # -1 until solved
    n_params: int
    def __init__(self, env_kind: int, obs_dim: int, hidden: list[int], n_actions: int, rule: Rule,
                 step_config: StepConfig, config: ActorCriticConfig, theta0: np.ndarray, max_threads: int) -> None: ...
    def train(self, budget: int, n_threads: int) -> dict: ...  # updates, staleness, env_steps, interrupted
    def update_external(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                        truncated: np.ndarray, truncation_value: np.ndarray, last_value: np.ndarray) -> dict: ...
    def evaluate(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def sample_actions(self, obs: np.ndarray) -> np.ndarray: ...
    def record_episode(self, step: int, ret: float, length: int) -> None: ...
    def params(self) -> np.ndarray: ...
    def set_params(self, params: np.ndarray) -> None: ...
    def state_bytes(self) -> np.ndarray: ...
    def set_state_bytes(self, state: np.ndarray, updates: int, env_steps: int) -> None: ...
    def episodes(self, start: int = 0) -> dict: ...  # step, return, length, thread
