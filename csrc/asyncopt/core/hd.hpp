// ASYNCOPT_HD marks the functions that the GPU kernels (csrc/cuda, compiled by nvcc) share with the
// CPU code: host-and-device under nvcc, nothing under a plain C++ compiler.
#pragma once

#if defined(__CUDACC__)
#define ASYNCOPT_HD __host__ __device__
#else
#define ASYNCOPT_HD
#endif

// ASYNCOPT_SIMD_SUM(x): the loop that follows may be vectorised with a sum reduction into x
// (OpenMP simd on the host; nothing in device code, where one lane runs the loop).
#if defined(_OPENMP) && !defined(__CUDA_ARCH__)
#define ASYNCOPT_PRAGMA(x) _Pragma(#x)
#define ASYNCOPT_SIMD_SUM(x) ASYNCOPT_PRAGMA(omp simd reduction(+ : x))
#else
#define ASYNCOPT_SIMD_SUM(x)
#endif
