// LDA by lock-free stochastic variational inference: the thread level of DPSVI (Mohamad et al.
// 2022), i.e. SVI for LDA (Hoffman, Blei, Wang, Paisley 2013, Alg. 1; online VB of Hoffman, Blei,
// Bach 2010, Alg. 2) with its global steps applied by several threads at once, without locks, on
// one shared lambda. The Hogwild! driver (hogwild.hpp) says who processes which mini-batch when
// and numbers the global steps t; this file says what one mini-batch does.
//
// One update (mini-batch B of documents, global step t = the driver's k):
//   read   exp(E[log beta_kw]) for the distinct words of B from the shared lambda (K digammas per
//          word, plus one per topic for psi(sum_w lambda_kw))
//   local  the E-step of every document of B (problems/lda.hpp): gamma_d and sstats
//   write  lambda <- (1 - rho_t) lambda + rho_t (eta + D/|B| sstats),  rho_t = (tau0 + t)^-kappa
//
// The (1 - rho_t) decay touches every lambda_kw; done literally it is an O(K V) pass per mini-batch
// (what scikit-learn and gensim do). Here, as SGD's exact L2 in optim/sgd.hpp:
//   lambda_kw = eta + mu_wk,   mu_wk = S_t mu~_wk,   S_t = prod_{i=1..t} (1 - rho_i)
// (t counted from the current segment's start). S_t is a function of the step number alone (a
// table per segment), so no thread writes a shared scale, and the update of step t becomes
//   mu~_wk += rho_t D/|B| sstats_kw / S_t          for the distinct words w of B only,
// O(K x distinct words of B) + O(K). A read as of step t - 1 takes lambda_kw = eta + S_{t-1} mu~_wk.
// Under concurrency mu~ may already hold a later step t' > t - 1; that contribution is then read
// S_{t-1}/S_{t'} times too large, a bounded distortion of the same kind as any Hogwild! read of
// a model other threads are writing.
// S_t shrinks geometrically, so the driver cuts the epoch into segments short enough that
// S >= 2^-500 (max_segment_updates) and every segment end folds S into mu~ (one O(K V) pass per
// segment, not per step).
//
// Topic sums. psi(sum_w lambda_kw) needs sum_w lambda_kw = V eta + S_t M~_k, M~_k = sum_w mu~_wk,
// and every update changes all K of them. They are kept in K shared doubles updated with atomic
// adds (a compare-and-swap loop): an update adds its per-topic total once, K atomic operations
// against O(K x distinct words x E-step iterations) of local work, so the K/8 cache lines move
// between cores a few hundred times a second at most; per-thread replicas (the intercept trick
// of threads/logistic.hpp) would buy nothing and add staleness. The atomic adds lose nothing, so M~
// is exactly the sum of the increments applied; a Hogwild! lost write on some mu~_wk (two threads
// updating the same word at once) can still make sum_w mu~_wk differ from M~. Every segment end
// therefore recomputes M~ from mu~ and reports the relative drift it found (topic_mass_drift).
//
// Storage: mu~ is word-major (V x K, a word's K topics contiguous: the E-step reads the K values of
// each of its words) and float64. float64 because mu~ = mu / S spans S's range (up to 2^500) and
// the topic sums accumulate up to millions of increments of very different sizes; float32 would
// halve the memory traffic of the read, but the read costs K digammas per word, not bandwidth.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "hogwild.hpp"
#include "../core/parallel.hpp"
#include "../problems/lda.hpp"
#include "../core/shared.hpp"
#include "../core/sparse.hpp"

