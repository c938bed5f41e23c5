// The LIBSVM parser (io/libsvm.hpp) on text generated in memory from the synthetic set's first 50k
// rows (5k with --quick; labels "+1"/"-1", 1-based indices, values printed with 6 significant digits, as scikit-learn's
// dump_svmlight_file writes float32 data): MB/s of input text. The parser is serial; at T threads the
// text is cut at line ends into T chunks parsed at once, the throughput a chunked parallel load
// could reach. It streams its input once: frac_of_triad = input bytes/s / triad bytes/s.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "asyncopt/core/parallel.hpp"
#include "asyncopt/io/libsvm.hpp"
#include "common.hpp"

namespace asyncopt_bench {

namespace {

int64_t libsvm_rows() { return quick() ? 5000 : 50000; }

const std::string& libsvm_text() {
    static const std::string text = [] {
        const SparseData& d = logistic_data();
        std::string s;
        char buf[64];
        for (int64_t i = 0; i < libsvm_rows(); ++i) {
            s += d.y[i] > 0 ? "+1" : "-1";
            for (int64_t p = d.indptr[i]; p < d.indptr[i + 1]; ++p) {
                std::snprintf(buf, sizeof buf, " %d:%.6g", d.indices[p] + 1, static_cast<double>(d.values[p]));
                s += buf;
            }
            s += '\n';
        }
        return s;
    }();
    return text;
}

void BM_parse(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    const std::string& text = libsvm_text();
    // chunk t starts after the line end nearest below t/T of the text
    std::vector<size_t> cut(static_cast<size_t>(threads) + 1, text.size());
    cut[0] = 0;
    for (int t = 1; t < threads; ++t) cut[t] = text.find('\n', text.size() * t / threads) + 1;
    std::vector<int64_t> rows(static_cast<size_t>(threads));
    auto pass = [&] {
        asyncopt::ParallelExceptions errors;  // a parse error must not escape the region
#pragma omp parallel num_threads(threads)
        errors.capture([&] {
            const int t = asyncopt::thread_id();
            const auto out = asyncopt::io::parse_libsvm<float>(text.data() + cut[t], cut[t + 1] - cut[t]);
            rows[t] = static_cast<int64_t>(out.labels.size());
        });
        errors.rethrow();
    };
    const double total = warm_then_timed(state, pass);
    const double bytes = static_cast<double>(state.iterations()) * text.size();
    state.counters["MB_per_s"] = bytes / total / 1e6;
    state.counters["text_MB"] = static_cast<double>(text.size()) / 1e6;
    report_ns(state, "ns_per_byte", total, bytes);
    state.counters["frac_of_triad"] = bytes / (total * 1e9) / triad_bytes_per_ns(threads);
    int64_t parsed = 0;
    for (int64_t r : rows) parsed += r;
    if (parsed != libsvm_rows()) state.SkipWithError("the parser did not return every row");
}

}  // namespace

void register_libsvm() {
    benchmark::RegisterBenchmark("io/libsvm_parse", BM_parse)->Apply(thread_range);
}

}  // namespace asyncopt_bench
