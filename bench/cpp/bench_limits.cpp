// The machine's limits (common.hpp): a random gather over the benchmark's sparse rows, a STREAM
// triad, and independent multiply-add chains. Every other report is a fraction of one of them.
#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "asyncopt/core/epoch_plan.hpp"
#include "asyncopt/core/parallel.hpp"
#include "asyncopt/core/sparse.hpp"
#include "common.hpp"

namespace asyncopt_bench {

using asyncopt::CsrView;

namespace {

// One model coordinate of SGD's state (the weight alone) and one of AMSGrad's float state (w, m, v,
// vhat, d, reg, stamp: 32 bytes, optim/amsgrad.hpp). The gather reads w only, as a margin does.
struct Coord4 {
    float w;
};
struct alignas(32) Coord32 {
    float w;
    char pad[28];
};

template <class Coord>
const std::vector<Coord>& gather_model() {
    static const std::vector<Coord> model = [] {
        std::vector<Coord> m(static_cast<size_t>(logistic_data().n_cols));
        for (size_t j = 0; j < m.size(); ++j) m[j].w = static_cast<float>((j % 17) * 1e-3);
        return m;
    }();
    return model;
}

// w.x of every row, each thread over its slice of the visiting order, with the row prefetcher the
// updates use (core/sparse.hpp; the model's lines too where LogisticWork prefetches them, a model
// over 8 MiB). Without it a pass waits out each row's misses one at a time: a limit of that loop,
// not of the machine.
template <class Coord>
double gather_pass_of(int threads) {
    const SparseData& d = logistic_data();
    const CsrView<float> X = d.view();
    const int64_t* order = logistic_order().data();
    const int64_t n = d.n_rows;
    const Coord* model = gather_model<Coord>().data();
    const bool prefetch_model = static_cast<double>(X.n_cols) * sizeof(Coord) > 8.0 * (1 << 20);
    double sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    {
        const int t = asyncopt::thread_id();
        const int64_t lo = asyncopt::slice_begin(n, threads, t), hi = asyncopt::slice_begin(n, threads, t + 1);
        const asyncopt::RowPrefetcher<float> prefetch(X);
        for (int64_t p = lo; p < hi; ++p) {
            prefetch.ahead_of(order + p, order + hi);
            if (prefetch_model) prefetch.model_ahead_of(order + p, order + hi, model);
            const auto row = X.row(order[p]);
            double z = 0;
            for (int64_t a = 0; a < row.nnz; ++a) z += static_cast<double>(row.val[a]) * model[row.idx[a]].w;
            sum += z;
        }
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sum);
    return s;
}

// STREAM's triad over three arrays of 2^23 doubles (64 MiB each, far beyond any cache).
constexpr int64_t kTriadN = int64_t{1} << 23;
struct TriadArrays {
    std::vector<double> a, b, c;
    TriadArrays() : a(kTriadN), b(kTriadN), c(kTriadN) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < kTriadN; ++i) {  // first touch by the threads that will stream them
            a[i] = 0.0;
            b[i] = 1.0;
            c[i] = 2.0;
        }
    }
};
TriadArrays& triad_arrays() {
    static TriadArrays t;
    return t;
}

// Multiply-add chains: 8 independent accumulators of 4 doubles, so neither latency nor the vector
// width hides the core's peak. acc -> acc m + c converges, so no overflow or denormals.
// The limit is the best the CPU runs: an x86-64-v3 (AVX2+FMA) clone, dispatched on the CPU's
// features. Not the E-step's "arch=haswell" clone (problems/lda.hpp): GCC dispatches that one on
// the CPU *model*, so it runs on Haswell alone (every later Intel core and every AMD core gets the
// default clone). madd_baseline is the build's baseline (SSE2 in a portable build): what the E-step
// runs where its clone is not chosen.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define ASYNCOPT_BENCH_BEST_ISA __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define ASYNCOPT_BENCH_BEST_ISA
#endif
using v4d = double __attribute__((vector_size(32)));
inline __attribute__((always_inline)) double madd_body(int64_t iters) {
    v4d acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = v4d{1.0 * i, 2.0 * i, 3.0 * i, 4.0 * i};
    const v4d m = {0.999999, 0.999998, 0.999997, 0.999996}, c = {1e-6, 2e-6, 3e-6, 4e-6};
    for (int64_t it = 0; it < iters; ++it)
        for (int i = 0; i < 8; ++i) acc[i] = acc[i] * m + c;
    double s = 0;
    for (int i = 0; i < 8; ++i) s += acc[i][0] + acc[i][1] + acc[i][2] + acc[i][3];
    return s;
}
ASYNCOPT_BENCH_BEST_ISA __attribute__((noinline)) double madd_chains(int64_t iters) { return madd_body(iters); }
__attribute__((noinline)) double madd_chains_baseline(int64_t iters) { return madd_body(iters); }
constexpr int64_t kMaddsPerIter = 32;

std::map<std::pair<int, int>, double>& gathers() {
    static std::map<std::pair<int, int>, double> m;
    return m;
}
std::map<int, double>& triads() {
    static std::map<int, double> m;
    return m;
}
std::map<int, double>& madds() {
    static std::map<int, double> m;
    return m;
}

