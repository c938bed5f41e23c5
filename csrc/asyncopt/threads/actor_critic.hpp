// HSA2C's threads level (Mohamad et al. 2022; A3C, Mnih et al. 2016): n_threads actor-learners,
// each with its own environments, run the advantage actor-critic update of rl/a2c.hpp on ONE
// shared parameter vector without locks. Each update is Hogwild!'s (threads/hogwild.hpp):
//   claim   k = ++clock, its global step number (the model it reads is the one as of step k - 1)
//   read    theta' <- theta, coordinate by coordinate through the rule's read (shared_load):
//           A3C's "synchronise thread-specific parameters"
//   act     T steps of each of the thread's E environments with theta' (the rollout)
//   learn   the clipped A2C gradient at theta' (rl/a2c.hpp)
//   write   every coordinate through the rule's apply (shared_load / shared_store, no lock):
//           SGD, AMSGrad, RMSProp with shared statistics (A3C's "shared RMSProp"), ...
//   tau     the clock after the write minus k: the updates other threads began meanwhile
// A rollout is long (T E forward passes) next to a write (one pass over ~5k coordinates), so the
// threads rarely write at the same time; they do read parameters other threads are writing, which
// is the staleness the APAM and Lian et al. analyses are stated in.
//
// Work: the call's budget of environment steps is claimed T E at a time from one counter, so the
// threads form an elastic team (core/thread_pool.hpp): a thread the OS has not scheduled delays
// nobody, and its environments simply wait, mid-episode, for the next call. With one thread the run
// is a fixed sequence (one RNG stream per slot, from random_state), reproducible to the bit.
//
// The learner step (read, gradient, write) is separate from the environment loop (act), so the
// Python-stepped path for gymnasium environments (update_external) and a parameter-server worker
// reuse it unchanged.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../core/epoch_plan.hpp"
#include "../core/interrupt.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../core/thread_pool.hpp"
#include "../optim/rules.hpp"
#include "../optim/steps.hpp"
#include "hogwild.hpp"
#include "../rl/a2c.hpp"
#include "../rl/acrobot.hpp"
#include "../rl/cartpole.hpp"
#include "../rl/env.hpp"
#include "../rl/mlp.hpp"

