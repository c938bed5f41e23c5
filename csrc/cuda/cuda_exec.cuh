// The GPU executor's device side: CudaExec, the Exec of asyncopt/gpu/engine.hpp, runs each phase
// as a kernel. A worker is a warp (warp_team.cuh); the segment kernel starts every worker at once
// and each walks its slice of the visiting order, racing the others on the shared model (Hogwild!).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

#include "asyncopt/gpu/logistic_worker.hpp"
#include "warp_team.cuh"

namespace asyncopt {
namespace cuda_exec {

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

constexpr int kBlock = 128;  // threads per block: 4 workers (warps)

inline int grid_for(int64_t threads) {
    const int64_t blocks = (threads + kBlock - 1) / kBlock;
    return static_cast<int>(blocks < 1 ? 1 : (blocks > (1 << 30) ? (1 << 30) : blocks));
}

// Enough blocks of kBlock threads to fill the current device (grid-stride kernels loop beyond).
inline int grid_fill(int64_t threads) {
    int dev = 0, sms = 1;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    const int full = sms * 16;
    const int need = grid_for(threads);
    return need < full ? need : full;
}

template <class Work>
__global__ void shuffle_kernel(Work work, uint64_t seed) {
    const int w = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (w < work.workers) work.shuffle_slice(w, seed);
}

template <class Work>
__global__ void segment_kernel(Work work) {
    const int w = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) / kWarp);
    if (w < work.workers) work.run_worker(WarpTeam{}, w);  // uniform per warp
}

template <class Work>
__global__ void finish_kernel(Work work, uint32_t n_updates) {
    for (int64_t a = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; a < work.n_active;
         a += static_cast<int64_t>(gridDim.x) * blockDim.x)
        work.finish(a, n_updates);
}

template <class Eval>
__global__ void evaluate_kernel(Eval ev) {
    const int64_t w = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
    const int64_t n_teams = static_cast<int64_t>(gridDim.x) * blockDim.x / kWarp;
    ev.rows(WarpTeam{}, w, n_teams);
}

template <class State>
__global__ void squared_norm_kernel(const State* state, const int32_t* active, int64_t n_active, double* out) {
    double s = 0;
    for (int64_t a = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; a < n_active;
         a += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const double w = state[active[a]].w;
        s += w * w;
    }
    s = WarpTeam{}.sum(s);
    if ((threadIdx.x & (kWarp - 1)) == 0) atomicAdd(out, s);
}

__global__ void column_counts_kernel(const int32_t* indices, int64_t nnz, int32_t* counts) {
    for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < nnz;
         p += static_cast<int64_t>(gridDim.x) * blockDim.x)
        atomicAdd(counts + indices[p], 1);
}

struct CudaExec {
    static void* alloc(size_t bytes) {
        void* p = nullptr;
        check(cudaMalloc(&p, bytes), "cudaMalloc (out of device memory?)");
        return p;
    }
    static void release(void* p) noexcept { cudaFree(p); }
    static void zero(void* p, size_t bytes) { check(cudaMemset(p, 0, bytes), "cudaMemset"); }
    static void upload(void* dst, const void* src, size_t bytes) {
        check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to the device");
    }
    static void download(void* dst, const void* src, size_t bytes) {
        check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy from the device");
    }
    static void synchronize() { check(cudaDeviceSynchronize(), "a kernel"); }

    template <class Work>
    static void shuffle(const Work& work, uint64_t seed) {
        shuffle_kernel<<<grid_for(work.workers), kBlock>>>(work, seed);
        check(cudaGetLastError(), "launching the shuffle kernel");
    }
    template <class Work>
    static void segment(const Work& work) {
        segment_kernel<<<grid_for(static_cast<int64_t>(work.workers) * kWarp), kBlock>>>(work);
        check(cudaGetLastError(), "launching the segment kernel");
    }
    template <class Work>
    static void finish(const Work& work, uint32_t n_updates) {
        if (work.n_active == 0) return;
        finish_kernel<<<grid_fill(work.n_active), kBlock>>>(work, n_updates);
        check(cudaGetLastError(), "launching the finish kernel");
    }
    template <class Eval>
    static void evaluate(const Eval& ev) {
        evaluate_kernel<<<grid_fill(ev.X.n_rows * kWarp), kBlock>>>(ev);
        check(cudaGetLastError(), "launching the evaluation kernel");
        synchronize();
    }
    static void column_counts(const int32_t* indices, int64_t nnz, int32_t* counts) {
        if (nnz == 0) return;
        column_counts_kernel<<<grid_fill(nnz), kBlock>>>(indices, nnz, counts);
        check(cudaGetLastError(), "launching the column count kernel");
    }

    template <class State>
    static double squared_norm(const State* state, const int32_t* active, int64_t n_active) {
        if (n_active == 0) return 0.0;
        double* out = static_cast<double*>(alloc(sizeof(double)));
        double s = 0;
        try {
            zero(out, sizeof(double));
            squared_norm_kernel<<<grid_fill(n_active), kBlock>>>(state, active, n_active, out);
            check(cudaGetLastError(), "launching the norm kernel");
            download(&s, out, sizeof(double));
        } catch (...) {
            release(out);
            throw;
        }
        release(out);
        return s;
    }
};

}  // namespace cuda_exec
}  // namespace asyncopt
