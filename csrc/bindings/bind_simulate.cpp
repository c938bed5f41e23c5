// pybind11 glue for the delay simulator (python/asyncopt/backends/simulate.py): array checks, dtype
// and rule dispatch, GIL release. No logic (csrc/asyncopt/simulate/delayed.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "asyncopt/optim/rules.hpp"
#include "asyncopt/simulate/delayed.hpp"
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
using asyncopt_bindings::is_dtype;
using asyncopt_bindings::Visit;

namespace {

// The rule-independent face of DelaySimulator<T, Rule, Steps>, so Python holds one type.
class SimulatorHandle {
public:
    virtual ~SimulatorHandle() = default;
    virtual py::dict epoch(py::array indptr, py::array indices, py::array data, py::array y, py::array perm,
                           py::array delays, uint64_t seed, py::object sample_weight) = 0;
    virtual uint64_t steps() const = 0;
    virtual void set_step_scale(double s) = 0;
    py::object state_owner, reg_owner;  // keep the arrays the simulator points into alive
};

template <class T, class Rule, class Steps>
class SimulatorImpl final : public SimulatorHandle {
public:
    template <class... Args>
    SimulatorImpl(int64_t n_cols, int64_t batch_size, int64_t max_delay, Args&&... args)
        : n_cols_(n_cols), batch_size_(batch_size), max_delay_(max_delay), sim_(std::forward<Args>(args)...) {}

    uint64_t steps() const override { return sim_.steps(); }
    void set_step_scale(double s) override { sim_.set_step_scale(s); }

    py::dict epoch(py::array indptr, py::array indices, py::array data, py::array y, py::array perm, py::array delays,
                   uint64_t seed, py::object sample_weight) override {
        const CsrView<T> X = csr_view<T>(indptr, indices, data, n_cols_, false);
        const double* yp = checked<double>(y, "y", {X.n_rows}, false);
        const Visit visit = checked_perm(perm, X.n_rows, true);
        int64_t* pp = visit.rows;
        const int64_t n = visit.count;
        const int64_t B = std::min(batch_size_, n);  // as the threads' epoch clamps it
        const int64_t updates = (n + B - 1) / B;
        const int64_t* dp = checked<int64_t>(delays, "delays", {updates}, false);
        for (int64_t i = 0; i < updates; ++i)  // the history keeps max_delay iterations, no more
            if (dp[i] < 0 || dp[i] > max_delay_)
                throw py::value_error("delays[" + std::to_string(i) + "] = " + std::to_string(dp[i]) +
                                      " is outside [0, max_delay = " + std::to_string(max_delay_) + "]");
        const double* weight = sample_weight.is_none() ? nullptr : checked_weights(py::array(sample_weight), X.n_rows);
        py::array_t<int64_t> applied_delay(updates);
        py::array_t<uint8_t> accepted(updates);
        std::fill(applied_delay.mutable_data(), applied_delay.mutable_data() + updates, int64_t{-1});
        std::fill(accepted.mutable_data(), accepted.mutable_data() + updates, uint8_t{0});
        SimulateResult res;
        {
            py::gil_scoped_release nogil;
            res = sim_.epoch(X, yp, weight, pp, n, dp, applied_delay.mutable_data(), accepted.mutable_data(), seed, B);
        }
        py::dict d = epoch_dict(res.epoch, true, res.progress);
        d["dropped"] = res.dropped;
        d["delays"] = applied_delay;
        d["accepted"] = accepted.attr("astype")("bool");
        return d;
    }

private:
    int64_t n_cols_, batch_size_, max_delay_;
    DelaySimulator<T, Rule, Steps> sim_;
};

std::unique_ptr<SimulatorHandle> make_simulator(py::array state, int64_t n_features, RuleKind rule,
                                                const std::string& dtype, const StepConfig& sc,
                                                const LogisticConfig& cfg, py::array active, py::object reg_scale,
                                                int64_t max_delay, double picky_threshold, uint64_t k0,
                                                double delay_adaptive) {
    if (n_features < 1) throw py::value_error("n_features must be >= 1");
    if (cfg.batch_size < 1) throw py::value_error("batch_size must be >= 1");
    if (max_delay < 0 || max_delay > (int64_t{1} << 30)) throw py::value_error("max_delay must be in [0, 2^30]");
    if (std::isnan(picky_threshold)) throw py::value_error("picky_threshold must not be NaN (negative: no filter)");
    if (picky_threshold >= 0 && (!rule_capabilities(rule).additive || sc.decay != 0))
        throw py::value_error("Picky SGD needs an additive rule (SGD) without exact L2");
    if (!(delay_adaptive > 0)) throw py::value_error("delay_adaptive must be > 0 (infinity: off)");
    if (std::isfinite(delay_adaptive) && (!rule_capabilities(rule).additive || sc.decay != 0))
        throw py::value_error("delay-adaptive SGD needs an additive rule (SGD) without exact L2");
    auto make = [&](auto precision) -> std::unique_ptr<SimulatorHandle> {
        using T = decltype(precision);
        return visit_rule<T>(rule, sc, [&](auto v) -> std::unique_ptr<SimulatorHandle> {
            using Rule = typename decltype(v)::Rule;
            using Steps = typename decltype(v)::Steps;
            using State = typename Rule::State;
            State* st = checked<State>(state, "state", {n_features + 1}, true, 'V');
            const Features act = checked_active(active, n_features);
            const T* rs = nullptr;
            if (cfg.sparse_alpha > 0 && !Rule::reg_in_state) {
                if (reg_scale.is_none()) throw py::value_error("reg_scale is needed with the sparse regulariser");
                rs = checked<T>(py::array(reg_scale), "reg_scale", {n_features}, false);
            }
            auto h = std::make_unique<SimulatorImpl<T, Rule, Steps>>(
                n_features, cfg.batch_size, max_delay, st, n_features, sc, cfg, act.ids, act.count, rs,
                static_cast<uint32_t>(max_delay), picky_threshold, k0, delay_adaptive);
            h->state_owner = state;
            h->reg_owner = reg_scale;
            return h;
        });
    };
    if (dtype == "float32") return make(float{});
    if (dtype == "float64") return make(double{});
    throw py::value_error("dtype must be 'float32' or 'float64'");
}

}  // namespace

