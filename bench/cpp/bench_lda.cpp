// LDA by SVI (problems/lda.hpp, threads/lda.hpp) on a corpus of kos's shape drawn from LDA's own
// generative model: the E-step of every document against a fixed lambda, and whole lock-free SVI
// epochs through the Hogwild! driver. The E-step is arithmetic on K-vectors that sit in cache (a
// mini-batch's exp(E[log beta]) rows), so its limit is the multiply-add rate, not memory.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "asyncopt/core/parallel.hpp"
#include "asyncopt/problems/lda.hpp"
#include "asyncopt/threads/hogwild.hpp"
#include "asyncopt/threads/lda.hpp"
#include "common.hpp"

namespace asyncopt_bench {

using namespace asyncopt;

namespace {

constexpr int kTopics = 50;

// kos's shape (UCI Bag of Words: 3430 documents (300 with --quick), V = 6906, ~100 distinct words
// of ~136 tokens per document), drawn from LDA: 50 topics phi_k ~ Dirichlet(0.05) over the vocabulary, theta_d ~
// Dirichlet(0.1), a topic then a word per token. Real topics make the E-step converge as it does on
// real text (a Zipf corpus without topics would stop after a few iterations).
struct Corpus {
    std::vector<int64_t> indptr{0};
    std::vector<int32_t> indices;
    std::vector<double> counts;
    int64_t n_docs = quick() ? 300 : 3430, n_words = 6906;

