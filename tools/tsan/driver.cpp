// ThreadSanitizer driver of the threads backend (tools/tsan.sh builds and runs it): the C++ entry
// points that the bindings call (csrc/bindings/bind_logistic.cpp, bind_lda.cpp), driven with 2 to 4
// threads on small synthetic problems, with no Python in the process. Python cannot host TSan here:
// GCC's libtsan preloaded into the uninstrumented CPython segfaults while numpy and scipy import,
// and clang's TSan runtime is static only (it must be linked into an instrumented executable).
//
// Every access to the shared model goes through core/shared.hpp's relaxed atomics, which TSan
// understands, so a report means a plain access that two threads made without ordering: a real
// data race. The problems are kept small (hundreds of features, short rows drawn from a skewed
// distribution) so that threads collide on the same coordinates, lines and counters all the time.
//
// What runs (each block prints one line; exit status 0 unless a result is inconsistent, and TSan's
// exitcode makes any report fail the run):
//   pool       core/thread_pool.hpp: parallel_for / parallel_chunks, jobs submitted from several
//              threads at once, the team growing, each slot run at most once per job (bodies index
//              per-slot data by it), late joiners (hold_joiners_for_testing), an exception in one
//              slot (ParallelExceptions)
//   logistic   threads/hogwild.hpp + threads/logistic.hpp: logistic_epoch's path (LogisticWork under
//              hogwild_epoch) for every rule (SGD, AMSGrad, AdaGrad, Adam) x regularisation (none,
//              sparse, exact / decoupled) x steps (constant; tabled: a decaying schedule or bias
//              correction) x batch size (1, 7) x mode (free-running, lockstep), float32 and float64,
//              at 2, 3 or 4 threads, two epochs each (the step clock carried over), with and without
//              the intercept and the progressive loss; the float32 decays are strong enough that an
//              epoch has several segments (segment ends on the team). Update counts checked. After
//              every epoch, the evaluation pass (evaluate_logistic) on the team.
//   multinomial threads/multinomial.hpp: K = 4 classes, softmax and one-vs-rest, SGD and AMSGrad, with
//              and without the sparse regulariser and per-row weights, batch 1 and 7, free-running
//              and lockstep, 2 to 4 threads, then evaluate_multinomial
//   interrupt  core/interrupt.hpp: request_stop() from another thread in the middle of a
//              free-running epoch (the Ctrl-C path, with a segment end over what was applied), then
//              a full epoch
//   lda        threads/lda.hpp: lda_epoch's path (LdaWork under hogwild_epoch; free-running and
//              lockstep, batch sizes 1 and 8, several segments per epoch), lda_infer (with and
//              without the log-likelihood), lda_doc_loglik and lda_batch_stats (the MPI worker's
//              E-steps), each at 2 to 4 threads
//   attached   optim/attached.hpp: every rule on a caller's array (float32 and float64, constant and
//              tabled steps, with and without the shrink), 3 std::threads stepping overlapping rows at
//              once with catch_up between steps and finish() from one of them, on segments of 7
//              steps (rebases under concurrent steps); step counts checked, model finite
//   --canary   a deliberate plain data race between two threads, nothing else: tools/tsan.sh runs it
//              first and requires TSan to report it, so a build that lost its instrumentation
//              cannot pass silently
//
// Build (tools/tsan.sh does this): clang++ -std=c++17 -fopenmp -fsanitize=thread -g -O1 -Icsrc
// tools/tsan/driver.cpp, with LLVM's OpenMP runtime and its Archer tool, which tells TSan about
// OpenMP's barriers, so the lockstep epochs and LDA's OpenMP regions are checked without false
// reports from the runtime's own synchronisation.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "asyncopt/core/interrupt.hpp"
#include "asyncopt/core/parallel.hpp"
#include "asyncopt/core/sparse.hpp"
#include "asyncopt/core/thread_pool.hpp"
#include "asyncopt/optim/attached.hpp"
#include "asyncopt/optim/rules.hpp"
#include "asyncopt/threads/lda.hpp"
#include "asyncopt/threads/logistic.hpp"
#include "asyncopt/threads/multinomial.hpp"

using namespace asyncopt;

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        std::fprintf(stderr, "tsan driver: FAILED: %s\n", what.c_str());
        ++failures;
    }
}

