// The GPU engine's per-worker code (gpu/logistic_worker.hpp) on the host emulator (gpu/host_exec.hpp):
// the engine of gpu/engine.hpp over HostExec, one host thread running W one-lane workers in lockstep
// rounds (every worker's read, then every worker's write). The same arithmetic as the CPU threads'
// update with the GPU's memory layout and write modes; it measures that code's cost per nonzero on
// this CPU, not a GPU's speed. One thread by construction: frac_of_gather is against the
// one-thread gather over a model of the rule's state size.
#include <memory>
#include <vector>

#include "asyncopt/gpu/engine.hpp"
#include "asyncopt/gpu/host_exec.hpp"
#include "common.hpp"

namespace asyncopt_bench {

using namespace asyncopt;

namespace {

// atomic: SGD's atomic write mode (each step one atomic add: here a compare-exchange loop, as C++17
// has no atomic float add) or racy load + store.
void BM_engine(benchmark::State& state, RuleKind kind, bool atomic) {
    const int workers = static_cast<int>(state.range(0));
    const int64_t batch = state.range(1);
    const SparseData& d = logistic_data();
    const auto data = ExecCsr<HostExec>::from_host(d.indptr.data(), d.indices.data(), d.values.data(), d.y.data(),
                                                   d.n_rows, d.n_cols);
    const StepConfig sc = step_config(kind);
    GpuLogisticConfig cfg;
    cfg.workers = workers;
    cfg.batch_size = batch;
    cfg.sparse_alpha = kind == RuleKind::sgd ? 0.0 : kAlpha;
    cfg.atomic = atomic;
    int64_t longest = 0;
    for (int64_t i = 0; i < d.n_rows; ++i) longest = std::max(longest, d.indptr[i + 1] - d.indptr[i]);
    cfg.max_batch_nnz = batch * longest;
    const std::vector<int32_t>& active = active_features();
    const std::vector<int64_t>& perm = logistic_order();
    visit_state<float>(kind, [&](auto tag) {
        using State = typename decltype(tag)::type;
        const std::vector<State> model = fresh_state<State, !std::is_same_v<State, SgdState<float>>>();
        const auto engine = make_logistic_engine<HostExec>(*data, kind, model.data(), n_over_d().data(), active.data(),
                                                           static_cast<int64_t>(active.size()), perm.data(),
                                                           d.n_rows, sc, cfg);
        uint64_t k0 = 0, seed = 0;
        // step scale 1: no plateau drop
        const auto epoch = [&] { k0 += engine->epoch(seed++, k0, 1.0).updates; };
        const double ns = ns_per_unit(state, warm_then_timed(state, epoch), static_cast<double>(d.nnz()));
        state.counters["ns_per_nnz"] = ns;
        state.counters["frac_of_gather"] = gather_ns_per_nnz(1, sizeof(State) == 4 ? 4 : 32) / ns;
        return 0;
    });
}

void workers_and_batch(benchmark::internal::Benchmark* b) {
    b->ArgNames({"workers", "batch"})->Args({1, 1})->Args({32, 1})->Args({32, 32});
    manual_ms(b);
}

}  // namespace

void register_gpu_emulator() {
    workers_and_batch(benchmark::RegisterBenchmark("gpu_emulator/sgd_atomic_epoch", BM_engine, RuleKind::sgd, true));
    workers_and_batch(benchmark::RegisterBenchmark("gpu_emulator/sgd_racy_epoch", BM_engine, RuleKind::sgd, false));
    workers_and_batch(benchmark::RegisterBenchmark("gpu_emulator/amsgrad_epoch", BM_engine, RuleKind::amsgrad, false));
}

}  // namespace asyncopt_bench
