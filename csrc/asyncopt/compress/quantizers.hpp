// Quantizers of a dense vector for compressed messages (Efficient-Adam, Chen et al. 2023; 1-bit
// Adam's scaled sign; QSGD, Alistarh et al. 2017), each with its packed wire format. Q(0) = 0 for
// every one. Every rank decodes with the same function, so a decoded message is the same double on
// every rank (the encoder's error feedback residual is taken against that decoded value, so any
// rounding in the wire format, e.g. float32 scales, is fed back rather than lost).
//
// Blocks: the vector is cut into blocks of `block` coordinates (the last may be shorter); each block
// carries one float32 scale. Formats (n coordinates, nb = ceil(n / block) blocks), in this order:
//   identity  n float64                                              8 n bytes
//   sign      nb float32 scales s_B = ||x_B||_1 / |B|, then 1 bit per coordinate (1: negative);
//             decoded x_j = +-s_B                                    4 nb + ceil(n / 8) bytes
//   ternary   nb float32 scales s_B = ||x_B||_1 / nnz(x_B), then 2 bits per coordinate (0: zero,
//             1: +s_B, 2: -s_B): zeros stay zero and ||Q(x_B)||_1 = ||x_B||_1, as for sign
//                                                                    4 nb + ceil(n / 4) bytes
//   qsgd      nb float32 norms r_B = ||x_B||_2 (rounded up to float32), then k bits per coordinate,
//             a sign bit and a (k-1)-bit level l in [0, L], L = 2^(k-1) - 1: x_j = +-r_B l / L with
//             l = floor(L |x_j| / r_B + u), u uniform in [0, 1) from Rng(seed, stream): unbiased,
//             E[Q(x)] = x                                             4 nb + ceil(k n / 8) bytes
// Bits are packed least significant first, coordinate after coordinate.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../core/rng.hpp"