namespace asyncopt {

struct LdaConfig : EpochConfig {
    int n_components = 10;
    double doc_topic_prior = 0.1;   // alpha
    double topic_word_prior = 0.1;  // eta
    double learning_offset = 10.0;  // tau0
    double learning_decay = 0.7;    // kappa
    double total_samples = 1.0;     // D, the corpus size the D/|B| rescaling assumes
    int max_doc_update_iter = 100;
    double mean_change_tol = 1e-3;
};

// The shared model: mu~ (V x K, word-major) and the topic sums M~ (K).
struct LdaModel {
    double* mu = nullptr;
    double* topic_mass = nullptr;
    int64_t n_words = 0;  // V
    int n_topics = 0;     // K
};

// rho_t = (tau0 + t)^-kappa, t = 1, 2, ...
inline double lda_rho(const LdaConfig& c, uint64_t t) noexcept {
    return std::pow(c.learning_offset + static_cast<double>(t), -c.learning_decay);
}

struct LdaEpochStats {
    int64_t e_step_iterations = 0;  // summed over the documents of the epoch
    double topic_mass_drift = 0;    // max over segment ends and topics of |S M~_k - sum_w S mu~_wk| / sum
};

// The Work for hogwild_epoch (see its header comment for the interface).
class LdaWork {
public:
    LdaWork(const CsrView<double>& X, const LdaModel& model, const LdaConfig& cfg, int n_threads)
        : X_(X), m_(model), cfg_(cfg), nt_(n_threads), iterations_(static_cast<size_t>(n_threads), 0) {}

    // Longest segment over which S stays >= 2^-500: mu~ = mu / S then stays far below double's
    // 2^1023. rho_t decreases with t, so rho at the epoch's first step bounds every later one.
    uint64_t max_segment_updates() const {
        const double worst = -std::log1p(-lda_rho(cfg_, cfg_.k0 + 1));
        const double budget = 500.0 * std::log(2.0);
        if (!(worst > 0)) return std::numeric_limits<uint32_t>::max();
        const double n = std::floor(budget / worst);
        return n < 1 ? 1 : (n > 4e9 ? std::numeric_limits<uint32_t>::max() : static_cast<uint64_t>(n));
    }

    void begin_segment(uint64_t k_base, uint32_t n_updates) {
        k_base_ = k_base;
        rho_.assign(static_cast<size_t>(n_updates) + 1, 0.0);
        scale_.assign(static_cast<size_t>(n_updates) + 1, 1.0);
        for (uint32_t u = 1; u <= n_updates; ++u) {
            rho_[u] = lda_rho(cfg_, k_base + u);
            scale_[u] = scale_[u - 1] * (1.0 - rho_[u]);
        }
    }

    // No thread running: fold S into mu~ and recompute the topic sums from it (which also removes
    // any drift that lost Hogwild! writes left in them).
    void end_segment(uint32_t n_updates, int n_threads) {
        const double S = scale_[n_updates];
        const int K = m_.n_topics;
        const int64_t V = m_.n_words;
        double* const mu = m_.mu;
        std::vector<double> mass(static_cast<size_t>(K) * n_threads, 0.0);
#pragma omp parallel num_threads(n_threads)
        {
            const int t = thread_id();
            double* my = mass.data() + static_cast<size_t>(t) * K;
            const int64_t lo = slice_begin(V, n_threads, t), hi = slice_begin(V, n_threads, t + 1);
            for (int64_t w = lo; w < hi; ++w) {
                double* row = mu + w * K;
                for (int k = 0; k < K; ++k) {
                    row[k] *= S;
                    my[k] += row[k];
                }
            }
        }
        for (int k = 0; k < K; ++k) {
            double total = 0;
            for (int t = 0; t < n_threads; ++t) total += mass[static_cast<size_t>(t) * K + k];
            const double kept = S * m_.topic_mass[k];
            const double denom = std::fabs(total) + cfg_.topic_word_prior * static_cast<double>(V);
            stats_.topic_mass_drift = std::max(stats_.topic_mass_drift, std::fabs(kept - total) / denom);
            m_.topic_mass[k] = total;
        }
    }

    class Worker {
    public:
        Worker(LdaWork& w, int thread) : w_(w), thread_(thread) {
            const int K = w.m_.n_topics;
            slot_.assign(static_cast<size_t>(w.m_.n_words), -1);
            psi_total_.resize(K);
            mass_inc_.resize(K);
            gamma_.resize(K);
            etheta_.resize(K);
            last_.resize(K);
        }

