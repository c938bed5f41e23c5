"""Sparse logistic regression trained by lock-free asynchronous SGD or AMSGrad."""
from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from . import _core, gpu, gpu_fit
from ._checks import check_int, check_labels, check_matrix, check_real, fit_rng, native_csr, resolve_n_threads
from .history import History, Staleness
from .optim import make_optimizer, resolve_regularization, step_config

_ALIGN = 64  # bytes: one cache line, so a 32/64-byte AMSGrad state never straddles two


def _state_dtype(optimizer, dtype):
    lay = _core.state_layout(optimizer, np.dtype(dtype).name)
    return np.dtype({k: lay[k] for k in ("names", "formats", "offsets", "itemsize")})


def _aligned_zeros(n, dtype):
    """Zero-filled 1-d array of ``n`` items whose data starts on a cache-line boundary."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + _ALIGN, dtype=np.uint8)
    offset = (-raw.ctypes.data) % _ALIGN
    return raw[offset:offset + n * dtype.itemsize].view(dtype)


def _feature_counts(indices, n_features):
    """The features present in a CSR index array and how many rows hold each (canonical CSR: one
    entry per row and feature). Sorting costs O(nnz log nnz) and no O(n_features) pass, which
    keeps partial_fit on small chunks of a huge feature space cheap; bincount's O(nnz + d) wins
    when the matrix is not much sparser than its width."""
    if indices.size * 16 >= n_features:
        counts = np.bincount(indices, minlength=n_features)
        present = np.flatnonzero(counts)
        return present, counts[present]
    return np.unique(indices, return_counts=True)


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Binary logistic regression on sparse data, trained by lock-free (Hogwild!) SGD or AMSGrad.

    Minimises ``mean_i log(1 + exp(-y_i (w.x_i + b))) + alpha/2 ||w||^2`` with ``n_threads`` threads
    that update one shared model without locks (Niu et al. 2011; with AMSGrad, APAM of Xu et al.
    2020). Every update costs O(nonzeros of its mini-batch) whatever the number of features: the
    L2 shrink and AMSGrad's moment decay on untouched coordinates are applied lazily in closed form.
    With ``n_threads=1`` a fit is reproducible to the bit.

    Parameters
    ----------
    optimizer : {'sgd', 'amsgrad'}
    learning_rate : float or None
        Base (first) step size; None takes 0.1 for SGD and 0.003 for AMSGrad, and alpha^(-1/4)
        with the 'optimal' schedule.
    schedule : {'constant', 'invsqrt', 'optimal'}
        ``eta_k = learning_rate``, ``learning_rate / sqrt(k)``, or
        ``learning_rate / (1 + alpha learning_rate (k - 1))`` (Bottou's 1/t schedule, scikit-learn's
        SGDClassifier default), k the global update count.
    beta1, beta2, eps, bias_correction
        AMSGrad constants (ignored by SGD). ``bias_correction`` multiplies the step by
        ``sqrt(1 - beta2^k) / (1 - beta1^k)`` as Adam does (the APAM reference code uses it).
    alpha : float
        L2 strength of the objective.
    regularization : {'auto', 'exact', 'sparse', 'decoupled'}
        How alpha enters the updates (see :mod:`asyncopt.optim`): 'auto' is 'exact' for SGD and
        'sparse' (the Hogwild! paper's frequency-scaled regulariser) for AMSGrad. The mode used is
        stored in ``regularization_``.
    batch_size : int
        Rows per update; the update uses their mean gradient.
    epochs : int
        Passes over the data in ``fit`` (at most, with ``tol``).
    shuffle : bool
        Reshuffle the visiting order every epoch. False visits rows in order (thread t takes the
        t-th contiguous share), which with one thread makes a run reproducible by hand.
    tol : float or None
        Stop when the training objective has not improved by at least ``tol`` for
        ``n_iter_no_change`` consecutive epochs. None runs all epochs.
    n_iter_no_change : int
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
        Print one line per epoch when > 0.
    backend : {'threads', 'mpi'}
        'threads': lock-free threads of this process. 'mpi': a parameter server over MPI, for a
        script run as ``mpiexec -n K python script.py`` in which every rank calls ``fit`` (rank 0
        serves and ends up holding the model, ranks 1..K-1 are workers; see
        :mod:`asyncopt.distributed`). Needs mpi4py.
    mpi : asyncopt.distributed.MPIOptions, dict or None
        Settings of the 'mpi' backend (method 'async', 'sync', 'picky' or 'dpsgd', timeouts, failure
        handling, straggler delays, sharding); None takes the defaults.
    device : None, 'cpu', 'cuda', 'cuda:N' or int
        'cuda' (or backend='cuda') trains on one NVIDIA GPU: the CSR data is copied to the device once
        per fit (or read in place when X and y are device arrays, e.g. CuPy), and every epoch runs
        there as lock-free Hogwild! updates of ``gpu_workers`` concurrent warps. The device computes in
        float32 whatever X's dtype (coef_ is float32). Needs a build with CUDA (``build_info()['cuda']``).
    gpu_workers : int or None
        Concurrent workers (one warp each) on the GPU: the GPU's n_threads, and like it the number of
        updates in flight (the staleness). None fills the device but keeps at least 64 mini-batches
        per worker (:func:`asyncopt.gpu.default_workers`). 1 runs the updates one after another, the
        deterministic mode that matches a one-thread CPU fit up to float32 rounding.
    gpu_update : {'auto', 'atomic', 'racy'}
        How an SGD step writes a weight on the GPU: one atomic add ('atomic'; concurrent steps of a
        coordinate are never lost) or load + store like the CPU threads ('racy'). 'auto' is 'atomic'
        for SGD; AMSGrad's step is not an addition and always races.
    callback : callable or None
        ``callback(record)`` after every epoch with that epoch's history record; returning True
        stops training.

    Attributes
    ----------
    coef_ : ndarray of shape (1, n_features), the dtype of X (float32 or float64)
    intercept_ : ndarray of shape (1,)
    classes_ : ndarray of shape (2,)
    n_iter_ : int, epochs run by the last fit
    t_ : int, updates applied since the model was initialised (the schedule's k)
    history_ : History, one record per epoch (objective, time, staleness, validation metrics)
    staleness_ : Staleness, delay statistics of every update since the model was initialised
    regularization_ : str, 'none', 'exact', 'sparse' or 'decoupled'
    n_threads_ : int, threads actually used (None with backend='mpi' or 'cuda')
    device_ : str, 'cpu' or 'cuda:N', where the last fit ran
    gpu_workers_ : int, with device='cuda': concurrent GPU workers of the last fit
    mpi_rank_ : int, with backend='mpi': this process's rank (0 holds the model)
    mpi_stats_ : dict, with backend='mpi': on rank 0 messages, bytes, applied and dropped updates
        and throughput per worker; on a worker its own counters
    """

    def __init__(self, optimizer="sgd", learning_rate=None, schedule="constant", beta1=0.9, beta2=0.999,
                 eps=1e-8, bias_correction=False, alpha=1e-4, regularization="auto", batch_size=1, epochs=10,
                 shuffle=True, tol=None, n_iter_no_change=5, n_threads=None, fit_intercept=True,
                 intercept_scale=None, warm_start=False, random_state=None, verbose=0, callback=None,
                 backend="threads", mpi=None, device=None, gpu_workers=None, gpu_update="auto"):
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

    # ------------------------------------------------------------------ parameters
    def _validate_params(self):
        opt = make_optimizer(self.optimizer, self.learning_rate, self.schedule, self.beta1, self.beta2,
                             self.eps, self.bias_correction, self.alpha)
        regularization = self.regularization
        if self.backend not in ("threads", "mpi", "cuda"):
            raise ValueError(f"backend must be 'threads', 'mpi' or 'cuda', got {self.backend!r}")
        device = gpu.parse_device(self.device)
        if self.backend == "cuda" and self.device == "cpu":
            raise ValueError("backend='cuda' with device='cpu': use backend='threads' for the CPU")
        if device is not None and self.backend == "mpi":
            raise ValueError("device='cuda' trains on one GPU of this process; backend='mpi' runs on CPUs")
        on_gpu = self.backend == "cuda" or device is not None
        if on_gpu:
            check_int("gpu_workers", self.gpu_workers, low=1, allow_none=True)
            if self.gpu_update not in ("auto", "atomic", "racy"):
                raise ValueError(f"gpu_update must be 'auto', 'atomic' or 'racy', got {self.gpu_update!r}")
            if self.gpu_update == "atomic" and opt.name == "amsgrad":
                raise ValueError("gpu_update='atomic' is SGD's write mode: an AMSGrad step is not an addition "
                                 "(use 'auto' or 'racy')")
        elif self.gpu_workers is not None or self.gpu_update != "auto":
            raise ValueError("gpu_workers and gpu_update apply to device='cuda' only")
        if self.backend == "mpi":
            from .distributed import resolve_options

            opts = resolve_options(self.mpi)
            if opts.method in ("picky", "dpsgd"):
                if opt.name != "sgd":
                    raise ValueError(f"method {opts.method!r} runs SGD: set optimizer='sgd' (asynchronous AMSGrad "
                                     "over MPI is method='async' with optimizer='amsgrad', distributed APAM)")
                if regularization == "exact" and self.alpha > 0:
                    raise ValueError(
                        f"method {opts.method!r} cannot use regularization='exact': exact L2 moves every "
                        "coordinate at every step, which " + (
                            "Picky SGD's O(nnz) distance tracking cannot follow" if opts.method == "picky" else
                            "a worker's change of its own features cannot carry") + "; use 'sparse' (the default)")
                if regularization == "auto":
                    regularization = "sparse"
            if opts.method != "dpsgd" and self.n_threads not in (None, 1):
                raise ValueError(f"method {opts.method!r} computes each gradient on one thread per worker; "
                                 "n_threads > 1 (lock-free Hogwild! inside each worker) is method='dpsgd'")
        elif self.mpi is not None:
            raise ValueError("mpi options are given but backend is 'threads': pass backend='mpi'")
        reg = resolve_regularization(opt, regularization, self.alpha)
        check_int("batch_size", self.batch_size, low=1)
        check_int("epochs", self.epochs, low=1)
        check_int("n_iter_no_change", self.n_iter_no_change, low=1)
        check_int("verbose", self.verbose, low=0)
        if self.tol is not None and (isinstance(self.tol, bool) or not np.isfinite(self.tol) or self.tol < 0):
            raise ValueError(f"tol must be None or a finite number >= 0, got {self.tol!r}")
        for name in ("shuffle", "fit_intercept", "warm_start"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.intercept_scale is not None:
            check_real("intercept_scale", self.intercept_scale, low=0, low_open=True)
        if self.callback is not None and not callable(self.callback):
            raise ValueError("callback must be callable or None")
        if self.backend == "mpi":
            check_int("n_threads", self.n_threads, low=1, allow_none=True)
            return opt, reg, None, None  # threads per worker are resolved on each worker
        if on_gpu:
            check_int("n_threads", self.n_threads, low=1, allow_none=True)  # unused on the GPU, still checked
            return opt, reg, None, 0 if device is None else device
        return opt, reg, resolve_n_threads(self.n_threads), None

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, eval_set=None):
        """Train for ``epochs`` passes over (X, y) (fewer with ``tol`` or a callback).

        eval_set : (X_val, y_val), optional; its log-loss and accuracy go into every history record.
        """
        opt, reg, n_threads, device = self._validate_params()
        if device is not None:
            return gpu_fit.fit(self, X, y, eval_set, opt, reg, device, self.epochs,
                               continuing=self.warm_start and hasattr(self, "_state"))
        X = check_matrix(X)
        y = check_labels(y, X.shape[0])
        if self.backend == "mpi":
            from .distributed import logistic, resolve_options

            return logistic.fit(self, X, y, eval_set, opt, reg, resolve_options(self.mpi), self.epochs,
                                self._intercept_scale(opt))
        self._start_fit(X, y, opt)
        return self._train(X, y, eval_set, opt, reg, n_threads, self.epochs)

    def _start_fit(self, X, y, opt, classes=None, dtype=None):
        """fit's model: the previous one (warm_start) checked against X and y, or a new zero one.
        classes: y's classes when already known (device labels); dtype: the model's (float32 on GPU)."""
        classes = np.unique(y) if classes is None else classes
        if classes.shape[0] != 2:
            raise ValueError(f"y must hold exactly two classes for binary logistic regression, got "
                             f"{classes.shape[0]}: {classes[:10]}")
        dtype = X.dtype if dtype is None else np.dtype(dtype)
        if self.warm_start and hasattr(self, "_state"):
            self._check_continuation(X.shape[1], dtype, classes, opt)
        else:
            self._init_model(X.shape[1], dtype, classes, opt)
        return classes

    def partial_fit(self, X, y, classes=None, eval_set=None):
        """One pass over (X, y), continuing from the current model. ``classes`` is required on the
        first call (both labels), as in scikit-learn."""
        opt, reg, n_threads, device = self._validate_params()
        if self.backend == "mpi":
            raise ValueError("partial_fit is not available with backend='mpi' (every rank would have to call it "
                             "in step); call fit with warm_start=True to continue a distributed fit")
        if device is not None:
            if classes is None and not hasattr(self, "_state"):
                raise ValueError("classes must be passed on the first call to partial_fit")
            return gpu_fit.fit(self, X, y, eval_set, opt, reg, device, 1, continuing=hasattr(self, "_state"),
                               first_classes=classes)
        X = check_matrix(X, n_features=self.n_features_in_ if hasattr(self, "_state") else None)
        y = check_labels(y, X.shape[0])
        if not hasattr(self, "_state"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            classes = np.unique(np.asarray(classes))
            if classes.shape[0] != 2:
                raise ValueError(f"classes must hold exactly two labels, got {classes}")
            self._init_model(X.shape[1], X.dtype, classes, opt)
        else:
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
                raise ValueError(f"classes {classes} differ from the classes of earlier calls {self.classes_}")
            self._check_continuation(X.shape[1], X.dtype, np.unique(y), opt)
        return self._train(X, y, eval_set, opt, reg, n_threads, 1)

    def _init_model(self, n_features, dtype, classes, opt):
        self.classes_ = classes
        self.n_features_in_ = n_features
        self._dtype = np.dtype(dtype)
        self._optimizer_name = opt.name
        self._state = _aligned_zeros(n_features + 1, _state_dtype(opt.name, dtype))
        self._seen = np.zeros(n_features, dtype=bool)  # features any fit has touched
        self._active = np.zeros(0, dtype=np.int32)  # the same, as a list (unsorted)
        self.t_ = 0
        self.n_iter_ = 0
        self.history_ = History()
        self.staleness_ = Staleness()
        self._epochs_done = 0
        self._coef = None  # coef_'s cache, reset whenever the state changes

    def _check_continuation(self, n_features, dtype, classes, opt):
        if n_features != self.n_features_in_:
            raise ValueError(f"X has {n_features} features, but the model was fit with {self.n_features_in_}")
        if dtype != self._dtype:
            raise ValueError(f"X has dtype {dtype}, but the model is {self._dtype}: continue with the same dtype"
                             " (a GPU fit trains a float32 model)")
        if opt.name != self._optimizer_name:
            raise ValueError(f"optimizer changed from {self._optimizer_name!r} to {opt.name!r}; refit from scratch")
        if not np.isin(classes, self.classes_).all():
            raise ValueError(f"y has labels {classes} outside the model's classes {self.classes_}")
        if self._state.ctypes.data % _ALIGN:  # e.g. after unpickling
            aligned = _aligned_zeros(self._state.shape[0], self._state.dtype)
            aligned[...] = self._state
            self._state = aligned

    def _signed(self, y, name="y"):
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(f"{name} has labels {np.unique(y[unknown])[:10]} outside the classes {self.classes_}")
        return np.where(y == self.classes_[1], 1.0, -1.0)

    def _eval_data(self, eval_set, X):
        """The validation pair in native form (matching X's dtype), or None."""
        if eval_set is None:
            return None
        if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
            raise ValueError("eval_set must be a pair (X_val, y_val)")
        Xv = check_matrix(eval_set[0], name="eval_set X", n_features=self.n_features_in_)
        if Xv.dtype != X.dtype:
            Xv = Xv.astype(X.dtype)
        yv = self._signed(check_labels(eval_set[1], Xv.shape[0], name="eval_set y"), name="eval_set y")
        return (native_csr(Xv), Xv.shape, yv)

    def _intercept_scale(self, opt):
        if self.intercept_scale is not None:
            return float(self.intercept_scale)
        return 0.01 if opt.schedule == "optimal" else 1.0

    def _train(self, X, y, eval_set, opt, reg, n_threads, epochs):
        ypm = self._signed(y)
        val = self._eval_data(eval_set, X)
        n, d = X.shape
        Xn = native_csr(X)
        _core.validate_csr(*Xn, d)  # once per fit; the epochs skip the O(nnz) check
        present, counts = _feature_counts(Xn[1], d)
        reg_scale = self._prepare_features(present, counts, n, reg, opt)
        sc = step_config(opt, self.alpha, reg)
        cfg = _core.LogisticConfig()
        cfg.n_threads = n_threads
        cfg.batch_size = self.batch_size
        cfg.shuffle = bool(self.shuffle)
        cfg.sparse_alpha = float(self.alpha) if reg == "sparse" else 0.0
        cfg.fit_intercept = bool(self.fit_intercept)
        cfg.intercept_scale = self._intercept_scale(opt)
        rng = fit_rng(self.random_state, self.t_)
        perm = rng.permutation(n).astype(np.int64) if self.shuffle else np.arange(n, dtype=np.int64)
        self.regularization_ = reg
        self.n_threads_ = n_threads
        self.device_ = "cpu"
        active = self._active

        def epoch(seed, k0):
            cfg.seed, cfg.k0 = seed, k0
            return _core.logistic_epoch(*Xn, d, ypm, perm, self._state, reg_scale, active, opt.name, sc, cfg,
                                        check_input=False)

        def evaluate():
            return self._evaluate_epoch(Xn, X.shape, ypm, val, active, n_threads)

        return self._run_epochs(epoch, evaluate, lambda: None, rng, opt, epochs)

    def _prepare_features(self, present, counts, n, reg, opt):
        """Record the features this fit touches (present, with their row counts) in the active list;
        with the sparse regulariser, n / d_j goes into AMSGrad's state lines or, returned, into SGD's
        reg_scale array (no other feature is touched by this fit)."""
        new = present[~self._seen[present]]
        self._seen[new] = True
        self._active = np.concatenate([self._active, new.astype(np.int32)])
        if reg != "sparse":
            return None
        scale = n / counts
        if opt.name == "amsgrad":
            self._state["reg"][present] = scale
            return None
        reg_scale = np.zeros(self.n_features_in_, dtype=self._dtype)
        reg_scale[present] = scale
        return reg_scale

    def _run_epochs(self, epoch, evaluate, sync, rng, opt, epochs):
        """The epoch loop every single-process backend shares: epoch(seed, k0) trains one pass and
        returns its update and staleness counts, evaluate() the history record's metrics, sync()
        brings the host model up to date (the GPU's copy) before anyone reads it."""
        best, stale_epochs, self.n_iter_ = np.inf, 0, 0
        train_time = self.history_[-1]["time"] if self.history_ else 0.0
        try:
            for _ in range(epochs):
                t0 = time.perf_counter()
                res = epoch(int(rng.integers(2 ** 63)), self.t_)
                epoch_time = time.perf_counter() - t0
                train_time += epoch_time
                self.t_ += int(res["updates"])
                self.staleness_.add(res)
                self._coef = None
                self.n_iter_ += 1
                self._epochs_done += 1

                t1 = time.perf_counter()
                rec = evaluate()
                rec.update(epoch=self._epochs_done, time=train_time, epoch_time=epoch_time,
                           eval_time=time.perf_counter() - t1, updates=self.t_,
                           staleness_mean=float(res["sum"]) / max(int(res["count"]), 1),
                           staleness_max=int(res["max"]))
                self.history_.append(rec)
                if self.verbose:
                    print(self.history_.format_row(rec), flush=True)
                if not np.isfinite(rec["objective"]):
                    raise FloatingPointError(
                        f"training diverged at epoch {rec['epoch']} (objective {rec['objective']}): lower "
                        f"learning_rate (now {opt.learning_rate:g}), use a decaying schedule ('optimal', 'invsqrt'), "
                        "or scale the features")
                if self.callback is not None:
                    sync()
                    if self.callback(rec) is True:
                        break
                if self.tol is not None:
                    if rec["objective"] > best - self.tol:
                        stale_epochs += 1
                    else:
                        stale_epochs = 0
                    best = min(best, rec["objective"])
                    if stale_epochs >= self.n_iter_no_change:
                        break
        finally:
            sync()
            self._coef = None
        return self

    def _evaluate_epoch(self, Xn, shape, ypm, val, active, n_threads):
        name = self._optimizer_name
        loss_sum, correct = _core.logistic_evaluate(*Xn, shape[1], ypm, self._state, name,
                                                    bool(self.fit_intercept), n_threads)
        n = shape[0]
        sq = _core.squared_norm(self._state, active, name, self._dtype.name)
        rec = {"train_loss": loss_sum / n, "train_accuracy": correct / n,
               "objective": loss_sum / n + 0.5 * float(self.alpha) * sq,
               "val_loss": None, "val_accuracy": None}
        if val is not None:
            Xv, vshape, yv = val
            vl, vc = _core.logistic_evaluate(*Xv, vshape[1], yv, self._state, name, bool(self.fit_intercept),
                                             n_threads)
            rec["val_loss"] = vl / vshape[0]
            rec["val_accuracy"] = vc / vshape[0]
        return rec

    # coef_ is copied out of the interleaved optimizer state on first use after a fit rather than at
    # the end of every fit: for AMSGrad on 2^24 features that copy reads 512 MiB, which would
    # dominate partial_fit on small chunks.
    @property
    def coef_(self):
        if "_state" not in self.__dict__:
            raise AttributeError("coef_: " + self._not_fitted_reason())
        if self._coef is None:
            self._coef = np.ascontiguousarray(self._state["w"][:-1]).reshape(1, -1)
        return self._coef

    def _not_fitted_reason(self):
        rank = self.__dict__.get("mpi_rank_")
        if rank:
            return f"this process is MPI worker rank {rank}; rank 0 holds the model"
        return "this LogisticRegression is not fitted yet"

    @property
    def intercept_(self):
        if "_state" not in self.__dict__:
            raise AttributeError("intercept_: " + self._not_fitted_reason())
        return np.array([self._state["w"][-1]], dtype=self._state.dtype["w"])

    # ------------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Margin ``w.x + b`` of each row; positive means ``classes_[1]``."""
        check_is_fitted(self, "coef_")
        X = check_matrix(X, n_features=self.n_features_in_)
        return np.asarray(X @ self.coef_[0].astype(X.dtype, copy=False)).ravel() + self.intercept_[0]

    def predict_proba(self, X):
        """Probabilities of ``classes_[0]`` and ``classes_[1]``, shape (n_samples, 2)."""
        z = self.decision_function(X).astype(np.float64)
        p = np.empty_like(z)
        pos = z >= 0
        p[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
        ez = np.exp(z[~pos])
        p[~pos] = ez / (1.0 + ez)
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.intp)]

    def log_loss(self, X, y):
        """Mean log-loss of the model on (X, y) (no regularisation term)."""
        check_is_fitted(self, "coef_")
        X = check_matrix(X, n_features=self.n_features_in_)
        ypm = self._signed(check_labels(y, X.shape[0]))
        z = self.decision_function(X).astype(np.float64)
        return float(np.mean(np.logaddexp(0.0, -ypm * z)))