// ------------------------------------------------------------------ data

// A sparse classification problem: rows of 1..2*mean_nnz distinct features drawn from a Zipf-like
// distribution over n_cols (a few hot features that every thread writes), unit-norm rows, labels
// from a random linear model.
template <class T>
struct Csr {
    std::vector<int64_t> indptr{0};
    std::vector<int32_t> indices;
    std::vector<T> data;
    std::vector<double> y;
    int64_t n_rows = 0, n_cols = 0;
    CsrView<T> view() const { return {indptr.data(), indices.data(), data.data(), n_rows, n_cols}; }
};

template <class T>
Csr<T> make_logistic(int64_t n_rows, int64_t n_cols, int mean_nnz, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::vector<double> cdf(static_cast<size_t>(n_cols));
    double acc = 0;
    for (int64_t r = 0; r < n_cols; ++r) cdf[static_cast<size_t>(r)] = acc += std::pow(r + 1.0, -1.1);
    for (double& c : cdf) c /= acc;
    std::uniform_real_distribution<double> u(0, 1);
    std::normal_distribution<double> normal(0, 1);
    std::vector<double> truth(static_cast<size_t>(n_cols));
    for (double& t : truth) t = normal(gen);
    Csr<T> X;
    X.n_rows = n_rows;
    X.n_cols = n_cols;
    std::vector<int32_t> row;
    for (int64_t i = 0; i < n_rows; ++i) {
        row.clear();
        const int n = 1 + static_cast<int>(u(gen) * 2 * mean_nnz);
        for (int a = 0; a < n; ++a)
            row.push_back(static_cast<int32_t>(std::min<int64_t>(
                std::lower_bound(cdf.begin(), cdf.end(), u(gen)) - cdf.begin(), n_cols - 1)));
        std::sort(row.begin(), row.end());
        row.erase(std::unique(row.begin(), row.end()), row.end());
        const double norm = 1.0 / std::sqrt(static_cast<double>(row.size()));
        double z = 0;
        for (int32_t j : row) {
            X.indices.push_back(j);
            X.data.push_back(static_cast<T>(norm));
            z += norm * truth[static_cast<size_t>(j)];
        }
        X.indptr.push_back(static_cast<int64_t>(X.indices.size()));
        X.y.push_back(u(gen) < 1.0 / (1.0 + std::exp(-2 * z)) ? 1.0 : -1.0);
    }
    return X;
}

// A bag-of-words corpus: documents of 1..2*mean_len tokens over V words (Zipf-like), as counts.
Csr<double> make_corpus(int64_t n_docs, int64_t n_words, int mean_len, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::vector<double> cdf(static_cast<size_t>(n_words));
    double acc = 0;
    for (int64_t r = 0; r < n_words; ++r) cdf[static_cast<size_t>(r)] = acc += std::pow(r + 1.0, -1.0);
    for (double& c : cdf) c /= acc;
    std::uniform_real_distribution<double> u(0, 1);
    Csr<double> X;
    X.n_rows = n_docs;
    X.n_cols = n_words;
    std::vector<int32_t> tokens;
    for (int64_t d = 0; d < n_docs; ++d) {
        tokens.clear();
        const int n = 1 + static_cast<int>(u(gen) * 2 * mean_len);
        for (int t = 0; t < n; ++t)
            tokens.push_back(static_cast<int32_t>(std::min<int64_t>(
                std::lower_bound(cdf.begin(), cdf.end(), u(gen)) - cdf.begin(), n_words - 1)));
        std::sort(tokens.begin(), tokens.end());
        for (size_t a = 0; a < tokens.size();) {
            size_t b = a;
            while (b < tokens.size() && tokens[b] == tokens[a]) ++b;
            X.indices.push_back(tokens[a]);
            X.data.push_back(static_cast<double>(b - a));
            a = b;
        }
        X.indptr.push_back(static_cast<int64_t>(X.indices.size()));
    }
    return X;
}

