"""Model state: what a fit trains and what persists between fits, for each workload.

A state object holds the model's arrays (in the layout the native core works on in place), its
labels or priors, the step count, the staleness and the history. Backends train a state; an
estimator owns one and reads its public attributes from it. Nothing here knows which backend
trained it.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln, psi

from . import _core
from ._checks import check_matrix, check_labels, native_csr
from .checkpoint import labels_from_json, labels_to_json, to_json
from .history import History, Staleness

_ALIGN = 64  # bytes: one cache line, so a 32/64-byte per-coordinate state never straddles two


def aligned_zeros(n, dtype):
    """Zero-filled 1-d array of ``n`` items whose data starts on a cache-line boundary."""
    dtype = np.dtype(dtype)
    raw = np.zeros(n * dtype.itemsize + _ALIGN, dtype=np.uint8)
    offset = (-raw.ctypes.data) % _ALIGN
    return raw[offset:offset + n * dtype.itemsize].view(dtype)


def state_dtype(rule, dtype):
    """The numpy structured dtype of one coordinate's state under the rule named ``rule`` (the C++
    struct's layout)."""
    lay = _core.state_layout(getattr(_core.Rule, rule), np.dtype(dtype).name)
    return np.dtype({k: lay[k] for k in ("names", "formats", "offsets", "itemsize")})


def feature_counts(indices, n_features):
    """The features present in a CSR index array and how many rows hold each (canonical CSR: one
    entry per row and feature). Sorting costs O(nnz log nnz) and no O(n_features) pass, which
    keeps partial_fit on small chunks of a huge feature space cheap; bincount's O(nnz + d) wins
    when the matrix is not much sparser than its width."""
    if indices.size * 16 >= n_features:
        counts = np.bincount(indices, minlength=n_features)
        present = np.flatnonzero(counts)
        return present, counts[present]
    return np.unique(indices, return_counts=True)


class TrainingProgress:
    """What every model counts: steps (the schedule's k), passes, training time, staleness, history."""

    def __init__(self):
        self.t = 0
        self.n_iter = 0  # passes of the last fit
        self.epochs_done = 0
        self.train_time = 0.0  # cumulative, evaluation excluded
        self.history = History()
        self.staleness = Staleness()

    def advance(self, native, seconds):
        """After one native epoch: its update and staleness counters, one more pass."""
        self.t += int(native["updates"])
        self.staleness.add(native)
        self.n_iter += 1
        self.epochs_done += 1
        self.train_time += seconds
        self.changed()

    def changed(self):
        """The arrays were written: drop what was derived from them."""

    # ------------------------------------------------------------------ checkpoints
    def _progress_meta(self):
        st = self.staleness
        return {"t": self.t, "n_iter": self.n_iter, "epochs_done": self.epochs_done, "train_time": self.train_time,
                "history": to_json(list(self.history), "history"),
                "staleness": {"count": st.count, "total": st.total, "max": st.max}}

    def _restore_progress(self, meta, arrays):
        self.t, self.n_iter, self.epochs_done = int(meta["t"]), int(meta["n_iter"]), int(meta["epochs_done"])
        self.train_time = float(meta["train_time"])
        self.history = History(meta["history"])
        st = meta["staleness"]
        hist = np.asarray(arrays["model.staleness_histogram"], dtype=np.int64)
        self.staleness = Staleness(count=int(st["count"]), total=int(st["total"]), max=int(st["max"]), histogram=hist)


def _expect(arrays, name, shape, dtype, what):
    """arrays[name], after checking it has this shape and dtype (a mismatched file is named so)."""
    if name not in arrays:
        raise ValueError(f"checkpoint lacks the array {name!r} ({what})")
    a = arrays[name]
    if tuple(a.shape) != tuple(shape) or a.dtype != dtype:
        raise ValueError(f"checkpoint array {name!r} ({what}) has shape {a.shape} and dtype {a.dtype}; the model "
                         f"it describes needs {tuple(shape)} and {np.dtype(dtype)}")
    return a


