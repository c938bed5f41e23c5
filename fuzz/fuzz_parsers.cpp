// libFuzzer target of the native text parsers (csrc/asyncopt/io/): LIBSVM, UCI docword, lda-c.
//
// The first input byte picks the parser and the rest is the file's text. A parser may only return
// a result that satisfies its contract or throw std::invalid_argument whose message starts with
// "line N: " (the Python loaders prepend the file name); anything else (another exception, a crash,
// an AddressSanitizer or UndefinedBehaviorSanitizer report, a result that breaks the contract) is a
// finding. Build and run with fuzz/run.sh; see fuzz/README.md.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "asyncopt/io/bow.hpp"
#include "asyncopt/io/libsvm.hpp"

namespace {

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "contract violated: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) broken(what);
}

// "line N: ..." with N a positive decimal number (an empty file's header error says "line 0").
void check_message(const std::invalid_argument& e) {
    const char* m = e.what();
    check(std::strncmp(m, "line ", 5) == 0, "error message does not start with 'line '");
    const char* p = m + 5;
    const char* digits = p;
    while (*p >= '0' && *p <= '9') ++p;
    check(p != digits && p[0] == ':' && p[1] == ' ', "error message does not name a line number");
    for (const char* c = m; *c; ++c)  // printable ASCII only: quote() escapes every other byte
        check(static_cast<unsigned char>(*c) >= 0x20 && static_cast<unsigned char>(*c) < 0x7f,
              "error message holds a non-printable byte");
}

template <class I, class V>
void check_csr(const std::vector<int64_t>& indptr, const std::vector<I>& indices, const std::vector<V>& values,
               int64_t n_rows, int64_t n_cols) {
    check(static_cast<int64_t>(indptr.size()) == n_rows + 1, "indptr has n_rows + 1 entries");
    check(indptr.front() == 0, "indptr starts at 0");
    check(static_cast<size_t>(indptr.back()) == indices.size(), "indptr ends at nnz");
    check(indices.size() == values.size(), "indices and values have one length");
    for (int64_t r = 0; r < n_rows; ++r) {
        check(indptr[r] <= indptr[r + 1], "indptr is non-decreasing");
        for (int64_t p = indptr[r]; p < indptr[r + 1]; ++p) {
            check(indices[p] >= 0 && indices[p] < n_cols, "column in [0, n_cols)");
            if (p > indptr[r]) check(indices[p - 1] < indices[p], "columns strictly ascending within a row");
            check(std::isfinite(static_cast<double>(values[p])), "finite values");
        }
    }
}

void libsvm(const char* data, size_t size) {
    try {
        const auto out = asyncopt::io::parse_libsvm<float>(data, size);
        const int64_t n = static_cast<int64_t>(out.labels.size());
        check_csr(out.indptr, out.indices, out.values, n, out.max_index);
        for (double y : out.labels) check(std::isfinite(y), "finite labels");
    } catch (const std::invalid_argument& e) {
        check_message(e);
    }
}

void uci(const char* data, size_t size) {
    try {
        const auto out = asyncopt::io::parse_uci_docword(data, size);
        check(out.n_words >= 1, "W >= 1");
        check_csr(out.indptr, out.indices, out.values, out.n_docs, out.n_words);
        for (double c : out.values) check(c >= 0 && c == std::floor(c), "counts are integers >= 0");
    } catch (const std::invalid_argument& e) {
        check_message(e);
    }
}

void ldac(const char* data, size_t size, int64_t n_features) {
    try {
        const auto out = asyncopt::io::parse_ldac(data, size, n_features);
        check(n_features == 0 || out.n_words == n_features, "n_words is n_features when given");
        check_csr(out.indptr, out.indices, out.values, out.n_docs, out.n_words);
        for (double c : out.values) check(c >= 0 && c == std::floor(c), "counts are integers >= 0");
    } catch (const std::invalid_argument& e) {
        check_message(e);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
    if (size == 0) return 0;
    // The text is copied to a buffer of exactly its size, so AddressSanitizer catches a read one
    // byte past the end (the parsers must not expect a NUL terminator).
    const std::vector<char> text(bytes + 1, bytes + size);
    const char* data = text.empty() ? "" : text.data();
    switch (bytes[0] % 4) {
        case 0: libsvm(data, text.size()); break;
        case 1: uci(data, text.size()); break;
        case 2: ldac(data, text.size(), 0); break;
        default: ldac(data, text.size(), 50); break;
    }
    return 0;
}