void bind_simulate(py::module_& m) {
    py::class_<SimulatorHandle>(m, "DelaySimulator",
                                "One writer applying logistic-regression updates whose gradients are read at the "
                                "iterate d_t steps earlier (csrc/asyncopt/simulate/delayed.hpp).")
        .def(py::init(&make_simulator), py::arg("state").noconvert(), py::arg("n_features"), py::arg("rule"),
             py::arg("dtype"), py::arg("steps"), py::arg("config"), py::arg("active"), py::arg("reg_scale"),
             py::arg("max_delay"), py::arg("picky_threshold"), py::arg("k0"),
             py::arg("delay_adaptive") = std::numeric_limits<double>::infinity(),
             "Simulate on `state` in place (settled at step k0); the history keeps max_delay iterations; "
             "picky_threshold >= 0 applies an update only if the model moved at most that far since its read; "
             "delay_adaptive = c scales the step of an update with delay d by min(1, c / d).")
        .def("epoch", &SimulatorHandle::epoch, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("y"),
             py::arg("perm").noconvert(), py::arg("delays"), py::arg("seed"), py::arg("sample_weight") = py::none(),
             "One epoch over the rows of perm, one delay per update (delays of length ceil(len(perm) / batch)); "
             "returns the staleness counts of the applied updates, the progressive loss, dropped, and per update "
             "its delay after the cap (delays) and whether it was applied (accepted). The GIL is released.")
        .def("set_step_scale", &SimulatorHandle::set_step_scale, py::arg("scale"),
             "Every later step times scale (the plateau drops), between epochs.")
        .def_property_readonly("steps", &SimulatorHandle::steps, "Iterations so far (the schedule's k).");
}