// The model array as Python allocates it: zeroed, 64-byte aligned (a state never straddles lines).
template <class State>
struct StateArray {
    explicit StateArray(size_t n) : n_(n) {
        const size_t bytes = (n * sizeof(State) + 63) / 64 * 64;
        p_ = static_cast<State*>(std::aligned_alloc(64, bytes));
        if (!p_) throw std::bad_alloc();
        std::memset(static_cast<void*>(p_), 0, bytes);
    }
    ~StateArray() { std::free(p_); }
    StateArray(const StateArray&) = delete;
    StateArray& operator=(const StateArray&) = delete;
    State* data() { return p_; }
    size_t size() const { return n_; }

private:
    State* p_;
    size_t n_;
};

// ------------------------------------------------------------------ thread pool

void run_pool() {
    const int failed_before = failures;
    ThreadPool& pool = ThreadPool::instance();
    // parallel_for: every index exactly once, results written to disjoint slots
    for (int nt : {2, 3, 4}) {
        std::vector<int64_t> out(10000, 0);
        pool.parallel_for(nt, static_cast<int64_t>(out.size()), 97, [&](int64_t i) { out[static_cast<size_t>(i)] = i * i; });
        bool ok = true;
        for (size_t i = 0; i < out.size(); ++i) ok &= out[i] == static_cast<int64_t>(i * i);
        check(ok, "parallel_for at " + std::to_string(nt) + " threads");
    }
    // parallel_chunks: a per-chunk partial reduction, as evaluate_logistic does
    {
        const int64_t n = 50000, chunk = 1000;
        std::vector<int64_t> part(static_cast<size_t>(n / chunk), 0);
        pool.parallel_chunks(4, n, chunk, [&](int64_t c, int64_t lo, int64_t hi) {
            int64_t s = 0;
            for (int64_t i = lo; i < hi; ++i) s += i;
            part[static_cast<size_t>(c)] = s;
        });
        check(std::accumulate(part.begin(), part.end(), int64_t{0}) == n * (n - 1) / 2, "parallel_chunks sum");
    }
    // jobs from several threads at once (the pool serialises them), each with its own team
    {
        std::atomic<int64_t> total{0};
        std::vector<std::thread> callers;
        for (int c = 0; c < 3; ++c)
            callers.emplace_back([&, c] {
                for (int rep = 0; rep < 20; ++rep) {
                    std::vector<int64_t> v(2000, 0);
                    pool.parallel_for(2 + (c + rep) % 3, static_cast<int64_t>(v.size()), 64,
                                      [&](int64_t i) { v[static_cast<size_t>(i)] = 1; });
                    total.fetch_add(std::accumulate(v.begin(), v.end(), int64_t{0}), std::memory_order_relaxed);
                }
            });
        for (auto& t : callers) t.join();
        check(total.load() == 3 * 20 * 2000, "concurrent jobs");
    }
    // run(): each slot at most once per job, even when a body returns at once and more threads
    // wake while the caller is still busy (slots are per-slot indices: LogisticWork's progressive
    // loss, LdaWork's iteration counts); hits is written plainly, so two threads in one slot at
    // once is also a TSan report
    {
        bool once = true;
        for (int rep = 0; rep < 50; ++rep) {
            std::atomic<int> count[4] = {};
            std::vector<int> hits(4, 0);
            pool.run(4, [&](int slot) {
                count[slot].fetch_add(1, std::memory_order_relaxed);
                hits[static_cast<size_t>(slot)] += 1;
                if (slot == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            });
            for (auto& c : count) once &= c.load() <= 1;
            once &= hits[0] == 1;
        }
        check(once, "run(): a slot ran twice in one job");
    }
    // late joiners: the caller alone does the job, the held threads never enter it
    {
        pool.hold_joiners_for_testing(true);
        std::vector<int> v(1000, 0);
        std::atomic<int> slots_seen{0};
        pool.run(4, [&](int slot) {
            slots_seen.fetch_add(1, std::memory_order_relaxed);
            if (slot == 0)
                for (int& x : v) x += 1;
        });
        pool.hold_joiners_for_testing(false);
        check(slots_seen.load() == 1 && std::all_of(v.begin(), v.end(), [](int x) { return x == 1; }),
              "late joiners");
    }
    // an exception in one slot: captured, the others stop, rethrown after the job
    {
        ParallelExceptions errors;
        std::atomic<int64_t> next{0};
        pool.run(4, [&](int) {
            errors.capture([&] {
                for (int64_t i; !errors.failed() && (i = next.fetch_add(1, std::memory_order_relaxed)) < 100000;)
                    if (i == 500) throw std::runtime_error("slot failure");
            });
        });
        bool thrown = false;
        try {
            errors.rethrow();
        } catch (const std::runtime_error&) {
            thrown = true;
        }
        check(thrown, "exception in a slot");
    }
    std::printf("pool: %s (%d pool threads)\n", failures == failed_before ? "ok" : "FAILED", pool.size());
}

// A deliberate data race (plain int written by every slot): TSan must report it.
void run_canary() {
    // Two plain threads, nothing ordering their writes: TSan's happens-before analysis reports the
    // race whatever the scheduling (the threads need not overlap in time). Not the pool: its caller
    // runs every slot itself when the other thread has not joined yet, and one thread has no race.
    int plain = 0;
    auto bump = [&plain] {
        for (int i = 0; i < 1000; ++i) plain = plain + 1;
    };
    std::thread a(bump), b(bump);
    a.join();
    b.join();
    std::printf("canary: plain = %d\n", plain);
}

// ------------------------------------------------------------------ logistic regression

enum class Reg { none, sparse, exact };  // exact: SGD's exact L2, the adaptive rules' decoupled decay
const char* reg_name(Reg r) { return r == Reg::none ? "none" : r == Reg::sparse ? "sparse" : "exact"; }

struct LogisticCase {
    RuleKind rule;
    Reg reg;
    bool tabled;
    int64_t batch;
    bool lockstep;
    int threads;
    bool intercept;
    bool progressive;
};

StepConfig logistic_steps(const LogisticCase& c) {
    StepConfig sc;
    const double alpha = 0.05;
    // strong enough decays that SGD's scaled weights and Adam's series need several segments per epoch
    if (c.rule == RuleKind::sgd) {
        sc.learning_rate = 0.5;
        sc.schedule = c.tabled ? Schedule::optimal : Schedule::constant;
        sc.schedule_alpha = alpha;
    } else {
        sc.learning_rate = 0.05;
        sc.schedule = c.tabled && c.rule == RuleKind::adagrad ? Schedule::invsqrt : Schedule::constant;
        sc.bias_correction = c.tabled;  // AMSGrad and Adam: tabled steps through the bias correction
    }
    sc.decay = c.reg == Reg::exact ? (c.rule == RuleKind::sgd ? alpha : 1.0) : 0.0;
    return sc;
}

template <class T, class Rule, class Steps>
void logistic_case(const Csr<T>& data, const LogisticCase& c, const StepConfig& sc, uint64_t& updates,
                   uint64_t& max_tau, int64_t& segments) {
    using State = typename Rule::State;
    const CsrView<T> X = data.view();
    const int64_t d = X.n_cols;
    StateArray<State> state(static_cast<size_t>(d) + 1);
    // active: every feature the data holds; n / d_j for the sparse regulariser
    std::vector<int64_t> count(static_cast<size_t>(d), 0);
    for (int64_t p = 0; p < X.nnz(); ++p) ++count[static_cast<size_t>(X.indices[p])];
    std::vector<int32_t> active;
    std::vector<T> reg_scale(static_cast<size_t>(d), T(0));
    for (int64_t j = 0; j < d; ++j)
        if (count[static_cast<size_t>(j)] > 0) {
            active.push_back(static_cast<int32_t>(j));
            const T s = static_cast<T>(static_cast<double>(X.n_rows) / static_cast<double>(count[static_cast<size_t>(j)]));
            if constexpr (Rule::reg_in_state) {
                if (c.reg == Reg::sparse) state.data()[j].reg = s;
            }
            reg_scale[static_cast<size_t>(j)] = s;
        }
    LogisticConfig cfg;
    cfg.n_threads = c.threads;
    cfg.batch_size = c.batch;
    cfg.lockstep = c.lockstep;
    cfg.sparse_alpha = c.reg == Reg::sparse ? 0.05 : 0.0;
    cfg.fit_intercept = c.intercept;
    cfg.progressive_loss = c.progressive;
    std::vector<int64_t> perm(static_cast<size_t>(X.n_rows));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937_64(7));
    const T* rs = cfg.sparse_alpha > 0 && !Rule::reg_in_state ? reg_scale.data() : nullptr;
    for (int epoch = 0; epoch < 2; ++epoch) {
        cfg.seed = 1000 + static_cast<uint64_t>(epoch);
        LogisticWork<T, Rule, Steps> work(X, data.y.data(), rs, state.data(), sc, cfg, active.data(),
                                          static_cast<int64_t>(active.size()));
        const EpochResult r = hogwild_epoch(X.n_rows, perm.data(), cfg, work);
        const logistic::ProgressiveLoss progress = work.progress();
        // one update per mini-batch of each thread's slice, in both modes and whatever the segments
        uint64_t expected = 0;
        for (int t = 0; t < c.threads; ++t) expected += static_cast<uint64_t>(worker_batches(X.n_rows, c.threads, c.batch, t));
        check(r.updates == expected, std::string("logistic: update count, reg ") + reg_name(c.reg));
        segments = std::max<int64_t>(segments, EpochPlan(X.n_rows, c.threads, c.batch, work.max_segment_updates()).segments());
        cfg.k0 += r.updates;
        updates += r.updates;
        max_tau = std::max(max_tau, r.staleness.max);
        check(r.staleness.count == r.updates, "logistic: staleness counted for every update");
        if (c.progressive) check(progress.rows == X.n_rows, "logistic: progressive loss over every row");
        double loss = 0;
        int64_t correct = 0;
        evaluate_logistic(X, data.y.data(), state.data(), c.intercept, c.threads, &loss, &correct);
        check(std::isfinite(loss) && correct >= 0 && correct <= X.n_rows, "logistic: evaluation finite");
    }
    bool finite = true;
    for (int64_t j = 0; j <= d; ++j) finite &= std::isfinite(static_cast<double>(state.data()[j].w));
    check(finite, "logistic: finite model");
}

