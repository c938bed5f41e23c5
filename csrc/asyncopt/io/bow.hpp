// Parsers for bag-of-words corpora held in memory: the UCI "docword" format and Blei's lda-c.
//
// Header-only and free of Python, like libsvm.hpp, whose conventions they share: lines end at
// '\n' (a '\r' before it is blank space), tokens are separated by blanks, and anything the parser
// cannot represent exactly raises std::invalid_argument("line N: ..."), N the 1-based line in the
// file, so Python only prepends the file name. Both return canonical CSR (indptr int64, indices
// int32 ascending within a row, float64 counts).
//
// Why native and not numpy: the Python loader held the text, a Python str of it, a list of line
// strings, a joined copy and several int64 temporaries at once (about 20x the text at its peak),
// np.fromstring saturated integers >= 2^63 to 2^63 - 1 without a word, and word ids >= 2^31 wrapped
// when cast to int32. Here every integer is parsed with an overflow check, every id is range-checked
// before it is narrowed, and the output arrays are the only allocations proportional to the corpus.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "libsvm.hpp"

namespace asyncopt::io {

struct BowData {
    std::vector<std::int64_t> indptr;   // n_docs + 1 entries
    std::vector<std::int32_t> indices;  // 0-based word ids, strictly ascending within a row
    std::vector<double> values;         // counts, integers in [0, 2^53]
    std::int64_t n_docs = 0;
    std::int64_t n_words = 0;           // UCI: W of the header; lda-c: the largest id + 1 (0 if none)
};

// Counts are returned as float64, which holds every integer up to 2^53 exactly and rounds above it:
// a larger count is refused rather than silently changed.
inline constexpr std::int64_t kMaxExactCount = std::int64_t{1} << 53;

// An id must fit the int32 indices of the CSR arrays (ids are 0-based, so at most 2^31 - 1 words).
inline constexpr std::int64_t kMaxWords = std::numeric_limits<std::int32_t>::max();

// The UCI header's D sizes the row offsets (8 bytes per document) although the file need not name
// every document: a document without a triple is empty. An honest corpus has few empty documents
// (those that lost every word to stop-word or frequency filtering), so the loader allows at most
// max(NNZ, kSlackEmptyDocuments) of them; beyond that the header is taken to be wrong instead of
// allocating what it claims (a header of 10^9 documents over one triple asked for 7.45 GiB).
inline constexpr std::int64_t kSlackEmptyDocuments = std::int64_t{1} << 16;

namespace detail {

// A blank-separated token of one line: [begin, end).
struct Token {
    const char* begin;
    const char* end;
};

// Splits [p, lend) into blank-separated tokens (at most max_tokens + 1 are collected, so a caller
// can tell "too many" from "exactly max_tokens" without storing a huge line's tokens).
inline std::size_t split_tokens(const char* p, const char* lend, Token* out, std::size_t max_tokens) {
    std::size_t n = 0;
    for (;;) {
        while (p != lend && is_blank(*p)) ++p;
        if (p == lend) return n;
        const char* b = p;
        while (p != lend && !is_blank(*p)) ++p;
        if (n <= max_tokens) out[std::min(n, max_tokens)] = Token{b, p};
        ++n;
    }
}

enum class IntResult { ok, not_integer, overflow };

// A decimal integer filling [b, e) exactly: optional sign, then ASCII digits only (no '_', no
// Unicode digits, no spaces, unlike Python's int()).
inline IntResult parse_int(const char* b, const char* e, std::int64_t& out) {
    if (b != e && *b == '+') {
        ++b;
        if (b != e && (*b == '+' || *b == '-')) return IntResult::not_integer;
    }
    if (b == e) return IntResult::not_integer;
    const auto r = std::from_chars(b, e, out, 10);
    if (r.ec == std::errc::result_out_of_range) {
        // from_chars stops at the end of the digits; only a token of nothing but digits overflowed
        const char* d = (*b == '-') ? b + 1 : b;
        return std::all_of(d, e, [](char c) { return c >= '0' && c <= '9'; }) ? IntResult::overflow
                                                                                 : IntResult::not_integer;
    }
    if (r.ec != std::errc() || r.ptr != e) return IntResult::not_integer;
    return IntResult::ok;
}

// The integer of token t, or a "line N: <what> ..." error naming it.
inline std::int64_t int_token(const Token& t, std::size_t line, const char* what) {
    std::int64_t v = 0;
    switch (parse_int(t.begin, t.end, v)) {
        case IntResult::ok:
            return v;
        case IntResult::overflow:
            fail(line, std::string(what) + " " + quote(t.begin, t.end) + " does not fit in a 64-bit integer");
        default:
            fail(line, std::string(what) + " " + quote(t.begin, t.end) + " is not an integer");
    }
}

inline void check_count(std::int64_t count, std::size_t line) {
    if (count < 0) fail(line, "negative count " + std::to_string(count));
    if (count > kMaxExactCount)
        fail(line, "count " + std::to_string(count) +
                       " is larger than 2^53, the largest integer float64 counts hold exactly");
}

// Calls f(line_number, begin, end) for every line of [data, data + size) that holds a non-blank
// byte; returns the number of lines in the buffer.
template <class F>
std::size_t for_each_line(const char* data, std::size_t size, F&& f) {
    const char* const end = data + size;
    std::size_t line = 0;
    for (const char* p = data; p < end;) {
        ++line;
        const void* nl = std::memchr(p, '\n', static_cast<std::size_t>(end - p));
        const char* lend = nl ? static_cast<const char*>(nl) : end;
        const char* q = p;
        while (q != lend && is_blank(*q)) ++q;
        if (q != lend && !f(line, q, lend)) return line;
        p = lend + 1;
    }
    return line;
}

// The line of the k-th triple (0-based) of a UCI docword buffer: the (k + 4)-th non-blank line.
// A second pass, run only to name the line of an error found after sorting, so the parser keeps no
// per-triple line numbers.
inline std::size_t line_of_triple(const char* data, std::size_t size, std::size_t k) {
    std::size_t seen = 0, found = 0;
    for_each_line(data, size, [&](std::size_t line, const char*, const char*) {
        if (seen++ == k + 3) {
            found = line;
            return false;
        }
        return true;
    });
    return found;
}

}  // namespace detail

// UCI Bag of Words docword text: three header lines D, W, NNZ (blank lines skipped), then NNZ
// lines "docID wordID count" with 1-based ids, in any order, each (docID, wordID) pair once.
inline BowData parse_uci_docword(const char* data, std::size_t size) {
    using namespace detail;
    static const char* const names[3] = {"D", "W", "NNZ"};
    std::int64_t header[3] = {0, 0, 0};
    int n_header = 0;
    std::size_t last_line = 0, header_line_d = 0;
    std::vector<std::int64_t> docs;  // 0-based, per triple; freed once the rows are known
    std::vector<std::int32_t> words;
    std::vector<double> counts;
    bool sorted = true;  // (doc, word) strictly ascending: the CSR is the triples as they are
    std::int64_t prev_doc = -1, prev_word = -1;

    last_line = for_each_line(data, size, [&](std::size_t line, const char* p, const char* lend) {
        Token tok[4];
        const std::size_t n = split_tokens(p, lend, tok, 3);
        if (n_header < 3) {
            const char* what = names[n_header];
            if (n != 1) fail(line, std::string("expected one integer (") + what + "), got " + quote(p, lend));
            std::int64_t v = 0;
            if (parse_int(tok[0].begin, tok[0].end, v) != IntResult::ok)
                fail(line, std::string("expected one integer (") + what + "), got " + quote(p, lend));
            if (v < 0 || (v == 0 && n_header < 2))
                fail(line, std::string(what) + " must be positive, got " + std::to_string(v));
            if (n_header == 1 && v > kMaxWords)
                fail(line, "W = " + std::to_string(v) + " words exceeds the supported 2^31 - 1");
            if (n_header == 0) header_line_d = line;
            header[n_header++] = v;
            if (n_header == 3) {
                // NNZ sizes the arrays only as far as the file could hold that many triples (each
                // takes at least 6 bytes, "1 1 1\n"): a lying NNZ must not allocate what it claims.
                const auto fit = static_cast<std::int64_t>(size / 6 + 1);
                const auto reserve = static_cast<std::size_t>(std::min(header[2], fit));
                docs.reserve(reserve);
                words.reserve(reserve);
                counts.reserve(reserve);
            }
            return true;
        }
        if (n != 3) fail(line, "expected 'docID wordID count', got " + quote(p, lend));
        std::int64_t v[3];
        for (int i = 0; i < 3; ++i) {
            if (parse_int(tok[i].begin, tok[i].end, v[i]) == IntResult::not_integer)
                fail(line, "expected three integers, got " + quote(p, lend));
            if (parse_int(tok[i].begin, tok[i].end, v[i]) == IntResult::overflow)
                fail(line, std::string(i == 0 ? "docID " : i == 1 ? "wordID " : "count ") +
                               quote(tok[i].begin, tok[i].end) + " does not fit in a 64-bit integer");
        }
        if (v[0] < 1 || v[0] > header[0])
            fail(line, "docID " + std::to_string(v[0]) + " outside [1, " + std::to_string(header[0]) + "]");
        if (v[1] < 1 || v[1] > header[1])
            fail(line, "wordID " + std::to_string(v[1]) + " outside [1, " + std::to_string(header[1]) + "]");
        check_count(v[2], line);
        if (static_cast<std::int64_t>(docs.size()) == header[2])
            fail(line, "more triples than the header's NNZ = " + std::to_string(header[2]));
        const std::int64_t d = v[0] - 1, w = v[1] - 1;
        if (sorted && (d < prev_doc || (d == prev_doc && w <= prev_word))) {
            if (d == prev_doc && w == prev_word)
                fail(line, "wordID " + std::to_string(w + 1) + " repeated in docID " + std::to_string(d + 1) +
                               " (each (document, word) pair must appear once)");
            sorted = false;
        }
        prev_doc = d;
        prev_word = w;
        docs.push_back(d);
        words.push_back(static_cast<std::int32_t>(w));
        counts.push_back(static_cast<double>(v[2]));
        return true;
    });
    if (n_header < 3)
        fail(last_line, std::string("file ends inside the 3-line header (D, W, NNZ)"));
    const std::int64_t D = header[0], W = header[1], nnz = header[2];
    if (static_cast<std::int64_t>(docs.size()) != nnz)
        fail(last_line, "the header declares NNZ = " + std::to_string(nnz) + " triples, the file holds " +
                            std::to_string(docs.size()));

    const auto n = static_cast<std::size_t>(nnz);
    // Rows in file order when the triples are sorted, else a stable counting sort by document
    // followed by a sort of each row's words (which exposes repeated pairs).
    std::int64_t distinct_docs = 0;
    {
        // Distinct documents without a D-sized table: sort a copy of the ids when unsorted.
        if (sorted) {
            for (std::size_t i = 0; i < n; ++i) distinct_docs += (i == 0 || docs[i] != docs[i - 1]);
        } else {
            std::vector<std::int64_t> ids(docs);
            std::sort(ids.begin(), ids.end());
            distinct_docs = static_cast<std::int64_t>(std::unique(ids.begin(), ids.end()) - ids.begin());
        }
    }
    const std::int64_t empty_docs = D - distinct_docs;
    if (empty_docs > std::max(nnz, kSlackEmptyDocuments))
        fail(header_line_d, "the header declares D = " + std::to_string(D) + " documents, but the " +
                                std::to_string(nnz) + " triples name only " + std::to_string(distinct_docs) +
                                "; more than max(NNZ, " + std::to_string(kSlackEmptyDocuments) +
                                ") empty documents means a wrong header");

    BowData out;
    out.n_docs = D;
    out.n_words = W;
    out.indptr.assign(static_cast<std::size_t>(D) + 1, 0);
    for (std::size_t i = 0; i < n; ++i) ++out.indptr[static_cast<std::size_t>(docs[i]) + 1];
    std::partial_sum(out.indptr.begin(), out.indptr.end(), out.indptr.begin());
    if (sorted) {
        out.indices = std::move(words);
        out.values = std::move(counts);
        return out;
    }
    std::vector<std::int64_t> next(out.indptr.begin(), out.indptr.end() - 1);
    std::vector<std::int64_t> order(n);  // position in the CSR -> triple
    for (std::size_t i = 0; i < n; ++i) order[static_cast<std::size_t>(next[static_cast<std::size_t>(docs[i])]++)] =
        static_cast<std::int64_t>(i);
    std::vector<std::int64_t>().swap(next);
    std::vector<std::int64_t>().swap(docs);
    for (std::int64_t r = 0; r < D; ++r) {
        auto b = order.begin() + out.indptr[static_cast<std::size_t>(r)];
        auto e = order.begin() + out.indptr[static_cast<std::size_t>(r) + 1];
        std::stable_sort(b, e, [&](std::int64_t a, std::int64_t c) {
            return words[static_cast<std::size_t>(a)] < words[static_cast<std::size_t>(c)];
        });
        for (auto it = b; it + 1 < e; ++it) {
            const auto i = static_cast<std::size_t>(*it), j = static_cast<std::size_t>(*(it + 1));
            if (words[i] == words[j]) {
                // the later of the two in the file is the repetition
                const std::size_t k = std::max(i, j);
                fail(line_of_triple(data, size, k),
                     "wordID " + std::to_string(words[k] + 1) + " repeated in docID " + std::to_string(r + 1) +
                         " (each (document, word) pair must appear once)");
            }
        }
    }
    out.indices.resize(n);
    out.values.resize(n);
    for (std::size_t p = 0; p < n; ++p) {
        out.indices[p] = words[static_cast<std::size_t>(order[p])];
        out.values[p] = counts[static_cast<std::size_t>(order[p])];
    }
    return out;
}

// Blei's lda-c text: one document per line, "N id:count id:count ..." with N the number of pairs
// and 0-based word ids, each id once per line; blank lines are skipped and "0" is an empty document.
// n_features > 0 bounds the ids (else the result's width is the largest id + 1).
inline BowData parse_ldac(const char* data, std::size_t size, std::int64_t n_features) {
    using namespace detail;
    BowData out;
    out.indptr.push_back(0);
    // every pair has a ':', so their count bounds the arrays from above (one cheap pass)
    const auto colons = static_cast<std::size_t>(std::count(data, data + size, ':'));
    out.indices.reserve(colons);
    out.values.reserve(colons);
    const std::int64_t id_limit = n_features > 0 ? n_features : kMaxWords;
    std::int64_t max_id = -1;
    std::vector<std::pair<std::int32_t, double>> row;
    for_each_line(data, size, [&](std::size_t line, const char* p, const char* lend) {
        const char* q = p;
        while (q != lend && !is_blank(*q)) ++q;
        std::int64_t declared = 0;
        if (parse_int(p, q, declared) != IntResult::ok || declared < 0)
            fail(line, "expected the number of distinct words first, got " + quote(p, q));
        row.clear();
        for (p = q;;) {
            while (p != lend && is_blank(*p)) ++p;
            if (p == lend) break;
            const char* b = p;
            while (p != lend && !is_blank(*p)) ++p;
            const char* colon = std::find(b, p, ':');
            std::int64_t id = 0, count = 0;
            if (colon == p || parse_int(b, colon, id) == IntResult::not_integer ||
                parse_int(colon + 1, p, count) == IntResult::not_integer)
                fail(line, "expected id:count with integers, got " + quote(b, p));
            if (parse_int(b, colon, id) == IntResult::overflow || id < 0 || id >= kMaxWords)
                fail(line, "word id " + quote(b, colon) + " outside [0, " + std::to_string(kMaxWords) + ")");
            if (n_features > 0 && id >= id_limit)
                fail(line, "word id " + std::to_string(id) + " >= n_features=" + std::to_string(n_features));
            if (parse_int(colon + 1, p, count) == IntResult::overflow)
                fail(line, "count " + quote(colon + 1, p) + " does not fit in a 64-bit integer");
            check_count(count, line);
            row.emplace_back(static_cast<std::int32_t>(id), static_cast<double>(count));
        }
        if (static_cast<std::uint64_t>(declared) != row.size())
            fail(line, "declares " + std::to_string(declared) + " words but holds " + std::to_string(row.size()) +
                           " id:count pairs");
        std::stable_sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (i && row[i].first == row[i - 1].first)
                fail(line, "word id " + std::to_string(row[i].first) +
                               " repeated on this line (each word of a document must appear once)");
            out.indices.push_back(row[i].first);
            out.values.push_back(row[i].second);
            max_id = std::max<std::int64_t>(max_id, row[i].first);
        }
        out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
        return true;
    });
    out.n_docs = static_cast<std::int64_t>(out.indptr.size()) - 1;
    out.n_words = n_features > 0 ? n_features : max_id + 1;
    return out;
}

}  // namespace asyncopt::io