namespace asyncopt {

enum class QuantizerKind : int { identity = 0, sign = 1, ternary = 2, qsgd = 3 };

struct QuantizerConfig {
    QuantizerKind kind = QuantizerKind::identity;
    int64_t block = 2048;  // coordinates per scale
    int bits = 4;          // qsgd only: bits per coordinate, 2..8
};

inline void check_quantizer(const QuantizerConfig& q) {
    if (q.block < 1) throw std::invalid_argument("block_size must be >= 1, got " + std::to_string(q.block));
    if (q.kind == QuantizerKind::qsgd && (q.bits < 2 || q.bits > 8))
        throw std::invalid_argument("qsgd bits must be in [2, 8], got " + std::to_string(q.bits));
}

inline int code_bits(const QuantizerConfig& q) {
    switch (q.kind) {
        case QuantizerKind::sign: return 1;
        case QuantizerKind::ternary: return 2;
        case QuantizerKind::qsgd: return q.bits;
        default: return 64;
    }
}

// Length of the encoded message of n coordinates, in bytes.
inline int64_t quantized_bytes(const QuantizerConfig& q, int64_t n) {
    if (q.kind == QuantizerKind::identity) return 8 * n;
    const int64_t nb = (n + q.block - 1) / q.block;
    return 4 * nb + (static_cast<int64_t>(code_bits(q)) * n + 7) / 8;
}

namespace quant_detail {

// Sequential packing of codes of `width` bits, least significant first, through a 64-bit word
// (a bit at a time cost 5x the arithmetic of the quantizers themselves).
class BitWriter {
public:
    explicit BitWriter(uint8_t* out) noexcept : out_(out) {}
    void put(uint32_t code, int width) noexcept {
        acc_ |= static_cast<uint64_t>(code) << fill_;
        fill_ += width;
        while (fill_ >= 8) {
            *out_++ = static_cast<uint8_t>(acc_);
            acc_ >>= 8;
            fill_ -= 8;
        }
    }
    void flush() noexcept {
        if (fill_ > 0) *out_ = static_cast<uint8_t>(acc_);
    }

private:
    uint8_t* out_;
    uint64_t acc_ = 0;
    int fill_ = 0;
};

class BitReader {
public:
    explicit BitReader(const uint8_t* in, const uint8_t* end) noexcept : in_(in), end_(end) {}
    uint32_t get(int width) noexcept {
        while (fill_ < width) {
            acc_ |= static_cast<uint64_t>(in_ < end_ ? *in_++ : 0) << fill_;
            fill_ += 8;
        }
        const uint32_t v = static_cast<uint32_t>(acc_ & ((uint64_t{1} << width) - 1));
        acc_ >>= width;
        fill_ -= width;
        return v;
    }

private:
    const uint8_t* in_;
    const uint8_t* end_;
    uint64_t acc_ = 0;
    int fill_ = 0;
};

// A block's scale as the float32 the wire carries; up = round up (QSGD's norm: |x_j| / r <= 1).
inline float to_wire(double s, bool up) noexcept {
    float f = static_cast<float>(s);
    if (up && static_cast<double>(f) < s) f = std::nextafter(f, INFINITY);
    return f;
}

}  // namespace quant_detail

// Encodes x[0..n) into out (quantized_bytes(q, n) bytes, zeroed here).
inline void quantize(const QuantizerConfig& q, const double* x, int64_t n, uint64_t seed, uint64_t stream,
                     uint8_t* out) {
    using namespace quant_detail;
    const int64_t total = quantized_bytes(q, n);
    std::memset(out, 0, static_cast<size_t>(total));
    if (q.kind == QuantizerKind::identity) {
        std::memcpy(out, x, static_cast<size_t>(n) * sizeof(double));
        return;
    }
    const int64_t nb = (n + q.block - 1) / q.block;
    BitWriter codes(out + 4 * nb);
    const int width = code_bits(q);
    const uint32_t levels = (1u << (q.bits - 1)) - 1;  // qsgd's L
    Rng rng(seed, stream);
    for (int64_t B = 0; B < nb; ++B) {
        const int64_t lo = B * q.block, hi = lo + q.block < n ? lo + q.block : n;
        double l1 = 0, l2 = 0;
        int64_t nnz = 0;
        for (int64_t j = lo; j < hi; ++j) {
            l1 += std::fabs(x[j]);
            l2 += x[j] * x[j];
            nnz += x[j] != 0;
        }
        float scale = 0;
        if (q.kind == QuantizerKind::sign) scale = to_wire(l1 / static_cast<double>(hi - lo), false);
        if (q.kind == QuantizerKind::ternary) scale = nnz ? to_wire(l1 / static_cast<double>(nnz), false) : 0.0f;
        if (q.kind == QuantizerKind::qsgd) scale = to_wire(std::sqrt(l2), true);
        std::memcpy(out + 4 * B, &scale, sizeof(float));
        for (int64_t j = lo; j < hi; ++j) {
            uint32_t code = 0;
            if (q.kind == QuantizerKind::sign) {
                code = x[j] < 0;
            } else if (q.kind == QuantizerKind::ternary) {
                code = x[j] > 0 ? 1u : (x[j] < 0 ? 2u : 0u);
            } else if (scale > 0) {  // qsgd
                const double u = static_cast<double>(rng.next() >> 11) * 0x1p-53;
                double level = std::floor(levels * std::fabs(x[j]) / static_cast<double>(scale) + u);
                if (level > levels) level = levels;  // only |x_j| = r exactly with u near 1
                code = static_cast<uint32_t>(level) | (x[j] < 0 ? 1u << (q.bits - 1) : 0u);
            }
            codes.put(code, width);
        }
    }
    codes.flush();
}

// Decodes n coordinates from a message of quantized_bytes(q, n) bytes into x.
inline void dequantize(const QuantizerConfig& q, const uint8_t* in, int64_t n, double* x) {
    using namespace quant_detail;
    if (q.kind == QuantizerKind::identity) {
        std::memcpy(x, in, static_cast<size_t>(n) * sizeof(double));
        return;
    }
    const int64_t nb = (n + q.block - 1) / q.block;
    BitReader codes(in + 4 * nb, in + quantized_bytes(q, n));
    const int width = code_bits(q);
    const uint32_t levels = (1u << (q.bits - 1)) - 1;
    for (int64_t B = 0; B < nb; ++B) {
        float scale_f;
        std::memcpy(&scale_f, in + 4 * B, sizeof(float));
        const double scale = scale_f;
        const int64_t lo = B * q.block, hi = lo + q.block < n ? lo + q.block : n;
        for (int64_t j = lo; j < hi; ++j) {
            const uint32_t code = codes.get(width);
            if (q.kind == QuantizerKind::sign) {
                x[j] = code ? -scale : scale;
            } else if (q.kind == QuantizerKind::ternary) {
                if (code == 3)
                    throw std::invalid_argument("malformed ternary message: code 3 at coordinate " + std::to_string(j));
                x[j] = code == 1 ? scale : (code == 2 ? -scale : 0.0);
            } else {
                const uint32_t level = code & ((1u << (q.bits - 1)) - 1);
                const double v = scale * static_cast<double>(level) / static_cast<double>(levels);
                x[j] = code >> (q.bits - 1) ? -v : v;
            }
        }
    }
}

}  // namespace asyncopt