        void update(const int64_t* docs, int64_t count, const int64_t* /*docs_end*/, uint64_t /*k*/, uint32_t u,
                    const StepClock& clock) {
            const CsrView<double>& X = w_.X_;
            const LdaConfig& c = w_.cfg_;
            const int K = w_.m_.n_topics;
            const double eta = c.topic_word_prior;
            double* const mu = w_.m_.mu;

            // The mini-batch's distinct words get consecutive rows (in order of first occurrence, so
            // a one-thread run is deterministic); row_of_[p] is the row of the batch's p-th nonzero.
            words_.clear();
            row_of_.clear();
            int64_t longest = 0;
            for (int64_t q = 0; q < count; ++q) {
                const auto doc = X.row(docs[q]);
                longest = std::max(longest, doc.nnz);
                for (int64_t a = 0; a < doc.nnz; ++a) {
                    int32_t& s = slot_[doc.idx[a]];
                    if (s < 0) {
                        s = static_cast<int32_t>(words_.size());
                        words_.push_back(doc.idx[a]);
                    }
                    row_of_.push_back(s);
                }
            }
            const int64_t n_rows = static_cast<int64_t>(words_.size());
            beta_.resize(static_cast<size_t>(n_rows * K));
            sstats_.assign(static_cast<size_t>(n_rows * K), 0.0);
            if (static_cast<int64_t>(phinorm_.size()) < longest) phinorm_.resize(static_cast<size_t>(longest));

            // read: exp(E[log beta_kw]) = exp(psi(eta + S mu~_wk) - psi(V eta + S M~_k)) as of step t - 1
            // S of the latest step claimed before this read (k - 1 with one thread, exact). Not S_{k-1}:
            // a thread held up between its claim and this read (the OS, on a busy machine) would then
            // read mu~ holding many later steps' increments, each stored as inc / S_t', and multiply
            // them by a far larger S, inflating lambda by prod (1 - rho)^-1 over the gap; early on, with
            // rho near 0.2, a few updates of delay already distort it severalfold.
            const uint32_t u_read = std::max<uint32_t>(
                u - 1, static_cast<uint32_t>(clock.value.load(std::memory_order_relaxed) - w_.k_base_ - 1));
            const double S_read = w_.scale_[u_read];
            lda::psi_topic_totals(w_.m_.topic_mass, S_read, eta, w_.m_.n_words, K, psi_total_.data());
            for (int64_t r = 0; r < n_rows; ++r) {
                const double* src = mu + static_cast<int64_t>(words_[r]) * K;
                double* dst = beta_.data() + r * K;
                for (int k = 0; k < K; ++k) dst[k] = std::exp(lda::elog_beta(src + k, S_read, eta, psi_total_[k]));
            }

            // local: the E-step of every document, accumulating sstats / exp(E[log beta])
            lda::EStepScratch scratch{etheta_.data(), last_.data(), phinorm_.data()};
            int64_t p = 0;
            for (int64_t q = 0; q < count; ++q) {
                const auto doc = X.row(docs[q]);
                const int32_t* rows = row_of_.data() + p;
                iterations_ += lda::e_step(rows, doc.val, doc.nnz, beta_.data(), K, c.doc_topic_prior,
                                                       c.max_doc_update_iter, c.mean_change_tol, gamma_.data(),
                                                       scratch);
                lda::accumulate_sstats(rows, doc.val, doc.nnz, K, scratch, sstats_.data());
                p += doc.nnz;
            }

            // write: mu~_wk += rho_t D/|B| sstats_kw / S_t, lock-free, then the K topic sums
            const double coef = w_.rho_[u] * c.total_samples / static_cast<double>(count) / w_.scale_[u];
            std::fill(mass_inc_.begin(), mass_inc_.end(), 0.0);
            for (int64_t r = 0; r < n_rows; ++r) {
                double* dst = mu + static_cast<int64_t>(words_[r]) * K;
                const double* ss = sstats_.data() + r * K;
                const double* b = beta_.data() + r * K;
                for (int k = 0; k < K; ++k) {
                    const double inc = coef * (ss[k] * b[k]);
                    shared_store(dst + k, shared_load(dst + k) + inc);
                    mass_inc_[k] += inc;
                }
                slot_[words_[r]] = -1;
            }
            for (int k = 0; k < K; ++k) shared_add(w_.m_.topic_mass + k, mass_inc_[k]);  // no lost update
        }
        // The E-step iteration count goes to the thread's own entry once (no shared line per document).
        void done() { w_.iterations_[static_cast<size_t>(thread_)] += iterations_; }

