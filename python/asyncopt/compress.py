"""Quantizers for compressed messages, with error feedback: what Efficient-Adam's workers and server
(Chen, Shen, Liu & Luo 2023) send each other, and what 1-bit Adam's scaled sign is.

One frozen class per quantizer (:class:`Identity`, :class:`Sign`, :class:`Ternary`, :class:`QSGD`),
each encoding a float64 vector into its packed wire format and decoding it back; the packing and
the arithmetic are native (``csrc/asyncopt/compress/quantizers.hpp``, where the formats are
written out). ``Q(0) = 0`` for all four. Decoding is one function in one floating-point order, so
a message decodes to the same doubles on every rank.

Error feedback (:class:`ErrorFeedback`): the sender keeps the part of each message that the
quantizer dropped and adds it to the next, ``p = x + e; send Q(p); e = p - decode(Q(p))``, so that
nothing is lost over rounds: the sum of what was sent equals the sum of what was meant, up to the
one residual still held.

>>> from asyncopt import compress
>>> q = compress.get("sign", block_size=4)
>>> msg = q.encode([1.0, -2.0, 3.0, 0.0])
>>> q.decode(msg, 4)                    # ||x||_1 / 4 = 1.5 with the signs of x
array([ 1.5, -1.5,  1.5,  1.5])
>>> len(msg) == q.nbytes(4)             # one float32 scale + 4 bits
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from . import _core
from ._checks import check_int

REGISTRY: dict = {}  # name -> quantizer class


def _register(cls):
    REGISTRY[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Quantizer:
    """What every quantizer has: the block of coordinates that share one scale."""

    block_size: int = 2048

    name: ClassVar[str] = ""

    def __post_init__(self):
        check_int("block_size", self.block_size, low=1)

    @property
    def _bits(self):
        return 0

    @property
    def _kind(self):
        return getattr(_core.Quantizer, self.name)

    def nbytes(self, n):
        """Bytes of the packed message of n coordinates (what MPI sends)."""
        return int(_core.quantized_bytes(int(n), self._kind, self.block_size, self._bits))

    def encode(self, x, seed=0, stream=0):
        """The packed message (uint8 array) of the vector x. QSGD's stochastic rounding draws from the
        stream (seed, stream): a rank passes its own, so runs are reproducible."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"x must be a 1-d vector, got shape {x.shape}")
        return _core.quantize(x, self._kind, self.block_size, self._bits, int(seed), int(stream))

    def decode(self, message, n):
        """The n float64 coordinates a packed message decodes to."""
        message = np.ascontiguousarray(message, dtype=np.uint8)
        return _core.dequantize(message, int(n), self._kind, self.block_size, self._bits)

    def __call__(self, x, seed=0, stream=0):
        """Q(x): the decoded value of x's message."""
        x = np.asarray(x, dtype=np.float64)
        return self.decode(self.encode(x, seed, stream), x.shape[0])


@_register
@dataclass(frozen=True)
class Identity(Quantizer):
    """No compression: the float64 values (8 bytes per coordinate), the baseline."""

    name: ClassVar[str] = "identity"


@_register
@dataclass(frozen=True)
class Sign(Quantizer):
    """Scaled sign per block, ``(||x_B||_1 / |B|) sign(x_B)``: 1 bit per coordinate and one float32
    per block (1-bit Adam's and Efficient-Adam's compressor). Biased; contractive."""

    name: ClassVar[str] = "sign"


@_register
@dataclass(frozen=True)
class Ternary(Quantizer):
    """Zero-preserving scaled sign: zeros stay zero, the others become ``+-||x_B||_1 / nnz(x_B)``
    (so the block's l1 norm is kept, as by :class:`Sign`); 2 bits per coordinate. For sparse
    gradients, where most coordinates of a message are 0."""

    name: ClassVar[str] = "ternary"


@_register
@dataclass(frozen=True)
class QSGD(Quantizer):
    """QSGD (Alistarh et al. 2017) with ``bits`` bits per coordinate: a sign and a level in
    ``0..L``, ``L = 2^(bits-1) - 1``, of the block's l2 norm, rounded stochastically so that
    ``E[Q(x)] = x``."""

    bits: int = 4

    name: ClassVar[str] = "qsgd"

    def __post_init__(self):
        super().__post_init__()
        if check_int("bits", self.bits, low=2) > 8:
            raise ValueError(f"bits must be in [2, 8], got {self.bits}")

    @property
    def _bits(self):
        return self.bits

    def variance_factor(self):
        """omega of ``E||Q(x) - x||^2 <= omega ||x||^2`` (Alistarh et al. 2017, Lemma 3.1, per block):
        ``min(B / L^2, sqrt(B) / L)`` with B the block size and L the levels. Under error feedback
        only omega < 1 makes Q a contraction (E||x - Q(x)||^2 <= (1 - delta) ||x||^2, the condition the
        error-feedback analyses need); with omega >= 1 the residual can grow without bound."""
        levels = 2 ** (self.bits - 1) - 1
        return min(self.block_size / levels ** 2, self.block_size ** 0.5 / levels)


def names():
    return tuple(REGISTRY)


def get(spec, block_size=2048):
    """The quantizer named ``spec``: 'identity', 'sign', 'ternary', 'qsgd' (4 bits) or 'qsgdK' with
    K bits (e.g. 'qsgd8'); a Quantizer object is returned as it is."""
    if isinstance(spec, Quantizer):
        return spec
    if isinstance(spec, str):
        if spec in REGISTRY:
            return REGISTRY[spec](block_size=block_size)
        if spec.startswith("qsgd") and spec[4:].isdigit():
            return QSGD(block_size=block_size, bits=int(spec[4:]))
    raise ValueError(f"quantizer must be one of {names()} or 'qsgdK' (K bits, 2..8), got {spec!r}")


class ErrorFeedback:
    """A sender's error-feedback residual for messages of n coordinates: :meth:`send` adds the
    residual to x, encodes the sum and keeps what the quantizer dropped."""

    def __init__(self, quantizer, n, seed=0, stream=0):
        self.quantizer = get(quantizer)
        self.n = check_int("n", n, low=0)
        self.residual = np.zeros(self.n)
        self.seed, self.stream, self.sent = int(seed), int(stream), 0

    def send(self, x):
        """(message, decoded): the packed message of x + residual and what it decodes to; the
        residual becomes x + residual - decoded."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n,):
            raise ValueError(f"x must have shape ({self.n},), got {x.shape}")
        p = x + self.residual
        # each message draws a fresh part of the stream: (seed, stream, message number) is unique
        message = self.quantizer.encode(p, self.seed, (self.stream << 32) + self.sent)
        decoded = self.quantizer.decode(message, self.n)
        self.residual = p - decoded
        self.sent += 1
        return message, decoded
