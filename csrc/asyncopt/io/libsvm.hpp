// Parser for LIBSVM / svmlight text held in memory.
//
// Header-only and free of Python so the bindings, C++ tests and benchmarks can share it. The
// format, one sample per line:
//
//     label idx:val idx:val ...   # optional comment
//
// Indices are 1-based in the file and strictly ascending within a line; they are returned
// 0-based as CSR (indptr int64, indices int32, values T) plus one double label per row. The
// parser is strict on purpose (DESIGN.md: "nothing is silently dropped"): anything it cannot
// represent exactly raises std::invalid_argument whose message starts with "line N: ", N being
// the 1-based line number in the file, so the Python side only has to prepend the file name.
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

namespace asyncopt::io {

template <class T>
struct LibsvmData {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "LIBSVM values are parsed as float or double");
    std::vector<std::int64_t> indptr;   // n_rows + 1 entries, indptr[0] == 0
    std::vector<std::int32_t> indices;  // 0-based (file index - 1), strictly ascending per row
    std::vector<T> values;              // explicit zeros are kept as written
    std::vector<double> labels;         // one per row, as written
    std::int64_t max_index = 0;         // largest 1-based index seen; 0 when there is none
};

namespace detail {

// '\r' counts as blank space so that Windows line endings ("...\r\n") need no special case;
// '\n' is not in this set because it ends the line.
inline bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// A token ends at blank space, at a comment or at the end of its line. `lend` points at the
// line's '\n' (or the end of the buffer), never past it.
inline bool at_token_end(const char* p, const char* lend) {
    return p == lend || is_blank(*p) || *p == '#';
}

inline const char* token_end(const char* p, const char* lend) {
    while (!at_token_end(p, lend)) ++p;
    return p;
}

// The offending token, quoted and shortened, for error messages. Bytes outside printable ASCII
// are written as \xNN: a NUL would end the message where pybind11 reads what() as a C string,
// and a byte that is not UTF-8 would make the message itself undecodable in Python.
inline std::string quote(const char* b, const char* e) {
    constexpr std::ptrdiff_t max_len = 40;
    static const char hex[] = "0123456789abcdef";
    std::string s = "'";
    for (const char* p = b; p != e && p - b < max_len; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            s += static_cast<char>(c);
        } else {
            s += "\\x";
            s += hex[c >> 4];
            s += hex[c & 15];
        }
    }
    if (e - b > max_len) s += "...";
    return s + "'";
}

[[noreturn]] inline void fail(std::size_t line, const std::string& what) {
    throw std::invalid_argument("line " + std::to_string(line) + ": " + what);
}

// Parses a decimal floating-point number starting at p, giving the value std::strtod would.
// Returns the first character after the number, or nullptr when none starts at p.
//
// std::from_chars instead of std::strtod: it does not depend on the C locale (a Python program
// may have set LC_NUMERIC to one whose decimal point is ','), needs no NUL terminator (the
// buffer may be a bytearray or memoryview), and libstdc++ >= 12 implements it with the
// fast_float algorithm, several times faster than strtod while rounding identically (both are
// correctly rounded). It differs from strtod in three places, handled here: a leading '+' is
// not accepted (LIBSVM labels are often "+1"), hexadecimal floats are not recognised (they are
// then rejected by the caller as "not a number": not plausible in LIBSVM data), and results out
// of range are reported instead of being rounded to 0 or +-inf.
inline const char* parse_double(const char* p, const char* lend, double& out) {
    const char* const begin = p;
    if (p != lend && *p == '+') {
        ++p;
        // from_chars would accept the sign that follows, strtod does not: "+-1" is no number.
        if (p != lend && (*p == '+' || *p == '-')) return nullptr;
    }
    const auto r = std::from_chars(p, lend, out, std::chars_format::general);
    if (r.ec == std::errc::invalid_argument) return nullptr;
    if (r.ec == std::errc::result_out_of_range) {
        // Rare (|x| > 1.8e308 or < 2.5e-324): let strtod round it (+-inf, which the caller
        // rejects, or a signed zero) on a NUL-terminated copy of the digits.
        const std::string digits(begin, r.ptr);
        out = std::strtod(digits.c_str(), nullptr);
    }
    return r.ptr;
}

