"""Signatures of the compiled module asyncopt._core (csrc/bindings). Private: use the estimators."""
from collections.abc import Buffer

import numpy as np

STALENESS_BINS: int

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
    def __init__(self) -> None: ...

class EpochConfig:
    n_threads: int
    batch_size: int
    shuffle: bool
    seed: int
    k0: int
    lockstep: bool  # rounds with exactly determined staleness; for tests and controlled studies (hogwild.hpp)
    def __init__(self) -> None: ...

class LogisticConfig(EpochConfig):
    sparse_alpha: float
    fit_intercept: bool
    intercept_scale: float
    def __init__(self) -> None: ...

def build_info() -> dict: ...
def parse_libsvm(
    buffer: Buffer, dtype: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]: ...
def logistic_epoch(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray,
    perm: np.ndarray, state: np.ndarray, reg_scale: np.ndarray | None, active: np.ndarray,
    optimizer: str, steps: StepConfig, config: LogisticConfig, check_input: bool = True,
) -> dict: ...
def validate_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int) -> None: ...
def logistic_evaluate(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, n_features: int, y: np.ndarray,
    state: np.ndarray, optimizer: str, fit_intercept: bool, n_threads: int,
) -> tuple[float, int]: ...
def squared_norm(state: np.ndarray, active: np.ndarray, optimizer: str, dtype: str) -> float: ...
def state_layout(optimizer: str, dtype: str) -> dict: ...

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
