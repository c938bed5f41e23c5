"""Sparse logistic regression trained by lock-free asynchronous SGD or AMSGrad: the estimator.

It validates its parameters, resolves them to an optimizer and frozen settings, and hands those, a
model state and the epoch loop to the backend it names (:mod:`asyncopt.backends`). It holds no
training code of its own.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from . import backends, checkpoint, optim
from ._estimator import BackendEstimator, check_feature_names, exclusive_fit
from ._checks import (check_classification_target, check_int, check_labels, check_matrix, check_n_threads,
                      check_real)
from .history import History
from .settings import LogisticSettings
from .state import LogisticState
from .training import EpochLoop

_DEFAULT_ALPHA = 1e-4  # the alpha default that C may replace
_DEFAULT_EPOCHS = 50  # the epochs default that max_iter may replace

# The rule constants an estimator also takes flat (for clone and grid search), with their defaults;
# each rule reads the ones it has.
_FLAT_RULE_PARAMETERS = {"learning_rate": None, "schedule": None, "beta1": None, "beta2": None, "eps": None,
                         "bias_correction": None}


def rule_from_parameters(est):
    """The optimizer object an estimator's ``optimizer`` and flat rule parameters describe."""
    flat = {k: getattr(est, k) for k in _FLAT_RULE_PARAMETERS}
    if isinstance(est.optimizer, optim.Optimizer):
        changed = {k: v for k, v in flat.items() if v != _FLAT_RULE_PARAMETERS[k]}
        return optim.get(est.optimizer, **changed)
    return optim.get(est.optimizer, **flat)


def _divergence(optimizer):
    def check(model, rec):
        if np.isfinite(rec["objective"]):
            return None
        return (f"training diverged at epoch {rec['epoch']} (objective {rec['objective']} after {rec['updates']} "
                f"updates): lower learning_rate (now {optimizer.learning_rate:g}), use a decaying schedule "
                "('optimal', 'invsqrt'), or scale the features")
    return check


