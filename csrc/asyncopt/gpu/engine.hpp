// The GPU executor's host side for logistic regression: owns the data and the model in the
// executor's memory, plans each epoch (core/epoch_plan.hpp), builds each segment's step tables
// (optim/steps.hpp) and launches the executor's phases. Written once over an Exec, which supplies
// memory and the phases: CudaExec (csrc/cuda/cuda_exec.cuh) runs them as kernels on the GPU,
// HostExec (host_exec.hpp) runs the same per-worker code on the host in lockstep rounds.
//
// Exec interface (all static):
//   void* alloc(size_t bytes) / void release(void*) / void zero(void*, size_t)
//   void upload(void* dst, const void* host, size_t) / void download(void* host, const void* src, size_t)
//   void shuffle(const Work&, uint64_t seed)                 every worker reshuffles its slice
//   void segment(const Work&)                                every worker runs its share of a segment
//   void finish(const Work&, uint32_t n_updates)             bring the active coordinates up to date
//   void evaluate(const Eval&)                               log-loss and accuracy
//   double squared_norm(const State*, const int32_t* active, int64_t n_active)
//   void column_counts(const int32_t* indices, int64_t nnz, int32_t* counts)   counts zeroed by the caller
//   void synchronize()                                       wait for the phases launched so far
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/interrupt.hpp"
#include "../core/epoch_plan.hpp"
#include "../optim/rules.hpp"
#include "../optim/steps.hpp"
#include "logistic_worker.hpp"

namespace asyncopt {

// An array in the executor's memory, freed with it.
template <class Exec, class V>
class ExecBuffer {
public:
    ExecBuffer() = default;
    explicit ExecBuffer(size_t n) : n_(n), p_(n ? static_cast<V*>(Exec::alloc(n * sizeof(V))) : nullptr) {}
    ~ExecBuffer() {
        if (p_) Exec::release(p_);
    }
    ExecBuffer(ExecBuffer&& o) noexcept : n_(o.n_), p_(o.p_) { o.p_ = nullptr, o.n_ = 0; }
    ExecBuffer& operator=(ExecBuffer&& o) noexcept {
        if (this != &o) {
            if (p_) Exec::release(p_);
            n_ = o.n_, p_ = o.p_;
            o.p_ = nullptr, o.n_ = 0;
        }
        return *this;
    }
    ExecBuffer(const ExecBuffer&) = delete;
    ExecBuffer& operator=(const ExecBuffer&) = delete;

    V* get() const noexcept { return p_; }
    size_t size() const noexcept { return n_; }
    void upload(const V* host, size_t n) {
        if (n > n_) throw std::logic_error("upload larger than the buffer");
        if (n) Exec::upload(p_, host, n * sizeof(V));
    }
    void download(V* host, size_t n) const {
        if (n > n_) throw std::logic_error("download larger than the buffer");
        if (n) Exec::download(host, p_, n * sizeof(V));
    }
    void zero() {
        if (n_) Exec::zero(p_, n_ * sizeof(V));
    }

private:
    size_t n_ = 0;
    V* p_ = nullptr;
};

// A training or evaluation set in an executor's memory: CSR (int64 indptr, int32 indices, float32
// values: the GPU works in float32, the documented device precision) and labels in {-1, +1}.
class GpuDataset {
public:
    virtual ~GpuDataset() = default;
    virtual CsrView<float> view() const = 0;
    virtual const double* labels() const = 0;
    int64_t n_rows() const { return view().n_rows; }
    int64_t n_cols() const { return view().n_cols; }
    virtual int64_t nnz() const = 0;
    // Rows holding each feature (n_cols counts to host memory): the active features and the sparse
    // regulariser's n/d_j of a data set that came as device arrays.
    virtual void column_counts(int32_t* host) const = 0;
    virtual void download_indptr(int64_t* host) const = 0;  // n_rows + 1 offsets
};

template <class Exec>
struct ExecCsr final : GpuDataset {
    ExecBuffer<Exec, int64_t> indptr;
    ExecBuffer<Exec, int32_t> indices;
    ExecBuffer<Exec, float> data;
    ExecBuffer<Exec, double> y;
    int64_t rows = 0, cols = 0;

