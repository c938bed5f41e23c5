"""The message quantizers (asyncopt.compress, csrc/asyncopt/compress/quantizers.hpp): their packed
formats decoded independently in NumPy, Q(0) = 0, QSGD's unbiasedness, and error feedback."""
import numpy as np
import pytest

from asyncopt import compress

SPECS = ["identity", "sign", "ternary", "qsgd2", "qsgd4", "qsgd8"]


def vector(n=1000, seed=0, zeros=3):
    x = np.random.default_rng(seed).normal(size=n) * np.exp(np.random.default_rng(seed + 1).normal(size=n))
    x[::zeros] = 0.0  # sparse gradients have exact zeros
    return x


def unpack(message, nb, width, n):
    """The codes of a message, read with NumPy: float32 scales, then `width`-bit codes LSB first."""
    scales = np.frombuffer(message[:4 * nb].tobytes(), dtype="<f4").astype(np.float64)
    bits = np.unpackbits(message[4 * nb:], bitorder="little")[:width * n].reshape(n, width)
    codes = (bits.astype(np.int64) << np.arange(width)).sum(axis=1)
    return scales, codes


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("n,block", [(1000, 128), (7, 3), (1, 2048), (0, 16)])
def test_format_decodes_as_specified(spec, n, block):
    q = compress.get(spec, block_size=block)
    x = vector(max(n, 1))[:n]
    msg = q.encode(x, seed=5)
    assert msg.dtype == np.uint8 and len(msg) == q.nbytes(n)
    got = q.decode(msg, n)
    if spec == "identity":
        assert len(msg) == 8 * n
        np.testing.assert_array_equal(got, x)
        return
    nb = -(-n // block)
    width = {"sign": 1, "ternary": 2}.get(spec, getattr(q, "bits", 0))
    assert len(msg) == 4 * nb + -(-width * n // 8)
    if n == 0:
        return
    scales, codes = unpack(msg, nb, width, n)
    s = np.repeat(scales, block)[:n]
    blocks = [x[b * block:(b + 1) * block] for b in range(nb)]
    if spec == "sign":
        want_scales = [np.float32(np.abs(xb).sum() / len(xb)) for xb in blocks]
        np.testing.assert_array_equal(scales, want_scales)
        np.testing.assert_array_equal(codes, (x < 0).astype(int))
        np.testing.assert_array_equal(got, np.where(codes == 1, -s, s))
    elif spec == "ternary":
        want_scales = [np.float32(np.abs(xb).sum() / max(np.count_nonzero(xb), 1)) for xb in blocks]
        np.testing.assert_array_equal(scales, want_scales)
        np.testing.assert_array_equal(codes, np.where(x > 0, 1, np.where(x < 0, 2, 0)))
        np.testing.assert_array_equal(got, np.where(codes == 1, s, np.where(codes == 2, -s, 0.0)))
        assert np.all((got == 0) == (x == 0))  # zeros stay zero, and only they become zero
    else:
        L = 2 ** (q.bits - 1) - 1
        norms = np.array([np.sqrt((xb ** 2).sum()) for xb in blocks])
        assert np.all(scales >= norms) and np.all(scales <= norms * (1 + 2 ** -23))  # float32, rounded up
        level, negative = codes & L, codes >> (q.bits - 1)
        np.testing.assert_array_equal(got, np.where(negative == 1, -1.0, 1.0) * s * level / L)
        # stochastic rounding picks one of the two levels around L |x| / r
        exact = L * np.abs(x) / np.where(s > 0, s, 1.0)  # a block of zeros has r = 0 and codes 0
        assert np.all((level == np.floor(exact)) | (level == np.floor(exact) + 1))
        assert np.all(negative[x > 0] == 0) and np.all(level[x == 0] == 0)


@pytest.mark.parametrize("spec", SPECS)
def test_zero_encodes_to_zero(spec):
    q = compress.get(spec, block_size=64)
    z = q(np.zeros(300), seed=3)
    assert np.all(z == 0)


def test_sign_and_ternary_keep_each_block_l1_norm():
    x = vector(1000)
    for spec in ("sign", "ternary"):
        q = compress.get(spec, block_size=100)
        y = q(x)
        for b in range(10):
            sl = slice(100 * b, 100 * (b + 1))
            assert np.abs(y[sl]).sum() == pytest.approx(np.abs(x[sl]).sum(), rel=1e-6)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_qsgd_is_unbiased_and_reproducible(bits):
    q = compress.QSGD(block_size=64, bits=bits)
    x = vector(256, seed=2)
    draws = np.array([q(x, seed=7, stream=s) for s in range(3000)])
    L = 2 ** (bits - 1) - 1
    # each draw is r l / L or r (l + 1) / L: the variance per coordinate is at most (r / L)^2 / 4
    r = np.repeat([np.sqrt((x[i:i + 64] ** 2).sum()) for i in range(0, 256, 64)], 64)
    se = r / L / 2 / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - x) <= 5 * se + 1e-12)
    np.testing.assert_array_equal(q.encode(x, seed=7, stream=1), q.encode(x, seed=7, stream=1))
    assert not np.array_equal(q.encode(x, seed=7, stream=1), q.encode(x, seed=7, stream=2))