namespace asyncopt {

struct ActorCriticConfig {
    int n_steps = 5;  // T: steps per environment per update
    int n_envs = 1;   // E: environments per thread
    rl::A2cConfig loss;
    uint64_t seed = 0;
    int solve_window = 100;                                       // episodes in the solved criterion
    double solve_return = std::numeric_limits<double>::infinity();  // mean return that counts as solved
    bool stop_when_solved = true;
};

// One finished episode: the global environment step at its end, its return and length, the thread.
struct EpisodeRecord {
    int64_t step;
    double ret;
    int32_t length;
    int32_t thread;
};

struct TrainResult {
    int64_t env_steps = 0;
    uint64_t updates = 0;
    StalenessStats staleness;
    bool interrupted = false;
};

// The trainer's interface to the bindings: one object per fit, its environments and model kept
// across calls (Python's fit runs it in chunks, for the history and the progress table).
class ActorCriticTrainer {
public:
    virtual ~ActorCriticTrainer() = default;
    // Runs up to `budget` environment steps on n_threads threads (GIL released by the caller).
    virtual TrainResult train(int64_t budget, int n_threads) = 0;
    // The Python-stepped path: one update from a rollout Python collected with the current model.
    virtual rl::LossStats update_external(rl::Rollout& rollout) = 0;
    // The policy of the current parameters on n observations: log pi (n x A) and V (n), and actions
    // drawn from it with the trainer's own stream (the Python-stepped path's actor). No thread may
    // be training meanwhile (the bindings hold the GIL, which train releases only inside itself).
    virtual void evaluate(const float* obs, int64_t n, double* logp, double* v) = 0;
    virtual void sample_actions(const float* obs, int64_t n, int32_t* actions) = 0;
    virtual void record_episode(int64_t step, double ret, int32_t length) = 0;
    virtual void get_params(double* out) = 0;
    virtual void set_params(const double* in) = 0;
    virtual const rl::Mlp& net() const = 0;
    virtual uint64_t updates() const = 0;
    virtual int64_t env_steps() const = 0;
    virtual int64_t solved_step() const = 0;
    // Episodes recorded so far, from index `from` (guarded: the threads append while training).
    virtual std::vector<EpisodeRecord> episodes(size_t from) = 0;
    // The rule's whole per-coordinate state as raw bytes (checkpoints), and back.
    virtual size_t state_bytes() const = 0;
    virtual void get_state(void* out) = 0;
    virtual void set_state(const void* in, uint64_t updates, int64_t env_steps) = 0;
};

// Env: rl::CartPole, rl::Acrobot, or void for a model trained only through update_external.
template <class Env, class Rule, class Steps>
class ActorCriticImpl final : public ActorCriticTrainer {
    using State = typename Rule::State;

public:
    ActorCriticImpl(rl::Mlp net, const StepConfig& sc, const ActorCriticConfig& cfg, const double* theta0,
                    int max_threads)
        : net_(std::move(net)),
          sc_(sc),
          cfg_(cfg),
          tables_(sc, 0, 1, Rule::needs),
          rule_(tables_.steps(), sc),
          state_(static_cast<size_t>(net_.n_params())) {
        if (tabled_steps(sc, Rule::needs))
            throw std::invalid_argument("the actor-critic trainer runs constant steps only (schedule 'constant', "
                                        "no bias correction)");
        if (cfg.n_steps < 1 || cfg.n_envs < 1) throw std::invalid_argument("n_steps and n_envs must be >= 1");
        for (size_t j = 0; j < state_.size(); ++j) {
            state_[j] = State{};
            state_[j].w = theta0[j];
        }
        if constexpr (!std::is_void_v<Env>) {
            if (net_.obs_dim() != Env::kObsDim || net_.n_actions() != Env::kActions)
                throw std::invalid_argument("the network's input or output size does not match the environment");
            actors_.reserve(static_cast<size_t>(max_threads));
            for (int s = 0; s < max_threads; ++s) actors_.emplace_back(net_, cfg_, s);
        }
        window_.assign(static_cast<size_t>(std::max(1, cfg.solve_window)), 0.0);
        ext_rng_ = std::make_unique<Rng>(cfg.seed, 0x5eed);
    }

    TrainResult train(int64_t budget, int n_threads) override {
        TrainResult res;
        if constexpr (std::is_void_v<Env>) {
            (void)budget;
            (void)n_threads;
            throw std::invalid_argument("this model has no built-in environment: it trains through update_external");
        } else {
            const int nt = std::max(1, std::min(n_threads, static_cast<int>(actors_.size())));
            const int64_t per_update = static_cast<int64_t>(cfg_.n_steps) * cfg_.n_envs;
            std::atomic<int64_t> claimed{0};
            StepClock clock;
            clock.value.store(k_total_);
            const uint64_t k_base = k_total_;
            ParallelExceptions errors;
            std::mutex merge;
            const int64_t steps_before = env_steps_;
            ThreadPool::instance().run(nt, [&](int s) {
                StalenessStats st;
                errors.capture([&] {
                    Actor& a = actors_[static_cast<size_t>(s)];
                    while (!errors.failed() && !stop_requested() &&
                           !(cfg_.stop_when_solved && solved_.load(std::memory_order_relaxed))) {
                        const int64_t c = claimed.fetch_add(per_update, std::memory_order_relaxed);
                        if (c >= budget) break;
                        const uint64_t k = clock.value.fetch_add(1, std::memory_order_relaxed) + 1;
                        const auto u = static_cast<uint32_t>(k - k_base);
                        const auto ctx = rule_.context(u - 1, u, step_coeffs(sc_, k, Rule::needs.moments));
                        read_params(ctx, a.theta.data());
                        rollout(a, s, steps_before + c);
                        rl::a2c_gradient(net_, a.theta.data(), a.roll, cfg_.loss, a.grad.data(), a.scratch.data());
                        write_grad(ctx, a.grad.data());
                        st.add(clock.value.load(std::memory_order_relaxed) - k);
                    }
                });
                std::lock_guard<std::mutex> lock(merge);
                res.staleness.merge(st);
            });
            errors.rethrow();
            res.updates = clock.value.load() - k_base;
            res.env_steps = static_cast<int64_t>(res.updates) * per_update;
            res.interrupted = stop_requested();
            rebase(static_cast<uint32_t>(res.updates));
            env_steps_ += res.env_steps;
        }
        return res;
    }

