"""What both estimators share below their parameters: the model state a backend trains (held from
the moment the backend creates it, so a callback reads the current model), the run's report as
``*_`` attributes, an MPI worker's case, which ends a fit without a model (rank 0 holds it), and
checkpoints: ``save``, the estimator half of ``asyncopt.load``, ``fit(checkpoint_every=...)``'s
writer and ``resume``'s checks (the file format is :mod:`asyncopt.checkpoint`)."""
from __future__ import annotations

import functools
import os
import threading
import warnings
import weakref

import numpy as np

from . import _core, checkpoint
from ._checks import check_int

try:  # scikit-learn >= 1.6: a function; before, a method of BaseEstimator
    from sklearn.utils.validation import _check_feature_names as check_feature_names
except ImportError:  # pragma: no cover - old scikit-learn
    def check_feature_names(estimator, X, *, reset):
        """scikit-learn's feature-name bookkeeping: reset sets feature_names_in_ from a DataFrame's
        columns (or removes it); otherwise X's names are checked against it, with its warnings."""
        return estimator._check_feature_names(X, reset=reset)

# what a backend may report about a run, each set as the attribute of the same name plus '_'
_REPORTED = ("n_threads", "device", "gpu_workers", "mpi_rank", "mpi_stats", "simulate_stats", "staleness_trace")


# One lock per estimator, held by fit and partial_fit. Two threads fitting one estimator merged their
# updates into one model without a word (both epochs ran on the same arrays); the second caller now
# gets an error at once instead. Kept beside the estimator, not in its __dict__, so that pickling,
# copy and sklearn's clone never see a lock (a copied estimator is a new one with its own).
_FIT_LOCKS: "weakref.WeakKeyDictionary[object, threading.Lock]" = weakref.WeakKeyDictionary()
_FIT_LOCKS_GUARD = threading.Lock()


