// pybind11 glue for logistic regression: array checks, dtype dispatch, GIL release. No logic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "asyncopt/optim/rules.hpp"
#include "asyncopt/core/sparse.hpp"
#include "asyncopt/threads/logistic.hpp"
#include "arrays.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::checked;
using asyncopt_bindings::checked_active;
using asyncopt_bindings::checked_perm;
using asyncopt_bindings::checked_weights;
using asyncopt_bindings::csr_view;
using asyncopt_bindings::epoch_dict;
using asyncopt_bindings::Features;
using asyncopt_bindings::Visit;
using asyncopt_bindings::with_precision;

namespace {

struct EpochArgs {
    py::array indptr, indices, data, y, perm, state, reg_scale, active;
    py::object weight;  // per-row weights, or None
    int64_t n_cols;
    bool check_input;
};

template <class T, class Rule, class Steps>
py::dict run_with(const EpochArgs& a, const StepConfig& sc, const LogisticConfig& given) {
    using State = typename Rule::State;
    const CsrView<T> X = csr_view<T>(a.indptr, a.indices, a.data, a.n_cols, a.check_input);
    const double* y = checked<double>(a.y, "y", {X.n_rows}, false);
    // perm: the rows this epoch visits, each once; all of them for an estimator's epoch, a chunk of
    // a shard for a DPSGD worker's local steps
    const Visit visit = checked_perm(a.perm, X.n_rows, a.check_input);
    // A mini-batch never holds more rows than the epoch visits, so a larger batch_size means the
    // same epoch as batch_size = n_visit; clamping it keeps the per-thread scratch sized by the
    // rows (batch_size = 2^40 on 300 rows asked for 8 TiB) and the driver's claim arithmetic far
    // from overflow.
    LogisticConfig cfg = given;
    cfg.batch_size = std::min(cfg.batch_size, visit.count);
    State* state = checked<State>(a.state, "state", {X.n_cols + 1}, true, 'V');
    const T* reg_scale = nullptr;
    if (cfg.sparse_alpha > 0 && !Rule::reg_in_state) reg_scale = checked<T>(a.reg_scale, "reg_scale", {X.n_cols}, false);
    const Features active = checked_active(a.active, X.n_cols);
    const double* weight = a.weight.is_none() ? nullptr : checked_weights(py::array(a.weight), X.n_rows);
    EpochResult res;
    logistic::ProgressiveLoss progress;
    std::vector<int64_t> record;
    if (cfg.record_staleness) {
        record.assign(static_cast<size_t>(visit.count), -1);
        cfg.staleness_record = record.data();
    }
    {
        py::gil_scoped_release nogil;
        LogisticWork<T, Rule, Steps> work(X, y, reg_scale, state, sc, cfg, active.ids, active.count, weight);
        res = hogwild_epoch(visit.count, visit.rows, cfg, work);
        progress = work.progress();
    }
    py::dict d = epoch_dict(res, cfg.progressive_loss, progress);
    if (cfg.record_staleness) {
        const auto n_rec = static_cast<py::ssize_t>(std::min<uint64_t>(res.updates, record.size()));
        py::array_t<int64_t> delays(n_rec);
        std::copy(record.begin(), record.begin() + n_rec, delays.mutable_data());
        d["delays"] = delays;
    }
    return d;
}

py::dict run_epoch(py::array indptr, py::array indices, py::array data, int64_t n_cols, py::array y, py::array perm,
                   py::array state, py::object reg_scale, py::array active, RuleKind rule, const StepConfig& sc,
                   const LogisticConfig& cfg, bool check_input, py::object sample_weight) {
    if (cfg.batch_size < 1) throw py::value_error("batch_size must be >= 1");
    check_n_threads(cfg.n_threads);
    EpochArgs a{indptr, indices, data, y, perm, state,
                reg_scale.is_none() ? py::array() : py::array(reg_scale), active,
                sample_weight, n_cols, check_input};
    return with_precision(data, [&](auto precision) {
        using T = decltype(precision);
        return visit_rule<T>(rule, sc, [&](auto v) {
            return run_with<T, typename decltype(v)::Rule, typename decltype(v)::Steps>(a, sc, cfg);
        });
    });
}

template <class T, class State>
py::tuple evaluate_typed(const py::array& indptr, const py::array& indices, const py::array& data, int64_t n_cols,
                         const py::array& y, const py::array& state, bool fit_intercept, int64_t n_threads,
                         const py::object& sample_weight) {
    const CsrView<T> X = csr_view<T>(indptr, indices, data, n_cols);
    const double* yp = checked<double>(y, "y", {X.n_rows}, false);
    const State* st = checked<State>(state, "state", {n_cols + 1}, false, 'V');
    const double* weight = sample_weight.is_none() ? nullptr : checked_weights(py::array(sample_weight), X.n_rows);
    double loss = 0;
    int64_t correct = 0;
    {
        py::gil_scoped_release nogil;
        evaluate_logistic(X, yp, st, fit_intercept, static_cast<int>(n_threads), &loss, &correct, weight);
    }
    return py::make_tuple(loss, correct);
}

py::tuple evaluate(py::array indptr, py::array indices, py::array data, int64_t n_cols, py::array y, py::array state,
                   RuleKind rule, bool fit_intercept, int64_t n_threads, py::object sample_weight) {
    check_n_threads(n_threads);
    return with_precision(data, [&](auto precision) {
        using T = decltype(precision);
        return visit_state<T>(rule, [&](auto tag) {
            return evaluate_typed<T, typename decltype(tag)::type>(indptr, indices, data, n_cols, y, state,
                                                                   fit_intercept, n_threads, sample_weight);
        });
    });
}

// The per-coordinate state of `rule` in the precision named by dtype.
template <class F>
decltype(auto) visit_state_named(RuleKind rule, const std::string& dtype, F&& f) {
    if (dtype == "float32") return visit_state<float>(rule, f);
    if (dtype == "float64") return visit_state<double>(rule, f);
    throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

template <class State>
double norm_typed(const py::array& state, const py::array& active) {
    const State* st = checked<State>(state, "state", {-1}, false, 'V');
    const Features act = checked_active(active, state.shape(0));
    return squared_norm(st, act.ids, act.count);
}

double squared_norm_py(py::array state, py::array active, RuleKind rule, const std::string& dtype) {
    return visit_state_named(rule, dtype, [&](auto tag) { return norm_typed<typename decltype(tag)::type>(state, active); });
}

// The byte layout of one coordinate's state (State::fields(), optim/), so Python builds a numpy
// structured dtype that matches the C++ struct exactly (one source of truth).
py::dict state_layout(RuleKind rule, const std::string& dtype) {
    return visit_state_named(rule, dtype, [&](auto tag) {
        using State = typename decltype(tag)::type;
        py::list names, formats, offsets;
        const char* fmt = dtype == "float32" ? "<f4" : "<f8";
        for (const StateField& f : State::fields()) {
            names.append(f.name);
            formats.append(f.real ? fmt : "<u4");
            offsets.append(f.offset);
        }
        py::dict d;
        d["names"] = names;
        d["formats"] = formats;
        d["offsets"] = offsets;
        d["itemsize"] = sizeof(State);
        return d;
    });
}

}  // namespace

void bind_logistic(py::module_& m) {
    py::class_<EpochConfig>(m, "EpochConfig", "One Hogwild! epoch's driver settings (csrc/asyncopt/threads/hogwild.hpp)")
        .def(py::init<>())
        .def_property(
            "n_threads", [](const EpochConfig& c) { return c.n_threads; },
            [](EpochConfig& c, int64_t n) { c.n_threads = check_n_threads(n); },
            "Threads of the epoch, in [1, MAX_THREADS] (core/parallel.hpp says why there is a bound).")
        .def_readwrite("batch_size", &EpochConfig::batch_size)
        .def_readwrite("record_staleness", &EpochConfig::record_staleness,
                       "return each update's delay tau in step order (the epoch's 'delays')")
        .def_readwrite("shuffle", &EpochConfig::shuffle)
        .def_readwrite("seed", &EpochConfig::seed)
        .def_readwrite("k0", &EpochConfig::k0)
        .def_readwrite("lockstep", &EpochConfig::lockstep,
                       "Run the epoch in rounds (default False): every thread claims its step, then all update, "
                       "then the next round, so a round's staleness is exactly 0, 1, ..., threads - 1 whatever the "
                       "scheduling. For tests and controlled studies of staleness (threads/hogwild.hpp).");
    py::class_<LogisticConfig, EpochConfig>(m, "LogisticConfig",
                                            "Driver settings plus logistic-regression options (threads/logistic.hpp)")
        .def(py::init<>())
        .def_readwrite("sparse_alpha", &LogisticConfig::sparse_alpha)
        .def_readwrite("fit_intercept", &LogisticConfig::fit_intercept)
        .def_readwrite("intercept_scale", &LogisticConfig::intercept_scale)
        .def_readwrite("progressive_loss", &LogisticConfig::progressive_loss,
                       "Sum every row's log-loss and correctness at the model its update read (default True); "
                       "the epoch's result then holds loss_sum, correct and rows.");
    m.attr("STALENESS_BINS") = kStalenessBins;
    m.attr("MAX_THREADS") = kMaxThreads;
    m.def("thread_pool_size", [] { return ThreadPool::instance().size(); },
          "Threads of the native pool that runs the threads backend's epochs (started on demand, asleep between "
          "jobs; the caller's own thread is not counted).");
    m.def("hold_pool_joiners_for_testing", [](bool on) { ThreadPool::instance().hold_joiners_for_testing(on); },
          py::arg("on"),
          "Tests only: pool threads arrive after every job has been closed, as if never scheduled in time, so every "
          "multi-thread epoch is run by the calling thread alone.");

    m.def("logistic_epoch", &run_epoch, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"),
          py::arg("y"), py::arg("perm").noconvert(), py::arg("state").noconvert(), py::arg("reg_scale"),
          py::arg("active"), py::arg("rule"), py::arg("steps"), py::arg("config"), py::arg("check_input") = true,
          py::arg("sample_weight") = py::none(),
          "Run one lock-free epoch of logistic regression in place on `state` over the rows listed in `perm`; "
          "returns update and staleness counts (and, with config.progressive_loss, the rows' loss_sum, correct and "
          "rows at the models their updates read). The GIL is released while threads run. check_input=False skips the O(nnz) CSR and "
          "O(n) perm content checks (the caller ran validate_csr on these arrays and owns perm).");
    m.def(
        "validate_csr",
        [](py::array indptr, py::array indices, py::array data, int64_t n_features) {
            with_precision(data, [&](auto precision) {
                (void)csr_view<decltype(precision)>(indptr, indices, data, n_features);
            });
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"),
        "Raise ValueError unless the arrays form a CSR matrix the kernels can trust (canonical rows, "
        "columns in range).");
    m.def("logistic_evaluate", &evaluate, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_features"), py::arg("y"), py::arg("state"), py::arg("rule"), py::arg("fit_intercept"),
          py::arg("n_threads"), py::arg("sample_weight") = py::none(),
          "Sum of (weighted) log-losses and number of correct predictions of the model in `state`.");
    m.def("squared_norm", &squared_norm_py, py::arg("state"), py::arg("active"), py::arg("rule"),
          py::arg("dtype"), "sum of w_j^2 over the features listed in `active`.");
    m.def("state_layout", &state_layout, py::arg("rule"), py::arg("dtype"),
          "Field names, formats, offsets and itemsize of one coordinate's optimizer state.");
}
