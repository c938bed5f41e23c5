"""Latent Dirichlet allocation trained by lock-free parallel stochastic variational inference: the
estimator. It validates its parameters, resolves them to frozen settings, and hands those, a model
state and the epoch loop to the backend it names (:mod:`asyncopt.backends`)."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import backends
from ._estimator import BackendEstimator, exclusive_fit
from ._checks import check_int, check_n_threads, check_real, resolve_n_threads
from .history import format_epoch
from .settings import LdaSettings
from .state import LdaState, check_counts
from .training import EpochLoop

LDA_HISTORY_FIELDS = ("epoch", "time", "epoch_time", "eval_time", "updates", "staleness_mean", "staleness_max",
                      "e_step_iterations", "topic_mass_drift", "perplexity", "train_perplexity")


def _format_record(rec):
    s = (f"epoch {format_epoch(rec['epoch'])}  time {rec['time']:8.3f}s  updates {rec['updates']}  "
         f"staleness mean {rec['staleness_mean']:.3g} max {rec['staleness_max']}")
    if rec.get("train_perplexity") is not None:
        s += f"  train perplexity {rec['train_perplexity']:.2f}"
    if rec.get("perplexity") is not None:
        s += f"  eval perplexity {rec['perplexity']:.2f}"
    return s


def _divergence(model, rec):
    if model.finite():
        return None
    return (f"lambda is no longer finite after epoch {rec['epoch']} ({rec['updates']} global steps): check the "
            "counts and priors, or raise learning_offset")


class LDA(BackendEstimator, TransformerMixin, BaseEstimator):
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
    backend : {'threads', 'mpi', 'auto'}, default 'threads'
        Who runs the updates (:mod:`asyncopt.backends`; 'auto' is 'threads'). 'mpi': DPSVI over MPI, for a script run as ``mpiexec -n K python script.py`` in which every
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
    backend_ : str, the backend of the last fit
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
    def _resolve(self):
        """(backend name, backend module, its options, settings) after checking every parameter."""
        K = check_int("n_components", self.n_components, low=1)
        alpha = check_real("doc_topic_prior", self.doc_topic_prior, low=0, low_open=True, allow_none=True)
        eta = check_real("topic_word_prior", self.topic_word_prior, low=0, low_open=True, allow_none=True)
        # tau0 = 0 would make rho_1 = 1, i.e. S_1 = prod(1 - rho) = 0 for the lazy decay (and
        # scikit-learn's documentation asks for a positive offset, ideally > 1).
        offset = check_real("learning_offset", self.learning_offset, low=0, low_open=True)
        decay = check_real("learning_decay", self.learning_decay)
        if not 0.5 < decay <= 1.0:
            raise ValueError(f"learning_decay must be in (0.5, 1], got {self.learning_decay!r}")
        check_int("batch_size", self.batch_size, low=1)
        check_int("max_doc_update_iter", self.max_doc_update_iter, low=1)
        if self.max_doc_update_iter > np.iinfo(np.int32).max:
            raise ValueError("max_doc_update_iter must be < 2^31")
        tol = check_real("mean_change_tol", self.mean_change_tol, low=0)
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
        check_n_threads(self.n_threads)
        name, backend = backends.resolve(self.backend, "lda")
        options = backends.options(name, "lda", {p: getattr(self, p) for p in backends.parameter_names("lda")})
        if hasattr(backend, "check_lda"):
            backend.check_lda(options)
        settings = LdaSettings(n_components=K, doc_topic_prior=1.0 / K if alpha is None else alpha,
                               topic_word_prior=1.0 / K if eta is None else eta, learning_offset=offset,
                               learning_decay=decay, batch_size=int(self.batch_size),
                               max_doc_update_iter=int(self.max_doc_update_iter), mean_change_tol=tol,
                               shuffle=bool(self.shuffle))
        return name, backend, options, settings

    # ------------------------------------------------------------------ fitting
    @exclusive_fit
    def fit(self, X, y=None, eval_set=None):
        """Learn lambda by ``epochs`` passes of parallel SVI over the documents of X (D = rows of X).

        X : document-word counts (n_documents, n_features), sparse or dense, non-negative integers.
        eval_set : count matrix of held-out documents, optional; its perplexity goes into every
            history record (``perplexity``).
        """
        return self._fit(self._resolve(), X, eval_set, self.epochs, continuing=False)

    @exclusive_fit
    def partial_fit(self, X, y=None, eval_set=None):
        """One pass of parallel SVI over the documents of X, continuing from the current lambda, with
        D = ``total_samples`` in the D/|B| rescaling (as scikit-learn's partial_fit)."""
        resolved = self._resolve()
        name, backend, _, settings = resolved
        if not backend.PARTIAL_FIT:
            raise ValueError(f"partial_fit is not available with backend={name!r} (every rank would have to call it "
                             "in step); fit runs DPSVI over the whole corpus")
        model = self.__dict__.get("_model")
        if model is not None and model.settings != settings:
            changed = [f for f in ("n_components", "doc_topic_prior", "topic_word_prior")
                       if getattr(model.settings, f) != getattr(settings, f)]
            if changed:
                raise ValueError(f"{' and '.join(changed)} changed since the model was initialised; call fit to "
                                 "start over")
        return self._fit(resolved, X, eval_set, 1, continuing=True, total_samples=float(self.total_samples))

    def _fit(self, resolved, X, eval_set, epochs, continuing, total_samples=None):
        name, backend, options, settings = resolved

        def new_model(n_features):
            return self._hold(LdaState(n_features, settings, self.random_state))

        model = self.__dict__.get("_model")
        if model is not None and continuing:
            # a model continues under its own priors; the step-size and E-step settings may change
            model.settings = settings
        loop = EpochLoop(int(epochs), _format_record, _divergence, verbose=int(self.verbose), callback=self.callback)
        run = backends.Run(n_threads=self.n_threads, random_state=self.random_state, new_model=new_model,
                           continuing=continuing and model is not None, total_samples=total_samples, options=options,
                           train_perplexity_docs=int(self.train_perplexity_docs))
        return self._train(name, lambda: backend.fit_lda(model, X, eval_set, settings, loop, run), run)

    # ------------------------------------------------------------------ the model
    @property
    def components_(self):
        """lambda, shape (n_components, n_features): the topic-word variational Dirichlet parameters
        (rows are unnormalised topics, as scikit-learn's ``components_``)."""
        return self._model_attr("components", "components_")

    doc_topic_prior_ = property(lambda self: self._model_attr("settings", "doc_topic_prior_").doc_topic_prior,
                                doc="alpha in use")
    topic_word_prior_ = property(lambda self: self._model_attr("settings", "topic_word_prior_").topic_word_prior,
                                 doc="eta in use")

    # ------------------------------------------------------------------ inference
    def _n_threads_now(self):
        return resolve_n_threads(self.n_threads)

    def _unnormalized_transform(self, X):
        """gamma of every document of X (validated), lambda fixed: the E-step from gamma = 1."""
        gamma, _ = self._model.infer(X, self._n_threads_now(), False)
        return gamma

    def transform(self, X, *, normalize=True):
        """Document-topic distributions: each document's E-step gamma with lambda fixed (from
        gamma = 1, Alg. 1 lines 6-9), normalised to sum to 1 per row unless ``normalize=False``."""
        check_is_fitted(self)
        X = check_counts(X, n_features=self.n_features_in_, need_words=False)
        gamma = self._unnormalized_transform(X)
        if normalize:
            gamma /= gamma.sum(axis=1, keepdims=True)
        return gamma

    def score(self, X, y=None):
        """The variational bound on log p(X) (scikit-learn's ``score``: ``_approx_bound`` without
        subsampling correction)."""
        check_is_fitted(self)
        X = check_counts(X, n_features=self.n_features_in_, need_words=False)
        return self._model.bound(X, self._n_threads_now())

    def perplexity(self, X):
        """exp(-bound / total word count of X), the bound of :meth:`score` (scikit-learn's
        ``perplexity(X)``); lower is better."""
        check_is_fitted(self)
        X = check_counts(X, n_features=self.n_features_in_)
        return self._model.perplexity(X, self._n_threads_now())

    def top_words(self, vocab, n=10):
        """The ``n`` words of highest lambda in each topic: a list of n_components lists of words."""
        check_is_fitted(self)
        n = check_int("n", n, low=1)
        vocab = list(vocab)
        if len(vocab) != self.n_features_in_:
            raise ValueError(f"vocab has {len(vocab)} words, but the model was fit with {self.n_features_in_}")
        n = min(n, self.n_features_in_)
        mu = self._model.mu
        order = np.argsort(-mu, axis=0, kind="stable")[:n]  # V x K: best words per topic column
        return [[vocab[i] for i in order[:, k]] for k in range(mu.shape[1])]
