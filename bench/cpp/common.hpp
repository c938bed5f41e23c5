// What the benchmarks share: the synthetic data, the thread counts, timing, and the machine's limits
// that every report is compared with.
//
// Timing. Every benchmark times its iterations itself (UseManualTime): wall time of the timed work
// only, so a reset between iterations (fresh stamps for a catch-up, a parser's output freed) is not
// counted, and the OpenMP threads inside are covered (Google Benchmark's CPU time would be the main
// thread's alone). Threads are an argument (`threads`, 1..N, N = omp_get_max_threads(): all usable
// cores, or OMP_NUM_THREADS) passed to the library's own OpenMP regions, as the estimators do, not
// Google Benchmark's ThreadRange, which would run N copies of a benchmark side by side.
//
// Limits. Each report carries the fraction of a physical limit it reaches, measured on the same
// machine by the same binary (bench_limits.cpp):
//   gather   a read-only pass over the same rows in the same shuffled order, w.x per row against a
//            model with the rule's state size (4 bytes: SGD; 32: AMSGrad), the update's read with no
//            arithmetic and no writes: the access pattern's limit.   frac_of_gather = gather ns / ns
//   triad    STREAM's a = b + s c (24 bytes per element moved): bandwidth.  frac_of_triad = bytes/s / triad bytes/s
//   madd     independent multiply-add chains in registers, AVX2+FMA where the CPU has it: arithmetic.
//            frac_of_madd = madd ns x madds / ns
// A limit benchmark stores what it measured for its thread count (the best of its repetitions); a
// report whose limit was not run (a --benchmark_filter) measures it once, untimed, before its loop. Fractions above 1 mean the
// code beats the simple loop (e.g. a cache-resident share of the model).
#pragma once

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "asyncopt/core/sparse.hpp"
#include "asyncopt/optim/rules.hpp"

namespace asyncopt_bench {

// --quick (CI's smoke run): every data set a tenth of its size or less, so that a run with
// --benchmark_min_time=0.01 takes seconds. Its numbers prove the code runs, nothing more.
bool quick();
void set_quick(bool on);

// 1..N: the thread counts every scaling benchmark runs at.
int max_threads();
void thread_range(benchmark::internal::Benchmark* b);

// Every benchmark's settings: manual timing, milliseconds, and with --benchmark_repetitions the
// statistics "min" and "max" beside Google Benchmark's mean/median/stddev. On a shared machine the
// fastest repetition is the one the other tenants disturbed least: read ns_* in the _min row and
// frac_* in the _max row (the limits keep their best repetition, so max frac = limit / min ns).
void manual_ms(benchmark::internal::Benchmark* b);

// Synthetic text-like logistic-regression data, as asyncopt.datasets.make_sparse_classification
// builds it (Zipf(1.1) features over ranks scattered by a random permutation, 1 + Poisson(45) tokens
// per row merged into distinct nonzeros, sublinear tf-idf, unit rows, logistic labels): 200k rows x
// 2^20 features, ~36 nonzeros per row (20k rows with --quick). Built once, deterministic.
struct SparseData {
    std::vector<int64_t> indptr;
    std::vector<int32_t> indices;
    std::vector<float> values;
    std::vector<double> y;  // -1 / +1
    int64_t n_rows = 0, n_cols = 0;

    asyncopt::CsrView<float> view() const { return {indptr.data(), indices.data(), values.data(), n_rows, n_cols}; }
    int64_t nnz() const { return indptr.back(); }
};
const SparseData& logistic_data();
// A fixed random visiting order of the rows (each thread takes its slice, as hogwild_epoch does).
const std::vector<int64_t>& logistic_order();
// The features that occur in the data (ascending): the active list of a segment end.
const std::vector<int32_t>& active_features();

// The logistic benchmarks' settings: the estimator's defaults (python/asyncopt/optim.py), alpha
// 1e-4. SGD at 0.1 with exact L2 (decay = alpha: the scaled variant, w = S u); AMSGrad at 0.003
// with the frequency-scaled sparse regulariser. bias_correction picks AMSGrad's tabled variant
// (per-segment tables of P and F, optim/steps.hpp).
constexpr double kAlpha = 1e-4;
inline asyncopt::StepConfig step_config(asyncopt::RuleKind kind, bool bias_correction = false) {
    asyncopt::StepConfig sc;
    if (kind == asyncopt::RuleKind::sgd) {
        sc.learning_rate = 0.1;
        sc.decay = kAlpha;
    } else {
        sc.learning_rate = 0.003;
        sc.bias_correction = bias_correction;
    }
    return sc;
}

// n / d_j of the sparse regulariser (d_j: rows holding feature j).
const std::vector<float>& n_over_d();

// A fresh model of n_cols + 1 coordinates (the intercept last), with n/d_j in the state of a rule
// that keeps it there, as the Python side allocates it.
template <class State, bool RegInState>
std::vector<State> fresh_state() {
    std::vector<State> s(static_cast<size_t>(logistic_data().n_cols) + 1, State{});
    if constexpr (RegInState) {
        const auto& r = n_over_d();
        for (size_t j = 0; j < r.size(); ++j) s[j].reg = r[j];
    }
    return s;
}

// Times f() as one iteration; returns the seconds and reports them to Google Benchmark.
template <class F>
double timed(benchmark::State& state, F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    return s;
}

// f() once untimed (the warm-up: pages in, caches filled, a model away from zero), then once per
// iteration, timed; returns the seconds of the timed calls.
template <class F>
double warm_then_timed(benchmark::State& state, F&& f) {
    f();
    double total = 0;
    for (auto _ : state) total += timed(state, f);
    return total;
}

// ns per unit of work, `units` of it in every iteration.
inline double ns_per_unit(const benchmark::State& state, double seconds, double units) {
    return seconds * 1e9 / (static_cast<double>(state.iterations()) * units);
}

// The limits, per thread count (see the header comment). stride: bytes of one model coordinate.
double gather_ns_per_nnz(int threads, int stride);
double triad_bytes_per_ns(int threads);
double madd_ns_per_madd(int threads);  // ns per double multiply-add per thread count, all threads together
void record_gather(int threads, int stride, double ns_per_nnz);
void record_triad(int threads, double bytes_per_ns);
void record_madd(int threads, double ns_per_madd);

// The kernels of the limits, also used to measure a limit that was filtered out. Each returns the
// seconds of one pass.
double gather_pass(int threads, int stride);
double triad_pass(int threads);
double madd_pass(int threads, int64_t iters_per_thread, bool baseline);

// Registration, in main's order: the limits first, so that the reports after them use the limits
// measured in the same run.
void register_limits();
void register_logistic();
void register_lda();
void register_libsvm();
void register_gpu_emulator();

// Counters every report prints: ns per unit of work (nonzero, word-topic, byte...), named.
inline void report_ns(benchmark::State& state, const char* name, double seconds, double units) {
    state.counters[name] = benchmark::Counter(seconds * 1e9 / units);
}

}  // namespace asyncopt_bench