    CsrView<double> view() const { return {indptr.data(), indices.data(), counts.data(), n_docs, n_words}; }
    int64_t nnz() const { return indptr.back(); }
};

std::vector<double> dirichlet_cdf(std::mt19937_64& gen, int64_t n, double a) {
    std::gamma_distribution<double> g(a, 1.0);
    std::vector<double> cdf(static_cast<size_t>(n));
    double acc = 0;
    for (auto& c : cdf) c = acc += g(gen) + 1e-300;
    for (auto& c : cdf) c /= acc;
    return cdf;
}

const Corpus& corpus() {
    static const Corpus c = [] {
        Corpus c;
        std::mt19937_64 gen(2010);
        std::vector<std::vector<double>> phi;
        for (int k = 0; k < kTopics; ++k) phi.push_back(dirichlet_cdf(gen, c.n_words, 0.05));
        std::poisson_distribution<int> length(135);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        std::vector<int32_t> tokens;
        for (int64_t d = 0; d < c.n_docs; ++d) {
            const std::vector<double> theta = dirichlet_cdf(gen, kTopics, 0.1);
            tokens.clear();
            const int n = 1 + length(gen);
            for (int t = 0; t < n; ++t) {
                const auto k = std::min<int64_t>(std::lower_bound(theta.begin(), theta.end(), u(gen)) - theta.begin(),
                                                 kTopics - 1);
                const auto& p = phi[static_cast<size_t>(k)];
                tokens.push_back(static_cast<int32_t>(
                    std::min<int64_t>(std::lower_bound(p.begin(), p.end(), u(gen)) - p.begin(), c.n_words - 1)));
            }
            std::sort(tokens.begin(), tokens.end());
            for (size_t a = 0; a < tokens.size();) {
                size_t b = a;
                while (b < tokens.size() && tokens[b] == tokens[a]) ++b;
                c.indices.push_back(tokens[a]);
                c.counts.push_back(static_cast<double>(b - a));
                a = b;
            }
            c.indptr.push_back(static_cast<int64_t>(c.indices.size()));
        }
        return c;
    }();
    return c;
}

LdaConfig lda_config(int threads) {
    LdaConfig cfg;  // scikit-learn's defaults: priors 1/K, tau0 10, kappa 0.7, batches of 128
    cfg.n_threads = threads;
    cfg.batch_size = 128;
    cfg.n_components = kTopics;
    cfg.doc_topic_prior = 1.0 / kTopics;
    cfg.topic_word_prior = 1.0 / kTopics;
    cfg.total_samples = static_cast<double>(corpus().n_docs);
    return cfg;
}

// mu = lambda - eta (V x K) and the topic sums, lambda ~ Gamma(100, 1/100) as the estimator draws it.
struct Model {
    std::vector<double> mu, mass;
    LdaModel view() {
        return LdaModel{mu.data(), mass.data(), corpus().n_words, kTopics};
    }
};
Model fresh_model() {
    const Corpus& c = corpus();
    Model m;
    m.mu.resize(static_cast<size_t>(c.n_words) * kTopics);
    m.mass.assign(kTopics, 0.0);
    std::mt19937_64 gen(0);
    std::gamma_distribution<double> g(100.0, 0.01);
    for (size_t p = 0; p < m.mu.size(); ++p) {
        m.mu[p] = g(gen) - 1.0 / kTopics;
        m.mass[p % kTopics] += m.mu[p];
    }
    return m;
}

// The lambda the E-step benchmark holds fixed: three SVI epochs from the initial draw, so it has
// topics and the documents take the iterations they take mid-fit. One thread: the same lambda, and
// the same iteration counts, in every run.
const Model& trained_model() {
    static const Model m = [] {
        Model m = fresh_model();
        const CsrView<double> X = corpus().view();
        LdaConfig cfg = lda_config(1);
        std::vector<int64_t> perm(static_cast<size_t>(X.n_rows));
        std::iota(perm.begin(), perm.end(), 0);
        for (int e = 0; e < (quick() ? 1 : 3); ++e) {
            LdaWork work(X, m.view(), cfg, cfg.n_threads);
            cfg.k0 += hogwild_epoch(X.n_rows, perm.data(), cfg, work).updates;
            cfg.seed += 1;
        }
        return m;
    }();
    return m;
}

// Multiply-adds of one document's E-step that ran `iters` iterations over its n distinct words:
// per iteration a K-wide dot and a K-wide axpy per word; then phinorm's dot and the sstats axpy.
double e_step_madds(int64_t n, int iters) { return static_cast<double>(n) * kTopics * (2.0 * iters + 2.0); }

// lda::e_step and lda::accumulate_sstats of every document against exp(E[log beta]) of the trained
// lambda (threads/lda.hpp's FixedBeta: the read-only transform's table), documents spread over the
// threads as lda_infer spreads them, each thread into its own sstats. ns per word-topic (a document's
// distinct word times K, all its iterations together), per word-topic-iteration and us per
// document; frac_of_madd counts the multiply-adds above against the madd limit.
void BM_e_step(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    const Corpus& c = corpus();
    const CsrView<double> X = c.view();
    Model m = trained_model();
    const LdaConfig cfg = lda_config(threads);
    const LdaModel model = m.view();  // FixedBeta keeps a reference to it
    const FixedBeta beta(model, cfg.topic_word_prior, threads);
    const double* table = beta.exp_table();
    InferScratch scratch(threads, kTopics, longest_row(X));
    std::vector<double> gamma(static_cast<size_t>(threads) * kTopics);
    std::vector<double> sstats(static_cast<size_t>(threads) * c.n_words * kTopics, 0.0);
    std::vector<int> iters(static_cast<size_t>(X.n_rows));
    auto pass = [&] {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
        for (int64_t d = 0; d < X.n_rows; ++d) {
            const int t = thread_id();
            const auto doc = X.row(d);
            lda::EStepScratch s{scratch.etheta(t), scratch.last(t), scratch.phinorm(t)};
            iters[d] = lda::e_step(doc.idx, doc.val, doc.nnz, table, kTopics, cfg.doc_topic_prior,
                                   cfg.max_doc_update_iter, cfg.mean_change_tol, gamma.data() + t * kTopics, s);
            lda::accumulate_sstats(doc.idx, doc.val, doc.nnz, kTopics, s,
                                   sstats.data() + static_cast<int64_t>(t) * c.n_words * kTopics);
        }
    };
    const double total = warm_then_timed(state, pass);
    benchmark::DoNotOptimize(sstats.data());
    double madds = 0, wt_iters = 0, iters_sum = 0;
    for (int64_t d = 0; d < X.n_rows; ++d) {
        const int64_t n = X.indptr[d + 1] - X.indptr[d];
        madds += e_step_madds(n, iters[d]);
        wt_iters += static_cast<double>(n) * kTopics * iters[d];
        iters_sum += iters[d];
    }
    const double reps = static_cast<double>(state.iterations());
    state.counters["ns_per_wt"] = total * 1e9 / (reps * c.nnz() * kTopics);
    state.counters["ns_per_wt_iter"] = total * 1e9 / (reps * wt_iters);
    state.counters["us_per_doc"] = total * 1e6 / (reps * X.n_rows);
    state.counters["iters_per_doc"] = iters_sum / X.n_rows;
    state.counters["frac_of_madd"] = madd_ns_per_madd(threads) * madds * reps / (total * 1e9);
}

// Whole SVI epochs (LdaWork under hogwild_epoch: read K digammas per distinct word of a mini-batch,
// the E-steps, the lock-free write and the segment-end fold), from the initial lambda draw onwards.
// ns per word-topic of the corpus; frac_of_madd counts the E-steps' multiply-adds only, from the
// epoch's iteration total (documents taken at the corpus's mean length), so it is the share of the
// epoch that ran at the E-step's arithmetic.
void BM_svi_epoch(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    const Corpus& c = corpus();
    const CsrView<double> X = c.view();
    Model m = fresh_model();
    LdaConfig cfg = lda_config(threads);
    std::vector<int64_t> perm(static_cast<size_t>(X.n_rows));
    std::iota(perm.begin(), perm.end(), 0);
    double total = 0, e_iters = 0;
    for (auto _ : state) {
        LdaWork work(X, m.view(), cfg, threads);
        total += timed(state, [&] { cfg.k0 += hogwild_epoch(X.n_rows, perm.data(), cfg, work).updates; });
        e_iters += static_cast<double>(work.stats().e_step_iterations);
        cfg.seed += 1;
    }
    const double reps = static_cast<double>(state.iterations());
    const double mean_len = static_cast<double>(c.nnz()) / X.n_rows;
    const double madds = kTopics * (2.0 * e_iters * mean_len + 2.0 * reps * c.nnz());
    state.counters["ns_per_wt"] = total * 1e9 / (reps * c.nnz() * kTopics);
    state.counters["iters_per_doc"] = e_iters / (reps * X.n_rows);
    state.counters["frac_of_madd"] = madd_ns_per_madd(threads) * madds / (total * 1e9);
}

}  // namespace

void register_lda() {
    benchmark::RegisterBenchmark("lda/e_step", BM_e_step)->Apply(thread_range);
    benchmark::RegisterBenchmark("lda/svi_epoch", BM_svi_epoch)->Apply(thread_range);
}

}  // namespace asyncopt_bench