    rl::LossStats update_external(rl::Rollout& r) override {
        const uint64_t k = k_total_ + 1;
        const auto ctx = rule_.context(0, 1, step_coeffs(sc_, k, Rule::needs.moments));
        std::vector<double> theta(state_.size()), grad(state_.size()), scratch(2 * net_.max_width());
        read_params(ctx, theta.data());
        // the activations of the parameters just read (Python acted with the same ones)
        const int64_t B = static_cast<int64_t>(r.T) * r.E;
        for (int64_t i = 0; i < B; ++i)
            net_.forward(theta.data(), r.obs.data() + i * net_.obs_dim(), r.act.data() + i * net_.activation_size());
        const rl::LossStats ls = rl::a2c_gradient(net_, theta.data(), r, cfg_.loss, grad.data(), scratch.data());
        write_grad(ctx, grad.data());
        rebase(1);
        env_steps_ += B;
        return ls;
    }

    void get_params(double* out) override {
        for (size_t j = 0; j < state_.size(); ++j) out[j] = static_cast<double>(state_[j].w);
    }
    void set_params(const double* in) override {
        for (size_t j = 0; j < state_.size(); ++j) state_[j].w = in[j];
    }
    const rl::Mlp& net() const override { return net_; }
    uint64_t updates() const override { return k_total_; }
    int64_t env_steps() const override { return env_steps_; }
    int64_t solved_step() const override { return solved_step_; }
    std::vector<EpisodeRecord> episodes(size_t from) override {
        std::lock_guard<std::mutex> lock(episodes_mutex_);
        if (from >= episodes_.size()) return {};
        return std::vector<EpisodeRecord>(episodes_.begin() + static_cast<std::ptrdiff_t>(from), episodes_.end());
    }
    size_t state_bytes() const override { return state_.size() * sizeof(State); }
    void get_state(void* out) override { std::memcpy(out, state_.data(), state_bytes()); }
    void set_state(const void* in, uint64_t updates, int64_t env_steps) override {
        // saved after a rebase (every stamp 0, every coordinate at step `updates`), so restored as is
        std::memcpy(state_.data(), in, state_bytes());
        k_total_ = updates;
        env_steps_ = env_steps;
    }

