"""Latent Dirichlet allocation trained by lock-free parallel stochastic variational inference."""
from __future__ import annotations

import time

import numpy as np
from scipy.special import gammaln, psi
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _core
from ._checks import check_int, check_matrix, check_real, fit_rng, native_csr, resolve_n_threads
from .history import History, Staleness

LDA_HISTORY_FIELDS = ("epoch", "time", "epoch_time", "eval_time", "updates", "staleness_mean", "staleness_max",
                      "e_step_iterations", "topic_mass_drift", "perplexity", "train_perplexity")


def check_counts(X, name="X", n_features=None, need_words=True):
    """A document-word count matrix as canonical CSR with float64 counts (exact for any integer count
    below 2^53), after checking that every count is a finite non-negative integer."""
    X = check_matrix(X, name=name, n_features=n_features)
    if X.dtype != np.float64:
        X = X.astype(np.float64)
    data = X.data
    if data.size and data.min() < 0:
        raise ValueError(f"{name} has negative counts (min {data.min():g}); LDA needs word counts >= 0")
    if data.size and not np.array_equal(data, np.floor(data)):
        bad = data[data != np.floor(data)][0]
        raise ValueError(f"{name} has non-integer counts (e.g. {bad:g}); LDA models word counts: pass raw counts, "
                         "not tf-idf or normalised frequencies")
    if need_words and not data.any():
        raise ValueError(f"{name} is an empty corpus: its {X.shape[0]} documents hold 0 words in total")
    return X


