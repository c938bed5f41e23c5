// The intercept of a linear model under Hogwild!: every update writes it, so with several workers
// its cache line would move between cores (or SMs) twice per update and cap the speedup. Each
// worker therefore updates a private replica and merges the replica's change into the shared
// intercept every kInterceptSync updates: the intercept's own staleness grows by up to
// kInterceptSync updates per other worker. With one worker (direct) the shared intercept is updated
// in place, so a one-worker run is the plain algorithm. Host-and-device: a GPU worker keeps its
// replica in registers. Atomic merges add the change with one atomic add (SGD's GPU write mode).
#pragma once

#include <cstdint>

#include "hd.hpp"

namespace asyncopt {

constexpr int kInterceptSync = 32;

template <class Rule, bool Atomic = false>
class InterceptReplica {
public:
    using State = typename Rule::State;
    ASYNCOPT_HD InterceptReplica(const Rule& rule, State* shared, bool direct)
        : rule_(rule), shared_(shared), direct_(direct) {
        refresh();
    }
    ASYNCOPT_HD State* target() noexcept { return direct_ ? shared_ : &replica_; }
    ASYNCOPT_HD double value() noexcept { return rule_.read_intercept(target()); }
    ASYNCOPT_HD void updated() noexcept {
        if (!direct_ && ++pending_ == kInterceptSync) sync();
    }
    ASYNCOPT_HD void sync() noexcept {
        if (direct_ || pending_ == 0) return;
        if constexpr (Atomic)
            rule_.merge_atomic(shared_, replica_, base_, static_cast<uint32_t>(pending_));
        else
            rule_.merge(shared_, replica_, base_, static_cast<uint32_t>(pending_));
        refresh();
    }

private:
    ASYNCOPT_HD void refresh() noexcept {
        pending_ = 0;
        if (direct_) return;
        // Another worker may be merging into the shared state meanwhile: read it field by field
        // through the relaxed-atomic helper (a racy but defined snapshot, as every Hogwild! read).
        replica_ = rule_.snapshot(shared_);
        base_ = replica_;
    }
    const Rule& rule_;
    State* shared_;
    bool direct_;
    State replica_{}, base_{};
    int pending_ = 0;
};

}  // namespace asyncopt
