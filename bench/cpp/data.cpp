// The synthetic data and the thread counts (common.hpp).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <thread>

#include "common.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace asyncopt_bench {

namespace {
bool quick_mode = false;
}
bool quick() { return quick_mode; }
void set_quick(bool on) { quick_mode = on; }

int max_threads() {
#ifdef _OPENMP
    return std::max(1, omp_get_max_threads());
#else
    return 1;
#endif
}

void thread_range(benchmark::internal::Benchmark* b) {
    b->ArgName("threads");
    for (int t = 1; t <= max_threads(); ++t) b->Arg(t);
    manual_ms(b);
}

namespace {
double min_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }
double max_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()); }
}  // namespace

void manual_ms(benchmark::internal::Benchmark* b) {
    b->UseManualTime()->Unit(benchmark::kMillisecond)->ComputeStatistics("min", min_of)->ComputeStatistics("max", max_of);
}

namespace {

SparseData make_logistic_data() {
    const int64_t n_rows = quick() ? 20000 : 200000;
    constexpr int64_t n_cols = int64_t{1} << 20;
    constexpr double zipf_exponent = 1.1, mean_tokens = 46, signal = 4.0;
    std::mt19937_64 gen(20111);

    // Zipf over ranks by inverse CDF; ranks scattered over the feature ids by a permutation, so hot
    // features do not share cache lines (a hashed or alphabetical vocabulary)
    std::vector<double> cdf(n_cols);
    double acc = 0;
    for (int64_t r = 0; r < n_cols; ++r) cdf[r] = acc += std::pow(static_cast<double>(r + 1), -zipf_exponent);
    for (double& c : cdf) c /= acc;
    std::vector<int32_t> feature_of_rank(n_cols);
    std::iota(feature_of_rank.begin(), feature_of_rank.end(), 0);
    std::shuffle(feature_of_rank.begin(), feature_of_rank.end(), gen);

    SparseData d;
    d.n_rows = n_rows;
    d.n_cols = n_cols;
    d.indptr.reserve(n_rows + 1);
    d.indptr.push_back(0);
    d.indices.reserve(static_cast<size_t>(n_rows * 40));
    std::vector<float> counts;
    counts.reserve(static_cast<size_t>(n_rows * 40));
    std::poisson_distribution<int> tokens(mean_tokens - 1);
    std::uniform_real_distribution<double> unif(0.0, 1.0);
    std::vector<int32_t> row;
    for (int64_t i = 0; i < n_rows; ++i) {
        row.clear();
        const int n_tok = 1 + tokens(gen);
        for (int t = 0; t < n_tok; ++t) {
            const auto r = std::lower_bound(cdf.begin(), cdf.end(), unif(gen)) - cdf.begin();
            row.push_back(feature_of_rank[std::min<int64_t>(r, n_cols - 1)]);
        }
        std::sort(row.begin(), row.end());
        for (size_t a = 0; a < row.size();) {  // repeated tokens: one nonzero with their count
            size_t b = a;
            while (b < row.size() && row[b] == row[a]) ++b;
            d.indices.push_back(row[a]);
            counts.push_back(static_cast<float>(b - a));
            a = b;
        }
        d.indptr.push_back(static_cast<int64_t>(d.indices.size()));
    }

    // sublinear tf-idf, unit rows
    std::vector<int32_t> df(n_cols, 0);
    for (int32_t j : d.indices) ++df[j];
    d.values.resize(d.indices.size());
    for (int64_t i = 0; i < n_rows; ++i) {
        double norm = 0;
        for (int64_t p = d.indptr[i]; p < d.indptr[i + 1]; ++p) {
            const double idf = std::log((1.0 + n_rows) / (1.0 + df[d.indices[p]])) + 1.0;
            d.values[p] = static_cast<float>(std::log1p(counts[p]) * idf);
            norm += static_cast<double>(d.values[p]) * d.values[p];
        }
        const double inv = 1.0 / std::sqrt(norm);
        for (int64_t p = d.indptr[i]; p < d.indptr[i + 1]; ++p) d.values[p] = static_cast<float>(d.values[p] * inv);
    }

    // logistic labels from w* ~ N(0, I)
    std::normal_distribution<double> normal;
    std::vector<double> w_star(n_cols);
    for (double& w : w_star) w = normal(gen);
    d.y.resize(n_rows);
    for (int64_t i = 0; i < n_rows; ++i) {
        double z = 0;
        for (int64_t p = d.indptr[i]; p < d.indptr[i + 1]; ++p) z += d.values[p] * w_star[d.indices[p]];
        d.y[i] = unif(gen) < 1.0 / (1.0 + std::exp(-signal * z)) ? 1.0 : -1.0;
    }
    return d;
}

}  // namespace

const SparseData& logistic_data() {
    static const SparseData d = make_logistic_data();
    return d;
}

const std::vector<int64_t>& logistic_order() {
    static const std::vector<int64_t> order = [] {
        std::vector<int64_t> o(static_cast<size_t>(logistic_data().n_rows));
        std::iota(o.begin(), o.end(), 0);
        std::mt19937_64 gen(7);
        std::shuffle(o.begin(), o.end(), gen);
        return o;
    }();
    return order;
}

const std::vector<int32_t>& active_features() {
    static const std::vector<int32_t> active = [] {
        const SparseData& d = logistic_data();
        std::vector<char> seen(static_cast<size_t>(d.n_cols), 0);
        for (int32_t j : d.indices) seen[j] = 1;
        std::vector<int32_t> a;
        for (int64_t j = 0; j < d.n_cols; ++j)
            if (seen[j]) a.push_back(static_cast<int32_t>(j));
        return a;
    }();
    return active;
}

}  // namespace asyncopt_bench
