// Bindings of the actor-critic workload (csrc/asyncopt/rl, csrc/asyncopt/threads/actor_critic.hpp):
// the built-in environments (for tests against gymnasium), the network's forward and backward
// passes and the n-step returns (for the NumPy reference and the gradient check), and the trainer
// object that asyncopt.rl.ActorCritic drives. Glue only: arrays are checked here, the GIL is
// released for every native loop.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "asyncopt/core/parallel.hpp"
#include "asyncopt/rl/a2c.hpp"
#include "asyncopt/rl/acrobot.hpp"
#include "asyncopt/rl/cartpole.hpp"
#include "asyncopt/rl/mlp.hpp"
#include "asyncopt/threads/actor_critic.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::checked;

namespace {

using F64 = py::array_t<double, py::array::c_style>;
using F32 = py::array_t<float, py::array::c_style>;

rl::Mlp make_net(int obs_dim, const std::vector<int>& hidden, int n_actions) {
    if (obs_dim > rl::Mlp::kMaxObs) throw py::value_error("obs_dim must be <= " + std::to_string(rl::Mlp::kMaxObs));
    if (n_actions > 64) throw py::value_error("n_actions must be <= 64");
    return rl::Mlp(obs_dim, hidden, n_actions);
}

// A built-in environment stepped one call at a time from Python: only for tests against gymnasium
// (training steps environments inside the trainer's threads, never through this).
template <class Env>
struct PyEnv {
    Env env;
    Rng rng;
    explicit PyEnv(uint64_t seed) : rng(seed, 0) {}
    F32 reset() {
        F32 obs(Env::kObsDim);
        env.reset(rng, obs.mutable_data());
        return obs;
    }
    py::tuple step(int action) {
        if (action < 0 || action >= Env::kActions)
            throw py::value_error("action must be in [0, " + std::to_string(Env::kActions) + "), got " + std::to_string(action));
        F32 obs(Env::kObsDim);
        const rl::StepResult r = env.step(action, obs.mutable_data());
        return py::make_tuple(obs, r.reward, r.terminated, r.truncated);
    }
    F64 state() const { return F64(4, env.state()); }
    void set_state(const F64& s, int elapsed) {
        if (s.size() != 4) throw py::value_error("state must have 4 values");
        env.set_state(s.data(), elapsed);
    }
};

template <class Env>
void bind_env(py::module_& m, const char* name) {
    py::class_<PyEnv<Env>>(m, name)
        .def(py::init<uint64_t>(), py::arg("seed") = 0)
        .def("reset", &PyEnv<Env>::reset)
        .def("step", &PyEnv<Env>::step, py::arg("action"))
        .def("state", &PyEnv<Env>::state)
        .def("set_state", &PyEnv<Env>::set_state, py::arg("state"), py::arg("elapsed") = 0)
        .def_property_readonly_static("obs_dim", [](py::object) { return Env::kObsDim; })
        .def_property_readonly_static("n_actions", [](py::object) { return Env::kActions; })
        .def_property_readonly_static("max_steps", [](py::object) { return Env::kMaxSteps; })
        .def_property_readonly_static("solved_return", [](py::object) { return Env::kSolvedReturn; });
}

// n observations (n x obs_dim float32) through the network at theta: (log pi (n x A), V (n)).
py::tuple mlp_forward(const F64& theta, const F32& obs, int obs_dim, const std::vector<int>& hidden, int n_actions) {
    const rl::Mlp net = make_net(obs_dim, hidden, n_actions);
    checked<double>(theta, "theta", {net.n_params()}, false);
    checked<float>(obs, "obs", {-1, obs_dim}, false);
    const int64_t n = obs.shape(0);
    F64 logp({n, static_cast<int64_t>(n_actions)}), v(n);
    {
        py::gil_scoped_release nogil;
        std::vector<double> act(static_cast<size_t>(net.activation_size()));
        for (int64_t i = 0; i < n; ++i) {
            v.mutable_data()[i] = net.forward(theta.data(), obs.data() + i * obs_dim, act.data());
            std::copy(net.log_probs(act.data()), net.log_probs(act.data()) + n_actions, logp.mutable_data() + i * n_actions);
        }
    }
    return py::make_tuple(logp, v);
}

// The gradient of sum_i [dlogits_i . logits_i + dvalue_i V_i] at theta (backprop of given output
// gradients): the finite-difference test's handle on backward() alone.
F64 mlp_backward(const F64& theta, const F32& obs, const F64& dlogits, const F64& dvalue, int obs_dim,
                 const std::vector<int>& hidden, int n_actions) {
    const rl::Mlp net = make_net(obs_dim, hidden, n_actions);
    checked<double>(theta, "theta", {net.n_params()}, false);
    checked<float>(obs, "obs", {-1, obs_dim}, false);
    const int64_t n = obs.shape(0);
    checked<double>(dlogits, "dlogits", {n, n_actions}, false);
    checked<double>(dvalue, "dvalue", {n}, false);
    F64 grad(net.n_params());
    std::fill(grad.mutable_data(), grad.mutable_data() + net.n_params(), 0.0);
    {
        py::gil_scoped_release nogil;
        std::vector<double> act(static_cast<size_t>(net.activation_size())), scratch(static_cast<size_t>(2 * net.max_width()));
        for (int64_t i = 0; i < n; ++i) {
            net.forward(theta.data(), obs.data() + i * obs_dim, act.data());
            net.backward(theta.data(), obs.data() + i * obs_dim, act.data(), dlogits.data() + i * n_actions,
                         dvalue.data()[i], grad.mutable_data(), scratch.data());
        }
    }
    return grad;
}

using Trainer = ActorCriticTrainer;

py::dict episodes_dict(Trainer& t, size_t from) {
    const std::vector<EpisodeRecord> eps = t.episodes(from);
    const auto n = static_cast<py::ssize_t>(eps.size());
    py::array_t<int64_t> step(n);
    F64 ret(n);
    py::array_t<int32_t> length(n), thread(n);
    for (py::ssize_t i = 0; i < n; ++i) {
        step.mutable_data()[i] = eps[static_cast<size_t>(i)].step;
        ret.mutable_data()[i] = eps[static_cast<size_t>(i)].ret;
        length.mutable_data()[i] = eps[static_cast<size_t>(i)].length;
        thread.mutable_data()[i] = eps[static_cast<size_t>(i)].thread;
    }
    py::dict d;
    d["step"] = step;
    d["return"] = ret;
    d["length"] = length;
    d["thread"] = thread;
    return d;
}

}  // namespace

