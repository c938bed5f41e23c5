"""The CUDA backend's Python side: the optional module ``asyncopt._cuda``, device queries, and the
intake of data that already lives on the GPU.

Nothing here touches CUDA at import: ``asyncopt._cuda`` is imported on the first device query or
GPU fit. A build without CUDA keeps the same API; asking it for the GPU raises with the rebuild
command (``ASYNCOPT_CUDA=ON``).

Device arrays: anything exposing ``__cuda_array_interface__`` (CuPy, Numba, PyTorch) or DLPack
(``__dlpack__``: CuPy, PyTorch, JAX) is read in place on its GPU, never copied through the host.
A matrix on the device is a CSR matrix object with ``indptr``, ``indices`` and ``data`` device
arrays and a ``shape`` (``cupyx.scipy.sparse.csr_matrix``), or a PyTorch sparse CSR tensor.
"""
from __future__ import annotations

import ctypes

import numpy as np

from . import _core

REBUILD = ("this asyncopt was built without CUDA. Rebuild it with the CUDA kernels (needs nvcc): "
           "'ASYNCOPT_CUDA=ON pip install --force-reinstall --no-binary asyncopt asyncopt', or from a source "
           "checkout 'ASYNCOPT_CUDA=ON pip install .'")


def built():
    """Whether this build contains the CUDA kernels (asked without loading them)."""
    return bool(_core.build_info()["cuda"])


def load():
    """The CUDA module; raises RuntimeError with the rebuild command when it was not built."""
    if not built():
        raise RuntimeError(REBUILD)
    from . import _cuda

    return _cuda


def device_count():
    """CUDA devices usable by this build (0 without CUDA, a driver or a GPU)."""
    return load().device_count() if built() else 0


def is_available():
    """True when a GPU fit can run here."""
    return device_count() > 0


def parse_device(device):
    """None/'cpu' -> None; 'cuda' -> 0; 'cuda:N' or an int N -> N."""
    if device is None or device == "cpu":
        return None
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool) and device >= 0:
        return int(device)
    if isinstance(device, str) and device.startswith("cuda"):
        rest = device[4:]
        if rest == "":
            return 0
        if rest.startswith(":") and rest[1:].isdigit():
            return int(rest[1:])
    raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or a device number N >= 0, got {device!r}")


def require(index):
    """The CUDA module, after checking that device ``index`` exists; clear errors otherwise."""
    cuda = load()
    count = cuda.device_count()
    if count == 0:
        raise RuntimeError(f"backend='cuda' needs an NVIDIA GPU, but {cuda.no_device_reason()}")
    if index >= count:
        raise ValueError(f"device cuda:{index} does not exist: {count} CUDA device(s) visible")
    return cuda


def device_info(index=0):
    """Name, compute capability, SM count, memory and peak bandwidth of a device."""
    return require(index).device_info(index)


