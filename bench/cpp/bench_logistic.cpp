// Sparse logistic regression on the synthetic Zipf set (common.hpp): whole Hogwild! epochs of SGD
// and AMSGrad through the extension's own driver (threads/hogwild.hpp, threads/logistic.hpp, the
// rule variant chosen by optim/rules.hpp's visit_rule as the bindings choose it), the two lazy
// catch-ups in isolation, and the mini-batch accumulator.
#include <algorithm>
#include <random>
#include <type_traits>
#include <vector>

#include "asyncopt/core/epoch_plan.hpp"
#include "asyncopt/core/parallel.hpp"
#include "asyncopt/optim/rules.hpp"
#include "asyncopt/problems/logistic.hpp"
#include "asyncopt/threads/hogwild.hpp"
#include "asyncopt/threads/logistic.hpp"
#include "common.hpp"

namespace asyncopt_bench {

using namespace asyncopt;

const std::vector<float>& n_over_d() {
    static const std::vector<float> r = [] {
        const SparseData& d = logistic_data();
        std::vector<int64_t> df(static_cast<size_t>(d.n_cols), 0);
        for (int32_t j : d.indices) ++df[j];
        std::vector<float> out(df.size(), 0.0f);
        for (size_t j = 0; j < df.size(); ++j)
            if (df[j]) out[j] = static_cast<float>(static_cast<double>(d.n_rows) / df[j]);
        return out;
    }();
    return r;
}

namespace {

// ---------------------------------------------------------------- whole epochs

// One iteration = one epoch of every row, the slices' reshuffle and the segment-end catch-up
// included (the model keeps training from one iteration to the next, as the epochs of a fit do).
// ns per nonzero; frac_of_gather against the gather over a model of this rule's state size.
void BM_epoch(benchmark::State& state, RuleKind kind) {
    const int threads = static_cast<int>(state.range(0));
    const int64_t batch = state.range(1);
    const SparseData& d = logistic_data();
    const CsrView<float> X = d.view();
    const StepConfig sc = step_config(kind);
    LogisticConfig cfg;
    cfg.n_threads = threads;
    cfg.batch_size = batch;
    cfg.sparse_alpha = kind == RuleKind::sgd ? 0.0 : kAlpha;
    const std::vector<int32_t>& active = active_features();
    std::vector<int64_t> perm = logistic_order();

    visit_rule<float>(kind, sc, [&](auto v) {
        using Rule = typename decltype(v)::Rule;
        using Steps = typename decltype(v)::Steps;
        using State = typename Rule::State;
        std::vector<State> model = fresh_state<State, Rule::reg_in_state>();
        LogisticWork<float, Rule, Steps> work(X, d.y.data(), n_over_d().data(), model.data(), sc, cfg, active.data(),
                                              static_cast<int64_t>(active.size()));
        auto epoch = [&] {
            const EpochResult r = hogwild_epoch(d.n_rows, perm.data(), cfg, work);
            cfg.k0 += r.updates;
            cfg.seed += 1;
            return r;
        };
        epoch();  // warm-up: pages in, the model away from zero
        double total = 0;
        StalenessStats tau;
        for (auto _ : state) {
            EpochResult r;
            total += timed(state, [&] { r = epoch(); });
            tau.merge(r.staleness);
        }
        const double ns = ns_per_unit(state, total, static_cast<double>(d.nnz()));
        state.counters["ns_per_nnz"] = ns;
        state.counters["frac_of_gather"] = gather_ns_per_nnz(threads, sizeof(State) == 4 ? 4 : 32) / ns;
        state.counters["tau_mean"] = tau.count ? static_cast<double>(tau.sum) / tau.count : 0.0;
        return 0;
    });
}

// ---------------------------------------------------------------- catch-ups

// The variants visit_rule picks for these settings: SGD with exact L2 at a constant step (scaled),
// AMSGrad at a constant step (closed forms) and with bias correction (tables).
using SgdScaled = SgdRule<float, ConstantSteps, true>;
using AmsgradConstant = AmsgradRule<float, ConstantSteps>;
using AmsgradTabled = AmsgradRule<float, TabledSteps>;

// The segment-end catch-up (rule.finish over the active features, as LogisticWork::end_segment runs
// it): SGD folds its scale S_n into u; AMSGrad brings every coordinate from its stamp to step n in
// closed form (P, E and the power tables of steps.hpp; exp() of a table difference for the tabled
// variant), from stamps drawn uniformly in [0, n) and restored before each iteration, untimed. It
// streams the state in index order: frac_of_triad counts the bytes it moves (the state read and
// written, the active list read) against the triad's.
template <class Rule, class Steps>
void BM_finish(benchmark::State& state, RuleKind kind, bool bias_correction) {
    using State = typename Rule::State;
    constexpr bool stamped = !std::is_same_v<State, SgdState<float>>;
    const int threads = static_cast<int>(state.range(0));
    const StepConfig sc = step_config(kind, bias_correction);
    const std::vector<int32_t>& active = active_features();
    const int64_t n_active = static_cast<int64_t>(active.size());
    const uint32_t n_updates = static_cast<uint32_t>(logistic_data().n_rows);  // one epoch of batch 1
    const StepTables<Steps> tables(sc, 0, n_updates, Rule::needs);
    const Rule rule(tables.steps(), sc);
    std::vector<State> start = fresh_state<State, Rule::reg_in_state>();
    std::mt19937 gen(3);
    std::uniform_int_distribution<uint32_t> stamp(0, n_updates - 1);
    for (size_t j = 0; j < start.size(); ++j) {
        start[j].w = 0.01f * static_cast<float>(j % 7);
        if constexpr (stamped) {
            start[j].stamp = stamp(gen);
            start[j].d = 1e-3f;
        }
    }
    std::vector<State> model = start;
    State* const p = model.data();
    const int32_t* const act = active.data();
    double total = 0;
    for (auto _ : state) {
        // untimed: the same start every time (finish rebases the stamps to 0, and repeated
        // catch-ups would decay m and d, or SGD's w, into denormals)
        std::copy(start.begin(), start.end(), model.begin());
        total += timed(state, [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
            for (int64_t a = 0; a < n_active; ++a) rule.finish(p + act[a], n_updates);
        });
    }
    benchmark::DoNotOptimize(model.data());
    const double ns = ns_per_unit(state, total, static_cast<double>(n_active));
    const double bytes = 2.0 * sizeof(State) + sizeof(int32_t);
    state.counters["ns_per_coord"] = ns;
    state.counters["frac_of_triad"] = bytes / ns / triad_bytes_per_ns(threads);
}

// The catch-up inside an update's read (StampedRule::read via rule.dot): every coordinate of the
// rows is stale, so every nonzero evaluates x as of the read step in closed form from its stamp
// (read_stale), nothing stored. The gather's access pattern (same rows, same order, a 32-byte
// state, the same prefetching) plus that arithmetic: frac_of_gather.
template <class Rule, class Steps>
void BM_stale_read(benchmark::State& state, bool bias_correction) {
    using State = typename Rule::State;
    const int threads = static_cast<int>(state.range(0));
    const SparseData& d = logistic_data();
    const CsrView<float> X = d.view();
    const StepConfig sc = step_config(RuleKind::amsgrad, bias_correction);
    const uint32_t n_updates = static_cast<uint32_t>(d.n_rows);
    const int64_t* order = logistic_order().data();
    const StepTables<Steps> tables(sc, 0, n_updates, Rule::needs);
    const Rule rule(tables.steps(), sc);
    std::vector<State> model = fresh_state<State, true>();
    std::mt19937 gen(5);
    std::uniform_int_distribution<uint32_t> stamp(0, n_updates / 2);
    for (size_t j = 0; j < model.size(); ++j) {
        model[j].stamp = stamp(gen);
        model[j].w = 0.01f * static_cast<float>(j % 7);
        model[j].d = 1e-3f;
    }
    const State* const st = model.data();
    const uint32_t u = n_updates;  // reads as of step u - 1, later than every stamp
    const auto ctx = rule.context(u - 1, u, step_coeffs(sc, u, Rule::needs.moments));
    auto pass = [&] {
        double sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        {
            const int t = thread_id();
            const int64_t lo = slice_begin(d.n_rows, threads, t), hi = slice_begin(d.n_rows, threads, t + 1);
            const RowPrefetcher<float> prefetch(X);
            for (int64_t q = lo; q < hi; ++q) {
                prefetch.ahead_of(order + q, order + hi);
                prefetch.model_ahead_of(order + q, order + hi, st);
                const auto row = X.row(order[q]);
                sum += rule.dot(st, row.idx, row.val, row.nnz, ctx);
            }
        }
        benchmark::DoNotOptimize(sum);
    };
    const double ns = ns_per_unit(state, warm_then_timed(state, pass), static_cast<double>(d.nnz()));
    state.counters["ns_per_nnz"] = ns;
    state.counters["frac_of_gather"] = gather_ns_per_nnz(threads, 32) / ns;
}

// ---------------------------------------------------------------- the mini-batch accumulator

// BatchAccumulator (problems/logistic.hpp) on mini-batches of B consecutive rows of each thread's
// slice: reserve, one add per nonzero, one drain. It never touches the model (a table of twice the
// batch's nonzeros, in L1/L2): frac_of_gather says what it costs next to the model reads of the
// same nonzeros that it saves from being repeated (a 4-byte model).
void BM_accumulator(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    const int64_t B = state.range(1);
    const SparseData& d = logistic_data();
    const CsrView<float> X = d.view();
    const int64_t* order = logistic_order().data();
    auto pass = [&] {
        double sum = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        {
            const int t = thread_id();
            const int64_t lo = slice_begin(d.n_rows, threads, t), hi = slice_begin(d.n_rows, threads, t + 1);
            const RowPrefetcher<float> prefetch(X);
            BatchAccumulator acc;
            for (int64_t p = lo; p < hi; p += B) {
                const int64_t count = std::min(B, hi - p);
                acc.reserve(batch_nnz(X, order + p, count));
                for (int64_t q = 0; q < count; ++q) {
                    prefetch.ahead_of(order + p + q, order + hi);
                    const auto row = X.row(order[p + q]);
                    const double coef = 1.0 / static_cast<double>(q + 1);
                    for (int64_t a = 0; a < row.nnz; ++a) acc.add(row.idx[a], coef * static_cast<double>(row.val[a]));
                }
                acc.drain([&](int32_t j, double g, uint32_t rows) { sum += g * rows + j; });
            }
        }
        benchmark::DoNotOptimize(sum);
    };
    const double ns = ns_per_unit(state, warm_then_timed(state, pass), static_cast<double>(d.nnz()));
    state.counters["ns_per_nnz"] = ns;
    state.counters["frac_of_gather"] = gather_ns_per_nnz(threads, 4) / ns;
}

void threads_and_batch(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> batches) {
    b->ArgNames({"threads", "batch"});
    for (int64_t B : batches)
        for (int t = 1; t <= max_threads(); ++t) b->Args({t, B});
    manual_ms(b);
}

}  // namespace

void register_logistic() {
    threads_and_batch(benchmark::RegisterBenchmark("logistic/sgd_epoch", BM_epoch, RuleKind::sgd), {1, 32});
    threads_and_batch(benchmark::RegisterBenchmark("logistic/amsgrad_epoch", BM_epoch, RuleKind::amsgrad), {1, 32});
    auto each_thread_count = [](benchmark::internal::Benchmark* b) { b->Apply(thread_range); };
    each_thread_count(benchmark::RegisterBenchmark("catchup/sgd_finish", BM_finish<SgdScaled, ConstantSteps>,
                                                   RuleKind::sgd, false));
    each_thread_count(benchmark::RegisterBenchmark("catchup/amsgrad_finish", BM_finish<AmsgradConstant, ConstantSteps>,
                                                   RuleKind::amsgrad, false));
    each_thread_count(benchmark::RegisterBenchmark("catchup/amsgrad_tabled_finish",
                                                   BM_finish<AmsgradTabled, TabledSteps>, RuleKind::amsgrad, true));
    each_thread_count(benchmark::RegisterBenchmark("catchup/amsgrad_stale_read",
                                                   BM_stale_read<AmsgradConstant, ConstantSteps>, false));
    each_thread_count(benchmark::RegisterBenchmark("catchup/amsgrad_tabled_stale_read",
                                                   BM_stale_read<AmsgradTabled, TabledSteps>, true));
    threads_and_batch(benchmark::RegisterBenchmark("logistic/batch_accumulator", BM_accumulator), {32, 512});
}

}  // namespace asyncopt_bench