template <class T>
void run_logistic(const char* precision) {
    const Csr<T> data = make_logistic<T>(1200, 300, 6, 11);
    const auto t0 = std::chrono::steady_clock::now();
    int cases = 0;
    uint64_t updates = 0, max_tau = 0;
    int64_t segments = 0;
    const RuleKind rules[] = {RuleKind::sgd, RuleKind::amsgrad, RuleKind::adagrad, RuleKind::adam};
    for (RuleKind rule : rules)
        for (Reg reg : {Reg::none, Reg::sparse, Reg::exact})
            for (bool tabled : {false, true})
                for (int64_t batch : {int64_t{1}, int64_t{7}})
                    for (bool lockstep : {false, true}) {
                        LogisticCase c{rule, reg, tabled, batch, lockstep, 2 + cases % 3, cases % 4 != 3,
                                       cases % 5 != 4};
                        const StepConfig sc = logistic_steps(c);
                        visit_rule<T>(rule, sc, [&](auto v) {
                            logistic_case<T, typename decltype(v)::Rule, typename decltype(v)::Steps>(
                                data, c, sc, updates, max_tau, segments);
                        });
                        ++cases;
                    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("logistic %s: %d cases x 2 epochs, %llu updates, max staleness %llu, up to %lld segments an epoch, "
                "%.1f s\n", precision, cases, static_cast<unsigned long long>(updates),
                static_cast<unsigned long long>(max_tau), static_cast<long long>(segments), s);
}

// K-class epochs (threads/multinomial.hpp): softmax and one-vs-rest, two rules, with and without the
// sparse regulariser and per-row weights, batch 1 and 7, free-running and lockstep; K adjacent
// records per feature and one intercept replica per class
void run_multinomial() {
    const Csr<float> data = make_logistic<float>(1200, 300, 6, 13);
    const CsrView<float> X = data.view();
    const int K = 4;
    const int64_t d = X.n_cols;
    std::vector<int32_t> y(static_cast<size_t>(X.n_rows));
    std::vector<double> weight(static_cast<size_t>(X.n_rows));
    for (int64_t i = 0; i < X.n_rows; ++i) {
        y[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7 + (data.y[static_cast<size_t>(i)] > 0)) % K);
        weight[static_cast<size_t>(i)] = 0.5 + static_cast<double>(i % 3);
    }
    std::vector<int32_t> active(static_cast<size_t>(d));
    std::iota(active.begin(), active.end(), 0);
    std::vector<float> reg_scale(static_cast<size_t>(d), 2.0f);
    const auto t0 = std::chrono::steady_clock::now();
    int cases = 0;
    uint64_t updates = 0;
    for (RuleKind rule : {RuleKind::sgd, RuleKind::amsgrad})
        for (multinomial::Loss loss : {multinomial::Loss::softmax, multinomial::Loss::ovr})
            for (bool sparse : {false, true})
                for (int64_t batch : {int64_t{1}, int64_t{7}})
                    for (bool lockstep : {false, true}) {
                        StepConfig sc;
                        sc.learning_rate = rule == RuleKind::sgd ? 0.2 : 0.02;
                        LogisticConfig cfg;
                        cfg.n_threads = 2 + cases % 3;
                        cfg.batch_size = batch;
                        cfg.lockstep = lockstep;
                        cfg.sparse_alpha = sparse ? 0.05 : 0.0;
                        const double* w = cases % 2 ? weight.data() : nullptr;
                        std::vector<int64_t> perm(static_cast<size_t>(X.n_rows));
                        std::iota(perm.begin(), perm.end(), 0);
                        visit_rule<float>(rule, sc, [&](auto v) {
                            using Rule = typename decltype(v)::Rule;
                            using Steps = typename decltype(v)::Steps;
                            StateArray<typename Rule::State> state(static_cast<size_t>((d + 1) * K));
                            if constexpr (Rule::reg_in_state)
                                for (int64_t j = 0; j < d * K; ++j) state.data()[j].reg = 2.0f;
                            for (int epoch = 0; epoch < 2; ++epoch) {
                                cfg.seed = 77 + static_cast<uint64_t>(epoch);
                                MultinomialWork<float, Rule, Steps> work(
                                    X, y.data(), K, loss, Rule::reg_in_state ? nullptr : reg_scale.data(), state.data(),
                                    sc, cfg, active.data(), d, w);
                                const EpochResult r = hogwild_epoch(X.n_rows, perm.data(), cfg, work);
                                cfg.k0 += r.updates;
                                updates += r.updates;
                                check(r.staleness.count == r.updates, "multinomial: staleness counted for every update");
                                double l = 0;
                                int64_t correct = 0;
                                evaluate_multinomial(X, y.data(), state.data(), K, loss, true, cfg.n_threads, &l, &correct,
                                                     w);
                                check(std::isfinite(l) && correct >= 0 && correct <= X.n_rows,
                                      "multinomial: evaluation finite");
                            }
                        });
                        ++cases;
                    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("multinomial: %d cases x 2 epochs, K=%d, %llu updates, %.1f s\n", cases, K,
                static_cast<unsigned long long>(updates), s);
}

// request_stop() from another thread in the middle of a free-running epoch, as the SIGINT handler
// does: epochs with the stop requested 0.5, 1, 2 .. 64 ms after their start until one is cut short
// after some of its updates, then a full one
void run_interrupt() {
    const Csr<float> data = make_logistic<float>(20000, 300, 6, 12);
    const CsrView<float> X = data.view();
    using Rule = SgdRule<float, ConstantSteps, true>;
    StepConfig sc;
    sc.learning_rate = 0.1;
    sc.decay = 0.01;
    StateArray<Rule::State> state(static_cast<size_t>(X.n_cols) + 1);
    std::vector<int32_t> active(static_cast<size_t>(X.n_cols));
    std::iota(active.begin(), active.end(), 0);
    std::vector<int64_t> perm(static_cast<size_t>(X.n_rows));
    std::iota(perm.begin(), perm.end(), 0);
    LogisticConfig cfg;
    cfg.n_threads = 3;
    uint64_t total = 0;
    int interrupted = 0, epochs = 0;
    auto epoch = [&](int stop_after_us) {
        LogisticWork<float, Rule, ConstantSteps> work(X, data.y.data(), nullptr, state.data(), sc, cfg, active.data(),
                                                      static_cast<int64_t>(active.size()));
        std::thread stopper;
        if (stop_after_us > 0)
            stopper = std::thread([stop_after_us] {
                // no look at the model: nothing may read it while a segment end rewrites it
                std::this_thread::sleep_for(std::chrono::microseconds(stop_after_us));
                request_stop();
            });
        const EpochResult r = hogwild_epoch(X.n_rows, perm.data(), cfg, work);
        if (stopper.joinable()) stopper.join();
        clear_stop();
        check(r.staleness.count == r.updates, "interrupt: every claimed update counted");
        interrupted += r.updates > 0 && r.updates < static_cast<uint64_t>(X.n_rows);  // mid-epoch
        cfg.k0 += r.updates;
        cfg.seed += 1;
        total += r.updates;
        ++epochs;
        return r.updates;
    };
    for (int us = 500; us <= 64000 && !interrupted; us *= 2) epoch(us);
    check(epoch(0) == static_cast<uint64_t>(X.n_rows), "interrupt: a full epoch after a stop");
    bool finite = true;
    for (int64_t j = 0; j <= X.n_cols; ++j) finite &= std::isfinite(state.data()[j].w);
    check(finite, "interrupt: finite model");
    std::printf("interrupt: %d epochs (%d cut short mid-epoch by request_stop), %llu updates\n", epochs, interrupted,
                static_cast<unsigned long long>(total));
}

// ------------------------------------------------------------------ LDA

void run_lda() {
    const auto t0 = std::chrono::steady_clock::now();
    const Csr<double> corpus = make_corpus(400, 200, 12, 13);
    const CsrView<double> X = corpus.view();
    const int K = 5;
    const int64_t V = X.n_cols;
    uint64_t updates = 0;
    int64_t iterations = 0;
    int epochs = 0;
    int64_t segments = 0;
    for (bool lockstep : {false, true})
        for (int64_t batch : {int64_t{1}, int64_t{8}})
            for (int threads : {2, 4}) {
                std::vector<double> mu(static_cast<size_t>(V) * K), mass(K, 0.0);
                std::mt19937_64 gen(5);
                std::gamma_distribution<double> g(100.0, 0.01);
                for (size_t p = 0; p < mu.size(); ++p) {
                    mu[p] = g(gen) - 1.0 / K;
                    mass[p % K] += mu[p];
                }
                const LdaModel m{mu.data(), mass.data(), V, K};
                LdaConfig cfg;
                cfg.n_threads = threads;
                cfg.batch_size = batch;
                cfg.lockstep = lockstep;
                cfg.n_components = K;
                cfg.doc_topic_prior = cfg.topic_word_prior = 1.0 / K;
                cfg.learning_offset = 1.0;  // rho near 0.6 at first: segments of a few hundred steps
                cfg.total_samples = static_cast<double>(X.n_rows);
                std::vector<int64_t> perm(static_cast<size_t>(X.n_rows));
                std::iota(perm.begin(), perm.end(), 0);
                for (int epoch = 0; epoch < 2; ++epoch, ++epochs) {
                    cfg.seed = 77 + static_cast<uint64_t>(epoch);
                    const int nt = have_openmp() ? threads : 1;
                    LdaWork work(X, m, cfg, nt);
                    segments = std::max<int64_t>(segments, EpochPlan(X.n_rows, nt, batch, work.max_segment_updates()).segments());
                    const EpochResult r = hogwild_epoch(X.n_rows, perm.data(), cfg, work);
                    const LdaEpochStats s = work.stats();
                    cfg.k0 += r.updates;
                    updates += r.updates;
                    iterations += s.e_step_iterations;
                    check(std::isfinite(s.topic_mass_drift), "lda: drift finite");
                    uint64_t expected = 0;
                    for (int t = 0; t < nt; ++t) expected += static_cast<uint64_t>(worker_batches(X.n_rows, nt, batch, t));
                    check(r.updates == expected, "lda: update count");
                }
                // read-only inference on the trained model, and the MPI worker's E-steps
                std::vector<double> gamma(static_cast<size_t>(X.n_rows) * K), ll(static_cast<size_t>(X.n_rows));
                lda_infer(X, m, cfg, threads, gamma.data(), ll.data());
                lda_infer(X, m, cfg, threads, gamma.data(), nullptr);
                std::vector<double> ll2(static_cast<size_t>(X.n_rows));
                lda_doc_loglik(X, m, cfg.topic_word_prior, gamma.data(), threads, ll2.data());
                bool ok = true;
                for (int64_t d = 0; d < X.n_rows; ++d) ok &= std::isfinite(ll[static_cast<size_t>(d)]) &&
                                                         std::isfinite(ll2[static_cast<size_t>(d)]);
                check(ok, "lda: finite log-likelihoods");
                std::vector<int64_t> docs(32);
                std::iota(docs.begin(), docs.end(), 0);
                std::vector<int32_t> words;
                std::vector<char> seen(static_cast<size_t>(V), 0);
                for (int64_t q : docs)
                    for (int64_t p = X.indptr[q]; p < X.indptr[q + 1]; ++p)
                        if (!seen[static_cast<size_t>(X.indices[p])]) {
                            seen[static_cast<size_t>(X.indices[p])] = 1;
                            words.push_back(X.indices[p]);
                        }
                std::vector<double> wmu(words.size() * K), out(words.size() * K);
                for (size_t r = 0; r < words.size(); ++r)
                    for (int k = 0; k < K; ++k) wmu[r * K + k] = mu[static_cast<size_t>(words[r]) * K + k];
                iterations += lda_batch_stats(X, docs.data(), static_cast<int64_t>(docs.size()), words.data(),
                                              static_cast<int64_t>(words.size()), wmu.data(), mass.data(), cfg,
                                              threads, out.data());
            }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("lda: %d epochs, %llu updates, up to %lld segments an epoch, %lld E-step iterations, inference "
                "and batch stats, %.1f s\n", epochs, static_cast<unsigned long long>(updates),
                static_cast<long long>(segments), static_cast<long long>(iterations), s);
}

template <class T>
void run_attached(const char* precision) {
    const int64_t R = 48, D = 4, per_thread = 1500;
    const int nt = 3;
    uint64_t total = 0, rebases = 0;
    int cases = 0;
    bool finite = true;
    for (const RuleName& r : kRuleNames)
        for (int tabled = 0; tabled < 2; ++tabled)
            for (int shrink = 0; shrink < 2; ++shrink) {
                StepConfig sc;
                sc.learning_rate = 0.01;
                sc.decay = shrink ? 0.1 : 0.0;
                sc.schedule = tabled ? Schedule::invsqrt : Schedule::constant;
                sc.bias_correction = tabled != 0;
                std::vector<T> W(static_cast<size_t>(R * D), T(0.5));
                std::unique_ptr<AttachedOptimizer> opt =
                    visit_rule<T>(r.kind, sc, [&](auto v) -> std::unique_ptr<AttachedOptimizer> {
                        using V = decltype(v);
                        return std::make_unique<Attached<T, typename V::Rule, typename V::Steps>>(W.data(), R, D, sc,
                                                                                                  7);
                    });
                std::vector<std::thread> threads;
                for (int t = 0; t < nt; ++t)
                    threads.emplace_back([&, t] {
                        std::vector<T> g(static_cast<size_t>(8 * D), T(0.1));
                        int64_t rows[8];
                        for (int64_t s = 0; s < per_thread; ++s) {
                            // distinct within a step (5 i mod 48 for i < 8), overlapping across threads
                            for (int i = 0; i < 8; ++i) rows[i] = (s * 7 + i * 5 + t) % R;
                            opt->step(rows, 8, g.data());
                            if (s % 50 == 0) opt->catch_up(rows, 4);
                            if (t == 0 && s % 400 == 0) opt->finish();
                        }
                    });
                for (std::thread& th : threads) th.join();
                opt->finish();
                check(opt->steps() == static_cast<uint64_t>(nt * per_thread), "attached: step count");
                for (T w : W) finite = finite && std::isfinite(static_cast<double>(w));
                total += opt->steps();
                rebases += opt->rebases();
                ++cases;
            }
    check(finite, "attached: finite model");
    std::printf("attached %s: %d cases, %llu steps on %d threads, %llu rebases\n", precision, cases,
                static_cast<unsigned long long>(total), nt, static_cast<unsigned long long>(rebases));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "--canary") == 0) {
        run_canary();
        return 0;
    }
    std::printf("tsan driver: OpenMP %s\n", have_openmp() ? "on" : "OFF (every epoch runs one thread)");
    if (!have_openmp()) check(false, "built without OpenMP: no thread would race");
    try {
        run_pool();
        run_logistic<float>("float32");
        run_logistic<double>("float64");
        run_multinomial();
        run_interrupt();
        run_lda();
        run_attached<float>("float32");
        run_attached<double>("float64");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tsan driver: exception: %s\n", e.what());
        return 2;
    }
    if (failures) {
        std::fprintf(stderr, "tsan driver: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("tsan driver: all checks passed\n");
    return 0;
}
