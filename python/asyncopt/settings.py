"""Frozen per-workload settings: what an estimator's hyper-parameters resolve to, once validated.

A backend receives these instead of the estimator. They are plain frozen dataclasses: picklable,
and compared with ``==``, which is how the MPI handshake checks that every rank was given the same
settings. Only what every rank must agree on is here; resources that may differ per process
(threads, the GPU) are passed beside them.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import _core
from .optim import Optimizer


@dataclass(frozen=True)
class LogisticSettings:
    """Sparse logistic regression: ``mean log-loss + alpha/2 ||w||^2``, trained by ``optimizer``.

    optimizer : a resolved Optimizer (learning_rate filled in)
    regularization : the mode used, 'none', 'exact', 'sparse' or 'decoupled'
    intercept_scale : the intercept's step relative to the weights'
    train_loss : 'progressive' (records hold the epoch's rows' losses at the models their updates
        read, summed as the epoch runs) or 'exact' (one more pass over the data per record)
    """

    optimizer: Optimizer
    alpha: float
    regularization: str
    batch_size: int
    shuffle: bool
    fit_intercept: bool
    intercept_scale: float
    train_loss: str = "progressive"

    @property
    def sparse_alpha(self):
        """alpha of the frequency-scaled sparse regulariser, 0 when it is off."""
        return self.alpha if self.regularization == "sparse" else 0.0

    def step_config(self):
        return self.optimizer.step_config(self.alpha, self.regularization)

    def native_config(self, n_threads):
        """The native LogisticConfig (the driver's and the problem's settings)."""
        cfg = _core.LogisticConfig()
        cfg.n_threads = n_threads
        cfg.batch_size = self.batch_size
        cfg.shuffle = self.shuffle
        cfg.sparse_alpha = self.sparse_alpha
        cfg.fit_intercept = self.fit_intercept
        cfg.intercept_scale = self.intercept_scale
        cfg.progressive_loss = self.train_loss == "progressive"
        return cfg


@dataclass(frozen=True)
class LdaSettings:
    """LDA by stochastic variational inference (names and meanings as asyncopt.LDA's parameters;
    the priors resolved to numbers)."""

    n_components: int
    doc_topic_prior: float
    topic_word_prior: float
    learning_offset: float
    learning_decay: float
    batch_size: int
    max_doc_update_iter: int
    mean_change_tol: float
    shuffle: bool

    def native_config(self, n_threads=1, total_samples=1.0):
        """The native LdaConfig; total_samples is D of SVI's D/|B| rescaling."""
        c = _core.LdaConfig()
        c.n_components = self.n_components
        c.doc_topic_prior = self.doc_topic_prior
        c.topic_word_prior = self.topic_word_prior
        c.learning_offset = self.learning_offset
        c.learning_decay = self.learning_decay
        c.total_samples = float(total_samples)
        c.max_doc_update_iter = self.max_doc_update_iter
        c.mean_change_tol = self.mean_change_tol
        c.n_threads = n_threads
        c.batch_size = self.batch_size
        c.shuffle = self.shuffle
        return c