class LogisticState(TrainingProgress):
    """A logistic regression model: one optimizer-state record per coordinate (the weight and the
    rule's per-coordinate statistics, interleaved), 64-byte aligned. Two classes: one coordinate per
    feature and the intercept last. K > 2 classes: K coordinates per feature, adjacent (feature j's
    class c at j K + c: one nonzero's update touches one run of K records), and the K intercepts
    last, trained with the softmax loss or as K one-vs-rest problems (``loss``).

    rule : the optimizer's name (the record layout depends on it)
    loss : None (two classes), 'softmax' or 'ovr'
    active : every feature any fit touched (the native code brings them up to date at segment ends;
        the others are still zero)
    """

    def __init__(self, n_features, dtype, classes, rule, loss=None):
        super().__init__()
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self.classes = classes
        self.rule = rule
        self.loss = None if len(classes) <= 2 else (loss or "softmax")
        self.array = aligned_zeros((self.n_features + 1) * self.K, state_dtype(rule, self.dtype))
        self.seen = np.zeros(self.n_features, dtype=bool)
        self.active = np.zeros(0, dtype=np.int32)
        self._coef = None

    @property
    def K(self):
        """Coordinates per feature: 1 for two classes, else the number of classes."""
        return 1 if self.loss is None else len(self.classes)

    def active_coordinates(self):
        """The coordinates of the active features (their K records each), for the norm."""
        if self.K == 1:
            return self.active
        cached = self.__dict__.get("_active_coords")
        if cached is None or cached.shape[0] != self.active.shape[0] * self.K:
            cached = (self.active.astype(np.int64)[:, None] * self.K + np.arange(self.K)).ravel().astype(np.int32)
            self._active_coords = cached
        return cached

    @property
    def native_rule(self):
        """The rule kind the native core takes (``_core.Rule``); ``rule`` is its name (picklable)."""
        return getattr(_core.Rule, self.rule)

    # ------------------------------------------------------------------ continuing
    def check_continuation(self, n_features, dtype, classes, rule, loss=None):
        """Raise unless data of this shape, dtype and labels can continue this model."""
        if n_features != self.n_features:
            raise ValueError(f"X has {n_features} features, but the model was fit with {self.n_features}")
        if dtype != self.dtype:
            raise ValueError(f"X has dtype {dtype}, but the model is {self.dtype}: continue with the same dtype"
                             " (a GPU fit trains a float32 model)")
        if rule != self.rule:
            raise ValueError(f"optimizer changed from {self.rule!r} to {rule!r}; refit from scratch")
        if not np.isin(classes, self.classes).all():
            raise ValueError(f"y has labels {classes} outside the model's classes {self.classes}")
        if self.loss is not None and loss is not None and loss != self.loss:
            raise ValueError(f"multi_class changed from {self.loss!r} to {loss!r}; refit from scratch")
        if self.array.ctypes.data % _ALIGN:  # e.g. after unpickling
            aligned = aligned_zeros(self.array.shape[0], self.array.dtype)
            aligned[...] = self.array
            self.array = aligned

    # ------------------------------------------------------------------ data in the model's terms
    def signed(self, y, name="y"):
        """y as -1.0 / +1.0 (classes[1] is +1); labels outside the classes raise."""
        unknown = ~np.isin(y, self.classes)
        if unknown.any():
            raise ValueError(f"{name} has labels {np.unique(y[unknown])[:10]} outside the classes {self.classes}")
        return np.where(y == self.classes[1], 1.0, -1.0)

    def encoded(self, y, name="y"):
        """y in the native core's terms: -1.0 / +1.0 for two classes, else int32 class indices."""
        if self.K == 1:
            return self.signed(y, name)
        unknown = ~np.isin(y, self.classes)
        if unknown.any():
            raise ValueError(f"{name} has labels {np.unique(y[unknown])[:10]} outside the classes {self.classes}")
        return np.searchsorted(self.classes, y).astype(np.int32)

    def eval_data(self, eval_set, dtype):
        """The validation pair in native form (CSR parts, shape, signed labels; X in ``dtype``), or None."""
        if eval_set is None:
            return None
        if not isinstance(eval_set, (tuple, list)) or len(eval_set) != 2:
            raise ValueError("eval_set must be a pair (X_val, y_val)")
        Xv = check_matrix(eval_set[0], name="eval_set X", n_features=self.n_features)
        if Xv.dtype != dtype:
            Xv = Xv.astype(dtype)
        yv = self.encoded(check_labels(eval_set[1], Xv.shape[0], name="eval_set y"), name="eval_set y")
        return (native_csr(Xv), Xv.shape, yv)

    def add_features(self, present, counts, n_rows, settings):
        """Record the features a fit touches (present, with their row counts over its n_rows) in the
        active list; with the sparse regulariser, n / d_j goes into the state records of rules that
        keep it there or, returned, into a reg_scale array (the fit touches no other feature)."""
        new = present[~self.seen[present]]
        self.seen[new] = True
        self.active = np.concatenate([self.active, new.astype(np.int32)])
        if settings.regularization != "sparse":
            return None
        scale = n_rows / counts
        if "reg" in self.array.dtype.names:
            self.array["reg"].reshape(-1, self.K)[present] = scale[:, None]  # each of a feature's K records
            return None
        reg_scale = np.zeros(self.n_features, dtype=self.dtype)
        reg_scale[present] = scale
        return reg_scale

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, Xn, shape, ypm, val, settings, n_threads, progressive=None, weight=None):
        """The record's model fields: training loss, accuracy and objective, and the validation pair's.

        progressive: an epoch's native result holding its rows' summed losses at the models their
        updates read (``loss_sum``, ``correct``, ``rows``); with it the training fields are those
        sums and no pass over the training set is made (``train_loss_kind`` 'progressive'), without
        it they are measured at the current model ('exact'). The objective's L2 term is always the
        current model's (O(features touched), no pass over the rows)."""
        if progressive is not None and "loss_sum" in progressive and progressive["rows"] > 0:
            # (an epoch stopped by Ctrl-C before its first update summed no row: measured exactly then)
            loss_sum, correct, n = progressive["loss_sum"], progressive["correct"], progressive["rows"]
            kind = "progressive"
        else:
            loss_sum, correct = self._evaluate(Xn, shape, ypm, settings.fit_intercept, n_threads, weight)
            n, kind = shape[0], "exact"
        sq = _core.squared_norm(self.array, self.active_coordinates(), self.native_rule, self.dtype.name)
        rec = {"train_loss": loss_sum / n, "train_accuracy": correct / n,
               "objective": loss_sum / n + 0.5 * settings.alpha * sq, "train_loss_kind": kind,
               "val_loss": None, "val_accuracy": None}
        if val is not None:
            Xv, vshape, yv = val
            vl, vc = self._evaluate(Xv, vshape, yv, settings.fit_intercept, n_threads)
            rec["val_loss"] = vl / vshape[0]
            rec["val_accuracy"] = vc / vshape[0]
        return rec

    def _evaluate(self, Xn, shape, y, fit_intercept, n_threads, weight=None):
        """(summed, weighted loss, correct predictions) of the current model on native data and encoded labels."""
        if self.K == 1:
            return _core.logistic_evaluate(*Xn, shape[1], y, self.array, self.native_rule, fit_intercept, n_threads,
                                           sample_weight=weight)
        return _core.multinomial_evaluate(*Xn, shape[1], y, self.K, self.array, self.native_rule, fit_intercept,
                                          self.loss, n_threads, sample_weight=weight)

    # ------------------------------------------------------------------ checkpoints
    def to_checkpoint(self):
        """(meta, arrays): everything a fit continues from, the optimizer state included (the rule's
        per-coordinate records with their moments, maxima and stamps, as the native core lays them out)."""
        meta = {"kind": "logistic", "n_features": self.n_features, "dtype": self.dtype.str, "rule": self.rule,
                "classes": labels_to_json(self.classes), "loss": self.loss, **self._progress_meta()}
        arrays = {"model.array": self.array, "model.seen": self.seen, "model.active": self.active,
                  "model.staleness_histogram": self.staleness.histogram}
        return meta, arrays

    @classmethod
    def from_checkpoint(cls, meta, arrays):
        if meta.get("kind") != "logistic":
            raise ValueError(f"checkpoint holds a {meta.get('kind')!r} model, not a logistic regression one")
        self = cls.__new__(cls)
        TrainingProgress.__init__(self)
        self.n_features, self.dtype, self.rule = int(meta["n_features"]), np.dtype(meta["dtype"]), meta["rule"]
        self.classes = labels_from_json(meta["classes"])
        self.loss = meta.get("loss")
        if (self.loss is None) != (len(self.classes) <= 2) or self.loss not in (None, "softmax", "ovr"):
            raise ValueError(f"checkpoint's loss {self.loss!r} does not fit its {len(self.classes)} classes")
        layout = state_dtype(self.rule, self.dtype)
        saved = _expect(arrays, "model.array", ((self.n_features + 1) * self.K,), arrays["model.array"].dtype,
                        "optimizer state")
        if saved.dtype != layout:
            raise ValueError(f"checkpoint's {self.rule} state records are laid out as {saved.dtype}, this build's as "
                             f"{layout}: it was written by an incompatible build")
        self.array = aligned_zeros(saved.shape[0], layout)
        self.array[...] = saved
        self.seen = _expect(arrays, "model.seen", (self.n_features,), bool, "features seen").copy()
        active = arrays["model.active"]
        if active.dtype != np.int32 or active.ndim != 1 or (active.size and (active.min() < 0 or
                                                                             active.max() >= self.n_features)):
            raise ValueError("checkpoint array 'model.active' is not a list of feature indices of this model")
        self.active = active.copy()
        self._coef = None
        self._restore_progress(meta, arrays)
        return self

    # ------------------------------------------------------------------ the model
    def changed(self):
        self._coef = None

    # coef is copied out of the interleaved optimizer state on first use after a fit rather than at
    # the end of every fit: for AMSGrad on 2^24 features that copy reads 512 MiB, which would
    # dominate partial_fit on small chunks.
    @property
    def coef(self):
        """(1, n_features) for two classes, else (K, n_features): class c's weights in row c."""
        if self._coef is None:
            K = self.K
            self._coef = np.ascontiguousarray(self.array["w"][:-K].reshape(self.n_features, K).T)
        return self._coef

    @property
    def intercept(self):
        return np.array(self.array["w"][-self.K:], dtype=self.array.dtype["w"])

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_coef", "_active_coords")}

    def __setstate__(self, d):
        d.setdefault("loss", None)  # pickled before multiclass: a two-class model
        self.__dict__.update(d)
        self._coef = None