    private:
        LdaWork& w_;
        int thread_;
        int64_t iterations_ = 0;
        std::vector<int32_t> slot_;    // V: row of a word in this batch's tables, -1 when absent
        std::vector<int32_t> words_;   // the batch's distinct words
        std::vector<int32_t> row_of_;  // per nonzero of the batch
        std::vector<double> beta_, sstats_, phinorm_, psi_total_, mass_inc_, gamma_, etheta_, last_;
    };

    Worker worker(int thread) { return Worker(*this, thread); }

    LdaEpochStats stats() const {
        LdaEpochStats s = stats_;
        for (int64_t n : iterations_) s.e_step_iterations += n;
        return s;
    }

private:
    const CsrView<double>& X_;
    LdaModel m_;
    const LdaConfig& cfg_;
    int nt_;
    std::vector<double> rho_, scale_;
    uint64_t k_base_ = 0;  // updates before the current segment
    std::vector<int64_t> iterations_;  // per thread (written by its owner only)
    LdaEpochStats stats_;
};

// E[log beta] of a fixed lambda (at a segment boundary, S = 1), for the read-only functions: a
// table of exp(E[log beta]) with one row of K contiguous values per word it covers, and the exact
// E[log beta_kw] of a row on demand (lda::doc_loglik needs it where the exp underflows).
// A row costs K digammas and K exps, so the table covers only what is asked for: the distinct words
// of a document matrix X (transform, score: O(K x distinct words of X), where a whole-vocabulary
// table made transforming 10 documents cost ~0.1 s at V = 2^19 and ~0.8 s at V = 2^22), or every
// word (row = word id; the C++ benchmarks index it by word). Each entry is computed by the same
// expression either way, so the E-steps read the same bits whichever rows the table holds.
class FixedBeta {
public:
    // every word of the vocabulary, row w = word w
    FixedBeta(const LdaModel& m, double eta, int n_threads) : m_(m), eta_(eta) {
        words_.resize(static_cast<size_t>(m.n_words));
        for (int64_t w = 0; w < m.n_words; ++w) words_[w] = static_cast<int32_t>(w);
        fill(n_threads);
    }

    // the distinct words of X (its columns must be in [0, V)): rows in increasing word order, and the
    // row of each stored value of X (rows_of)
    FixedBeta(const LdaModel& m, double eta, const CsrView<double>& X, int n_threads) : m_(m), eta_(eta) {
        const int64_t nnz = X.indptr[X.n_rows];
        const int64_t V = m.n_words;
        row_of_.resize(static_cast<size_t>(nnz));
        // Sorting the column ids costs O(nnz log nnz) and nothing per vocabulary word, which is what
        // a few documents against a huge vocabulary need; a V-sized map is cheaper once X is not much
        // sparser than its width (the same trade as state.feature_counts).
        if (nnz * 16 >= V) {
            std::vector<int32_t> slot(static_cast<size_t>(V), -1);
            for (int64_t p = 0; p < nnz; ++p) slot[X.indices[p]] = 0;
            for (int64_t w = 0; w < V; ++w)
                if (slot[w] == 0) {
                    slot[w] = static_cast<int32_t>(words_.size());
                    words_.push_back(static_cast<int32_t>(w));
                }
            for (int64_t p = 0; p < nnz; ++p) row_of_[p] = slot[X.indices[p]];
        } else {
            words_.assign(X.indices, X.indices + nnz);
            std::sort(words_.begin(), words_.end());
            words_.erase(std::unique(words_.begin(), words_.end()), words_.end());
            const int32_t* first = words_.data();
            const int32_t* last = first + words_.size();
            for (int64_t p = 0; p < nnz; ++p)
                row_of_[p] = static_cast<int32_t>(std::lower_bound(first, last, X.indices[p]) - first);
        }
        fill(n_threads);
    }

    // The table rows of document d's words (K values each), for X as given to the constructor;
    // with the whole-vocabulary table a word's row is its id.
    const int32_t* rows_of(const CsrView<double>& X, int64_t d) const noexcept {
        return row_of_.empty() ? X.indices + X.indptr[d] : row_of_.data() + X.indptr[d];
    }
    double elog(int32_t row, int k) const noexcept {
        return lda::elog_beta(m_.mu + static_cast<int64_t>(words_[row]) * m_.n_topics + k, 1.0, eta_,
                              psi_total_[k]);
    }
    const double* exp_table() const noexcept { return table_.data(); }
    int64_t n_rows() const noexcept { return static_cast<int64_t>(words_.size()); }

private:
    void fill(int n_threads) {
        const int K = m_.n_topics;
        const int64_t n = n_rows();
        psi_total_.resize(static_cast<size_t>(K));
        lda::psi_topic_totals(m_.topic_mass, 1.0, eta_, m_.n_words, K, psi_total_.data());
        table_.resize(static_cast<size_t>(n) * K);
        (void)n_threads;
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t r = 0; r < n; ++r)
            for (int k = 0; k < K; ++k) table_[r * K + k] = std::exp(elog(static_cast<int32_t>(r), k));
    }

