"""What both estimators share below their parameters: the model state a backend trains (held from
the moment the backend creates it, so a callback reads the current model), the run's report as
``*_`` attributes, and an MPI worker's case, which ends a fit without a model (rank 0 holds it)."""
from __future__ import annotations

import functools
import threading
import weakref

# what a backend may report about a run, each set as the attribute of the same name plus '_'
_REPORTED = ("n_threads", "device", "gpu_workers", "mpi_rank", "mpi_stats")


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


class BackendEstimator:
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