def exclusive_fit(method):
    """fit/partial_fit under the estimator's lock, taken without waiting: a second fit on the same
    estimator raises RuntimeError rather than training the same model concurrently."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _FIT_LOCKS_GUARD:
            lock = _FIT_LOCKS.get(self)
            if lock is None:
                lock = _FIT_LOCKS[self] = threading.Lock()
        if not lock.acquire(blocking=False):
            raise RuntimeError(f"{method.__name__}: fit is already running on this {type(self).__name__} in "
                               "another thread (or this call comes from its callback); fitting one estimator "
                               "from two threads would merge both into one model: use one estimator per "
                               "thread (sklearn.base.clone)")
        try:
            return method(self, *args, **kwargs)
        finally:
            lock.release()
    return locked


# parameters that choose resources, not the computation: a resume may change them
_RESOURCE_PARAMETERS = ("n_threads", "n_jobs", "verbose", "callback")


def _params_json(est, warn):
    """The estimator's parameters as JSON data; the ones that are not data (a callback, a numpy
    generator as random_state) are left out, with a warning when ``warn``."""
    out, unsaved = {}, []
    for name, value in est.get_params(deep=False).items():
        try:
            out[name] = checkpoint.to_json(value, name)
        except TypeError:
            unsaved.append(name)
            if warn:
                checkpoint.unsaved_parameter(name, value)
    return out, unsaved


class BackendEstimator:
    """Subclasses set ``_STATE`` (their model-state class, with to_checkpoint/from_checkpoint) and
    may extend ``_fitted_extra`` / ``_restore_fitted_extra`` with fitted attributes of their own."""

    _STATE = None
    _DEFAULT_EPOCHS = None  # the class's default epochs, which a max_iter may replace

    def _epochs(self):
        """Passes of ``fit``: ``epochs``, or ``max_iter`` (scikit-learn's name) when that is given;
        the two conflict only when epochs is set to something else than the class's default."""
        epochs = check_int("epochs", self.epochs, low=1)
        if self.max_iter is None:
            return epochs
        max_iter = check_int("max_iter", self.max_iter, low=1)
        if epochs != self._DEFAULT_EPOCHS and epochs != max_iter:
            raise ValueError(f"max_iter={self.max_iter!r} and epochs={self.epochs!r} disagree: they are the same "
                             "setting (max_iter is scikit-learn's name for it); pass one of them")
        return max_iter

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        checkpoint.register(cls)

    def _hold(self, model):
        """A backend's new model state becomes the estimator's (Run.new_model returns this)."""
        self._model = model
        self.__dict__.pop("_mpi_worker", None)
        return model

    def _train(self, name, train, run, loop):
        """Run ``train()`` (the backend's fit) and take its report; afterwards an MPI worker keeps
        only what it knows of the model (its classes and width), and the epoch loop's progress
        display is closed."""
        try:
            model = train()
        finally:
            loop.close()
            self.backend_ = name
            for attr in _REPORTED:
                if attr in run.report:
                    setattr(self, attr + "_", run.report[attr])
        if model is None:
            self.__dict__.pop("_model", None)
            self._mpi_worker = {k: run.report[k] for k in ("classes", "n_features") if k in run.report}
        return self

    def __sklearn_is_fitted__(self):
        return "_model" in self.__dict__

    def _model_attr(self, attr, public):
        model = self.__dict__.get("_model")
        if model is None:
            rank = self.__dict__.get("mpi_rank_")
            reason = (f"this process is MPI worker rank {rank}; rank 0 holds the model" if rank else
                      f"this {type(self).__name__} is not fitted yet")
            raise AttributeError(f"{public}: {reason}")
        return getattr(model, attr)

    def _known_to_workers(self, key, public):
        """An attribute an MPI worker knows without the model (from its data), else the model's."""
        worker = self.__dict__.get("_mpi_worker")
        return worker[key] if worker is not None else self._model_attr(key, public)

    n_features_in_ = property(lambda self: self._known_to_workers("n_features", "n_features_in_"))
    t_ = property(lambda self: self._model_attr("t", "t_"), doc="updates applied since initialisation")
    n_iter_ = property(lambda self: self._model_attr("n_iter", "n_iter_"), doc="epochs of the last fit")
    history_ = property(lambda self: self._model_attr("history", "history_"), doc="one record per epoch")
    staleness_ = property(lambda self: self._model_attr("staleness", "staleness_"), doc="delay statistics")

    # ------------------------------------------------------------------ checkpoints
    def save(self, path):
        """Write the fitted estimator to ``path`` (an npz archive with JSON metadata; nothing in it runs
        code when loaded): its parameters, the model with the full optimizer state, the step count,
        history and staleness, and the library version. ``asyncopt.load(path)`` reads it back.
        Parameters that are not data (a callback) are not written and load as None (with a warning).
        Pickle (joblib.dump) keeps working too; it keeps callbacks but runs code when loaded."""
        if "_model" not in self.__dict__:
            raise ValueError(f"save: this {type(self).__name__} holds no model "
                             + ("(this process is an MPI worker; rank 0 holds it)" if self.__dict__.get("mpi_rank_")
                                else "(fit it first)"))
        return checkpoint.write(path, *self._checkpoint(self.__dict__.get("backend_"), None, {}, warn=True))

    def _checkpoint(self, backend_name, position, fit_arrays, warn=False):
        """(meta, arrays) of a checkpoint of this estimator; ``position`` is where a running fit stands
        (EpochLoop.position) or None."""
        params, unsaved = _params_json(self, warn)
        fitted = {"backend_": backend_name}
        for attr in ("n_threads_", "device_", "gpu_workers_", "mpi_rank_", "mpi_stats_"):
            if attr in self.__dict__:
                try:
                    fitted[attr] = checkpoint.to_json(self.__dict__[attr], attr)
                except TypeError:
                    pass  # a report that is not data is not worth refusing the checkpoint for
        fitted.update(self._fitted_extra())
        model_meta, arrays = self._model.to_checkpoint()
        meta = {"asyncopt_version": _core.build_info()["version"], "estimator": type(self).__name__, "params": params,
                "unsaved_params": unsaved, "fitted": fitted, "model": model_meta, "fit": position}
        return meta, dict(arrays, **fit_arrays)

    def _fitted_extra(self):
        """Fitted attributes of the estimator's own to write into a checkpoint (JSON data); these
        two keep feature_names_in_, which both estimators set from a DataFrame's columns."""
        names = self.__dict__.get("feature_names_in_")
        return {} if names is None else {"feature_names_in_": [str(v) for v in names]}

    def _restore_fitted_extra(self, fitted):
        if "feature_names_in_" in fitted:
            self.feature_names_in_ = np.array(fitted["feature_names_in_"], dtype=object)

    @classmethod
    def _from_checkpoint(cls, meta, arrays):
        params = {k: checkpoint.from_json(v) for k, v in meta["params"].items()}
        known = set(cls().get_params(deep=False))
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"checkpoint has parameters {sorted(unknown)} that this version's {cls.__name__} lacks "
                             f"(written by asyncopt {meta.get('asyncopt_version')})")
        if meta.get("unsaved_params"):
            warnings.warn(f"checkpoint did not hold the parameters {meta['unsaved_params']} (not data); they are None "
                          "in the loaded estimator", stacklevel=3)
        est = cls(**params)
        est._hold(cls._STATE.from_checkpoint(meta["model"], arrays))
        fitted = meta["fitted"]
        for attr, value in fitted.items():
            if attr.endswith("_") and attr in ("backend_", "n_threads_", "device_", "gpu_workers_", "mpi_rank_",
                                               "mpi_stats_"):
                setattr(est, attr, value)
        est._restore_fitted_extra(fitted)
        position = meta.get("fit")
        if position is not None and not position.get("finished"):
            est._resume_point = (position, {k: v for k, v in arrays.items() if k.startswith("fit.")}, meta["params"])
        return est

    def _checkpoint_writer(self, checkpoint_every, checkpoint_path, backend_name):
        """(every, writer) for EpochLoop from fit's checkpoint arguments, checked before any training."""
        if checkpoint_every is None and checkpoint_path is None:
            return 0, None
        if checkpoint_every is None or checkpoint_path is None:
            raise ValueError("checkpoint_every and checkpoint_path go together: pass both (or neither)")
        every = check_int("checkpoint_every", checkpoint_every, low=1)
        # backend='mpi': every rank checks the path (each one reads the file to resume); rank 0 writes it
        path = os.fspath(checkpoint_path)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"checkpoint_path {path!r}: directory {directory!r} does not exist")
        if os.path.isdir(path):
            raise ValueError(f"checkpoint_path {path!r} is a directory; give a file name")
        if not os.access(directory, os.W_OK):
            raise ValueError(f"checkpoint_path {path!r}: directory {directory!r} is not writable")
        _params_json(self, warn=True)  # warn once about what the checkpoints leave out

        def write(position, arrays):
            checkpoint.write(path, *self._checkpoint(backend_name, position, arrays))

        return every, write

    def _take_resume_point(self, defer=False):
        """(position, arrays) of the unfinished fit this estimator was loaded from, after checking that
        its parameters are still the ones that fit ran with (resources such as n_threads aside).

        defer: a changed parameter does not raise here but goes into the position as 'refused' (the
        message), which backend='mpi' raises inside its handshake, so that every rank hears of it
        rather than waiting for the rank that stopped."""
        point = self.__dict__.get("_resume_point")
        if point is None:
            raise ValueError(f"resume: this {type(self).__name__} was not loaded from a checkpoint of an unfinished fit "
                             "(asyncopt.load of a file written by fit(checkpoint_every=..., checkpoint_path=...) "
                             "before that fit ended)")
        position, arrays, saved = point
        now, _ = _params_json(self, warn=False)
        changed = sorted(k for k in set(saved) | set(now) if k not in _RESOURCE_PARAMETERS
                         and saved.get(k) != now.get(k))
        if changed:
            message = (f"resume: parameters {changed} differ from the interrupted fit's; resume continues that "
                       "fit as it was set up (set them back, or fit again with warm_start=True)")
            if not defer:
                raise ValueError(message)
            position = dict(position, refused=message)
        return position, arrays

    def _resumed(self):
        self.__dict__.pop("_resume_point", None)
