// pybind11 glue for logistic regression: array checks, dtype dispatch, GIL release. No logic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>

#include "asyncopt/optim/amsgrad.hpp"
#include "asyncopt/optim/sgd.hpp"
#include "asyncopt/sparse.hpp"
#include "asyncopt/train_logistic.hpp"
#include "arrays.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::checked;
using asyncopt_bindings::csr_view;
using asyncopt_bindings::is_dtype;
using asyncopt_bindings::staleness_dict;

namespace {

bool is_amsgrad(const std::string& optimizer) {
    if (optimizer == "amsgrad") return true;
    if (optimizer == "sgd") return false;
    throw py::value_error("optimizer must be 'sgd' or 'amsgrad', got '" + optimizer + "'");
}

struct EpochArgs {
    py::array indptr, indices, data, y, perm, state, reg_scale, active;
    int64_t n_cols;
    bool check_input;
};

template <class T, class Rule, class Steps>
EpochResult run_with(const EpochArgs& a, const StepConfig& sc, const LogisticConfig& cfg) {
    using State = typename Rule::State;
    const CsrView<T> X = csr_view<T>(a.indptr, a.indices, a.data, a.n_cols, a.check_input);
    const double* y = checked<double>(a.y, "y", {X.n_rows}, false);
    // perm: the rows this epoch visits, each once; all of them for an estimator's epoch, a chunk of
    // a shard for a DPSGD worker's local steps
    int64_t* perm = checked<int64_t>(a.perm, "perm", {-1}, true);
    const int64_t n_visit = a.perm.shape(0);
    if (n_visit < 1) throw py::value_error("perm must not be empty");
    if (a.check_input)
        for (int64_t i = 0; i < n_visit; ++i)
            if (perm[i] < 0 || perm[i] >= X.n_rows) throw py::value_error("perm holds an out-of-range row");
    State* state = checked<State>(a.state, "state", {X.n_cols + 1}, true, 'V');
    const T* reg_scale = nullptr;
    if (cfg.sparse_alpha > 0 && !Rule::amsgrad) reg_scale = checked<T>(a.reg_scale, "reg_scale", {X.n_cols}, false);
    const int32_t* active = checked<int32_t>(a.active, "active", {-1}, false);
    const int64_t n_active = a.active.shape(0);
    for (int64_t i = 0; i < n_active; ++i)
        if (active[i] < 0 || active[i] >= X.n_cols) throw py::value_error("active holds an out-of-range feature");
    py::gil_scoped_release nogil;
    LogisticWork<T, Rule, Steps> work(X, y, reg_scale, state, sc, cfg, active, n_active);
    return hogwild_epoch(n_visit, perm, cfg, work);
}

// Picks the compiled variant: constant steps have closed forms; decaying schedules and bias
// correction need per-segment tables; SGD without exact L2 needs no scale at all.
template <class T>
EpochResult run_typed(const EpochArgs& a, bool amsgrad, const StepConfig& sc, const LogisticConfig& cfg) {
    const bool tabled = sc.schedule != Schedule::constant || (amsgrad && sc.bias_correction);
    if (amsgrad)
        return tabled ? run_with<T, AmsgradRule<T, TabledSteps>, TabledSteps>(a, sc, cfg)
                      : run_with<T, AmsgradRule<T, ConstantSteps>, ConstantSteps>(a, sc, cfg);
    if (sc.decay == 0.0) return run_with<T, SgdRule<T, ConstantSteps, false>, ConstantSteps>(a, sc, cfg);
    return tabled ? run_with<T, SgdRule<T, TabledSteps, true>, TabledSteps>(a, sc, cfg)
                  : run_with<T, SgdRule<T, ConstantSteps, true>, ConstantSteps>(a, sc, cfg);
}

py::dict run_epoch(py::array indptr, py::array indices, py::array data, int64_t n_cols, py::array y, py::array perm,
                   py::array state, py::object reg_scale, py::array active, const std::string& optimizer,
                   const StepConfig& sc, const LogisticConfig& cfg, bool check_input) {
    if (cfg.batch_size < 1) throw py::value_error("batch_size must be >= 1");
    if (cfg.n_threads < 1) throw py::value_error("n_threads must be >= 1");
    const bool amsgrad = is_amsgrad(optimizer);
    EpochArgs a{indptr, indices, data, y, perm, state,
                reg_scale.is_none() ? py::array() : py::array(reg_scale), active, n_cols, check_input};
    const py::dtype dt = data.dtype();
    if (is_dtype<float>(dt)) return staleness_dict(run_typed<float>(a, amsgrad, sc, cfg));
    if (is_dtype<double>(dt)) return staleness_dict(run_typed<double>(a, amsgrad, sc, cfg));
    throw py::value_error("data: dtype must be float32 or float64, got " + std::string(py::str(dt)));
}

template <class T, class State>
py::tuple evaluate_typed(const py::array& indptr, const py::array& indices, const py::array& data, int64_t n_cols,
                         const py::array& y, const py::array& state, bool fit_intercept, int n_threads) {
    const CsrView<T> X = csr_view<T>(indptr, indices, data, n_cols);
    const double* yp = checked<double>(y, "y", {X.n_rows}, false);
    const State* st = checked<State>(state, "state", {n_cols + 1}, false, 'V');
    double loss = 0;
    int64_t correct = 0;
    {
        py::gil_scoped_release nogil;
        evaluate_logistic(X, yp, st, fit_intercept, n_threads, &loss, &correct);
    }
    return py::make_tuple(loss, correct);
}

py::tuple evaluate(py::array indptr, py::array indices, py::array data, int64_t n_cols, py::array y, py::array state,
                   const std::string& optimizer, bool fit_intercept, int n_threads) {
    const bool amsgrad = is_amsgrad(optimizer);
    const py::dtype dt = data.dtype();
    if (is_dtype<float>(dt))
        return amsgrad ? evaluate_typed<float, AmsgradState<float>>(indptr, indices, data, n_cols, y, state,
                                                                    fit_intercept, n_threads)
                       : evaluate_typed<float, SgdState<float>>(indptr, indices, data, n_cols, y, state,
                                                                fit_intercept, n_threads);
    if (is_dtype<double>(dt))
        return amsgrad ? evaluate_typed<double, AmsgradState<double>>(indptr, indices, data, n_cols, y, state,
                                                                      fit_intercept, n_threads)
                       : evaluate_typed<double, SgdState<double>>(indptr, indices, data, n_cols, y, state,
                                                                  fit_intercept, n_threads);
    throw py::value_error("data: dtype must be float32 or float64, got " + std::string(py::str(dt)));
}

template <class State>
double norm_typed(const py::array& state, const py::array& active) {
    const State* st = checked<State>(state, "state", {-1}, false, 'V');
    const int32_t* act = checked<int32_t>(active, "active", {-1}, false);
    for (py::ssize_t i = 0; i < active.shape(0); ++i)
        if (act[i] < 0 || act[i] >= state.shape(0)) throw py::value_error("active holds an out-of-range feature");
    return squared_norm(st, act, active.shape(0));
}

double squared_norm_py(py::array state, py::array active, const std::string& optimizer, const std::string& dtype) {
    const bool amsgrad = is_amsgrad(optimizer);
    if (dtype == "float32") return amsgrad ? norm_typed<AmsgradState<float>>(state, active) : norm_typed<SgdState<float>>(state, active);
    if (dtype == "float64") return amsgrad ? norm_typed<AmsgradState<double>>(state, active) : norm_typed<SgdState<double>>(state, active);
    throw py::value_error("dtype must be 'float32' or 'float64'");
}

// The byte layout of one coordinate's state, so Python builds a numpy structured dtype that matches
// the C++ struct exactly (one source of truth).
py::dict state_layout(const std::string& optimizer, const std::string& dtype) {
    const bool amsgrad = is_amsgrad(optimizer);
    const bool f32 = dtype == "float32";
    if (!f32 && dtype != "float64") throw py::value_error("dtype must be 'float32' or 'float64'");
    py::list names, formats, offsets;
    size_t itemsize = 0;
    auto add = [&](const char* name, const char* f, size_t off) {
        names.append(name);
        formats.append(f);
        offsets.append(off);
    };
    const char* fmt = f32 ? "<f4" : "<f8";
#define ASYNCOPT_FIELDS_SGD(S)              \
    add("w", fmt, offsetof(S, w));          \
    itemsize = sizeof(S);
#define ASYNCOPT_FIELDS_AMS(S)              \
    add("w", fmt, offsetof(S, w));          \
    add("m", fmt, offsetof(S, m));          \
    add("v", fmt, offsetof(S, v));          \
    add("vhat", fmt, offsetof(S, vhat));    \
    add("d", fmt, offsetof(S, d));          \
    add("reg", fmt, offsetof(S, reg));      \
    add("stamp", "<u4", offsetof(S, stamp)); \
    itemsize = sizeof(S);
    if (amsgrad) {
        if (f32) { ASYNCOPT_FIELDS_AMS(AmsgradState<float>) } else { ASYNCOPT_FIELDS_AMS(AmsgradState<double>) }
    } else {
        if (f32) { ASYNCOPT_FIELDS_SGD(SgdState<float>) } else { ASYNCOPT_FIELDS_SGD(SgdState<double>) }
    }
#undef ASYNCOPT_FIELDS_SGD
#undef ASYNCOPT_FIELDS_AMS
    py::dict d;
    d["names"] = names;
    d["formats"] = formats;
    d["offsets"] = offsets;
    d["itemsize"] = itemsize;
    return d;
}

}  // namespace

