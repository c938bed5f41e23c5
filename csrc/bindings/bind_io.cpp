// Bindings for the data loading layer: glue only, the parser lives in asyncopt/io/libsvm.hpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <utility>

#include "asyncopt/io/bow.hpp"
#include "asyncopt/io/libsvm.hpp"

namespace py = pybind11;

namespace {

// Hands a vector's storage to numpy without copying: the vector moves to the heap and a capsule,
// set as the array's base object, deletes it when the array dies. The CSR arrays of a large file
// run to gigabytes, so a copy here would double the loader's peak memory.
template <class V>
py::array_t<typename V::value_type> to_numpy(V&& vec) {
    auto owned = std::make_unique<V>(std::move(vec));
    V* raw = owned.get();
    py::capsule base(raw, [](void* p) { delete static_cast<V*>(p); });
    owned.release();  // the capsule owns it from here on, also if the array construction throws
    return py::array_t<typename V::value_type>(static_cast<py::ssize_t>(raw->size()),
                                               raw->data(), base);
}

template <class T>
py::tuple parse_as(const char* data, std::size_t size) {
    asyncopt::io::LibsvmData<T> parsed;
    {
        // The caller's py::buffer keeps the bytes alive (and a bytearray unresizable) while the
        // GIL is released; std::invalid_argument propagates out after the GIL is re-acquired and
        // pybind11 turns it into ValueError.
        py::gil_scoped_release nogil;
        parsed = asyncopt::io::parse_libsvm<T>(data, size);
    }
    return py::make_tuple(to_numpy(std::move(parsed.indptr)), to_numpy(std::move(parsed.indices)),
                          to_numpy(std::move(parsed.values)), to_numpy(std::move(parsed.labels)),
                          py::int_(parsed.max_index));
}

// The bytes of a 1-d contiguous buffer (bytes, bytearray, memoryview); info keeps them requested.
std::pair<const char*, std::size_t> byte_span(const py::buffer_info& info, const char* fn) {
    if (info.itemsize != 1 || info.ndim != 1)
        throw py::type_error(std::string(fn) +
                             " expects a buffer of bytes (bytes, bytearray, memoryview), got format '" +
                             info.format + "' with itemsize " + std::to_string(info.itemsize) + " and " +
                             std::to_string(info.ndim) + " dimension(s)");
    if (info.size > 1 && info.strides[0] != 1)
        throw py::type_error(std::string(fn) + " expects a contiguous buffer of bytes, got a strided one");
    return {static_cast<const char*>(info.ptr), static_cast<std::size_t>(info.size)};
}

py::tuple parse_libsvm(const py::buffer& buffer, const std::string& dtype) {
    if (dtype != "float32" && dtype != "float64")
        throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
    const py::buffer_info info = buffer.request();
    const auto [data, size] = byte_span(info, "parse_libsvm");
    return dtype == "float32" ? parse_as<float>(data, size) : parse_as<double>(data, size);
}

py::tuple bow_tuple(asyncopt::io::BowData&& b) {
    return py::make_tuple(to_numpy(std::move(b.indptr)), to_numpy(std::move(b.indices)),
                          to_numpy(std::move(b.values)), py::int_(b.n_docs), py::int_(b.n_words));
}

py::tuple parse_uci_docword(const py::buffer& buffer) {
    const py::buffer_info info = buffer.request();
    const auto [data, size] = byte_span(info, "parse_uci_docword");
    asyncopt::io::BowData parsed;
    {
        py::gil_scoped_release nogil;
        parsed = asyncopt::io::parse_uci_docword(data, size);
    }
    return bow_tuple(std::move(parsed));
}

py::tuple parse_ldac(const py::buffer& buffer, int64_t n_features) {
    if (n_features < 0 || n_features > asyncopt::io::kMaxWords)
        throw py::value_error("n_features must be in [0, 2^31 - 1] (0: the largest id + 1), got " +
                              std::to_string(n_features));
    const py::buffer_info info = buffer.request();
    const auto [data, size] = byte_span(info, "parse_ldac");
    asyncopt::io::BowData parsed;
    {
        py::gil_scoped_release nogil;
        parsed = asyncopt::io::parse_ldac(data, size, n_features);
    }
    return bow_tuple(std::move(parsed));
}

}  // namespace

void bind_io(py::module_& m) {
    m.def("parse_libsvm", &parse_libsvm, py::arg("buffer"), py::arg("dtype"),
          R"doc(Parse LIBSVM/svmlight text held in a bytes-like object.

Returns (indptr, indices, data, labels, max_index): CSR arrays with int64 indptr, int32 0-based
indices (strictly ascending per row) and float32 or float64 data (dtype is "float32" or
"float64"), float64 labels, and the largest 1-based feature index seen (0 if none). Raises
ValueError("line N: ...") on the first malformed line. The GIL is released while parsing.)doc");
    m.def("parse_uci_docword", &parse_uci_docword, py::arg("buffer"),
          R"doc(Parse UCI Bag of Words docword text (D, W, NNZ header, then 'docID wordID count' triples).

Returns (indptr, indices, data, n_docs, n_words): canonical CSR with int64 indptr, int32 0-based word
ids and float64 counts. Raises ValueError("line N: ...") on the first malformed line, a lying header
or a repeated (doc, word) pair. The GIL is released while parsing.)doc");
    m.def("parse_ldac", &parse_ldac, py::arg("buffer"), py::arg("n_features") = 0,
          R"doc(Parse Blei's lda-c text ('N id:count ...' per document, 0-based ids).

n_features > 0 bounds the ids; 0 takes the largest id + 1. Returns (indptr, indices, data, n_docs,
n_words) as parse_uci_docword does; raises ValueError("line N: ...") on the first malformed line.)doc");
}
