// pybind11 glue of the message quantizers (csrc/asyncopt/compress/quantizers.hpp): array checks,
// GIL release. No logic. python/asyncopt/compress.py is their Python face.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "arrays.hpp"
#include "asyncopt/compress/quantizers.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::checked;

namespace {

QuantizerConfig config(QuantizerKind kind, int64_t block_size, int bits) {
    QuantizerConfig q;
    q.kind = kind;
    q.block = block_size;
    q.bits = bits;
    try {
        check_quantizer(q);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    return q;
}

}  // namespace

void bind_compress(py::module_& m) {
    py::enum_<QuantizerKind>(m, "Quantizer", "Message quantizers (csrc/asyncopt/compress/quantizers.hpp)")
        .value("identity", QuantizerKind::identity)
        .value("sign", QuantizerKind::sign)
        .value("ternary", QuantizerKind::ternary)
        .value("qsgd", QuantizerKind::qsgd);
    m.def(
        "quantized_bytes",
        [](int64_t n, QuantizerKind kind, int64_t block_size, int bits) {
            if (n < 0) throw py::value_error("n must be >= 0");
            return quantized_bytes(config(kind, block_size, bits), n);
        },
        py::arg("n"), py::arg("kind"), py::arg("block_size"), py::arg("bits"),
        "Length in bytes of the packed message of n coordinates.");
    m.def(
        "quantize",
        [](py::array x, QuantizerKind kind, int64_t block_size, int bits, uint64_t seed, uint64_t stream) {
            const QuantizerConfig q = config(kind, block_size, bits);
            const double* xp = checked<double>(x, "x", {-1}, false);
            const int64_t n = x.shape(0);
            for (int64_t j = 0; j < n; ++j)
                if (!std::isfinite(xp[j]))
                    throw py::value_error("x holds NaN or infinity at coordinate " + std::to_string(j));
            py::array_t<uint8_t> out(quantized_bytes(q, n));
            uint8_t* op = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                quantize(q, xp, n, seed, stream, op);
            }
            return out;
        },
        py::arg("x"), py::arg("kind"), py::arg("block_size"), py::arg("bits"), py::arg("seed"), py::arg("stream"),
        "The packed message of the float64 vector x (qsgd's stochastic rounding draws from Rng(seed, stream)).");
    m.def(
        "dequantize",
        [](py::array message, int64_t n, QuantizerKind kind, int64_t block_size, int bits) {
            const QuantizerConfig q = config(kind, block_size, bits);
            if (n < 0) throw py::value_error("n must be >= 0");
            const uint8_t* mp = checked<uint8_t>(message, "message", {-1}, false);
            if (message.shape(0) != quantized_bytes(q, n))
                throw py::value_error("message holds " + std::to_string(message.shape(0)) + " bytes; " +
                                      std::to_string(n) + " coordinates take " +
                                      std::to_string(quantized_bytes(q, n)));
            py::array_t<double> out(n);
            double* op = out.mutable_data();
            try {
                py::gil_scoped_release nogil;
                dequantize(q, mp, n, op);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
            return out;
        },
        py::arg("message"), py::arg("n"), py::arg("kind"), py::arg("block_size"), py::arg("bits"),
        "The n float64 coordinates a packed message decodes to (the same on every rank).");
}