@pytest.mark.parametrize("spec", SPECS)
def test_error_feedback_loses_nothing_over_rounds(spec):
    """sum of the decoded messages + the residual still held == sum of what was meant to be sent."""
    ef = compress.ErrorFeedback(compress.get(spec, block_size=50), 400, seed=1, stream=3)
    total = np.zeros(400)
    sent = np.zeros(400)
    for t in range(200):
        x = vector(400, seed=t)
        message, decoded = ef.send(x)
        assert len(message) == ef.quantizer.nbytes(400)
        total += x
        sent += decoded
    # exact but for rounding, which scales with the largest value added up (QSGD-2's residual, not
    # contractive, grows large)
    scale = max(np.abs(sent).max(), np.abs(ef.residual).max(), np.abs(total).max())
    np.testing.assert_allclose(sent + ef.residual, total, rtol=0, atol=200 * 4e-16 * scale)


@pytest.mark.parametrize("spec", ["sign", "ternary", "qsgd4"])
def test_error_feedback_gradient_descent_converges_with_bounded_residual(spec):
    """EF compressed gradient descent on f(x) = ||x - c||^2 / 2 over 10^4 rounds: the residual stays
    bounded (the contractive quantizers) and x reaches c; without feedback, sign descent would stall
    at a distance set by its step."""
    n = 64
    c = vector(n, seed=9, zeros=5)
    ef = compress.ErrorFeedback(compress.get(spec, block_size=16), n, seed=0)
    x = np.zeros(n)
    largest = 0.0
    for t in range(10_000):
        _, step = ef.send(0.05 * (x - c))
        x -= step
        largest = max(largest, np.linalg.norm(ef.residual))
    assert largest < 10 * np.linalg.norm(0.05 * c)
    assert np.linalg.norm(x - c) < 1e-6 * np.linalg.norm(c)


def test_bad_input_is_refused_with_a_clear_error():
    q = compress.get("ternary", block_size=4)
    with pytest.raises(ValueError, match="NaN or infinity at coordinate 1"):
        q.encode([0.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="1-d"):
        q.encode(np.zeros((2, 2)))
    msg = q.encode([1.0, -1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="bytes; 5 coordinates take"):
        q.decode(msg, 5)
    bad = msg.copy()
    bad[4] |= 0b11  # coordinate 0's 2-bit code := 3
    with pytest.raises(ValueError, match="code 3 at coordinate 0"):
        q.decode(bad, 4)
    with pytest.raises(ValueError, match="block_size"):
        compress.Sign(block_size=0)
    with pytest.raises(ValueError, match="bits"):
        compress.QSGD(bits=9)
    with pytest.raises(ValueError, match="quantizer must be one of"):
        compress.get("topk")
    with pytest.raises(ValueError, match="shape"):
        compress.ErrorFeedback("sign", 3).send(np.zeros(4))
