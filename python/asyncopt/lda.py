"""Latent Dirichlet allocation trained by lock-free parallel stochastic variational inference: the
estimator. It validates its parameters, resolves them to frozen settings, and hands those, a model
state and the epoch loop to the backend it names (:mod:`asyncopt.backends`)."""
from __future__ import annotations

import numpy as np
from scipy.special import psi
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import backends
from ._estimator import BackendEstimator, exclusive_fit
from ._estimator import check_feature_names as _check_feature_names
from ._checks import check_int, check_n_threads, check_real, resolve_n_threads
from .history import format_epoch
from .settings import LdaSettings
from .state import LdaState, check_counts
from .training import EpochLoop

LDA_HISTORY_FIELDS = ("epoch", "time", "epoch_time", "eval_time", "updates", "staleness_mean", "staleness_max",
                      "e_step_iterations", "topic_mass_drift", "perplexity", "train_perplexity",
                      "full_train_perplexity")

# defaults of the asyncopt names that a scikit-learn alias may replace (an alias conflicts only with a
# value other than these)
_DEFAULT_EPOCHS = 10


def _format_record(rec):
    s = (f"epoch {format_epoch(rec['epoch'])}  time {rec['time']:8.3f}s  updates {rec['updates']}  "
         f"staleness mean {rec['staleness_mean']:.3g} max {rec['staleness_max']}")
    if rec.get("train_perplexity") is not None:
        s += f"  train perplexity {rec['train_perplexity']:.2f}"
    if rec.get("full_train_perplexity") is not None:
        s += f"  perplexity of all training documents {rec['full_train_perplexity']:.2f}"
    if rec.get("perplexity") is not None:
        s += f"  eval perplexity {rec['perplexity']:.2f}"
    return s


def _perp_tol_rule(perp_tol):
    """scikit-learn's stopping rule: stop once the perplexity of all training documents changed by less
    than perp_tol since the previous evaluation of this fit (records without that evaluation do not
    count). It reads the fit's earlier records rather than keeping state, so a resumed fit applies it
    exactly as the uninterrupted one."""

    def stalled(rec, earlier):
        p = rec.get("full_train_perplexity")
        if p is None:
            return False
        last = [r["full_train_perplexity"] for r in earlier if r.get("full_train_perplexity") is not None]
        return bool(last) and abs(last[-1] - p) < perp_tol

    return stalled


def _divergence(model, rec):
    if model.finite():
        return None
    return (f"lambda is no longer finite after epoch {rec['epoch']} ({rec['updates']} global steps): check the "
            "counts and priors, or raise learning_offset")