    void evaluate(const float* obs, int64_t n, double* logp, double* v) override {
        std::vector<double> theta(state_.size()), act(static_cast<size_t>(net_.activation_size()));
        get_params(theta.data());
        const int A = net_.n_actions();
        for (int64_t i = 0; i < n; ++i) {
            v[i] = net_.forward(theta.data(), obs + i * net_.obs_dim(), act.data());
            std::copy(net_.log_probs(act.data()), net_.log_probs(act.data()) + A, logp + i * A);
        }
    }
    void sample_actions(const float* obs, int64_t n, int32_t* actions) override {
        const int A = net_.n_actions();
        std::vector<double> logp(static_cast<size_t>(n * A)), v(static_cast<size_t>(n));
        evaluate(obs, n, logp.data(), v.data());
        for (int64_t i = 0; i < n; ++i) actions[i] = rl::sample_action(logp.data() + i * A, A, rl::uniform(*ext_rng_, 0.0, 1.0));
    }
    // Python's path records the episodes it ran through the same log and solved criterion.
    void record_episode(int64_t step, double ret, int32_t length) override { on_episode(step, ret, length, 0); }

private:
    // A thread's own environments, stream, and buffers (nothing here is shared).
    struct Actor {
        Actor(const rl::Mlp& net, const ActorCriticConfig& cfg, int slot)
            : rng(cfg.seed, static_cast<uint64_t>(slot)),
              envs(static_cast<size_t>(cfg.n_envs)),
              obs(static_cast<size_t>(cfg.n_envs) * static_cast<size_t>(net.obs_dim())),
              ep_return(static_cast<size_t>(cfg.n_envs), 0.0),
              ep_length(static_cast<size_t>(cfg.n_envs), 0),
              theta(static_cast<size_t>(net.n_params())),
              grad(static_cast<size_t>(net.n_params())),
              scratch(static_cast<size_t>(2 * net.max_width() + net.activation_size())) {
            roll.resize(net, cfg.n_steps, cfg.n_envs);
            for (size_t e = 0; e < envs.size(); ++e) envs[e].reset(rng, obs.data() + e * static_cast<size_t>(net.obs_dim()));
        }
        Rng rng;
        std::vector<std::conditional_t<std::is_void_v<Env>, int, Env>> envs;
        std::vector<float> obs;  // the current observation of each environment
        std::vector<double> ep_return;
        std::vector<int32_t> ep_length;
        std::vector<double> theta, grad, scratch;
        rl::Rollout roll;
    };

    template <class Ctx>
    void read_params(const Ctx& ctx, double* theta) const noexcept {
        for (size_t j = 0; j < state_.size(); ++j) theta[j] = rule_.read(&state_[j], ctx);
    }
    template <class Ctx>
    void write_grad(const Ctx& ctx, const double* g) noexcept {
        for (size_t j = 0; j < state_.size(); ++j) rule_.apply(&state_[j], ctx, g[j], 0.0);
    }
    // No thread running: every coordinate brought to the last step, stamps back to 0.
    void rebase(uint32_t n) noexcept {
        for (State& s : state_) rule_.finish(&s, n);
        k_total_ += n;
    }

    // T steps of each of the actor's environments with its parameters; step0: the global step count
    // where this rollout's claim starts (the episodes' recorded step).
    void rollout(Actor& a, int slot, int64_t step0) {
        if constexpr (!std::is_void_v<Env>) {
            const int T = cfg_.n_steps, E = cfg_.n_envs;
            const int D = net_.obs_dim(), A = net_.n_actions();
            const int64_t S = net_.activation_size();
            rl::Rollout& r = a.roll;
            double* tmp = a.scratch.data() + 2 * net_.max_width();  // activations of a value-only pass
            for (int t = 0; t < T; ++t) {
                for (int e = 0; e < E; ++e) {
                    const int64_t i = static_cast<int64_t>(t) * E + e;
                    float* o = a.obs.data() + static_cast<int64_t>(e) * D;
                    std::copy(o, o + D, r.obs.data() + i * D);
                    double* act = r.act.data() + i * S;
                    net_.forward(a.theta.data(), o, act);
                    const int action = rl::sample_action(net_.log_probs(act), A, rl::uniform(a.rng, 0.0, 1.0));
                    const rl::StepResult sr = a.envs[static_cast<size_t>(e)].step(action, o);
                    r.actions[static_cast<size_t>(i)] = action;
                    r.rewards[static_cast<size_t>(i)] = sr.reward;
                    r.terminated[static_cast<size_t>(i)] = sr.terminated;
                    r.truncated[static_cast<size_t>(i)] = sr.truncated;
                    a.ep_return[static_cast<size_t>(e)] += sr.reward;
                    a.ep_length[static_cast<size_t>(e)] += 1;
                    if (sr.terminated || sr.truncated) {
                        // V of the last observation, before the reset replaces it
                        r.truncation_value[static_cast<size_t>(i)] =
                            sr.terminated ? 0.0 : net_.forward(a.theta.data(), o, tmp);
                        on_episode(step0 + i + 1, a.ep_return[static_cast<size_t>(e)], a.ep_length[static_cast<size_t>(e)],
                                   slot);
                        a.ep_return[static_cast<size_t>(e)] = 0.0;
                        a.ep_length[static_cast<size_t>(e)] = 0;
                        a.envs[static_cast<size_t>(e)].reset(a.rng, o);
                    } else {
                        r.truncation_value[static_cast<size_t>(i)] = 0.0;
                    }
                }
            }
            for (int e = 0; e < E; ++e)
                r.last_value[static_cast<size_t>(e)] = net_.forward(a.theta.data(), a.obs.data() + static_cast<int64_t>(e) * D, tmp);
        } else {
            (void)a;
            (void)slot;
            (void)step0;
        }
    }

