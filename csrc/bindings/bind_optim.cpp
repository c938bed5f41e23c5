// pybind11 glue of the update rules (csrc/asyncopt/optim): their kinds, the step settings every
// driver takes, and each rule's capabilities as compiled (python/asyncopt/optim.py reads them).
#include <pybind11/pybind11.h>

#include "asyncopt/optim/rules.hpp"
#include "asyncopt/optim/steps.hpp"

namespace py = pybind11;
using namespace asyncopt;

void bind_optim(py::module_& m) {
    py::enum_<RuleKind> rule(m, "Rule", "Update-rule kinds (csrc/asyncopt/optim/rules.hpp); the Python classes of "
                                        "asyncopt.optim name theirs");
    for (const RuleName& r : kRuleNames) rule.value(r.name, r.kind);
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
        .def_readwrite("decay", &StepConfig::decay)
        .def_property(
            "scale", [](const StepConfig& c) { return c.scale; },
            [](StepConfig& c, double s) {
                if (!(s > 0 && s <= 1)) throw py::value_error("StepConfig.scale must be in (0, 1], got " + std::to_string(s));
                c.scale = s;
            },
            "Multiplies every step eta_k (the epoch loop's plateau drops); in (0, 1].");
    m.def(
        "rule_capabilities",
        [](RuleKind rule) {
            const RuleCapabilities c = rule_capabilities(rule);
            py::dict d;
            d["additive"] = c.additive;
            d["reg_in_state"] = c.reg_in_state;
            d["moments"] = c.needs.moments;
            d["drift"] = c.needs.drift;
            d["series"] = c.needs.series;
            return d;
        },
        py::arg("rule"),
        "What a compiled rule can do: additive (a step is one addition: GPU atomic writes, DPSGD, Picky SGD), "
        "reg_in_state (the sparse regulariser's n/d_j in the state), and the step tables it reads (moments: "
        "bias correction applies; drift: AMSGrad's closed form; series: Adam's bounded catch-up sum).");
    m.def("series_horizon", &series_horizon, py::arg("steps"),
          "Terms of Adam's lazy catch-up sum that give it to double precision (steps.hpp); raises ValueError "
          "unless beta1 < sqrt(beta2) (1 - learning_rate * decay).");
}