// A limit not measured in this run: a warm-up pass, then the mean of three.
template <class F>
double measure(F&& pass) {
    pass();
    double s = 0;
    for (int r = 0; r < 3; ++r) s += pass();
    return s / 3;
}

constexpr int64_t kMaddIters = int64_t{1} << 24;

}  // namespace

double gather_pass(int threads, int stride) {
    return stride == 4 ? gather_pass_of<Coord4>(threads) : gather_pass_of<Coord32>(threads);
}

double triad_pass(int threads) {
    TriadArrays& t = triad_arrays();
    double* a = t.a.data();
    const double* b = t.b.data();
    const double* c = t.c.data();
    const double s = 3.0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < kTriadN; ++i) a[i] = b[i] + s * c[i];
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(a[kTriadN / 2]);
    benchmark::ClobberMemory();
    return sec;
}

double madd_pass(int threads, int64_t iters_per_thread, bool baseline) {
    double sum = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sum)
    sum += baseline ? madd_chains_baseline(iters_per_thread) : madd_chains(iters_per_thread);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    benchmark::DoNotOptimize(sum);
    return s;
}

// A limit keeps the best of its repetitions: the machine's capability, least disturbed.
void record_gather(int threads, int stride, double ns) {
    const auto [it, fresh] = gathers().try_emplace({threads, stride}, ns);
    if (!fresh) it->second = std::min(it->second, ns);
}
void record_triad(int threads, double bytes_per_ns) {
    const auto [it, fresh] = triads().try_emplace(threads, bytes_per_ns);
    if (!fresh) it->second = std::max(it->second, bytes_per_ns);
}
void record_madd(int threads, double ns) {
    const auto [it, fresh] = madds().try_emplace(threads, ns);
    if (!fresh) it->second = std::min(it->second, ns);
}

double gather_ns_per_nnz(int threads, int stride) {
    auto& m = gathers();
    const auto it = m.find({threads, stride});
    if (it != m.end()) return it->second;
    const double ns = measure([&] { return gather_pass(threads, stride); }) * 1e9 / logistic_data().nnz();
    return m[{threads, stride}] = ns;
}

double triad_bytes_per_ns(int threads) {
    auto& m = triads();
    const auto it = m.find(threads);
    if (it != m.end()) return it->second;
    return m[threads] = 24.0 * kTriadN / (measure([&] { return triad_pass(threads); }) * 1e9);
}

double madd_ns_per_madd(int threads) {
    auto& m = madds();
    const auto it = m.find(threads);
    if (it != m.end()) return it->second;
    const double madds_total = static_cast<double>(kMaddIters) * kMaddsPerIter * threads;
    return m[threads] = measure([&] { return madd_pass(threads, kMaddIters, false); }) * 1e9 / madds_total;
}

// ---------------------------------------------------------------- the limits' own reports

static void BM_gather(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0)), stride = static_cast<int>(state.range(1));
    gather_pass(threads, stride);  // warm-up: the data and the model paged in
    double total = 0;
    for (auto _ : state) {
        const double s = gather_pass(threads, stride);
        state.SetIterationTime(s);
        total += s;
    }
    const double units = static_cast<double>(state.iterations()) * logistic_data().nnz();
    report_ns(state, "ns_per_nnz", total, units);
    record_gather(threads, stride, total * 1e9 / units);
}

static void BM_triad(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    triad_pass(threads);
    double total = 0;
    for (auto _ : state) {
        const double s = triad_pass(threads);
        state.SetIterationTime(s);
        total += s;
    }
    const double elems = static_cast<double>(state.iterations()) * kTriadN;
    report_ns(state, "ns_per_elem", total, elems);
    state.counters["GB_per_s"] = 24.0 * elems / total / 1e9;
    record_triad(threads, 24.0 * elems / (total * 1e9));
}

static void BM_madd(benchmark::State& state, bool baseline) {
    const int threads = static_cast<int>(state.range(0));
    const int64_t iters = int64_t{1} << 22;
    madd_pass(threads, iters, baseline);
    double total = 0;
    for (auto _ : state) {
        const double s = madd_pass(threads, iters, baseline);
        state.SetIterationTime(s);
        total += s;
    }
    const double n = static_cast<double>(state.iterations()) * iters * kMaddsPerIter * threads;
    report_ns(state, "ns_per_madd", total, n);
    state.counters["Gmadd_per_s"] = n / total / 1e9;
    if (!baseline) record_madd(threads, total * 1e9 / n);
}

void register_limits() {
    auto* g = benchmark::RegisterBenchmark("limit/gather", BM_gather);
    g->ArgNames({"threads", "stride"});
    for (int t = 1; t <= max_threads(); ++t) g->Args({t, 4})->Args({t, 32});
    manual_ms(g);
    benchmark::RegisterBenchmark("limit/triad", BM_triad)->Apply(thread_range);
    for (auto [name, baseline] : {std::pair{"limit/madd", false}, std::pair{"limit/madd_baseline", true}})
        benchmark::RegisterBenchmark(name, BM_madd, baseline)->Apply(thread_range);
}

}  // namespace asyncopt_bench