    CsrView<float> view() const override {
        CsrView<float> v;
        v.indptr = indptr.get();
        v.indices = indices.get();
        v.data = data.get();
        v.n_rows = rows;
        v.n_cols = cols;
        return v;
    }
    const double* labels() const override { return y.get(); }
    int64_t nnz() const override { return static_cast<int64_t>(indices.size()); }
    void download_indptr(int64_t* host) const override { indptr.download(host, indptr.size()); }
    void column_counts(int32_t* host) const override {
        ExecBuffer<Exec, int32_t> counts(static_cast<size_t>(cols));
        counts.zero();
        Exec::column_counts(indices.get(), nnz(), counts.get());
        counts.download(host, counts.size());
    }

    // From host arrays (checked by the caller: canonical CSR, finite values, labels +-1).
    static std::unique_ptr<ExecCsr> from_host(const int64_t* indptr, const int32_t* indices, const float* data,
                                              const double* y, int64_t n_rows, int64_t n_cols) {
        auto d = std::make_unique<ExecCsr>();
        const size_t nnz = static_cast<size_t>(indptr[n_rows]);
        d->rows = n_rows;
        d->cols = n_cols;
        d->indptr = ExecBuffer<Exec, int64_t>(static_cast<size_t>(n_rows) + 1);
        d->indices = ExecBuffer<Exec, int32_t>(nnz);
        d->data = ExecBuffer<Exec, float>(nnz);
        d->y = ExecBuffer<Exec, double>(static_cast<size_t>(n_rows));
        d->indptr.upload(indptr, d->indptr.size());
        d->indices.upload(indices, nnz);
        d->data.upload(data, nnz);
        d->y.upload(y, d->y.size());
        return d;
    }
};

struct GpuLogisticConfig {
    int workers = 1;           // concurrent workers (teams of lanes; warps on the GPU)
    int64_t batch_size = 1;
    bool shuffle = true;
    double sparse_alpha = 0;   // as LogisticConfig
    bool fit_intercept = true;
    double intercept_scale = 1;
    bool atomic = true;        // SGD's write mode: atomic adds (true) or racy load + store
    int64_t max_batch_nnz = 0;  // a bound on one mini-batch's nonzeros (sizes the hash tables)
    uint64_t max_segment_updates = uint64_t{1} << 22;  // caps the step tables (24 bytes per step)
    // Ctrl-C (core/interrupt.hpp): polled before each segment, so an epoch stops after the segment
    // on the device. The flag of the module that constructs this config: Python builds it in
    // asyncopt._core (GpuConfig), whose flag its SIGINT routing sets, and the CUDA module's engine
    // gets a copy of the pointer (each extension module has its own copy of the inline flag).
    const std::atomic<bool>* stop = &g_stop_requested;
};

// The rule-independent face of an engine, which the bindings hold.
class LogisticEngine {
public:
    virtual ~LogisticEngine() = default;
    // One epoch: reshuffle (if configured), then the plan's segments; k0 = updates before it.
    // step_scale: StepConfig::scale for this epoch (the epoch loop's plateau drops)
    virtual EpochResult epoch(uint64_t seed, uint64_t k0, double step_scale) = 0;
    // Sum of log-losses and correct predictions on a data set in the executor's memory.
    virtual void evaluate(const CsrView<float>& X, const double* y, double* loss_sum, int64_t* correct) = 0;
    virtual double squared_norm() = 0;  // sum of w_j^2 over the active features
    virtual void download_state(void* host, size_t bytes) = 0;
    virtual size_t state_bytes() const = 0;
    // The visiting order as the epochs left it (each worker reshuffles its slice in place): a
    // checkpoint keeps it, so a resumed fit visits the rows as the uninterrupted one would have.
    virtual void download_perm(int64_t* host) = 0;
    virtual int64_t n_rows() const = 0;
};

template <class Exec, class Rule, class Steps, bool Atomic>
class LogisticEngineImpl final : public LogisticEngine {
public:
    using State = typename Rule::State;
    using Work = LogisticGpuWork<float, Rule, Atomic>;