class LDA(TransformerMixin, BaseEstimator):
    """Latent Dirichlet allocation by lock-free parallel stochastic variational inference.

    Stochastic variational inference (Hoffman, Blei, Wang, Paisley 2013, Alg. 1; the online VB of
    Hoffman, Blei, Bach 2010, Alg. 2) run by ``n_threads`` threads that process different
    mini-batches concurrently and apply their global steps to one shared lambda without locks (the
    thread level of DPSVI, Mohamad et al. 2022). For a mini-batch B at global step t:

    - local step, per document with lambda fixed (2013, eqs. 15-16 / Alg. 1 lines 6-9):
      ``gamma_k = alpha + exp(E[log theta_k]) sum_w c_w exp(E[log beta_kw]) / phinorm_w``, from
      gamma = 1 until ``mean |change of gamma| < mean_change_tol`` or ``max_doc_update_iter``;
    - global step (Alg. 1 lines 10-12): ``lambda <- (1 - rho_t) lambda + rho_t (eta + D/|B| sstats)``,
      ``rho_t = (learning_offset + t) ** -learning_decay``.

    The (1 - rho_t) decay is applied lazily through a scale that depends on the step number only,
    so a global step costs O(K x distinct words of B), never O(K x V). With ``n_threads=1`` a fit is
    reproducible to the bit. Parameter names and meanings follow scikit-learn's
    ``LatentDirichletAllocation(learning_method="online")``; ``perplexity`` and ``score`` evaluate
    the same variational bound as its ``_approx_bound``, so the numbers compare side by side.

    Parameters
    ----------
    n_components : int, default 10
        Number of topics K.
    doc_topic_prior : float or None
        alpha, the Dirichlet prior of document-topic proportions; None = 1 / n_components.
    topic_word_prior : float or None
        eta, the Dirichlet prior of topic-word distributions; None = 1 / n_components.
    learning_offset : float, default 10
        tau0 > 0 of the step size rho_t = (tau0 + t)^-kappa (t = 1, 2, ... counts global steps).
    learning_decay : float, default 0.7
        kappa in (0.5, 1] (the range where SVI's Robbins-Monro conditions hold).
    batch_size : int, default 128
        Documents per mini-batch (one global step each).
    max_doc_update_iter : int, default 100
    mean_change_tol : float, default 1e-3
        Stopping rule of the per-document E-step.
    epochs : int, default 10
        Passes over the corpus in ``fit``.
    total_samples : float, default 1e6
        D in the D/|B| rescaling used by ``partial_fit`` (``fit`` uses the number of documents).
    shuffle : bool, default True
        Reshuffle the document order every epoch; False visits documents in order (thread t takes the
        t-th contiguous share), which with one thread is scikit-learn's order.
    n_threads : int or None
        Threads running concurrent mini-batches; None = all usable cores (OMP_NUM_THREADS if set).
    random_state : int, RandomState or None
        Seeds lambda's initialisation (Gamma(100, 1/100) draws, the same draws as scikit-learn for an
        int seed) and the shuffles (one stream per thread).
    train_perplexity_docs : int, default 1000
        Each epoch's record holds the perplexity of a fixed random subsample of this many training
        documents (0: none); its cost is counted in ``eval_time``, not in ``time``.
    verbose : int, default 0
        Print one line per epoch when > 0.
    callback : callable or None
        ``callback(record)`` after every epoch; returning True stops training.
    backend : {'threads', 'mpi'}, default 'threads'
        'mpi': DPSVI over MPI, for a script run as ``mpiexec -n K python script.py`` in which every
        rank calls ``fit``: rank 0 applies the global steps and ends up holding the model, ranks
        1..K-1 run the E-steps of their share of the documents over their ``n_threads`` threads (see
        :mod:`asyncopt.distributed`). Needs mpi4py.
    mpi : asyncopt.distributed.MPIOptions, dict or None
        Settings of the 'mpi' backend; LDA runs method 'async' (DPSVI) or 'sync'.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features), lambda (topic-word variational parameters)
    doc_topic_prior_, topic_word_prior_ : float, the priors in use
    n_features_in_ : int
    n_iter_ : int, epochs run by the last fit
    t_ : int, global steps (mini-batches) applied since initialisation; rho_t uses t_ + 1 next
    history_ : History, one record per epoch (see ``LDA_HISTORY_FIELDS``)
    staleness_ : Staleness, delay of every global step since initialisation
    n_threads_ : int, threads used by the last fit (None with backend='mpi')
    mpi_rank_, mpi_stats_ : with backend='mpi', as for LogisticRegression
    """

    def __init__(self, n_components=10, doc_topic_prior=None, topic_word_prior=None, learning_offset=10.0,
                 learning_decay=0.7, batch_size=128, max_doc_update_iter=100, mean_change_tol=1e-3, epochs=10,
                 total_samples=1e6, shuffle=True, n_threads=None, random_state=None, train_perplexity_docs=1000,
                 verbose=0, callback=None, backend="threads", mpi=None):
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.batch_size = batch_size
        self.max_doc_update_iter = max_doc_update_iter
        self.mean_change_tol = mean_change_tol
        self.epochs = epochs
        self.total_samples = total_samples
        self.shuffle = shuffle
        self.n_threads = n_threads
        self.random_state = random_state
        self.train_perplexity_docs = train_perplexity_docs
        self.verbose = verbose
        self.callback = callback
        self.backend = backend
        self.mpi = mpi

    # ------------------------------------------------------------------ parameters
    def _validate_params(self):
        K = check_int("n_components", self.n_components, low=1)
        alpha = check_real("doc_topic_prior", self.doc_topic_prior, low=0, low_open=True, allow_none=True)
        eta = check_real("topic_word_prior", self.topic_word_prior, low=0, low_open=True, allow_none=True)
        # tau0 = 0 would make rho_1 = 1, i.e. S_1 = prod(1 - rho) = 0 for the lazy decay (and
        # scikit-learn's documentation asks for a positive offset, ideally > 1).
        check_real("learning_offset", self.learning_offset, low=0, low_open=True)
        decay = check_real("learning_decay", self.learning_decay)
        if not 0.5 < decay <= 1.0:
            raise ValueError(f"learning_decay must be in (0.5, 1], got {self.learning_decay!r}")
        check_int("batch_size", self.batch_size, low=1)
        check_int("max_doc_update_iter", self.max_doc_update_iter, low=1)
        if self.max_doc_update_iter > np.iinfo(np.int32).max:
            raise ValueError("max_doc_update_iter must be < 2^31")
        check_real("mean_change_tol", self.mean_change_tol, low=0)
        check_int("epochs", self.epochs, low=1)
        check_real("total_samples", self.total_samples, low=0, low_open=True)
        check_int("train_perplexity_docs", self.train_perplexity_docs, low=0)
        check_int("verbose", self.verbose, low=0)
        if not isinstance(self.shuffle, (bool, np.bool_)):
            raise ValueError(f"shuffle must be True or False, got {self.shuffle!r}")
        if self.callback is not None and not callable(self.callback):
            raise ValueError("callback must be callable or None")
        rs = self.random_state
        if not (rs is None or isinstance(rs, np.random.RandomState)):
            check_int("random_state", rs, low=0)
        if self.backend not in ("threads", "mpi"):
            raise ValueError(f"backend must be 'threads' or 'mpi', got {self.backend!r}")
        if self.backend == "mpi":
            from .distributed import resolve_options

            check_int("n_threads", self.n_threads, low=1, allow_none=True)  # resolved on each worker
            if resolve_options(self.mpi).method not in ("async", "sync"):
                raise ValueError(f"LDA over MPI runs method 'async' (DPSVI) or 'sync', not "
                                 f"{resolve_options(self.mpi).method!r}")
        elif self.mpi is not None:
            raise ValueError("mpi options are given but backend is 'threads': pass backend='mpi'")
        return (K, 1.0 / K if alpha is None else alpha, 1.0 / K if eta is None else eta,
                resolve_n_threads(self.n_threads) if self.backend == "threads" else None)

    def _config(self, n_threads=1, total_samples=1.0):
        c = _core.LdaConfig()
        c.n_components = int(self.n_components)
        c.doc_topic_prior = float(self.doc_topic_prior_)
        c.topic_word_prior = float(self.topic_word_prior_)
        c.learning_offset = float(self.learning_offset)
        c.learning_decay = float(self.learning_decay)
        c.total_samples = float(total_samples)
        c.max_doc_update_iter = int(self.max_doc_update_iter)
        c.mean_change_tol = float(self.mean_change_tol)
        c.n_threads = n_threads
        c.batch_size = int(self.batch_size)
        c.shuffle = bool(self.shuffle)
        return c

    # ------------------------------------------------------------------ model state
    def _init_model(self, n_features, alpha, eta):
        """lambda_0 ~ Gamma(100, 1/100) per entry (Hoffman et al. 2010; scikit-learn draws the same
        numbers from the same seed), stored word-major as mu = lambda - eta with its topic sums."""
        K = int(self.n_components)
        self.doc_topic_prior_ = alpha
        self.topic_word_prior_ = eta
        self.n_features_in_ = n_features
        rs = check_random_state(self.random_state)
        lam = rs.gamma(100.0, 0.01, (K, n_features))
        self._mu = np.ascontiguousarray(lam.T - eta)  # V x K
        self._topic_mass = self._mu.sum(axis=0)
        self.t_ = 0
        self.n_iter_ = 0
        self.history_ = History()
        self.staleness_ = Staleness()
        self._epochs_done = 0
        self._train_time = 0.0

    @property
    def components_(self):
        """lambda, shape (n_components, n_features): the topic-word variational Dirichlet parameters
        (rows are unnormalised topics, as scikit-learn's ``components_``)."""
        check_is_fitted(self, "_mu")
        return (self._mu + self.topic_word_prior_).T

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None, eval_set=None):
        """Learn lambda by ``epochs`` passes of parallel SVI over the documents of X (D = rows of X).

        X : document-word counts (n_documents, n_features), sparse or dense, non-negative integers.
        eval_set : count matrix of held-out documents, optional; its perplexity goes into every
            history record (``perplexity``).
        """
        K, alpha, eta, n_threads = self._validate_params()
        X = check_counts(X)
        if self.backend == "mpi":
            from .distributed import lda, resolve_options

            return lda.fit(self, X, eval_set, alpha, eta, resolve_options(self.mpi), int(self.epochs))
        self._init_model(X.shape[1], alpha, eta)
        return self._train(X, eval_set, n_threads, int(self.epochs), X.shape[0])

    def partial_fit(self, X, y=None, eval_set=None):
        """One pass of parallel SVI over the documents of X, continuing from the current lambda, with
        D = ``total_samples`` in the D/|B| rescaling (as scikit-learn's partial_fit)."""
        K, alpha, eta, n_threads = self._validate_params()
        if self.backend == "mpi":
            raise ValueError("partial_fit is not available with backend='mpi' (every rank would have to call it "
                             "in step); fit runs DPSVI over the whole corpus")
        if not hasattr(self, "_mu"):
            X = check_counts(X)
            self._init_model(X.shape[1], alpha, eta)
        else:
            X = check_counts(X, n_features=self.n_features_in_)
            self._check_priors(alpha, eta)
        return self._train(X, eval_set, n_threads, 1, float(self.total_samples))

    def _check_priors(self, alpha, eta):
        if (alpha, eta) != (self.doc_topic_prior_, self.topic_word_prior_) or self._mu.shape[1] != self.n_components:
            raise ValueError("n_components or the priors changed since the model was initialised; call fit to "
                             "start over")

    def _train(self, X, eval_set, n_threads, epochs, total_samples):
        Xv = None
        if eval_set is not None:
            Xv = check_counts(eval_set, name="eval_set", n_features=self.n_features_in_)
        n = X.shape[0]
        Xn = native_csr(X)
        rng = fit_rng(self.random_state, self.t_)
        perm = rng.permutation(n).astype(np.int64) if self.shuffle else np.arange(n, dtype=np.int64)
        sub = None
        if self.train_perplexity_docs > 0:
            rows = np.sort(rng.choice(n, size=min(n, int(self.train_perplexity_docs)), replace=False))
            sub = X[rows]
            if not sub.data.any():
                sub = None
        cfg = self._config(n_threads, total_samples)
        self.n_threads_ = n_threads
        self.n_iter_ = 0
        for _ in range(epochs):
            cfg.seed = int(rng.integers(2 ** 63))
            cfg.k0 = self.t_
            t0 = time.perf_counter()
            res = _core.lda_epoch(*Xn, X.shape[1], perm, self._mu, self._topic_mass, cfg)
            epoch_time = time.perf_counter() - t0
            self._train_time += epoch_time
            self.t_ += int(res["updates"])
            self.staleness_.add(res)
            self.n_iter_ += 1
            self._epochs_done += 1
            if not np.isfinite(self._topic_mass).all():
                raise FloatingPointError(f"lambda is no longer finite after epoch {self._epochs_done}: check the "
                                         "counts and priors, or raise learning_offset")
            t1 = time.perf_counter()
            rec = {"epoch": self._epochs_done, "time": self._train_time, "epoch_time": epoch_time,
                   "updates": self.t_, "staleness_mean": float(res["sum"]) / max(int(res["count"]), 1),
                   "staleness_max": int(res["max"]), "e_step_iterations": int(res["e_step_iterations"]),
                   "topic_mass_drift": float(res["topic_mass_drift"]),
                   "perplexity": self._perplexity(Xv, n_threads) if Xv is not None else None,
                   "train_perplexity": self._perplexity(sub, n_threads) if sub is not None else None}
            rec["eval_time"] = time.perf_counter() - t1
            self.history_.append(rec)
            if self.verbose:
                print(self._format_record(rec), flush=True)
            if self.callback is not None and self.callback(rec) is True:
                break
        return self

    @staticmethod
    def _format_record(rec):
        epoch = rec["epoch"]  # fractional where an MPI run records between passes
        epoch = f"{epoch:3d}" if isinstance(epoch, int) else f"{epoch:7.3f}"
        s = (f"epoch {epoch}  time {rec['time']:8.3f}s  updates {rec['updates']}  "
             f"staleness mean {rec['staleness_mean']:.3g} max {rec['staleness_max']}")
        if rec.get("train_perplexity") is not None:
            s += f"  train perplexity {rec['train_perplexity']:.2f}"
        if rec.get("perplexity") is not None:
            s += f"  eval perplexity {rec['perplexity']:.2f}"
        return s

    # ------------------------------------------------------------------ inference
    def _infer(self, X, n_threads, with_loglik):
        cfg = self._config()
        return _core.lda_infer(*native_csr(X), X.shape[1], self._mu, self._topic_mass, cfg, n_threads, with_loglik)

    def _n_threads_now(self):
        return resolve_n_threads(self.n_threads)

    def _unnormalized_transform(self, X):
        """gamma of every document of X (validated), lambda fixed: the E-step from gamma = 1."""
        gamma, _ = self._infer(X, self._n_threads_now(), False)
        return gamma

    def transform(self, X, *, normalize=True):
        """Document-topic distributions: each document's E-step gamma with lambda fixed (from
        gamma = 1, Alg. 1 lines 6-9), normalised to sum to 1 per row unless ``normalize=False``."""
        check_is_fitted(self, "_mu")
        X = check_counts(X, n_features=self.n_features_in_, need_words=False)
        gamma = self._unnormalized_transform(X)
        if normalize:
            gamma /= gamma.sum(axis=1, keepdims=True)
        return gamma

    def _bound(self, X, n_threads):
        """The variational bound of scikit-learn's ``_approx_bound(X, gamma, sub_sampling=False)``:
        E_q[log p(docs | theta, beta)] + E_q[log p(theta | alpha) - log q(theta | gamma)]
        + E_q[log p(beta | eta) - log q(beta | lambda)] (Hoffman et al. 2010, eq. 3), with gamma from
        the E-step with lambda fixed."""
        gamma, loglik = self._infer(X, n_threads, True)
        K = int(self.n_components)
        alpha, eta = self.doc_topic_prior_, self.topic_word_prior_
        score = float(np.sum(loglik))
        elog_theta = psi(gamma) - psi(gamma.sum(axis=1))[:, None]
        score += float(np.sum((alpha - gamma) * elog_theta))
        score += float(np.sum(gammaln(gamma) - gammaln(alpha)))
        score += float(np.sum(gammaln(alpha * K) - gammaln(gamma.sum(axis=1))))
        lam = self._mu + eta  # V x K
        lam_sum = lam.sum(axis=0)
        elog_beta = psi(lam) - psi(lam_sum)[None, :]
        score += float(np.sum((eta - lam) * elog_beta))
        score += float(np.sum(gammaln(lam) - gammaln(eta)))
        score += float(np.sum(gammaln(eta * self.n_features_in_) - gammaln(lam_sum)))
        return score

    def _perplexity(self, X, n_threads):
        return float(np.exp(-self._bound(X, n_threads) / X.data.sum()))

    def score(self, X, y=None):
        """The variational bound on log p(X) (scikit-learn's ``score``: ``_approx_bound`` without
        subsampling correction)."""
        check_is_fitted(self, "_mu")
        X = check_counts(X, n_features=self.n_features_in_, need_words=False)
        return self._bound(X, self._n_threads_now())

    def perplexity(self, X):
        """exp(-bound / total word count of X), the bound of :meth:`score` (scikit-learn's
        ``perplexity(X)``); lower is better."""
        check_is_fitted(self, "_mu")
        X = check_counts(X, n_features=self.n_features_in_)
        return self._perplexity(X, self._n_threads_now())

    def top_words(self, vocab, n=10):
        """The ``n`` words of highest lambda in each topic: a list of n_components lists of words."""
        check_is_fitted(self, "_mu")
        n = check_int("n", n, low=1)
        vocab = list(vocab)
        if len(vocab) != self.n_features_in_:
            raise ValueError(f"vocab has {len(vocab)} words, but the model was fit with {self.n_features_in_}")
        n = min(n, self.n_features_in_)
        order = np.argsort(-self._mu, axis=0, kind="stable")[:n]  # V x K: best words per topic column
        return [[vocab[i] for i in order[:, k]] for k in range(self._mu.shape[1])]