template <class T>
void parse_line(const char* p, const char* lend, std::size_t line, LibsvmData<T>& out) {
    while (p != lend && is_blank(*p)) ++p;
    if (p == lend || *p == '#') return;  // blank or comment-only line: no sample

    // ---- label
    double label;
    const char* q = parse_double(p, lend, label);
    if (q == nullptr || !at_token_end(q, lend)) {
        const char* e = token_end(p, lend);
        if (std::find(p, e, ',') != e)
            fail(line, "multi-label targets such as " + quote(p, e) +
                           " are not supported; the label must be one number");
        if (std::find(p, e, ':') != e)
            fail(line, "the line starts with " + quote(p, e) +
                           " instead of a label (expected 'label index:value ...')");
        fail(line, "label " + quote(p, e) + " is not a number");
    }
    if (!std::isfinite(label))
        fail(line, "label " + quote(p, q) + " is NaN or infinite (or beyond the float64 range)");
    p = q;

    // ---- index:value pairs
    constexpr std::int64_t max_file_index = std::numeric_limits<std::int32_t>::max();
    std::int64_t prev = 0;
    for (;;) {
        while (p != lend && is_blank(*p)) ++p;
        if (p == lend || *p == '#') break;
        const char* const tok = p;

        if (lend - p >= 4 && std::memcmp(p, "qid:", 4) == 0)
            fail(line, "query ids (" + quote(tok, token_end(tok, lend)) +
                           ") are not supported; remove the qid: tokens");

        // Integer index. Accumulation saturates just above the largest allowed index so that an
        // absurdly long digit string cannot overflow; its exact value only matters for errors.
        bool negative = false;
        if (*p == '-' || *p == '+') negative = (*p++ == '-');
        const char* const digits = p;
        std::int64_t index = 0;
        while (p != lend && *p >= '0' && *p <= '9') {
            index = std::min<std::int64_t>(index * 10 + (*p - '0'), max_file_index + 1);
            ++p;
        }
        if (p == digits || p == lend || *p != ':') {
            const char* e = token_end(tok, lend);
            if (std::find(tok, e, ':') == e)
                fail(line, "expected 'index:value', got " + quote(tok, e) + " (no ':')");
            fail(line, "feature index " + quote(tok, std::find(tok, e, ':')) +
                           " is not an integer (in " + quote(tok, e) + ")");
        }
        if (negative || index == 0)
            fail(line, "feature index " + quote(tok, p) +
                           " is not positive (LIBSVM indices are 1-based)");
        if (index > max_file_index)
            fail(line, "feature index " + quote(digits, p) + " is larger than " +
                           std::to_string(max_file_index));
        if (index <= prev)
            fail(line, "feature index " + std::to_string(index) + " follows index " +
                           std::to_string(prev) +
                           "; indices must be strictly ascending within a line (no duplicates)");
        prev = index;
        ++p;  // ':'

        // Value.
        double value;
        q = parse_double(p, lend, value);
        if (q == nullptr || !at_token_end(q, lend))
            fail(line, "value " + quote(p, token_end(p, lend)) + " of feature " +
                           std::to_string(index) + " is not a number");
        if (!std::isfinite(value))
            fail(line, "value " + quote(p, q) + " of feature " + std::to_string(index) +
                           " is NaN or infinite (or beyond the float64 range)");
        // Values are parsed as double and then rounded to T: for float this is what strtod
        // followed by a cast gives (and so what scikit-learn's loader and numpy's astype give),
        // which keeps files that were written from float64 values comparable across tools.
        if constexpr (std::is_same_v<T, float>) {
            if (std::fabs(value) > static_cast<double>(std::numeric_limits<float>::max()))
                fail(line, "value " + quote(p, q) + " of feature " + std::to_string(index) +
                               " overflows float32; load with dtype=float64");
        }
        out.indices.push_back(static_cast<std::int32_t>(index - 1));
        out.values.push_back(static_cast<T>(value));
        p = q;
    }
    out.max_index = std::max(out.max_index, prev);
    out.labels.push_back(label);
    out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
}

}  // namespace detail

// Parses `size` bytes of LIBSVM text starting at `data` (no NUL terminator needed). Throws
// std::invalid_argument("line N: ...") on the first malformed line.
template <class T>
LibsvmData<T> parse_libsvm(const char* data, std::size_t size) {
    LibsvmData<T> out;
    const char* const end = data + size;

    // Reserve once instead of growing: every nonzero has a ':' and every row a '\n' (plus a
    // possible last line without one), so these counts bound the sizes from above. Counting is
    // a memchr-speed pass, much cheaper than the reallocations and the peak memory of doubling.
    const auto colons = static_cast<std::size_t>(std::count(data, end, ':'));
    const auto newlines = static_cast<std::size_t>(std::count(data, end, '\n'));
    out.indptr.reserve(newlines + 2);
    out.labels.reserve(newlines + 1);
    out.indices.reserve(colons);
    out.values.reserve(colons);
    out.indptr.push_back(0);

    std::size_t line = 0;
    for (const char* p = data; p < end;) {
        ++line;
        const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        const char* lend = nl ? static_cast<const char*>(nl) : end;
        detail::parse_line(p, lend, line, out);
        p = lend + 1;
    }
    return out;
}

}  // namespace asyncopt::io