    const LdaModel& m_;
    double eta_;
    std::vector<int32_t> words_;   // the word of each row
    std::vector<int32_t> row_of_;  // per stored value of X (empty: rows are word ids)
    std::vector<double> psi_total_, table_;
};

inline int64_t longest_row(const CsrView<double>& X) noexcept {
    int64_t longest = 0;
    for (int64_t d = 0; d < X.n_rows; ++d) longest = std::max(longest, X.indptr[d + 1] - X.indptr[d]);
    return longest;
}

// Per-thread scratch of the read-only functions, allocated before the parallel region (nothing in
// the region can throw): exp(E[log theta]), the previous gamma, E[log theta] and phinorm.
struct InferScratch {
    InferScratch(int n_threads, int K, int64_t longest)
        : K_(K), stride_(3 * static_cast<int64_t>(K) + std::max<int64_t>(longest, 1)),
          buf_(static_cast<size_t>(stride_ * n_threads)) {}
    double* etheta(int t) { return buf_.data() + t * stride_; }
    double* last(int t) { return etheta(t) + K_; }
    double* elog_theta(int t) { return etheta(t) + 2 * K_; }
    double* phinorm(int t) { return etheta(t) + 3 * K_; }

private:
    int K_;
    int64_t stride_;
    std::vector<double> buf_;
};

// A DPSVI worker's share of one global step (backends/mpi/worker.py; the server is server/lda.hpp):
// the E-steps of the mini-batch `docs` against lambda - eta as the server sent it, mu (K values per
// word of `words`, the batch's distinct words in first-occurrence order) and the topic sums mass (K),
// spread over n_threads threads (the documents are independent). Writes sstats_kw exp(E[log beta_kw])
// for each of those words to out (K per word), the product LdaWork::update applies; returns the
// E-step iterations. With one thread the arithmetic and its order are LdaWork's.
inline int64_t lda_batch_stats(const CsrView<double>& X, const int64_t* docs, int64_t count, const int32_t* words,
                               int64_t n_words, const double* mu, const double* mass, const LdaConfig& c,
                               int n_threads, double* out) {
    const int K = c.n_components;
    const int nt = have_openmp() ? std::max(1, n_threads) : 1;
    const double eta = c.topic_word_prior;
    // row of each of the batch's nonzeros; a V-sized map kept between calls (reset after use)
    thread_local std::vector<int32_t> slot;
    if (static_cast<int64_t>(slot.size()) < X.n_cols) slot.assign(static_cast<size_t>(X.n_cols), -1);
    for (int64_t r = 0; r < n_words; ++r) slot[words[r]] = static_cast<int32_t>(r);
    std::vector<int64_t> start(static_cast<size_t>(count) + 1, 0);
    for (int64_t q = 0; q < count; ++q) start[q + 1] = start[q] + X.row(docs[q]).nnz;
    std::vector<int32_t> row_of(static_cast<size_t>(start[count]));
    int64_t longest = 0, missing = 0;
    for (int64_t q = 0; q < count; ++q) {
        const auto doc = X.row(docs[q]);
        longest = std::max(longest, doc.nnz);
        for (int64_t a = 0; a < doc.nnz; ++a) {
            const int32_t s = slot[doc.idx[a]];
            missing += s < 0;
            row_of[start[q] + a] = s;
        }
    }
    for (int64_t r = 0; r < n_words; ++r) slot[words[r]] = -1;
    if (missing) throw std::invalid_argument("words does not hold every word of the mini-batch");

    // exp(E[log beta_kw]) = exp(psi(eta + mu_wk) - psi(V eta + mass_k)), as LdaWork's read
    std::vector<double> psi_total(static_cast<size_t>(K)), beta(static_cast<size_t>(n_words * K));
    lda::psi_topic_totals(mass, 1.0, eta, X.n_cols, K, psi_total.data());
    for (int64_t p = 0; p < n_words * K; ++p) beta[p] = std::exp(lda::elog_beta(mu + p, 1.0, eta, psi_total[p % K]));

    // the E-steps, each thread into its own sstats table, summed in thread order (deterministic)
    std::vector<double> acc(static_cast<size_t>(nt) * n_words * K, 0.0);
    InferScratch scratch(nt, K, longest);
    std::vector<double> gamma(static_cast<size_t>(nt) * K);
    int64_t iterations = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(+ : iterations)
    for (int64_t q = 0; q < count; ++q) {
        const int t = thread_id();
        const auto doc = X.row(docs[q]);
        lda::EStepScratch s{scratch.etheta(t), scratch.last(t), scratch.phinorm(t)};
        const int32_t* rows = row_of.data() + start[q];
        iterations += lda::e_step(rows, doc.val, doc.nnz, beta.data(), K, c.doc_topic_prior, c.max_doc_update_iter,
                                  c.mean_change_tol, gamma.data() + static_cast<int64_t>(t) * K, s);
        lda::accumulate_sstats(rows, doc.val, doc.nnz, K, s, acc.data() + static_cast<int64_t>(t) * n_words * K);
    }
    for (int64_t p = 0; p < n_words * K; ++p) {
        double ss = acc[p];
        for (int t = 1; t < nt; ++t) ss += acc[static_cast<int64_t>(t) * n_words * K + p];
        out[p] = ss * beta[p];
    }
    return iterations;
}