def check_counts(X, name="X", n_features=None, need_words=True, whom="LDA"):
    """A document-word matrix as canonical CSR with float64 values, after checking that every value
    is finite and >= 0.

    Values need not be integers: SVI's local and global steps (and the bound) are defined for any
    non-negative word weights, as in scikit-learn's LatentDirichletAllocation, so tf-idf or
    normalised frequencies are accepted (the bound is then that of weighted counts, not a
    likelihood of the documents). Messages follow scikit-learn's check_array where one exists, so
    a scikit-learn user reads the error they know. ``whom`` names the method in the message about
    negative values, as scikit-learn's check_non_negative does.
    """
    if not sp.issparse(X):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional (n_documents, n_words), got shape {X.shape}. Reshape "
                             "your data: X.reshape(1, -1) if it is a single document")
    if n_features is not None and X.shape[1] != n_features and min(X.shape) > 0:
        raise ValueError(f"{name} has {X.shape[1]} features, but {whom.split('.')[0]} is expecting {n_features} "
                         "features as input (the vocabulary it was fit with)")
    X = check_matrix(X, name=name)
    if X.dtype != np.float64:
        X = X.astype(np.float64)
    data = X.data
    if data.size and data.min() < 0:
        raise ValueError(f"Negative values in data passed to {whom}: {name} has negative counts (min "
                         f"{data.min():g}); LDA needs word counts or weights >= 0")
    if need_words and not data.any():
        raise ValueError(f"{name} is an empty corpus: its {X.shape[0]} documents hold 0 words in total")
    return X