void bind_rl(py::module_& m) {
    bind_env<rl::CartPole>(m, "CartPoleEnv");
    bind_env<rl::Acrobot>(m, "AcrobotEnv");

    m.def("mlp_n_params", [](int obs_dim, const std::vector<int>& hidden, int n_actions) {
        return make_net(obs_dim, hidden, n_actions).n_params();
    }, py::arg("obs_dim"), py::arg("hidden"), py::arg("n_actions"));
    m.def("mlp_forward", &mlp_forward, py::arg("theta"), py::arg("obs"), py::arg("obs_dim"), py::arg("hidden"),
          py::arg("n_actions"));
    m.def("mlp_backward", &mlp_backward, py::arg("theta"), py::arg("obs"), py::arg("dlogits"), py::arg("dvalue"),
          py::arg("obs_dim"), py::arg("hidden"), py::arg("n_actions"));
    m.def(
        "n_step_returns",
        [](const F64& rewards, const py::array_t<uint8_t, py::array::c_style>& terminated,
           const py::array_t<uint8_t, py::array::c_style>& truncated, const F64& truncation_value, const F64& last_value,
           double gamma) {
            checked<double>(rewards, "rewards", {-1, -1}, false);
            const int64_t T = rewards.shape(0), E = rewards.shape(1);
            checked<uint8_t>(terminated, "terminated", {T, E}, false);
            checked<uint8_t>(truncated, "truncated", {T, E}, false);
            checked<double>(truncation_value, "truncation_value", {T, E}, false);
            checked<double>(last_value, "last_value", {E}, false);
            F64 out({T, E});
            rl::n_step_returns(static_cast<int>(T), static_cast<int>(E), gamma, rewards.data(), terminated.data(),
                               truncated.data(), truncation_value.data(), last_value.data(), out.mutable_data());
            return out;
        },
        py::arg("rewards"), py::arg("terminated"), py::arg("truncated"), py::arg("truncation_value"),
        py::arg("last_value"), py::arg("gamma"));

    py::class_<ActorCriticConfig>(m, "ActorCriticConfig")
        .def(py::init<>())
        .def_readwrite("n_steps", &ActorCriticConfig::n_steps)
        .def_readwrite("n_envs", &ActorCriticConfig::n_envs)
        .def_readwrite("seed", &ActorCriticConfig::seed)
        .def_readwrite("solve_window", &ActorCriticConfig::solve_window)
        .def_readwrite("solve_return", &ActorCriticConfig::solve_return)
        .def_readwrite("stop_when_solved", &ActorCriticConfig::stop_when_solved)
        .def_property("gamma", [](const ActorCriticConfig& c) { return c.loss.gamma; },
                      [](ActorCriticConfig& c, double v) { c.loss.gamma = v; })
        .def_property("value_coef", [](const ActorCriticConfig& c) { return c.loss.value_coef; },
                      [](ActorCriticConfig& c, double v) { c.loss.value_coef = v; })
        .def_property("entropy_coef", [](const ActorCriticConfig& c) { return c.loss.entropy_coef; },
                      [](ActorCriticConfig& c, double v) { c.loss.entropy_coef = v; })
        .def_property("max_grad_norm", [](const ActorCriticConfig& c) { return c.loss.max_grad_norm; },
                      [](ActorCriticConfig& c, double v) { c.loss.max_grad_norm = v; });

    py::class_<Trainer>(m, "ActorCriticTrainer")
        .def(py::init([](int env_kind, int obs_dim, const std::vector<int>& hidden, int n_actions, RuleKind rule,
                         const StepConfig& sc, const ActorCriticConfig& cfg, const F64& theta0, int64_t max_threads) {
                 const int nt = check_n_threads(max_threads, "max_threads");
                 rl::Mlp net = make_net(obs_dim, hidden, n_actions);
                 checked<double>(theta0, "theta0", {net.n_params()}, false);
                 return make_actor_critic(env_kind, rule, std::move(net), sc, cfg, theta0.data(), nt);
             }),
             py::arg("env_kind"), py::arg("obs_dim"), py::arg("hidden"), py::arg("n_actions"), py::arg("rule"),
             py::arg("step_config"), py::arg("config"), py::arg("theta0"), py::arg("max_threads"))
        .def(
            "train",
            [](Trainer& t, int64_t budget, int64_t n_threads) {
                if (budget < 1) throw py::value_error("budget must be >= 1");
                const int nt = check_n_threads(n_threads);
                TrainResult r;
                {
                    py::gil_scoped_release nogil;
                    r = t.train(budget, nt);
                }
                EpochResult er;
                er.updates = r.updates;
                er.staleness = r.staleness;
                py::dict d = asyncopt_bindings::staleness_dict(er);
                d["env_steps"] = r.env_steps;
                d["interrupted"] = r.interrupted;
                return d;
            },
            py::arg("budget"), py::arg("n_threads"),
            "Up to budget environment steps (claimed n_steps * n_envs at a time) on n_threads threads, GIL released.")
        .def(
            "update_external",
            [](Trainer& t, const F32& obs, const py::array_t<int32_t, py::array::c_style>& actions, const F64& rewards,
               const py::array_t<uint8_t, py::array::c_style>& terminated,
               const py::array_t<uint8_t, py::array::c_style>& truncated, const F64& truncation_value,
               const F64& last_value) {
                const rl::Mlp& net = t.net();
                checked<double>(rewards, "rewards", {-1, -1}, false);
                const int64_t T = rewards.shape(0), E = rewards.shape(1);
                checked<float>(obs, "obs", {T, E, net.obs_dim()}, false);
                checked<int32_t>(actions, "actions", {T, E}, false);
                checked<uint8_t>(terminated, "terminated", {T, E}, false);
                checked<uint8_t>(truncated, "truncated", {T, E}, false);
                checked<double>(truncation_value, "truncation_value", {T, E}, false);
                checked<double>(last_value, "last_value", {E}, false);
                for (int64_t i = 0; i < T * E; ++i)
                    if (actions.data()[i] < 0 || actions.data()[i] >= net.n_actions())
                        throw py::value_error("actions must be in [0, " + std::to_string(net.n_actions()) + ")");
                rl::Rollout r;
                r.resize(net, static_cast<int>(T), static_cast<int>(E));
                std::copy(obs.data(), obs.data() + obs.size(), r.obs.begin());
                std::copy(actions.data(), actions.data() + actions.size(), r.actions.begin());
                std::copy(rewards.data(), rewards.data() + rewards.size(), r.rewards.begin());
                std::copy(terminated.data(), terminated.data() + terminated.size(), r.terminated.begin());
                std::copy(truncated.data(), truncated.data() + truncated.size(), r.truncated.begin());
                std::copy(truncation_value.data(), truncation_value.data() + truncation_value.size(),
                          r.truncation_value.begin());
                std::copy(last_value.data(), last_value.data() + last_value.size(), r.last_value.begin());
                rl::LossStats ls;
                {
                    py::gil_scoped_release nogil;
                    ls = t.update_external(r);
                }
                py::dict d;
                d["policy_loss"] = ls.policy_loss;
                d["value_loss"] = ls.value_loss;
                d["entropy"] = ls.entropy;
                d["grad_norm"] = ls.grad_norm;
                return d;
            },
            py::arg("obs"), py::arg("actions"), py::arg("rewards"), py::arg("terminated"), py::arg("truncated"),
            py::arg("truncation_value"), py::arg("last_value"),
            "One learner update from a rollout collected with the current parameters (T x E samples).")
        .def("evaluate",
             [](Trainer& t, const F32& obs) {
                 const rl::Mlp& net = t.net();
                 checked<float>(obs, "obs", {-1, net.obs_dim()}, false);
                 const int64_t n = obs.shape(0);
                 F64 logp({n, static_cast<int64_t>(net.n_actions())}), v(n);
                 {
                     py::gil_scoped_release nogil;
                     t.evaluate(obs.data(), n, logp.mutable_data(), v.mutable_data());
                 }
                 return py::make_tuple(logp, v);
             }, py::arg("obs"))
        .def("sample_actions",
             [](Trainer& t, const F32& obs) {
                 const rl::Mlp& net = t.net();
                 checked<float>(obs, "obs", {-1, net.obs_dim()}, false);
                 py::array_t<int32_t> a(obs.shape(0));
                 t.sample_actions(obs.data(), obs.shape(0), a.mutable_data());
                 return a;
             }, py::arg("obs"))
        .def("record_episode", &Trainer::record_episode, py::arg("step"), py::arg("ret"), py::arg("length"))
        .def("params",
             [](Trainer& t) {
                 F64 out(t.net().n_params());
                 t.get_params(out.mutable_data());
                 return out;
             })
        .def("set_params",
             [](Trainer& t, const F64& p) {
                 checked<double>(p, "params", {t.net().n_params()}, false);
                 t.set_params(p.data());
             }, py::arg("params"))
        .def("state_bytes",
             [](Trainer& t) {
                 py::array_t<uint8_t> out(static_cast<py::ssize_t>(t.state_bytes()));
                 t.get_state(out.mutable_data());
                 return out;
             })
        .def("set_state_bytes",
             [](Trainer& t, const py::array_t<uint8_t, py::array::c_style>& b, uint64_t updates, int64_t env_steps) {
                 checked<uint8_t>(b, "state", {static_cast<py::ssize_t>(t.state_bytes())}, false);
                 t.set_state(b.data(), updates, env_steps);
             }, py::arg("state"), py::arg("updates"), py::arg("env_steps"))
        .def("episodes", &episodes_dict, py::arg("start") = 0)
        .def_property_readonly("updates", &Trainer::updates)
        .def_property_readonly("env_steps", &Trainer::env_steps)
        .def_property_readonly("solved_step", &Trainer::solved_step)
        .def_property_readonly("n_params", [](Trainer& t) { return t.net().n_params(); });
}