// Read-only inference with lambda fixed, parallel over documents: gamma (D x K) of every document
// (the E-step from gamma = 1, as scikit-learn's transform) and, when loglik is not null, each
// document's sum_n c_n log sum_k exp(E[log theta_k] + E[log beta_kw_n]) (the first term of the
// bound, at that gamma). Results do not depend on n_threads, nor on the other documents of X (a
// document's E-step reads the same table entries whichever words the table covers).
inline void lda_infer(const CsrView<double>& X, const LdaModel& m, const LdaConfig& c, int n_threads, double* gamma,
                      double* loglik) {
    const int K = m.n_topics;
    const int nt = have_openmp() ? std::max(1, n_threads) : 1;
    const FixedBeta beta(m, c.topic_word_prior, X, nt);
    const double* table = beta.exp_table();
    auto elog_beta = [&](int32_t row, int k) { return beta.elog(row, k); };
    InferScratch scratch(nt, K, longest_row(X));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
    for (int64_t d = 0; d < X.n_rows; ++d) {
        const int t = thread_id();
        const auto doc = X.row(d);
        lda::EStepScratch s{scratch.etheta(t), scratch.last(t), scratch.phinorm(t)};
        double* g = gamma + d * K;
        const int32_t* rows = beta.rows_of(X, d);
        lda::e_step(rows, doc.val, doc.nnz, table, K, c.doc_topic_prior, c.max_doc_update_iter, c.mean_change_tol,
                    g, s);
        if (loglik)
            loglik[d] = lda::doc_loglik(rows, doc.val, doc.nnz, table, K, g, scratch.etheta(t), scratch.elog_theta(t),
                                        elog_beta);
    }
}

// Each document's likelihood term (as in lda_infer) at a given gamma, parallel over documents.
inline void lda_doc_loglik(const CsrView<double>& X, const LdaModel& m, double eta, const double* gamma,
                           int n_threads, double* loglik) {
    const int K = m.n_topics;
    const int nt = have_openmp() ? std::max(1, n_threads) : 1;
    const FixedBeta beta(m, eta, X, nt);
    const double* table = beta.exp_table();
    auto elog_beta = [&](int32_t row, int k) { return beta.elog(row, k); };
    InferScratch scratch(nt, K, 0);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16)
    for (int64_t d = 0; d < X.n_rows; ++d) {
        const int t = thread_id();
        const auto doc = X.row(d);
        loglik[d] = lda::doc_loglik(beta.rows_of(X, d), doc.val, doc.nnz, table, K, gamma + d * K,
                                    scratch.etheta(t), scratch.elog_theta(t), elog_beta);
    }
}

}  // namespace asyncopt
