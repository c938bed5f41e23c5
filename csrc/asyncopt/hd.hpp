// ASYNCOPT_HD marks the functions that the GPU kernels (csrc/cuda, compiled by nvcc) share with the
// CPU code: host-and-device under nvcc, nothing under a plain C++ compiler.
#pragma once

#if defined(__CUDACC__)
#define ASYNCOPT_HD __host__ __device__
#else
#define ASYNCOPT_HD
#endif
