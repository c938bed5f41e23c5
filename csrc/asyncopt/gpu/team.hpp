// A worker of the GPU executor is a *team* of lanes that processes one mini-batch at a time: on the
// device a warp (csrc/cuda/warp_team.cuh: 32 lanes, shuffles, atomics), on the host the one-lane
// HostTeam below, which lets the host emulator (host_exec.hpp) run the very code the kernels run.
//
// A team supplies:
//   rank(), size()             this lane and the team's width (lanes split a row's nonzeros)
//   leader()                   rank() == 0: the lane that claims steps, owns the intercept replica
//   sum(x)                     the team-wide sum, the same value in every lane
//   broadcast(x)               the leader's x in every lane
//   sync()                     every lane's writes so far visible to the whole team
//   claim(clock), clock(clock) fetch-and-increment / read of the step clock, in the leader, broadcast
//   cas(p, expected, desired), add(p, v)   atomics on the worker's scratch, which the lanes share
//   merge(global, local)       add a worker's staleness counts into the run's
#pragma once

#include <cstdint>

#include "../core/epoch_plan.hpp"

namespace asyncopt {

// One lane, run by one host thread at a time (the emulator runs workers one after another), so
// every "atomic" is a plain operation.
struct HostTeam {
    int rank() const noexcept { return 0; }
    int size() const noexcept { return 1; }
    bool leader() const noexcept { return true; }
    double sum(double x) const noexcept { return x; }
    template <class V>
    V broadcast(V x) const noexcept {
        return x;
    }
    void sync() const noexcept {}
    uint64_t claim(uint64_t* clock) const noexcept { return (*clock)++; }
    uint64_t clock(const uint64_t* clock) const noexcept { return *clock; }
    int32_t cas(int32_t* p, int32_t expected, int32_t desired) const noexcept {
        const int32_t old = *p;
        if (old == expected) *p = desired;
        return old;
    }
    template <class V>
    V add(V* p, V v) const noexcept {
        const V old = *p;
        *p = old + v;
        return old;
    }
    void merge(StalenessStats* global, const StalenessStats& local) const noexcept { global->merge(local); }
};

}  // namespace asyncopt