void bind_logistic(py::module_& m) {
    py::enum_<Schedule>(m, "Schedule", "Step-size schedules (csrc/asyncopt/optim/steps.hpp)")
        .value("constant", Schedule::constant)
        .value("invsqrt", Schedule::invsqrt)
        .value("optimal", Schedule::optimal);
    py::class_<StepConfig>(m, "StepConfig", "Step sizes and update-rule constants (csrc/asyncopt/optim/steps.hpp)")
        .def(py::init<>())
        .def_readwrite("learning_rate", &StepConfig::learning_rate)
        .def_readwrite("schedule", &StepConfig::schedule)
        .def_readwrite("schedule_alpha", &StepConfig::schedule_alpha)
        .def_readwrite("bias_correction", &StepConfig::bias_correction)
        .def_readwrite("beta1", &StepConfig::beta1)
        .def_readwrite("beta2", &StepConfig::beta2)
        .def_readwrite("eps", &StepConfig::eps)
        .def_readwrite("decay", &StepConfig::decay);
    py::class_<EpochConfig>(m, "EpochConfig", "One Hogwild! epoch's driver settings (csrc/asyncopt/hogwild.hpp)")
        .def(py::init<>())
        .def_readwrite("n_threads", &EpochConfig::n_threads)
        .def_readwrite("batch_size", &EpochConfig::batch_size)
        .def_readwrite("shuffle", &EpochConfig::shuffle)
        .def_readwrite("seed", &EpochConfig::seed)
        .def_readwrite("k0", &EpochConfig::k0)
        .def_readwrite("lockstep", &EpochConfig::lockstep,
                       "Run the epoch in rounds (default False): every thread claims its step, then all update, "
                       "then the next round, so a round's staleness is exactly 0, 1, ..., threads - 1 whatever the "
                       "scheduling. For tests and controlled studies of staleness (hogwild.hpp).");
    py::class_<LogisticConfig, EpochConfig>(m, "LogisticConfig",
                                            "Driver settings plus logistic-regression options (train_logistic.hpp)")
        .def(py::init<>())
        .def_readwrite("sparse_alpha", &LogisticConfig::sparse_alpha)
        .def_readwrite("fit_intercept", &LogisticConfig::fit_intercept)
        .def_readwrite("intercept_scale", &LogisticConfig::intercept_scale);
    m.attr("STALENESS_BINS") = kStalenessBins;

    m.def("logistic_epoch", &run_epoch, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"),
          py::arg("y"), py::arg("perm").noconvert(), py::arg("state").noconvert(), py::arg("reg_scale"),
          py::arg("active"), py::arg("optimizer"), py::arg("steps"), py::arg("config"), py::arg("check_input") = true,
          "Run one lock-free epoch of logistic regression in place on `state` over the rows listed in `perm`; "
          "returns update and staleness counts. The GIL is released while threads run. check_input=False skips the O(nnz) CSR and "
          "O(n) perm content checks (the caller ran validate_csr on these arrays and owns perm).");
    m.def(
        "validate_csr",
        [](py::array indptr, py::array indices, py::array data, int64_t n_features) {
            const py::dtype dt = data.dtype();
            if (is_dtype<float>(dt)) return (void)csr_view<float>(indptr, indices, data, n_features);
            if (is_dtype<double>(dt)) return (void)csr_view<double>(indptr, indices, data, n_features);
            throw py::value_error("data: dtype must be float32 or float64, got " + std::string(py::str(dt)));
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"),
        "Raise ValueError unless the arrays form a CSR matrix the kernels can trust (canonical rows, "
        "columns in range).");
    m.def("logistic_evaluate", &evaluate, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_features"), py::arg("y"), py::arg("state"), py::arg("optimizer"), py::arg("fit_intercept"),
          py::arg("n_threads"), "Sum of log-losses and number of correct predictions of the model in `state`.");
    m.def("squared_norm", &squared_norm_py, py::arg("state"), py::arg("active"), py::arg("optimizer"),
          py::arg("dtype"), "sum of w_j^2 over the features listed in `active`.");
    m.def("state_layout", &state_layout, py::arg("optimizer"), py::arg("dtype"),
          "Field names, formats, offsets and itemsize of one coordinate's optimizer state.");
}