class LdaState(TrainingProgress):
    """An LDA model: lambda stored word-major as mu = lambda - eta (V x K), with its K topic sums kept
    by the native global steps, and the settings it was initialised with (its priors)."""

    def __init__(self, n_features, settings, random_state):
        """lambda_0 ~ Gamma(100, 1/100) per entry (Hoffman et al. 2010; scikit-learn draws the same
        numbers from the same seed)."""
        from sklearn.utils import check_random_state

        super().__init__()
        self.settings = settings
        self.n_features = int(n_features)
        K = settings.n_components
        lam = check_random_state(random_state).gamma(100.0, 0.01, (K, self.n_features))
        self.mu = np.ascontiguousarray(lam.T - settings.topic_word_prior)  # V x K
        self.topic_mass = self.mu.sum(axis=0)

    def to_checkpoint(self):
        meta = {"kind": "lda", "n_features": self.n_features, "settings": to_json(self.settings, "settings"),
                **self._progress_meta()}
        return meta, {"model.mu": self.mu, "model.topic_mass": self.topic_mass,
                      "model.staleness_histogram": self.staleness.histogram}

    @classmethod
    def from_checkpoint(cls, meta, arrays):
        from .checkpoint import from_json

        if meta.get("kind") != "lda":
            raise ValueError(f"checkpoint holds a {meta.get('kind')!r} model, not an LDA one")
        self = cls.__new__(cls)
        TrainingProgress.__init__(self)
        self.settings = from_json(meta["settings"])
        self.n_features = int(meta["n_features"])
        K = self.settings.n_components
        self.mu = np.array(_expect(arrays, "model.mu", (self.n_features, K), np.float64, "lambda - eta"), order="C")
        self.topic_mass = _expect(arrays, "model.topic_mass", (K,), np.float64, "topic sums").copy()
        self._restore_progress(meta, arrays)
        return self

    @property
    def components(self):
        """lambda, K x V."""
        return (self.mu + self.settings.topic_word_prior).T

    def finite(self):
        return bool(np.isfinite(self.topic_mass).all())

    # ------------------------------------------------------------------ inference, lambda fixed
    def infer(self, X, n_threads, with_loglik):
        """(gamma, per-document log-likelihood term or None) of validated counts X."""
        return _core.lda_infer(*native_csr(X), X.shape[1], self.mu, self.topic_mass, self.settings.native_config(),
                               n_threads, with_loglik)

    def bound(self, X, n_threads):
        """The variational bound of scikit-learn's ``_approx_bound(X, gamma, sub_sampling=False)``:
        E_q[log p(docs | theta, beta)] + E_q[log p(theta | alpha) - log q(theta | gamma)]
        + E_q[log p(beta | eta) - log q(beta | lambda)] (Hoffman et al. 2010, eq. 3), with gamma from
        the E-step with lambda fixed."""
        gamma, loglik = self.infer(X, n_threads, True)
        s = self.settings
        K, alpha, eta = s.n_components, s.doc_topic_prior, s.topic_word_prior
        score = float(np.sum(loglik))
        elog_theta = psi(gamma) - psi(gamma.sum(axis=1))[:, None]
        score += float(np.sum((alpha - gamma) * elog_theta))
        score += float(np.sum(gammaln(gamma) - gammaln(alpha)))
        score += float(np.sum(gammaln(alpha * K) - gammaln(gamma.sum(axis=1))))
        lam = self.mu + eta  # V x K
        lam_sum = lam.sum(axis=0)
        elog_beta = psi(lam) - psi(lam_sum)[None, :]
        score += float(np.sum((eta - lam) * elog_beta))
        score += float(np.sum(gammaln(lam) - gammaln(eta)))
        score += float(np.sum(gammaln(eta * self.n_features) - gammaln(lam_sum)))
        return score

    def perplexity(self, X, n_threads):
        return float(np.exp(-self.bound(X, n_threads) / X.data.sum()))