    // state: n_cols + 1 host States (uploaded); reg_scale: n_cols floats or null; active: the
    // features to settle at segment ends; perm: the visiting order (n entries, kept on the executor).
    LogisticEngineImpl(const GpuDataset& data, const State* state, const float* reg_scale, const int32_t* active,
                       int64_t n_active, const int64_t* perm, int64_t n, const StepConfig& sc,
                       const GpuLogisticConfig& cfg)
        : sc_(sc), cfg_(cfg), state_(static_cast<size_t>(data.n_cols()) + 1),
          active_(static_cast<size_t>(n_active)), perm_(static_cast<size_t>(n)), clock_(1), stats_(1) {
        // No mini-batch holds more rows than the epoch visits: a larger batch_size is the same epoch
        // as batch_size = n, and clamping it keeps the workers x batch_size scratch sized by the rows.
        cfg_.batch_size = std::min<int64_t>(cfg_.batch_size, n);
        state_.upload(state, state_.size());
        if (reg_scale) {
            reg_scale_ = ExecBuffer<Exec, float>(static_cast<size_t>(data.n_cols()));
            reg_scale_.upload(reg_scale, reg_scale_.size());
        }
        active_.upload(active, active_.size());
        perm_.upload(perm, perm_.size());

        work_.X = data.view();
        work_.y = data.labels();
        work_.perm = perm_.get();
        work_.n = n;
        work_.state = state_.get();
        work_.reg_scale = reg_scale_.get();
        work_.active = active_.get();
        work_.n_active = n_active;
        work_.sc = sc;
        work_.workers = cfg.workers;
        work_.batch = cfg_.batch_size;
        work_.sparse_alpha = cfg.sparse_alpha;
        work_.intercept_scale = cfg.intercept_scale;
        work_.fit_intercept = cfg.fit_intercept;
        work_.clock = clock_.get();
        work_.stats = stats_.get();
        if (cfg_.batch_size > 1) alloc_scratch();
    }

    EpochResult epoch(uint64_t seed, uint64_t k0, double step_scale) override {
        sc_.scale = step_scale;
        work_.sc.scale = step_scale;
        const EpochPlan plan(work_.n, cfg_.workers, cfg_.batch_size,
                             std::min<uint64_t>(Rule::max_segment_updates(sc_), cfg_.max_segment_updates));
        stats_.zero();
        if (cfg_.shuffle) Exec::shuffle(work_, seed);
        uint64_t k_base = k0;
        for (int64_t g = 0; g < plan.segments(); ++g) {
            // a stopped epoch returns the segments it ran, all settled (Exec::finish below)
            if (cfg_.stop && cfg_.stop->load(std::memory_order_relaxed)) break;
            const uint32_t n_updates = static_cast<uint32_t>(plan.segment_updates(g));
            StepTables<Steps> tables(sc_, k_base, n_updates, Rule::needs);
            // The previous segment's kernels may still read the old tables: wait before replacing them.
            Exec::synchronize();
            if (tables_.size() < tables.buffer().size())
                tables_ = ExecBuffer<Exec, double>(tables.buffer().size());
            tables_.upload(tables.buffer().data(), tables.buffer().size());
            work_.rule = Rule(tables.steps_at(tables_.get()), sc_);
            work_.n_seg = plan.segments();
            work_.g = g;
            work_.k_base = k_base;
            Exec::upload(clock_.get(), &k_base, sizeof(uint64_t));
            Exec::segment(work_);
            Exec::finish(work_, n_updates);
            k_base += n_updates;
        }
        Exec::synchronize();
        EpochResult r;
        r.updates = k_base - k0;
        stats_.download(&r.staleness, 1);
        return r;
    }

    void evaluate(const CsrView<float>& X, const double* y, double* loss_sum, int64_t* correct) override {
        ExecBuffer<Exec, double> loss(1);
        ExecBuffer<Exec, unsigned long long> ok(1);
        loss.zero();
        ok.zero();
        LogisticGpuEval<float, State> ev;
        ev.X = X;
        ev.y = y;
        ev.state = state_.get();
        ev.fit_intercept = cfg_.fit_intercept;
        ev.loss = loss.get();
        ev.correct = ok.get();
        Exec::evaluate(ev);
        unsigned long long c = 0;
        loss.download(loss_sum, 1);
        ok.download(&c, 1);
        *correct = static_cast<int64_t>(c);
    }

    double squared_norm() override { return Exec::squared_norm(state_.get(), active_.get(), work_.n_active); }