    // An episode's end, from any thread: episodes end every few hundred steps, so a mutex here
    // costs nothing next to the rollouts and keeps the log and the solved criterion exact.
    void on_episode(int64_t step, double ret, int32_t length, int32_t thread) {
        std::lock_guard<std::mutex> lock(episodes_mutex_);
        episodes_.push_back(EpisodeRecord{step, ret, length, thread});
        const size_t W = window_.size();
        window_sum_ += ret - window_[window_pos_];
        window_[window_pos_] = ret;
        window_pos_ = (window_pos_ + 1) % W;
        // re-sum now and then: a running sum of doubles drifts
        if (episodes_.size() % 4096 == 0) {
            window_sum_ = 0;
            for (double x : window_) window_sum_ += x;
        }
        if (solved_step_ < 0 && episodes_.size() >= W && window_sum_ / static_cast<double>(W) >= cfg_.solve_return) {
            solved_step_ = step;
            solved_.store(true, std::memory_order_relaxed);
        }
    }

    rl::Mlp net_;
    StepConfig sc_;
    ActorCriticConfig cfg_;
    StepTables<Steps> tables_;
    Rule rule_;
    std::vector<State> state_;
    std::vector<Actor> actors_;
    uint64_t k_total_ = 0;
    int64_t env_steps_ = 0;
    std::mutex episodes_mutex_;
    std::vector<EpisodeRecord> episodes_;
    std::vector<double> window_;
    size_t window_pos_ = 0;
    double window_sum_ = 0;
    int64_t solved_step_ = -1;
    std::atomic<bool> solved_{false};
    std::unique_ptr<Rng> ext_rng_;
};

// The trainer for an environment kind and a rule kind (the rule's compiled variant from the one
// table of optim/rules.hpp, in double precision: the model is small and the one-thread run is held
// to a NumPy reference).
inline std::unique_ptr<ActorCriticTrainer> make_actor_critic(int env_kind, RuleKind kind, rl::Mlp net,
                                                             const StepConfig& sc, const ActorCriticConfig& cfg,
                                                             const double* theta0, int max_threads) {
    return visit_rule<double>(kind, sc, [&](auto v) -> std::unique_ptr<ActorCriticTrainer> {
        using Rule = typename decltype(v)::Rule;
        using Steps = typename decltype(v)::Steps;
        switch (env_kind) {
            case static_cast<int>(rl::EnvKind::cartpole):
                return std::make_unique<ActorCriticImpl<rl::CartPole, Rule, Steps>>(std::move(net), sc, cfg, theta0,
                                                                                    max_threads);
            case static_cast<int>(rl::EnvKind::acrobot):
                return std::make_unique<ActorCriticImpl<rl::Acrobot, Rule, Steps>>(std::move(net), sc, cfg, theta0,
                                                                                   max_threads);
            case -1:
                return std::make_unique<ActorCriticImpl<void, Rule, Steps>>(std::move(net), sc, cfg, theta0, max_threads);
        }
        throw std::invalid_argument("unknown environment kind " + std::to_string(env_kind));
    });
}

}  // namespace asyncopt