def default_workers(n_rows, batch_size, sm_count, warps_per_sm):
    """Workers (warps) a GPU fit runs when ``gpu_workers`` is None: enough to fill the device (16 per
    SM), but no more than one per 2048 mini-batches of the epoch. W concurrent workers read a model
    up to W - 1 updates old, and the host emulator's lockstep rounds on a9a (32561 rows, 123
    features, 5 epochs) put the limit of plain SGD at its default step between 8 workers (test
    log-loss 0.363 vs 0.352 with one) and 64 (0.626); AMSGrad held to 256 (0.327 vs 0.327). A small
    data set therefore gets few workers (a9a: 15); a GPU pays off on large ones, where the cap is
    the device."""
    fill = max(1, sm_count * min(16, warps_per_sm))
    batches = -(-n_rows // batch_size)
    return int(max(1, min(fill, batches // 2048)))


# ------------------------------------------------------------------ device arrays
_KINDS = {"i", "u", "f", "b"}


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int), ("device_id", ctypes.c_int)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


_DL_CUDA, _DL_CUDA_MANAGED = 2, 13
_DL_KIND = {0: "i", 1: "u", 2: "f", 6: "b"}  # DLPack type codes: int, uint, float, bool


def _from_cuda_array_interface(obj, name):
    cai = obj.__cuda_array_interface__
    shape = tuple(cai["shape"])
    typestr = cai["typestr"]
    if len(shape) != 1:
        raise ValueError(f"{name}: expected a 1-d device array, got shape {shape}")
    dt = np.dtype(typestr)
    if dt.kind not in _KINDS or not dt.isnative:
        raise ValueError(f"{name}: unsupported device dtype {typestr!r}")
    strides = cai.get("strides")
    if strides is not None and shape[0] > 1 and tuple(strides) != (dt.itemsize,):
        raise ValueError(f"{name}: the device array must be contiguous (strides {tuple(strides)})")
    if cai.get("mask") is not None:
        raise ValueError(f"{name}: masked device arrays are not supported")
    ptr = int(cai["data"][0] or 0)
    return (ptr, dt.kind, dt.itemsize, int(shape[0])), obj


def _from_dlpack(obj, name):
    capsule = obj.__dlpack__()
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    ptr = get(capsule, b"dltensor")
    if not ptr:
        raise ValueError(f"{name}: not a DLPack tensor capsule")
    # DLManagedTensor starts with its DLTensor. The capsule keeps the producer's tensor alive for as
    # long as we hold it (its destructor calls the deleter while the name is still 'dltensor'), and we
    # hold it until the data set has been copied on the device.
    t = _DLTensor.from_address(ptr)
    if t.device.device_type not in (_DL_CUDA, _DL_CUDA_MANAGED):
        raise ValueError(f"{name}: the DLPack tensor is not in CUDA memory (device type {t.device.device_type})")
    if t.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d device array, got {t.ndim}-d")
    if t.dtype.lanes != 1 or t.dtype.code not in _DL_KIND or t.dtype.bits not in (8, 16, 32, 64):
        raise ValueError(f"{name}: unsupported DLPack dtype (code {t.dtype.code}, {t.dtype.bits} bits)")
    n = int(t.shape[0])
    if t.strides and n > 1 and int(t.strides[0]) != 1:
        raise ValueError(f"{name}: the device array must be contiguous")
    kind = _DL_KIND[t.dtype.code]
    return ((t.data or 0) + t.byte_offset, kind, t.dtype.bits // 8, n), capsule


def device_array(obj, name):
    """``(pointer, kind, itemsize, length)`` of a 1-d device array and an object to keep alive while
    it is read; None when ``obj`` is not a device array."""
    if hasattr(obj, "__cuda_array_interface__"):
        return _from_cuda_array_interface(obj, name)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        dev_type, _ = obj.__dlpack_device__()
        if int(dev_type) in (_DL_CUDA, _DL_CUDA_MANAGED):
            return _from_dlpack(obj, name)
    return None


def device_csr(X):
    """(indptr, indices, data, shape) device arrays of a CSR matrix on the GPU; None for host data."""
    if hasattr(X, "crow_indices") and hasattr(X, "col_indices") and hasattr(X, "values"):  # torch sparse CSR
        parts = (X.crow_indices(), X.col_indices(), X.values())
        shape = tuple(X.shape)
    elif all(hasattr(X, a) for a in ("indptr", "indices", "data", "shape")):
        parts = (X.indptr, X.indices, X.data)
        shape = tuple(X.shape)
    else:
        if device_array(X, "X") is not None:
            raise ValueError("X is a dense device array: pass a CSR matrix (e.g. cupyx.scipy.sparse.csr_matrix)")
        return None
    arrays = [device_array(p, n) for p, n in zip(parts, ("X.indptr", "X.indices", "X.data"))]
    if all(a is None for a in arrays):
        return None
    if any(a is None for a in arrays):
        raise ValueError("X mixes host and device arrays: its indptr, indices and data must all be on the GPU")
    if len(shape) != 2:
        raise ValueError(f"X must be 2-d, got shape {shape}")
    return arrays, shape


def dataset(cuda, X, y_signed, device):
    """A data set on the device from host data (X checked CSR, float32 or float64; y in {-1, +1})."""
    indptr, indices = X.indptr.astype(np.int64, copy=False), X.indices.astype(np.int32, copy=False)
    with np.errstate(over="ignore"):  # reported below, with the reason
        data = X.data.astype(np.float32, copy=False)
    if X.data.dtype != np.float32 and not np.isfinite(data).all():
        raise ValueError("X holds values beyond float32's range (the GPU computes in float32)")
    return cuda.Dataset(indptr, indices, data, np.ascontiguousarray(y_signed, dtype=np.float64), X.shape[1], device)


def dataset_from_device(cuda, X_parts, y, n_features, device):
    """A data set from device arrays, converted and checked on the device; returns it with the two
    label values (negative, positive) and their dtype."""
    arrays, _ = X_parts
    ya = device_array(y, "y")
    if ya is None:
        raise ValueError("X is on the GPU but y is not: pass y as a device array too (or both on the host)")
    keep = [a[1] for a in arrays] + [ya[1]]  # noqa: F841  (alive until the device copy is done)
    ds, neg, pos = cuda.dataset_from_device(arrays[0][0], arrays[1][0], arrays[2][0], ya[0], int(n_features), device)
    kind, itemsize = ya[0][1], ya[0][2]
    dtype = np.dtype(bool) if kind == "b" else np.dtype(f"{kind}{itemsize}")
    return ds, np.array([neg, pos]).astype(dtype)