class LogisticRegression(BackendEstimator, ClassifierMixin, BaseEstimator):
    """Logistic regression on sparse data (two classes or more), trained by lock-free (Hogwild!) SGD or AMSGrad.

    Minimises ``mean_i log(1 + exp(-y_i (w.x_i + b))) + alpha/2 ||w||^2`` with ``n_threads`` threads
    that update one shared model without locks (Niu et al. 2011; with AMSGrad, APAM of Xu et al.
    2020). Every update costs O(nonzeros of its mini-batch) whatever the number of features: the
    L2 shrink and AMSGrad's moment decay on untouched coordinates are applied lazily in closed form.
    With ``n_threads=1`` a fit is reproducible to the bit.

    Parameters
    ----------
    optimizer : str or optimizer object
        A registered rule name (``asyncopt.optim.names()``: 'sgd', 'amsgrad', 'adagrad', 'adam') or an
        object such as
        ``asyncopt.AMSGrad(beta1=0.95)``; with an object, leave the flat rule parameters below at
        their defaults.
    learning_rate : float or None
        Base (first) step size; None takes the rule's default (0.1 for SGD and AdaGrad, 0.003 for
        AMSGrad and Adam), and alpha^(-1/4) with the 'optimal' schedule.
    schedule : {None, 'constant', 'invsqrt', 'optimal'}
        ``eta_k = learning_rate``, ``learning_rate / sqrt(k)``, or
        ``learning_rate / (1 + alpha learning_rate (k - 1))`` (Bottou's 1/t schedule, scikit-learn's
        SGDClassifier default), k the global update count, each times the plateau drops' factor
        (``plateau_drops``). None: the rule's default, 'optimal' for SGD ('constant' if alpha is 0)
        and 'constant' for the adaptive rules.
    beta1, beta2, eps, bias_correction
        Constants of the adaptive rules (each rule reads the ones it has: AMSGrad and Adam all four,
        AdaGrad eps, SGD none); None takes the rule's default (beta1=0.9, beta2=0.999, eps=1e-8, or
        1e-10 for AdaGrad; bias_correction False for AMSGrad, True for Adam). ``bias_correction``
        multiplies the step by ``sqrt(1 - beta2^k) / (1 - beta1^k)`` as Adam does.
    alpha : float
        L2 strength of the objective.
    regularization : {'auto', 'exact', 'sparse', 'decoupled'}
        How alpha enters the updates (see :mod:`asyncopt.optim`): 'auto' is the rule's default,
        'exact' for SGD and 'sparse' (the Hogwild! paper's frequency-scaled regulariser) for AMSGrad.
        The mode used is stored in ``regularization_``.
    batch_size : int
        Rows per update; the update uses their mean gradient.
    epochs : int
        Passes over the data in ``fit`` at most; with the default ``tol`` a fit stops long before
        (4-9 epochs on the benchmark sets).
    shuffle : bool
        Reshuffle the visiting order every epoch. False visits rows in order (thread t takes the
        t-th contiguous share), which with one thread makes a run reproducible by hand.
    tol : float or None
        The training objective (of the kind ``train_loss`` says) has stalled when it has not
        improved by at least ``tol`` for ``n_iter_no_change`` consecutive epochs. The first
        ``plateau_drops`` stalls multiply every later step by 0.1; the next one stops the fit. None
        never stalls: all ``epochs`` run at the schedule's steps.
    n_iter_no_change : int
    plateau_drops : int
        Stalls that drop the step size tenfold before a stall stops the fit (scikit-learn's
        'adaptive' learning rate, on top of any schedule). The defaults (tol 0.01, one epoch, two
        drops, SGD's 'optimal' schedule) were chosen by measurement: on a9a, news20, the rcv1 sample
        and a 2^20-feature synthetic set they end at a lower test log-loss than scikit-learn's
        ``SGDClassifier()`` in 0.45-0.9x its epochs (bench/bench_defaults.py; bench/README.md):
        the 1/t steps reach the noise floor of a step size within a few epochs, and each drop
        lowers that floor where 1/t alone would need tens of epochs.
    train_loss : {'progressive', 'exact'}
        How each epoch's history record measures the training loss, accuracy and objective.
        'progressive': every row's loss at the model its update read, summed while the epoch runs
        (no extra pass over the data; what scikit-learn's SGD stops on). 'exact': one extra pass
        over the training set after every epoch, at the epoch's final model. ``history_`` says in
        ``train_loss_kind`` which a record holds (backend='cuda' and 'mpi' always measure exactly).
    n_threads : int or None
        Threads that train concurrently; None uses every usable core (OMP_NUM_THREADS if set).
    fit_intercept : bool
        Learn an unregularised intercept, updated by the same rule as a weight.
    intercept_scale : float or None
        The intercept's step is this times the weights' step. None: 0.01 with the 'optimal'
        schedule (whose first steps are large; scikit-learn's SGD damps the intercept of sparse
        problems by the same 0.01, or the intercept, moved by every row, oscillates), else 1.
    warm_start : bool
        ``fit`` continues from the previous solution instead of starting at zero.
    random_state : int, numpy Generator or None
        Seeds the shuffles; every thread draws its own stream from it.
    verbose : int
        0: quiet. 1: a progress bar (epochs, loss, updates per second, staleness) when stdout is a
        terminal and tqdm is installed (``pip install asyncopt[progress]``), else one line per epoch.
        2: one line per epoch always.
    callback : callable or None
        ``callback(record)`` after every epoch with that epoch's history record; returning True
        stops training.
    backend : {'threads', 'cuda', 'mpi', 'simulate', 'auto'}
        Who runs the updates (:mod:`asyncopt.backends`). 'threads': lock-free threads of this
        process. 'cuda': one NVIDIA GPU (the one ``device`` names): the CSR data is copied to the
        device once per fit (or read in place when X and y are device arrays, e.g. CuPy), and every
        epoch runs there as lock-free Hogwild! updates of ``gpu_workers`` concurrent warps, in float32
        whatever X's dtype (coef_ is float32); needs a build with CUDA (``build_info()['cuda']``).
        'mpi': a parameter server over MPI, for a script run as ``mpiexec -n K python script.py`` in
        which every rank calls ``fit`` (rank 0 serves and ends up holding the model, ranks 1..K-1
        are workers; see :mod:`asyncopt.distributed`); needs mpi4py. 'simulate': the delay simulator
        (:mod:`asyncopt.simulate`): one writer, each update's gradient read at the iterate d_t updates
        earlier, d_t from a seeded delay model; two classes only. 'auto': 'cuda' when this build
        has it and a GPU is present, else 'threads'.
    mpi : asyncopt.distributed.MPIOptions, dict or None
        Settings of the 'mpi' backend (method 'async', 'sync', 'picky', 'dpsgd' or 'efficient-adam'
        with its quantizers, timeouts, failure handling, straggler delays, sharding); None takes the
        defaults.
    simulate : asyncopt.simulate.SimOptions, a delay model, dict or None
        Settings of the 'simulate' backend: the delay model (``constant(d)``, ``uniform(max_delay)``,
        ``trace(delays)``, ``straggler``, ``workers``, ``pareto``, ``mixture``) and the method (Picky
        SGD's ``picky_threshold``, ``delay_adaptive``, ``synchronous``); None: no delay.
    record_staleness : bool
        backend='threads', binary problems: keep every update's delay tau in step order as
        ``staleness_trace_`` (one int64 per update), which ``asyncopt.simulate.trace_of`` replays.
    device : None, 'cuda', 'cuda:N' or int
        Which GPU backend='cuda' trains on (None: the first).
    gpu_workers : int or None
        backend='cuda': concurrent workers (one warp each) on the GPU, the GPU's n_threads and like
        it the number of updates in flight (the staleness). None fills the device but keeps at least
        64 mini-batches per worker (:func:`asyncopt.gpu.default_workers`). 1 runs the updates one
        after another, the deterministic mode that matches a one-thread CPU fit up to float32 rounding.
    C : float or None
        scikit-learn's LogisticRegression name for the L2 strength: the inverse of the weight of the
        penalty against the summed losses, so ``alpha = 1 / (C n_samples)`` of the data ``fit`` is
        given (None: use ``alpha``). Give one of C and alpha; partial_fit takes alpha only.
    max_iter : int or None
        scikit-learn's name for ``epochs`` (None: use ``epochs``).
    class_weight : None, 'balanced' or dict
        Weights of the classes' losses, multiplied into ``sample_weight``: a dict label -> weight
        (unlisted classes weigh 1), or 'balanced', ``n_samples / (n_classes * count(class))``, as
        scikit-learn computes them (not with partial_fit, whose chunks do not give the counts).
    multi_class : {'auto', 'multinomial', 'ovr'}
        With more than two classes: 'multinomial' ('auto') minimises the softmax cross-entropy of
        all classes jointly; 'ovr' trains one binary problem per class (one-vs-rest), all of them
        in the same pass and the same lock-free updates. Either way a feature's K weights (and
        their optimizer state) sit adjacently in memory, so an update touches one run of K
        records per nonzero, with the binary model's lazy catch-up and regularisation modes.
        Multiclass runs on backend='threads'. Two classes: one weight vector whatever this says.
    gpu_update : {'auto', 'atomic', 'racy'}
        backend='cuda': how an SGD step writes a weight: one atomic add ('atomic'; concurrent steps
        of a coordinate are never lost) or load + store like the CPU threads ('racy'). 'auto' is
        'atomic' for SGD; AMSGrad's step is not an addition and always races.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features) for two classes, else (n_classes, n_features); the dtype
        of X (float32 or float64)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    classes_ : ndarray of shape (n_classes,), any label type
    n_iter_ : int, epochs run by the last fit
    t_ : int, updates applied since the model was initialised (the schedule's k)
    history_ : History, one record per epoch (objective, time, staleness, validation metrics)
    staleness_ : Staleness, delay statistics of every update since the model was initialised
    feature_names_in_ : ndarray of str, the column names of a DataFrame X given to fit (only then)
    regularization_ : str, 'none', 'exact', 'sparse' or 'decoupled'
    optimizer_ : the optimizer object the last fit ran (learning_rate filled in)
    backend_ : str, the backend of the last fit
    n_threads_ : int, threads actually used (None with backend='mpi' or 'cuda')
    device_ : str, 'cpu' or 'cuda:N', where the last fit ran
    gpu_workers_ : int, with backend='cuda': concurrent GPU workers of the last fit
    mpi_rank_ : int, with backend='mpi': this process's rank (0 holds the model)
    mpi_stats_ : dict, with backend='mpi': on rank 0 messages, bytes, applied and dropped updates
        and throughput per worker; on a worker its own counters
    simulate_stats_ : dict, with backend='simulate': iterations, applied and dropped updates,
        accepted_fraction, and per iteration its delay after the cap (delays) and whether it was
        applied (accepted)
    staleness_trace_ : ndarray of int64 or None, with backend='threads': each update's delay tau in
        step order when record_staleness=True (None otherwise)
    """

    def __init__(self, optimizer="sgd", learning_rate=None, schedule=None, beta1=None, beta2=None,
                 eps=None, bias_correction=None, alpha=1e-4, regularization="auto", batch_size=1, epochs=50,
                 shuffle=True, tol=0.01, n_iter_no_change=1, plateau_drops=2, train_loss="progressive",
                 n_threads=None, fit_intercept=True, intercept_scale=None, warm_start=False, random_state=None,
                 verbose=0, callback=None, backend="threads", mpi=None, device=None, gpu_workers=None,
                 gpu_update="auto", multi_class="auto", C=None, max_iter=None, class_weight=None, simulate=None,
                 record_staleness=False):
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.bias_correction = bias_correction
        self.alpha = alpha
        self.regularization = regularization
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.plateau_drops = plateau_drops
        self.train_loss = train_loss
        self.n_threads = n_threads
        self.fit_intercept = fit_intercept
        self.intercept_scale = intercept_scale
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.callback = callback
        self.backend = backend
        self.mpi = mpi
        self.device = device
        self.gpu_workers = gpu_workers
        self.gpu_update = gpu_update
        self.multi_class = multi_class
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.simulate = simulate
        self.record_staleness = record_staleness

    # ------------------------------------------------------------------ parameters
    def _alpha(self, n_samples):
        """alpha, or 1 / (C n_samples) when C (scikit-learn's name) is given; n_samples None: the
        caller has no data count (partial_fit), and C is refused."""
        alpha = check_real("alpha", self.alpha, low=0)
        if self.C is None:
            return alpha
        C = check_real("C", self.C, low=0, low_open=True)
        if alpha != _DEFAULT_ALPHA:
            raise ValueError(f"C={self.C!r} and alpha={self.alpha!r} are the same setting (alpha = 1 / (C n_samples)): "
                             "pass one of them")
        if n_samples is None:
            raise ValueError("C is defined by the data of a whole fit (alpha = 1 / (C n_samples)); partial_fit sees "
                             "chunks: set alpha instead")
        return 1.0 / (C * n_samples)

    _DEFAULT_EPOCHS = _DEFAULT_EPOCHS  # what a max_iter may replace (BackendEstimator._epochs)

    def _resolve(self, n_samples=None):
        """(backend name, backend module, its options, settings) after checking every parameter;
        n_samples: rows of the fit's data (for C)."""
        alpha = self._alpha(n_samples)
        rule = rule_from_parameters(self).resolved(alpha)
        name, backend = backends.resolve(self.backend, "logistic")
        options = backends.options(name, "logistic",
                                   {p: getattr(self, p) for p in backends.parameter_names("logistic")})
        check_n_threads(self.n_threads)
        regularization = self.regularization
        if hasattr(backend, "check_logistic"):
            regularization = backend.check_logistic(rule, regularization, alpha, self.n_threads, options)
        regularization = rule.resolve_regularization(regularization, alpha)
        check_int("batch_size", self.batch_size, low=1)
        self._epochs()
        check_int("n_iter_no_change", self.n_iter_no_change, low=1)
        check_int("plateau_drops", self.plateau_drops, low=0)
        check_int("verbose", self.verbose, low=0)
        check_real("tol", self.tol, low=0, allow_none=True)
        if not (self.class_weight is None or self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
            raise ValueError(f"class_weight must be None, 'balanced' or a dict label -> weight, got {self.class_weight!r}")
        if self.multi_class not in ("auto", "multinomial", "ovr"):
            raise ValueError(f"multi_class must be 'auto', 'multinomial' or 'ovr', got {self.multi_class!r}")
        if self.train_loss not in ("progressive", "exact"):
            raise ValueError(f"train_loss must be 'progressive' or 'exact', got {self.train_loss!r}")
        for flag in ("shuffle", "fit_intercept", "warm_start"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        scale = check_real("intercept_scale", self.intercept_scale, low=0, low_open=True, allow_none=True)
        if scale is None:
            scale = 0.01 if rule.schedule == "optimal" else 1.0
        if self.callback is not None and not callable(self.callback):
            raise ValueError("callback must be callable or None")
        settings = LogisticSettings(optimizer=rule, alpha=alpha, regularization=regularization,
                                    batch_size=int(self.batch_size), shuffle=bool(self.shuffle),
                                    fit_intercept=bool(self.fit_intercept), intercept_scale=scale,
                                    train_loss=self.train_loss)
        return name, backend, options, settings

    # ------------------------------------------------------------------ fitting
    @exclusive_fit
    def fit(self, X, y, eval_set=None, sample_weight=None, checkpoint_every=None, checkpoint_path=None):
        """Train for ``epochs`` passes over (X, y) (fewer with ``tol`` or a callback).

        eval_set : (X_val, y_val), optional; its log-loss and accuracy go into every history record.
        sample_weight : array of n_samples weights >= 0, optional: row i's loss (and so its
            gradient) counts weight_i times, multiplied by its class's ``class_weight``; the
            objective is then ``sum_i weight_i loss_i / n + alpha/2 ||w||^2``. Weights change
            what each update steps by, not how often a row is visited (unlike repeating rows).
        checkpoint_every, checkpoint_path : every this many epochs (and at the fit's end) write the
            estimator with the whole optimizer state and where the fit stands to checkpoint_path
            (atomically: a crash mid-write leaves the previous checkpoint); after a crash,
            ``asyncopt.load(checkpoint_path).resume(X, y)`` finishes the fit, with one thread exactly
            as the uninterrupted fit would have. backend='mpi': every rank passes the same path, rank 0
            writes it (with the workers' states at that round for methods 'sync' and
            'efficient-adam', which then resume exactly) and every rank resumes from it.
        """
        check_classification_target(y, type(self).__name__)
        resolved = self._resolve(_n_rows(X))
        checkpointing = self._checkpoint_writer(checkpoint_every, checkpoint_path, resolved[0])
        check_feature_names(self, X, reset=True)  # a DataFrame's columns become feature_names_in_
        return self._fit(resolved, X, y, eval_set, self._epochs(), continuing=bool(self.warm_start),
                         checkpointing=checkpointing, sample_weight=sample_weight)

    @exclusive_fit
    def resume(self, X, y, eval_set=None, sample_weight=None, checkpoint_every=None, checkpoint_path=None):
        """Finish the fit this estimator's checkpoint was written in (``asyncopt.load`` of a file from
        ``fit(checkpoint_every=..., checkpoint_path=...)``), on the same X and y (checked by checksum):
        the remaining epochs run from the saved model, optimizer state, step count, visiting order,
        generator and stopping-rule counters. With one thread the result equals the uninterrupted
        fit bit for bit; with more it is another run of the same fit. Parameters other than
        n_threads, verbose and callback must be those of the interrupted fit. backend='mpi': every
        rank loads the same file and calls resume with its data, under as many ranks as the
        interrupted fit; methods 'sync' and 'efficient-adam' (every residual and moment restored)
        equal the uninterrupted run bit for bit, the asynchronous ones continue the model and budget
        with new passes of the workers. A mismatch is refused on every rank before training."""
        resolved = self._resolve(_n_rows(X))
        position = self._take_resume_point(defer=resolved[0] == "mpi")
        checkpointing = self._checkpoint_writer(checkpoint_every, checkpoint_path, resolved[0])
        check_feature_names(self, X, reset=False)
        out = self._fit(resolved, X, y, eval_set, int(position[0]["epochs"]), continuing=True,
                        checkpointing=checkpointing, resume=position, sample_weight=sample_weight)
        self._resumed()
        return out

    @exclusive_fit
    def partial_fit(self, X, y, classes=None, eval_set=None, sample_weight=None):
        """One pass over (X, y), continuing from the current model. ``classes`` is required on the
        first call (every label), as in scikit-learn."""
        check_classification_target(y, type(self).__name__)
        resolved = self._resolve()
        if self.class_weight == "balanced":
            raise ValueError("class_weight='balanced' needs the class counts of the whole data, which partial_fit's "
                             "chunks do not give: pass a dict of weights (or sample_weight)")
        name, backend, _, _ = resolved
        if not backend.PARTIAL_FIT:
            raise ValueError(f"partial_fit is not available with backend={name!r} (every rank would have to call it "
                             "in step); call fit with warm_start=True to continue a distributed fit")
        first = None
        if "_model" not in self.__dict__:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            first = np.unique(np.asarray(classes))
            if first.shape[0] < 2:
                raise ValueError(f"classes must hold at least two labels, got {classes}")
        elif classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
            raise ValueError(f"classes {classes} differ from the classes of earlier calls {self.classes_}")
        check_feature_names(self, X, reset=first is not None)
        return self._fit(resolved, X, y, eval_set, 1, continuing=True, first_classes=first, sample_weight=sample_weight)

    def _fit(self, resolved, X, y, eval_set, epochs, continuing, first_classes=None, checkpointing=(0, None),
             resume=None, sample_weight=None):
        name, backend, options, settings = resolved
        rule = settings.optimizer

        loss = "ovr" if self.multi_class == "ovr" else "softmax"

        def new_model(n_features, dtype, classes):
            return self._hold(LogisticState(n_features, dtype, classes, rule.name, loss))

        loop = EpochLoop(int(epochs), History.format_row, _divergence(rule),
                         tol=self.tol, n_iter_no_change=int(self.n_iter_no_change),
                         step_drops=int(self.plateau_drops), verbose=int(self.verbose),
                         callback=self.callback, checkpoint_every=checkpointing[0], checkpoint=checkpointing[1],
                         resume=resume)
        run = backends.Run(n_threads=self.n_threads, random_state=self.random_state, new_model=new_model,
                           continuing=continuing and "_model" in self.__dict__, options=options,
                           first_classes=first_classes, multi_class=loss, sample_weight=sample_weight,
                           class_weight=self.class_weight)
        self.regularization_ = settings.regularization
        self.optimizer_ = settings.optimizer
        return self._train(name, lambda: backend.fit_logistic(self.__dict__.get("_model"), X, y, eval_set, settings,
                                                               loop, run), run, loop)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR is the native input; dense arrays are converted
        tags.non_deterministic = self.n_threads != 1  # Hogwild!: thread-finish order
        return tags

    # ------------------------------------------------------------------ checkpoints
    _STATE = LogisticState

    def _fitted_extra(self):
        return dict(super()._fitted_extra(), **{k: checkpoint.to_json(self.__dict__[k], k)
                                                for k in ("regularization_", "optimizer_") if k in self.__dict__})

    def _restore_fitted_extra(self, fitted):
        super()._restore_fitted_extra(fitted)
        for k in ("regularization_", "optimizer_"):
            if k in fitted:
                setattr(self, k, checkpoint.from_json(fitted[k]))

    # ------------------------------------------------------------------ the model
    @property
    def coef_(self):
        return self._model_attr("coef", "coef_")

    @property
    def intercept_(self):
        return self._model_attr("intercept", "intercept_")

    @property
    def classes_(self):
        return self._known_to_workers("classes", "classes_")

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Margins: ``w.x + b`` of each row for two classes (positive means ``classes_[1]``), else the
        (n_samples, K) margins of the K classes."""
        check_is_fitted(self)
        check_feature_names(self, X, reset=False)
        X = check_matrix(X, n_features=self.n_features_in_, whom=type(self).__name__)
        coef = self.coef_.astype(X.dtype, copy=False)
        if coef.shape[0] == 1:
            return np.asarray(X @ coef[0]).ravel() + self.intercept_[0]
        return np.asarray(X @ coef.T) + self.intercept_

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), rows summing to 1: the logistic of the
        margin for two classes, the softmax of the K margins for 'multinomial', and for 'ovr' each
        class's logistic normalised over the classes (as scikit-learn's one-vs-rest)."""
        z = self.decision_function(X).astype(np.float64)
        if z.ndim == 1:
            p = _expit(z)
            return np.column_stack([1.0 - p, p])
        if self._model.loss == "ovr":
            p = _expit(z)
            return p / p.sum(axis=1, keepdims=True)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        z = self.decision_function(X)
        if z.ndim == 1:
            return self.classes_[(z > 0).astype(np.intp)]
        return self.classes_[np.argmax(z, axis=1)]

    def log_loss(self, X, y):
        """Mean log-loss of the model on (X, y) (no regularisation term): the binary log-loss, or the
        cross-entropy of predict_proba with more classes."""
        check_is_fitted(self)
        X = check_matrix(X, n_features=self.n_features_in_)
        y = check_labels(y, X.shape[0])
        if self._model.K == 1:
            ypm = self._model.signed(y)
            z = self.decision_function(X).astype(np.float64)
            return float(np.mean(np.logaddexp(0.0, -ypm * z)))
        idx = self._model.encoded(y)
        z = self.decision_function(X).astype(np.float64)
        if self._model.loss == "ovr":
            p = self.predict_proba(X)[np.arange(len(idx)), idx]
            return float(-np.mean(np.log(np.maximum(p, 1e-300))))
        zmax = z.max(axis=1)
        lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(idx)), idx]))


def _n_rows(X):
    """Rows of a fit's X before it is checked (for C): what check_matrix will see; 1 where X has no
    rows or is not 2-d, whose own error check_matrix raises next."""
    shape = X.shape if sp.issparse(X) else np.asarray(X).shape
    return max(int(shape[0]), 1) if len(shape) == 2 else 1


def _expit(z):
    """1 / (1 + exp(-z)) without overflow in either tail."""
    p = np.empty_like(z)
    pos = z >= 0
    p[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    p[~pos] = ez / (1.0 + ez)
    return p