    void download_state(void* host, size_t bytes) override {
        if (bytes != state_bytes()) throw std::invalid_argument("state: wrong size for this model");
        Exec::synchronize();
        state_.download(static_cast<State*>(host), state_.size());
    }
    size_t state_bytes() const override { return state_.size() * sizeof(State); }
    void download_perm(int64_t* host) override {
        Exec::synchronize();
        perm_.download(host, perm_.size());
    }
    int64_t n_rows() const override { return static_cast<int64_t>(perm_.size()); }

private:
    void alloc_scratch() {
        uint32_t cap = 16;
        while (cap < 2 * static_cast<uint64_t>(cfg_.max_batch_nnz)) {
            if (cap >= (1u << 30)) throw std::invalid_argument("max_batch_nnz too large for the batch hash table");
            cap *= 2;
        }
        int bits = 0;
        while ((1u << bits) < cap) ++bits;
        const size_t W = static_cast<size_t>(cfg_.workers);
        coef_ = ExecBuffer<Exec, double>(W * static_cast<size_t>(cfg_.batch_size));
        keys_ = ExecBuffer<Exec, int32_t>(W * cap);
        grads_ = ExecBuffer<Exec, double>(W * cap);
        counts_ = ExecBuffer<Exec, uint32_t>(W * cap);
        used_ = ExecBuffer<Exec, uint32_t>(W * cap);
        n_used_ = ExecBuffer<Exec, uint32_t>(W);
        std::vector<int32_t> empty(cap, -1);
        for (size_t w = 0; w < W; ++w) Exec::upload(keys_.get() + w * cap, empty.data(), cap * sizeof(int32_t));
        grads_.zero();
        counts_.zero();
        n_used_.zero();
        work_.scratch.coef = coef_.get();
        work_.scratch.keys = keys_.get();
        work_.scratch.grads = grads_.get();
        work_.scratch.counts = counts_.get();
        work_.scratch.used = used_.get();
        work_.scratch.n_used = n_used_.get();
        work_.scratch.cap = cap;
        work_.scratch.shift = 32 - bits;
    }

    StepConfig sc_;
    GpuLogisticConfig cfg_;
    ExecBuffer<Exec, State> state_;
    ExecBuffer<Exec, float> reg_scale_;
    ExecBuffer<Exec, int32_t> active_;
    ExecBuffer<Exec, int64_t> perm_;
    ExecBuffer<Exec, uint64_t> clock_;
    ExecBuffer<Exec, StalenessStats> stats_;
    ExecBuffer<Exec, double> tables_;
    ExecBuffer<Exec, double> coef_, grads_;
    ExecBuffer<Exec, int32_t> keys_;
    ExecBuffer<Exec, uint32_t> counts_, used_, n_used_;
    Work work_;
};

template <class Exec, class Rule, class Steps, bool Atomic>
std::unique_ptr<LogisticEngine> make_engine_with(const GpuDataset& data, const void* state, const float* reg_scale,
                                                 const int32_t* active, int64_t n_active, const int64_t* perm,
                                                 int64_t n, const StepConfig& sc, const GpuLogisticConfig& cfg) {
    return std::make_unique<LogisticEngineImpl<Exec, Rule, Steps, Atomic>>(
        data, static_cast<const typename Rule::State*>(state), reg_scale, active, n_active, perm, n, sc, cfg);
}

// The compiled variant for a rule and its settings, from the table every driver shares
// (optim/rules.hpp). An additive rule (SGD) writes atomically or racily (cfg.atomic); the others race.
template <class Exec>
std::unique_ptr<LogisticEngine> make_logistic_engine(const GpuDataset& data, RuleKind kind, const void* state,
                                                     const float* reg_scale, const int32_t* active, int64_t n_active,
                                                     const int64_t* perm, int64_t n, const StepConfig& sc,
                                                     const GpuLogisticConfig& cfg) {
    if (!dynamic_cast<const ExecCsr<Exec>*>(&data))
        throw std::invalid_argument("the data set lives in another executor's memory than this engine's");
    return visit_rule<float>(kind, sc, [&](auto v) -> std::unique_ptr<LogisticEngine> {
        using Rule = typename decltype(v)::Rule;
        using Steps = typename decltype(v)::Steps;
        if constexpr (Rule::additive) {
            if (cfg.atomic)
                return make_engine_with<Exec, Rule, Steps, true>(data, state, reg_scale, active, n_active, perm, n,
                                                                 sc, cfg);
        }
        return make_engine_with<Exec, Rule, Steps, false>(data, state, reg_scale, active, n_active, perm, n, sc, cfg);
    });
}

}  // namespace asyncopt
