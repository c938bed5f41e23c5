// The GPU executor's worker: one warp, its 32 lanes splitting each row's nonzeros (the team
// interface of asyncopt/gpu/team.hpp, device side).
#pragma once

#include <cstdint>

#include "asyncopt/core/epoch_plan.hpp"

namespace asyncopt {
namespace cuda_exec {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;

struct WarpTeam {
    __device__ int rank() const { return static_cast<int>(threadIdx.x) & (kWarp - 1); }
    __device__ int size() const { return kWarp; }
    __device__ bool leader() const { return rank() == 0; }
    // Butterfly sum: every lane ends with the bitwise-same total (each level adds the same two
    // partial sums, in either order, and floating-point addition is commutative).
    __device__ double sum(double x) const {
        for (int o = kWarp / 2; o > 0; o >>= 1) x += __shfl_xor_sync(kFullMask, x, o);
        return x;
    }
    template <class V>
    __device__ V broadcast(V x) const {
        return __shfl_sync(kFullMask, x, 0);
    }
    __device__ void sync() const { __syncwarp(); }
    __device__ uint64_t claim(uint64_t* clock) const {
        unsigned long long k = 0;
        if (leader()) k = atomicAdd(reinterpret_cast<unsigned long long*>(clock), 1ULL);
        return static_cast<uint64_t>(__shfl_sync(kFullMask, k, 0));
    }
    // Read by the calling lane alone (the leader, after its write).
    __device__ uint64_t clock(const uint64_t* clock) const {
        return cuda::atomic_ref<uint64_t, cuda::thread_scope_device>(*const_cast<uint64_t*>(clock))
            .load(cuda::memory_order_relaxed);
    }
    __device__ int32_t cas(int32_t* p, int32_t expected, int32_t desired) const {
        return atomicCAS(reinterpret_cast<int*>(p), expected, desired);
    }
    __device__ double add(double* p, double v) const { return atomicAdd(p, v); }
    __device__ uint32_t add(uint32_t* p, uint32_t v) const { return atomicAdd(reinterpret_cast<unsigned*>(p), v); }
    __device__ unsigned long long add(unsigned long long* p, unsigned long long v) const { return atomicAdd(p, v); }
    // Called by the leader alone.
    __device__ void merge(StalenessStats* global, const StalenessStats& local) const {
        auto* g = reinterpret_cast<unsigned long long*>(global);
        atomicAdd(g + 0, static_cast<unsigned long long>(local.count));
        atomicAdd(g + 1, static_cast<unsigned long long>(local.sum));
        atomicMax(g + 2, static_cast<unsigned long long>(local.max));
        for (int b = 0; b < kStalenessBins; ++b)
            if (local.hist[b]) atomicAdd(g + 3 + b, static_cast<unsigned long long>(local.hist[b]));
    }
};

}  // namespace cuda_exec
}  // namespace asyncopt
