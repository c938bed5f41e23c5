// The intercept of a linear model under Hogwild!: every update writes it, so with several threads
// its cache line would move between cores twice per update and cap the speedup. Each
// worker therefore updates a private replica and merges the replica's change into the shared
// intercept every kInterceptSync updates: the intercept's own staleness grows by up to
// kInterceptSync updates per other worker. With one worker (direct) the shared intercept is updated
// in place, so a one-worker run is the plain algorithm. (The GPU executor, with thousands of
// workers, writes the intercept in place instead: see gpu/logistic_worker.hpp.)
#pragma once

#include <cstdint>


namespace asyncopt {

constexpr int kInterceptSync = 32;

template <class Rule>
class InterceptReplica {
public:
    using State = typename Rule::State;
    InterceptReplica(const Rule& rule, State* shared, bool direct)
        : rule_(rule), shared_(shared), direct_(direct) {
        refresh();
    }
    State* target() noexcept { return direct_ ? shared_ : &replica_; }
    double value() noexcept { return rule_.read_intercept(target()); }
    void updated() noexcept {
        if (!direct_ && ++pending_ == kInterceptSync) sync();
    }
    void sync() noexcept {
        if (direct_ || pending_ == 0) return;
        rule_.merge(shared_, replica_, base_, static_cast<uint32_t>(pending_));
        refresh();
    }

private:
    void refresh() noexcept {
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