class LDA(BackendEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
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

    X holds word counts or any other finite non-negative word weights (tf-idf, normalised
    frequencies): the local and global steps are defined for them, as in scikit-learn.

    Drop-in for scikit-learn: ``LatentDirichletAllocation``'s keyword arguments are accepted, so
    ``LDA(n_components=10, max_iter=5, learning_method="online", learning_offset=50.0,
    random_state=0)`` runs as written. Where asyncopt has its own name for the same setting, the
    scikit-learn name is an alias: it defaults to None and, when given, is used, unless the
    asyncopt name is also set to a non-default value that differs (ValueError). Both are stored as
    given (``get_params``, ``set_params``, ``clone``):

    ===================================  ===================================================
    scikit-learn                          asyncopt
    ===================================  ===================================================
    ``max_iter``                          ``epochs`` (alias)
    ``n_jobs`` (joblib processes)         ``n_threads`` (alias; negative counts back from the
                                          usable cores; None defers to ``n_threads``, whose
                                          None is every core, where scikit-learn's is 1)
    ``learning_method="online"``          the only method; ``"batch"`` raises (below)
    ``evaluate_every``, ``perp_tol``      the same (threads backend)
    ``bound_``, ``n_batch_iter_``,        the same (``n_batch_iter_`` = ``t_ + 1``)
    ``exp_dirichlet_component_``
    ``n_components``, priors, ``learning_decay``, ``learning_offset``, ``batch_size``,
    ``total_samples``, ``mean_change_tol``, ``max_doc_update_iter``, ``verbose``,
    ``random_state``: the same names and meanings
    ===================================  ===================================================

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
        Passes over the corpus in ``fit`` (scikit-learn's ``max_iter``, an alias).
    total_samples : float, default 1e6
        D in the D/|B| rescaling used by ``partial_fit`` (``fit`` uses the number of documents).
    shuffle : bool, default True
        Reshuffle the document order every epoch; False visits documents in order (thread t takes the
        t-th contiguous share), which with one thread is scikit-learn's order.
    n_threads : int or None
        Threads running concurrent mini-batches (and the documents of transform, score, perplexity);
        None = all usable cores (OMP_NUM_THREADS if set).
    random_state : int, RandomState or None
        Seeds lambda's initialisation (Gamma(100, 1/100) draws, the same draws as scikit-learn for an
        int seed) and the shuffles (one stream per thread).
    train_perplexity_docs : int, default 1000
        Each epoch's record holds the perplexity of a fixed random subsample of this many training
        documents (0: none); its cost is counted in ``eval_time``, not in ``time``.
    verbose : int, default 0
        0: quiet. 1: a progress bar (epochs, loss, updates per second, staleness) when stdout is a
        terminal and tqdm is installed (``pip install asyncopt[progress]``), else one line per epoch.
        2: one line per epoch always.
    callback : callable or None
        ``callback(record)`` after every epoch; returning True stops training.
    backend : {'threads', 'mpi', 'auto'}, default 'threads'
        Who runs the updates (:mod:`asyncopt.backends`; 'auto' is 'threads'). 'mpi': DPSVI over MPI, for a script run as ``mpiexec -n K python script.py`` in which every
        rank calls ``fit``: rank 0 applies the global steps and ends up holding the model, ranks
        1..K-1 run the E-steps of their share of the documents over their ``n_threads`` threads (see
        :mod:`asyncopt.distributed`). Needs mpi4py.
    mpi : asyncopt.distributed.MPIOptions, dict or None
        Settings of the 'mpi' backend; LDA runs method 'async' (DPSVI) or 'sync'.
    max_iter : int or None
        scikit-learn's name for ``epochs``.
    learning_method : {'online'}, default 'online'
        scikit-learn's choice of method. 'online' is SVI, what this class runs. 'batch' (full-batch
        variational Bayes: each pass sets lambda to eta + the statistics of the whole corpus) raises
        ValueError: it is not an asynchronous mini-batch method and is not implemented.
    evaluate_every : int, default -1
        With a value > 0, every ``evaluate_every``-th pass of ``fit`` (and always its last; never in
        ``partial_fit``, as in scikit-learn) computes the perplexity of *all* training documents, an
        extra E-step pass over the corpus, into the record's ``full_train_perplexity``; <= 0: never
        (scikit-learn's meaning). Not with backend='mpi'.
    perp_tol : float, default 0.1
        With ``evaluate_every > 0``, ``fit`` stops once that perplexity changed by less than perp_tol
        between two evaluations (scikit-learn's rule).
    n_jobs : int or None
        scikit-learn's name for ``n_threads``: k >= 1 threads, or -1 every usable core, -2 all but
        one, ... (joblib's counting). None defers to ``n_threads``.

    Attributes
    ----------
    components_ : ndarray (n_components, n_features), lambda (topic-word variational parameters)
    doc_topic_prior_, topic_word_prior_ : float, the priors in use
    exp_dirichlet_component_ : ndarray (n_components, n_features), exp(E[log beta]) (computed on access)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, the column names of a DataFrame X given to fit (only then)
    n_iter_ : int, epochs run by the last fit
    n_batch_iter_ : int, t_ + 1 (scikit-learn's count, which starts at 1)
    bound_ : float, perplexity of the training documents after the last fit (see the property)
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
                 verbose=0, callback=None, backend="threads", mpi=None, max_iter=None, learning_method="online",
                 evaluate_every=-1, perp_tol=0.1, n_jobs=None):
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
        # scikit-learn's names (stored unmodified, as clone and set_params require; resolved in fit)
        self.max_iter = max_iter
        self.learning_method = learning_method
        self.evaluate_every = evaluate_every
        self.perp_tol = perp_tol
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ parameters
    _DEFAULT_EPOCHS = _DEFAULT_EPOCHS  # what a max_iter may replace (BackendEstimator._epochs)

    def _threads(self):
        """The threads setting in use: ``n_threads``, or ``n_jobs`` (scikit-learn's name) when that is
        given, with joblib's meaning of negative values (-1: every usable core, -2: all but one, ...).
        None: every usable core (``n_threads``'s default)."""
        n_threads = check_n_threads(self.n_threads)
        if self.n_jobs is None:
            return n_threads
        n_jobs = check_int("n_jobs", self.n_jobs)
        if n_jobs == 0:
            raise ValueError("n_jobs must be a number of threads >= 1, or negative to count back from every usable "
                             "core (-1: all of them), got 0")
        threads = check_n_threads(n_jobs, "n_jobs") if n_jobs > 0 else max(1, resolve_n_threads(None) + 1 + n_jobs)
        if n_threads is not None and n_threads != threads:
            raise ValueError(f"n_jobs={self.n_jobs!r} and n_threads={self.n_threads!r} disagree: they are the same "
                             "setting (n_jobs is scikit-learn's name for it); pass one of them")
        return threads

    def _evaluation(self, backend_name):
        """(evaluate_every, perp_tol) after checking them: evaluate_every <= 0 turns evaluation off."""
        every = check_int("evaluate_every", self.evaluate_every)
        perp_tol = check_real("perp_tol", self.perp_tol, low=0)
        if every > 0 and backend_name == "mpi":
            raise ValueError("evaluate_every > 0 is not available with backend='mpi' (rank 0 does not hold the whole "
                             "corpus); use eval_set or train_perplexity_docs there")
        return max(every, 0), perp_tol

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
        self._epochs()
        if self.learning_method == "batch":
            raise ValueError("learning_method='batch' (scikit-learn's full-batch variational Bayes: every pass "
                             "replaces lambda by eta + the statistics of the whole corpus) is not implemented: "
                             "asyncopt runs SVI's mini-batch steps, lock-free across threads; use 'online' (a large "
                             "batch_size with learning_decay near 1 comes closest)")
        if self.learning_method != "online":
            raise ValueError(f"learning_method must be 'online', got {self.learning_method!r}")
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
        self._threads()
        name, backend = backends.resolve(self.backend, "lda")
        self._evaluation(name)
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
    def fit(self, X, y=None, eval_set=None, checkpoint_every=None, checkpoint_path=None):
        """Learn lambda by ``epochs`` (= ``max_iter``) passes of parallel SVI over the documents of X
        (D = rows of X).

        X : document-word matrix (n_documents, n_features), sparse or dense, finite values >= 0 (word
            counts, or weights such as tf-idf); a pandas DataFrame's column names become
            ``feature_names_in_``.
        eval_set : matrix of held-out documents, optional; its perplexity goes into every history
            record (``perplexity``).
        checkpoint_every, checkpoint_path : every this many passes (and at the fit's end) write the
            estimator with lambda, the step count and where the fit stands to checkpoint_path
            (atomically); ``asyncopt.load(checkpoint_path).resume(X)`` finishes an interrupted fit,
            with one thread exactly as the uninterrupted fit would have (backend='mpi': rank 0
            writes, every rank resumes from the same file; method 'sync' exactly).
        """
        resolved = self._resolve()
        checkpointing = self._checkpoint_writer(checkpoint_every, checkpoint_path, resolved[0])
        _check_feature_names(self, X, reset=True)
        X = check_counts(X, whom="LDA.fit")
        return self._fit(resolved, X, eval_set, self._epochs(), continuing=False, checkpointing=checkpointing)

    @exclusive_fit
    def resume(self, X, y=None, eval_set=None, checkpoint_every=None, checkpoint_path=None):
        """Finish the fit this estimator's checkpoint was written in, on the same documents X (checked
        by checksum): the remaining passes run from the saved lambda, step count, visiting order,
        generator and stopping-rule state; with one thread the result equals the uninterrupted fit
        bit for bit (backend='mpi': every rank resumes from the same file; method 'sync' bit for
        bit, 'async' another run of the same fit). Parameters other than n_threads, n_jobs, verbose
        and callback must be those of the interrupted fit."""
        resolved = self._resolve()
        position = self._take_resume_point(defer=resolved[0] == "mpi")
        checkpointing = self._checkpoint_writer(checkpoint_every, checkpoint_path, resolved[0])
        _check_feature_names(self, X, reset=False)
        X = check_counts(X, n_features=self._model.n_features, whom="LDA.resume")
        out = self._fit(resolved, X, eval_set, int(position[0]["epochs"]), continuing=False,
                        checkpointing=checkpointing, resume=position)
        self._resumed()
        return out

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
        _check_feature_names(self, X, reset=model is None)
        X = check_counts(X, n_features=None if model is None else model.n_features, whom="LDA.partial_fit")
        return self._fit(resolved, X, eval_set, 1, continuing=True, total_samples=float(self.total_samples))

    def _fit(self, resolved, X, eval_set, epochs, continuing, total_samples=None, checkpointing=(0, None),
             resume=None):
        """continuing: partial_fit's chunk (no corpus evaluation; D = total_samples); resume: a
        checkpoint's unfinished fit, continued on its model."""
        name, backend, options, settings = resolved
        evaluate_every, perp_tol = self._evaluation(name)
        if continuing:
            evaluate_every = 0  # scikit-learn evaluates in fit only; a chunk's pass is not the corpus

        def new_model(n_features):
            return self._hold(LdaState(n_features, settings, self.random_state))

        model = self.__dict__.get("_model")
        if model is not None and (continuing or resume is not None):
            # a model continues under its own priors; the step-size and E-step settings may change
            model.settings = settings
        loop = EpochLoop(int(epochs), _format_record, _divergence, verbose=int(self.verbose), callback=self.callback,
                         stop=_perp_tol_rule(perp_tol) if evaluate_every else None,
                         checkpoint_every=checkpointing[0], checkpoint=checkpointing[1], resume=resume)
        run = backends.Run(n_threads=self._threads(), random_state=self.random_state, new_model=new_model,
                           continuing=(continuing or resume is not None) and model is not None, total_samples=total_samples, options=options,
                           train_perplexity_docs=int(self.train_perplexity_docs), evaluate_every=evaluate_every)
        return self._train(name, lambda: backend.fit_lda(model, X, eval_set, settings, loop, run), run, loop)

    # ------------------------------------------------------------------ checkpoints
    _STATE = LdaState

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

    @property
    def exp_dirichlet_component_(self):
        """exp(E[log beta]) of lambda, shape (n_components, n_features) (scikit-learn's attribute of
        the same name): exp(psi(lambda_kw) - psi(sum_w lambda_kw)). Computed on each access, O(K V)
        (the native code keeps mu and its topic sums, not this)."""
        lam = self.components_
        return np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None])

    @property
    def n_batch_iter_(self):
        """The number of the next global step, t_ + 1 (scikit-learn's ``n_batch_iter_``, which starts at
        1 and counts mini-batch updates: its next rho is (learning_offset + n_batch_iter_)^-kappa, as
        here)."""
        return self._model_attr("t", "n_batch_iter_") + 1

    @property
    def bound_(self):
        """Perplexity of the training documents after the last fit or partial_fit (scikit-learn's
        ``bound_``, which despite its name is a perplexity). With ``evaluate_every > 0`` it is over
        every training document (the last pass is always evaluated then, as scikit-learn's final
        evaluation); otherwise it is the last record's ``train_perplexity``, over the
        ``train_perplexity_docs`` subsample (every document of a corpus no larger), so that the
        default fit does not pay an extra E-step pass over the corpus."""
        history = self._model_attr("history", "bound_")
        rec = history[-1] if len(history) else {}
        for field in ("full_train_perplexity", "train_perplexity"):
            if rec.get(field) is not None:
                return rec[field]
        raise AttributeError("bound_: the last fit evaluated no training perplexity (evaluate_every <= 0 and "
                             "train_perplexity_docs=0)")

    @property
    def _n_features_out(self):
        """Columns of transform's output (ClassNamePrefixFeaturesOutMixin names them lda0, lda1, ...)."""
        return self._model_attr("settings", "_n_features_out").n_components

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float64"]  # gamma is float64 whatever X's dtype
        # Hogwild! threads apply their global steps in whatever order they finish: two fits agree to
        # the bit only with one thread (and an int random_state)
        try:
            tags.non_deterministic = self._threads() != 1
        except ValueError:  # a bad n_jobs/n_threads: fit will say so
            pass
        return tags

    # ------------------------------------------------------------------ inference
    def _n_threads_now(self):
        return resolve_n_threads(self._threads())

    def _validated(self, X, method, need_words=False):
        """X checked against the fitted model (vocabulary size and feature names) for ``method``."""
        check_is_fitted(self)
        _check_feature_names(self, X, reset=False)
        return check_counts(X, n_features=self.n_features_in_, need_words=need_words, whom=f"LDA.{method}")

    def _unnormalized_transform(self, X):
        """gamma of every document of X (validated), lambda fixed: the E-step from gamma = 1."""
        gamma, _ = self._model.infer(X, self._n_threads_now(), False)
        return gamma

    def transform(self, X, *, normalize=True):
        """Document-topic distributions: each document's E-step gamma with lambda fixed (from
        gamma = 1, Alg. 1 lines 6-9), normalised to sum to 1 per row unless ``normalize=False``.

        Costs O(K x distinct words of X) besides the E-steps, whatever the vocabulary size: only the
        columns of exp(E[log beta]) that X's documents hold are computed. Writes nothing to the
        estimator."""
        X = self._validated(X, "transform")
        gamma = self._unnormalized_transform(X)
        if normalize:
            gamma /= gamma.sum(axis=1, keepdims=True)
        return gamma

    def fit_transform(self, X, y=None, *, normalize=True, **fit_params):
        """``fit(X, **fit_params)`` then ``transform(X, normalize=normalize)``."""
        return self.fit(X, y, **fit_params).transform(X, normalize=normalize)

    def score(self, X, y=None):
        """The variational bound on log p(X) (scikit-learn's ``score``: ``_approx_bound`` without
        subsampling correction). O(K V): the bound's lambda term covers the whole vocabulary."""
        X = self._validated(X, "score")
        return self._model.bound(X, self._n_threads_now())

    def perplexity(self, X):
        """exp(-bound / total word count of X), the bound of :meth:`score` (scikit-learn's
        ``perplexity(X)``); lower is better."""
        X = self._validated(X, "perplexity", need_words=True)
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
