// pybind11 glue for multiclass logistic regression (threads/multinomial.hpp): array checks, dtype and
// rule dispatch, GIL release. No logic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "asyncopt/core/sparse.hpp"
#include "asyncopt/optim/rules.hpp"
#include "asyncopt/threads/multinomial.hpp"
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

multinomial::Loss parse_loss(const std::string& loss) {
    if (loss == "softmax") return multinomial::Loss::softmax;
    if (loss == "ovr") return multinomial::Loss::ovr;
    throw py::value_error("loss must be 'softmax' or 'ovr', got '" + loss + "'");
}

int check_classes(int64_t K) {
    if (K < 3 || K > (1 << 20)) throw py::value_error("n_classes must be in [3, 2^20] (two classes: logistic_epoch)");
    return static_cast<int>(K);
}

const int32_t* checked_labels(const py::array& y, int64_t n, int K) {
    const int32_t* p = checked<int32_t>(y, "y", {n}, false);
    for (int64_t i = 0; i < n; ++i)
        if (p[i] < 0 || p[i] >= K) throw py::value_error("y must hold class indices in [0, n_classes)");
    return p;
}

struct Args {
    py::array indptr, indices, data, y, perm, state, reg_scale, active;
    py::object weight;  // per-row weights, or None
    int64_t n_cols;
    int K;
    multinomial::Loss loss;
    bool check_input;
};

template <class T, class Rule, class Steps>
py::dict run_with(const Args& a, const StepConfig& sc, const LogisticConfig& given) {
    using State = typename Rule::State;
    const CsrView<T> X = csr_view<T>(a.indptr, a.indices, a.data, a.n_cols, a.check_input);
    const int32_t* y = a.check_input ? checked_labels(a.y, X.n_rows, a.K) : checked<int32_t>(a.y, "y", {X.n_rows}, false);
    const Visit visit = checked_perm(a.perm, X.n_rows, a.check_input);
    LogisticConfig cfg = given;
    cfg.batch_size = std::min(cfg.batch_size, visit.count);  // as logistic_epoch: scratch sized by the rows
    State* state = checked<State>(a.state, "state", {(X.n_cols + 1) * a.K}, true, 'V');
    const T* reg_scale = nullptr;
    if (cfg.sparse_alpha > 0 && !Rule::reg_in_state) reg_scale = checked<T>(a.reg_scale, "reg_scale", {X.n_cols}, false);
    const Features active = checked_active(a.active, X.n_cols);
    const double* weight = a.weight.is_none() ? nullptr : checked_weights(py::array(a.weight), X.n_rows);
    EpochResult res;
    logistic::ProgressiveLoss progress;
    {
        py::gil_scoped_release nogil;
        MultinomialWork<T, Rule, Steps> work(X, y, a.K, a.loss, reg_scale, state, sc, cfg, active.ids, active.count, weight);
        res = hogwild_epoch(visit.count, visit.rows, cfg, work);
        progress = work.progress();
    }
    return epoch_dict(res, cfg.progressive_loss, progress);
}

py::dict run_epoch(py::array indptr, py::array indices, py::array data, int64_t n_cols, py::array y, int64_t K,
                   py::array perm, py::array state, py::object reg_scale, py::array active, RuleKind rule,
                   const StepConfig& sc, const LogisticConfig& cfg, const std::string& loss, bool check_input,
                   py::object sample_weight) {
    if (cfg.batch_size < 1) throw py::value_error("batch_size must be >= 1");
    check_n_threads(cfg.n_threads);
    Args a{indptr, indices, data, y, perm, state, reg_scale.is_none() ? py::array() : py::array(reg_scale), active,
           sample_weight, n_cols, check_classes(K), parse_loss(loss),
           check_input};
    return with_precision(data, [&](auto precision) {
        using T = decltype(precision);
        return visit_rule<T>(rule, sc, [&](auto v) {
            return run_with<T, typename decltype(v)::Rule, typename decltype(v)::Steps>(a, sc, cfg);
        });
    });
}

py::tuple evaluate(py::array indptr, py::array indices, py::array data, int64_t n_cols, py::array y, int64_t K_in,
                   py::array state, RuleKind rule, bool fit_intercept, const std::string& loss_name, int64_t n_threads,
                   py::object sample_weight) {
    check_n_threads(n_threads);
    const int K = check_classes(K_in);
    const multinomial::Loss loss = parse_loss(loss_name);
    return with_precision(data, [&](auto precision) {
        using T = decltype(precision);
        return visit_state<T>(rule, [&](auto tag) {
            using State = typename decltype(tag)::type;
            const CsrView<T> X = csr_view<T>(indptr, indices, data, n_cols);
            const int32_t* yp = checked_labels(y, X.n_rows, K);
            const State* st = checked<State>(state, "state", {(n_cols + 1) * K}, false, 'V');
            const double* weight = sample_weight.is_none() ? nullptr : checked_weights(py::array(sample_weight), X.n_rows);
            double loss_sum = 0;
            int64_t correct = 0;
            {
                py::gil_scoped_release nogil;
                evaluate_multinomial(X, yp, st, K, loss, fit_intercept, static_cast<int>(n_threads), &loss_sum, &correct,
                                     weight);
            }
            return py::make_tuple(loss_sum, correct);
        });
    });
}

}  // namespace

void bind_multinomial(py::module_& m) {
    m.def("multinomial_epoch", &run_epoch, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_features"), py::arg("y"), py::arg("n_classes"), py::arg("perm").noconvert(),
          py::arg("state").noconvert(), py::arg("reg_scale"), py::arg("active"), py::arg("rule"), py::arg("steps"),
          py::arg("config"), py::arg("loss") = "softmax", py::arg("check_input") = true,
          py::arg("sample_weight") = py::none(),
          "One lock-free epoch of K-class logistic regression ('softmax' or 'ovr') in place on `state` "
          "((n_features + 1) * n_classes records, feature-major, intercepts last); y: int32 class indices. "
          "Returns what logistic_epoch returns. The GIL is released while threads run.");
    m.def("multinomial_evaluate", &evaluate, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_features"), py::arg("y"), py::arg("n_classes"), py::arg("state"), py::arg("rule"),
          py::arg("fit_intercept"), py::arg("loss"), py::arg("n_threads"), py::arg("sample_weight") = py::none(),
          "Summed loss of the kind `loss` and correct (argmax) predictions of the K-class model in `state`.");
}
