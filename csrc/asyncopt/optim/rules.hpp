// The update rules by kind, and the one table of their compiled variants.
//
// Each rule (sgd.hpp, amsgrad.hpp, adagrad.hpp, adam.hpp, rmsprop.hpp) is a class template over the model's
// precision T and a Steps view (steps.hpp), and declares its capabilities:
//   additive      a step is one addition to w: the GPU may write it with an atomic add, and the
//                 parameter server can add a DPSGD worker's change or track Picky SGD's moves
//   reg_in_state  n/d_j of the sparse regulariser sits in the coordinate's state (else an array)
//   needs         what it reads from the step tables (StepNeeds)
// Every driver (the Hogwild! threads in bindings/bind_logistic.cpp, the parameter server in
// bindings/bind_server.cpp, the GPU engine in gpu/engine.hpp) turns a RuleKind and a StepConfig into
// a compiled rule through visit_rule, and a state layout through visit_state; adding a rule is its
// header, its kind and name below, one case in each of the two switches, and its Python class
// (python/asyncopt/optim.py). Nothing else names a rule.
#pragma once

#include <stdexcept>
#include <string>

#include "adagrad.hpp"
#include "adam.hpp"
#include "amsgrad.hpp"
#include "rmsprop.hpp"
#include "sgd.hpp"
#include "steps.hpp"

namespace asyncopt {

enum class RuleKind : int { sgd = 0, amsgrad = 1, adagrad = 2, adam = 3, rmsprop = 4 };

// Every kind and its name: asyncopt._core.Rule's values (bind_optim.cpp), which the classes of
// python/asyncopt/optim.py name.
struct RuleName {
    RuleKind kind;
    const char* name;
};
inline constexpr RuleName kRuleNames[] = {
    {RuleKind::sgd, "sgd"}, {RuleKind::amsgrad, "amsgrad"}, {RuleKind::adagrad, "adagrad"}, {RuleKind::adam, "adam"},
    {RuleKind::rmsprop, "rmsprop"}};

// A compiled rule and its Steps, passed to a visitor as a value of an empty type.
template <class RuleT, class StepsT>
struct RuleVariant {
    using Rule = RuleT;
    using Steps = StepsT;
};

// A type passed as a value.
template <class V>
struct TypeTag {
    using type = V;
};

// Calls f(RuleVariant<Rule, Steps>{}) for the variant that runs `kind` under `sc`: constant steps
// have closed forms; decaying schedules and bias correction need per-segment tables; SGD without a
// multiplicative shrink needs no scale at all. Every branch must return the same type.
template <class T, class F>
decltype(auto) visit_rule(RuleKind kind, const StepConfig& sc, F&& f) {
    switch (kind) {
        case RuleKind::sgd:
            if (sc.decay == 0.0) return f(RuleVariant<SgdRule<T, ConstantSteps, false>, ConstantSteps>{});
            if (tabled_steps(sc, SgdRule<T, TabledSteps, true>::needs))
                return f(RuleVariant<SgdRule<T, TabledSteps, true>, TabledSteps>{});
            return f(RuleVariant<SgdRule<T, ConstantSteps, true>, ConstantSteps>{});
        case RuleKind::amsgrad:
            if (tabled_steps(sc, AmsgradRule<T, TabledSteps>::needs))
                return f(RuleVariant<AmsgradRule<T, TabledSteps>, TabledSteps>{});
            return f(RuleVariant<AmsgradRule<T, ConstantSteps>, ConstantSteps>{});
        case RuleKind::adagrad:
            if (tabled_steps(sc, AdagradRule<T, TabledSteps>::needs))
                return f(RuleVariant<AdagradRule<T, TabledSteps>, TabledSteps>{});
            return f(RuleVariant<AdagradRule<T, ConstantSteps>, ConstantSteps>{});
        case RuleKind::adam:
            if (tabled_steps(sc, AdamRule<T, TabledSteps>::needs))
                return f(RuleVariant<AdamRule<T, TabledSteps>, TabledSteps>{});
            return f(RuleVariant<AdamRule<T, ConstantSteps>, ConstantSteps>{});
        case RuleKind::rmsprop:
            if (tabled_steps(sc, RmspropRule<T, TabledSteps>::needs))
                return f(RuleVariant<RmspropRule<T, TabledSteps>, TabledSteps>{});
            return f(RuleVariant<RmspropRule<T, ConstantSteps>, ConstantSteps>{});
    }
    throw std::invalid_argument("unknown update rule kind " + std::to_string(static_cast<int>(kind)));
}

// Calls f(TypeTag<State>{}) with the per-coordinate state of `kind` in precision T (the layout
// Python allocates, evaluation and norms read).
template <class T, class F>
decltype(auto) visit_state(RuleKind kind, F&& f) {
    switch (kind) {
        case RuleKind::sgd: return f(TypeTag<SgdState<T>>{});
        case RuleKind::amsgrad: return f(TypeTag<AmsgradState<T>>{});
        case RuleKind::adagrad: return f(TypeTag<AdagradState<T>>{});
        case RuleKind::adam: return f(TypeTag<AdamState<T>>{});
        case RuleKind::rmsprop: return f(TypeTag<RmspropState<T>>{});
    }
    throw std::invalid_argument("unknown update rule kind " + std::to_string(static_cast<int>(kind)));
}

// A rule's capabilities at run time (they depend only on the kind, not on T or the steps).
struct RuleCapabilities {
    bool additive;
    bool reg_in_state;
    StepNeeds needs;
};

inline RuleCapabilities rule_capabilities(RuleKind kind) {
    return visit_rule<double>(kind, StepConfig{}, [](auto v) {
        using Rule = typename decltype(v)::Rule;
        return RuleCapabilities{Rule::additive, Rule::reg_in_state, Rule::needs};
    });
}

}  // namespace asyncopt
