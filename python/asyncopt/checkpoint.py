"""Checkpoint files: a model, its optimizer state and (during a fit) where the fit stands, in a
format that executes no code when it is read.

A checkpoint is a ``.npz`` archive (a zip of ``.npy`` arrays, read with ``allow_pickle=False``)
whose member ``__meta__`` holds a JSON document: the format name and version, the library version,
the estimator's class and parameters, its fitted attributes, the model state's scalars and the
history. Every other member is a numeric, string or structured array. Nothing in it is a pickle,
so loading a file from elsewhere cannot run code; the parameters that are Python objects are
restored only where they are asyncopt's own dataclasses (an optimizer object, MPIOptions, a
quantizer) and dropped with a warning otherwise (a callback).

This module knows the file, not the estimators: an estimator class registers itself under its
name (:func:`register`) and :func:`load` builds one through its ``_from_checkpoint``. Pickle still
works for every estimator (joblib.dump): it keeps the whole Python object, callbacks included, but
loading a pickle runs code and ties the file to this version's classes; ``save`` / ``load`` is the
portable, safe form.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import numbers
import os
import tempfile
import warnings
import zipfile

import numpy as np

FORMAT = "asyncopt-checkpoint"
FORMAT_VERSION = 1  # raise when a reader of the previous version could misread a new file
_META = "__meta__"

_CLASSES = {}


def register(cls):
    """Make ``load`` able to rebuild estimators of class ``cls`` (keyed by its name)."""
    _CLASSES[cls.__name__] = cls
    return cls


# ---------------------------------------------------------------------- JSON of parameters and records
def to_json(value, path="value"):
    """``value`` as plain JSON data: numpy scalars and arrays become numbers and lists, asyncopt's
    dataclasses a tagged dict. Anything else raises TypeError naming where it was."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufU":
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): to_json(v, f"{path}[{k!r}]") for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and \
            type(value).__module__.split(".")[0] == "asyncopt":
        return {"__dataclass__": f"{type(value).__module__}:{type(value).__qualname__}",
                "fields": {f.name: to_json(getattr(value, f.name), f"{path}.{f.name}")
                           for f in dataclasses.fields(value)}}
    raise TypeError(f"{path} ({type(value).__name__}) cannot be written to a checkpoint")


def from_json(value):
    """The inverse of :func:`to_json`: tagged dicts become the asyncopt dataclass they name (only
    asyncopt's own modules are imported)."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        if "__dataclass__" in value:
            module, _, qualname = value["__dataclass__"].partition(":")
            if module.split(".")[0] != "asyncopt" or "." in qualname:
                raise ValueError(f"checkpoint names the class {value['__dataclass__']!r}, which is not asyncopt's")
            cls = getattr(importlib.import_module(module), qualname, None)
            if cls is None or not dataclasses.is_dataclass(cls):
                raise ValueError(f"checkpoint names the class {value['__dataclass__']!r}, which this version lacks")
            return cls(**{k: from_json(v) for k, v in value["fields"].items()})
        return {k: from_json(v) for k, v in value.items()}
    return value


def labels_to_json(classes):
    """Class labels as JSON (strings, integers, floats or booleans; an object array of those too)."""
    return {"dtype": classes.dtype.str if classes.dtype != object else "object", "values": to_json(list(classes))}


def labels_from_json(d):
    values = d["values"]
    if d["dtype"] == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.array(values, dtype=np.dtype(d["dtype"]))


# ---------------------------------------------------------------------- the file
def write(path, meta, arrays):
    """Write a checkpoint atomically: into a temporary file beside ``path``, flushed to disk, then
    renamed over it, so a crash mid-write leaves the previous checkpoint whole."""
    path = os.fspath(path)
    meta = dict(meta, format=FORMAT, format_version=FORMAT_VERSION)
    blob = json.dumps(meta, allow_nan=True).encode()
    members = {_META: np.frombuffer(blob, dtype=np.uint8)}
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype.hasobject:
            raise TypeError(f"checkpoint array {name!r} holds Python objects, which the format does not store")
        members[name] = a
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read(path):
    """(meta, arrays) of a checkpoint file. A file that is not one, is truncated or corrupt, or was
    written by a newer format raises ValueError naming the file and the problem."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    # the archive is read member by member from the file (no copy of the whole file in memory: an
    # AMSGrad model of 2^24 features is 0.5-1 GiB); is_zipfile finds the central directory at the
    # end, which a truncated file has lost
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an asyncopt checkpoint (not an npz archive; truncated or another format)")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if _META not in names:
                raise ValueError(f"{path}: not an asyncopt checkpoint (an npz archive without {_META!r})")
            arrays = {n: z[n] for n in names}
    except ValueError as e:
        if str(e).startswith(path):
            raise
        raise ValueError(f"{path}: corrupt checkpoint ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ValueError(f"{path}: corrupt or truncated checkpoint ({type(e).__name__}: {e})") from None
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: corrupt checkpoint (its metadata is not JSON: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not an asyncopt checkpoint (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path}: written by asyncopt {meta.get('asyncopt_version')} in checkpoint format {version}; "
                         f"this asyncopt reads format {FORMAT_VERSION} and older: upgrade asyncopt to load it")
    return meta, arrays


def load(path):
    """The estimator saved at ``path`` (by ``save`` or by ``fit(checkpoint_path=...)``), fitted as it
    was then. A checkpoint written during a fit also holds where that fit stood: ``resume(X, ...)``
    on the loaded estimator finishes it."""
    meta, arrays = read(path)
    cls = _CLASSES.get(meta.get("estimator"))
    if cls is None:
        raise ValueError(f"{os.fspath(path)}: the checkpoint holds a {meta.get('estimator')!r}, which is not an "
                         f"asyncopt estimator (known: {sorted(_CLASSES)})")
    try:
        return cls._from_checkpoint(meta, arrays)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"{os.fspath(path)}: corrupt checkpoint (missing or malformed entry: {e!r})") from None


def unsaved_parameter(name, value):
    """Warn that parameter ``name`` is not written (a callable or a foreign object) and return None."""
    warnings.warn(f"checkpoint: parameter {name}={value!r} is not saved (it is not data); the loaded estimator has "
                  f"{name}=None", stacklevel=4)
    return None
