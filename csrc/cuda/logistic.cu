// The CUDA module's host launchers (cuda_api.hpp): devices, data sets in device memory (uploaded,
// or taken from device arrays, converted and checked on the device), and the logistic-regression
// engine of asyncopt/gpu/engine.hpp instantiated with the kernels of cuda_exec.cuh.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

#include "asyncopt/gpu/engine.hpp"
#include "cuda_api.hpp"
#include "cuda_exec.cuh"

namespace asyncopt {
namespace cuda_api {

using cuda_exec::check;
using cuda_exec::CudaExec;
using cuda_exec::grid_fill;
using cuda_exec::kBlock;

static_assert(offsetof(StalenessStats, count) == 0 && offsetof(StalenessStats, sum) == 8 &&
                  offsetof(StalenessStats, max) == 16 && offsetof(StalenessStats, hist) == 24,
              "WarpTeam::merge adds into StalenessStats as an array of 64-bit counters");

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // clear the sticky error so later calls report their own
        return 0;
    }
    return n;
}

std::string no_device_reason() {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return std::string("the CUDA runtime found no usable device: ") + cudaGetErrorString(e);
    }
    return n == 0 ? "the CUDA runtime found no device" : "";
}

DeviceInfo device_info(int device) {
    cudaDeviceProp p{};
    check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
    DeviceInfo d;
    d.name = p.name;
    d.major = p.major;
    d.minor = p.minor;
    d.sm_count = p.multiProcessorCount;
    d.max_warps_per_sm = p.maxThreadsPerMultiProcessor / cuda_exec::kWarp;
    d.total_memory = p.totalGlobalMem;
    int clock_khz = 0, bus_bits = 0;
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device);
    d.peak_bandwidth_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
    size_t free_b = 0, total_b = 0;
    int prev = 0;
    check(cudaGetDevice(&prev), "cudaGetDevice");
    check(cudaSetDevice(device), "cudaSetDevice");
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) d.free_memory = free_b;
    cudaSetDevice(prev);
    return d;
}

void use_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

int runtime_version() {
    int v = 0;
    cudaRuntimeGetVersion(&v);
    return v;
}

int driver_version() {
    int v = 0;
    cudaDriverGetVersion(&v);
    return v;
}

std::unique_ptr<GpuDataset> dataset_from_host(const int64_t* indptr, const int32_t* indices, const float* data,
                                              const double* y, int64_t n_rows, int64_t n_cols, int device) {
    use_device(device);
    return ExecCsr<CudaExec>::from_host(indptr, indices, data, y, n_rows, n_cols);
}

// ------------------------------------------------------------------ device-array intake
namespace {

// First offending position of each check (LLONG_MAX: none), found with atomicMin.
enum Problem : int {
    kIndptrStart,      // indptr[0] != 0 or indptr[n] != nnz
    kIndptrDecreases,  // row
    kColumnRange,      // entry
    kColumnOrder,      // row: columns not strictly ascending
    kDataNonFinite,    // entry (after the cast to float32)
    kLabelNonFinite,   // row
    kLabelThird,       // row: a third label value
    kProblems
};

__device__ void flag(long long* problems, int what, long long where) { atomicMin(problems + what, where); }

template <class Src, class Dst>
__device__ Dst load_as(uintptr_t p, int64_t i) {
    return static_cast<Dst>(reinterpret_cast<const Src*>(p)[i]);
}

// One element of a handed-over array as Dst, whatever its numpy kind and size.
template <class Dst>
__device__ Dst element(const DeviceArray& a, int64_t i) {
    if (a.kind == 'f') return a.itemsize == 8 ? load_as<double, Dst>(a.ptr, i) : load_as<float, Dst>(a.ptr, i);
    if (a.kind == 'u' || a.kind == 'b') {
        switch (a.itemsize) {
            case 1: return load_as<uint8_t, Dst>(a.ptr, i);
            case 2: return load_as<uint16_t, Dst>(a.ptr, i);
            case 4: return load_as<uint32_t, Dst>(a.ptr, i);
            default: return load_as<uint64_t, Dst>(a.ptr, i);
        }
    }
    switch (a.itemsize) {
        case 1: return load_as<int8_t, Dst>(a.ptr, i);
        case 2: return load_as<int16_t, Dst>(a.ptr, i);
        case 4: return load_as<int32_t, Dst>(a.ptr, i);
        default: return load_as<int64_t, Dst>(a.ptr, i);
    }
}

#define ASYNCOPT_GRID_STRIDE(i, n)                                                                      \
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void take_entries(DeviceArray indices, DeviceArray data, int64_t nnz, int64_t n_cols, int32_t* idx_out,
                             float* val_out, long long* problems) {
    ASYNCOPT_GRID_STRIDE(p, nnz) {
        const int64_t j = indices.kind == 'f' ? -1 : element<int64_t>(indices, p);
        if (j < 0 || j >= n_cols) flag(problems, kColumnRange, p);
        idx_out[p] = static_cast<int32_t>(j < 0 || j >= n_cols ? 0 : j);
        const float v = element<float>(data, p);
        if (!isfinite(v)) flag(problems, kDataNonFinite, p);
        val_out[p] = v;
    }
}

__global__ void take_rows(DeviceArray indptr, int64_t n_rows, int64_t nnz, int64_t* indptr_out, long long* problems) {
    ASYNCOPT_GRID_STRIDE(i, n_rows + 1) {
        const int64_t v = element<int64_t>(indptr, i);
        indptr_out[i] = v;
        if ((i == 0 && v != 0) || (i == n_rows && v != nnz)) flag(problems, kIndptrStart, i);
    }
}

__global__ void check_rows(const int64_t* indptr, const int32_t* indices, int64_t n_rows, int64_t nnz,
                           long long* problems) {
    ASYNCOPT_GRID_STRIDE(i, n_rows) {
        const int64_t b = indptr[i], e = indptr[i + 1];
        if (e < b || b < 0 || e > nnz) {
            flag(problems, kIndptrDecreases, i);
            continue;
        }
        for (int64_t p = b + 1; p < e; ++p)
            if (indices[p] <= indices[p - 1]) {
                flag(problems, kColumnOrder, i);
                break;
            }
    }
}

// Doubles ordered as signed 64-bit integers (the order of IEEE doubles, -0 taken as +0), for
// atomicMin / atomicMax.
__device__ long long order_key(double x) {
    const long long b = __double_as_longlong(x + 0.0);
    return b >= 0 ? b : b ^ LLONG_MAX;
}
__host__ double from_order_key(long long k) {
    const long long b = k >= 0 ? k : k ^ LLONG_MAX;
    double x;
    std::memcpy(&x, &b, sizeof x);
    return x;
}

__global__ void label_range(DeviceArray y, int64_t n, double* y_out, long long* lo_hi, long long* problems) {
    ASYNCOPT_GRID_STRIDE(i, n) {
        const double v = element<double>(y, i);
        y_out[i] = v;
        if (!isfinite(v)) {
            flag(problems, kLabelNonFinite, i);
            continue;
        }
        atomicMin(lo_hi, order_key(v));
        atomicMax(lo_hi + 1, order_key(v));
    }
}

__global__ void label_signs(double* y, int64_t n, double lo, double hi, long long* problems) {
    ASYNCOPT_GRID_STRIDE(i, n) {
        const double v = y[i] + 0.0;
        if (v == hi)
            y[i] = 1.0;
        else if (v == lo)
            y[i] = -1.0;
        else
            flag(problems, kLabelThird, i);
    }
}

void check_array(const DeviceArray& a, const char* name, int64_t length, const char* kinds) {
    if (!a.ptr && length > 0) throw std::invalid_argument(std::string(name) + ": null device pointer");
    if (a.length != length)
        throw std::invalid_argument(std::string(name) + ": expected " + std::to_string(length) + " items, got " +
                                    std::to_string(a.length));
    if (!std::strchr(kinds, a.kind) || !(a.itemsize == 1 || a.itemsize == 2 || a.itemsize == 4 || a.itemsize == 8) ||
        (a.kind == 'f' && a.itemsize != 4 && a.itemsize != 8))
        throw std::invalid_argument(std::string(name) + ": unsupported item type (kind '" + a.kind + "', " +
                                    std::to_string(a.itemsize) + " bytes)");
}

}  // namespace

std::unique_ptr<GpuDataset> dataset_from_device(const DeviceArray& indptr, const DeviceArray& indices,
                                                const DeviceArray& data, const DeviceArray& y, int64_t n_cols,
                                                int device, double* negative, double* positive) {
    use_device(device);
    if (indptr.length < 1) throw std::invalid_argument("indptr: expected at least one item");
    const int64_t n_rows = indptr.length - 1, nnz = indices.length;
    if (n_cols < 1 || n_cols > INT32_MAX) throw std::invalid_argument("n_features must be in [1, 2^31 - 1]");
    check_array(indptr, "indptr", n_rows + 1, "iu");
    check_array(indices, "indices", nnz, "iu");
    check_array(data, "data", nnz, "fiub");
    check_array(y, "y", n_rows, "fiub");

    auto d = std::make_unique<ExecCsr<CudaExec>>();
    d->rows = n_rows;
    d->cols = n_cols;
    d->indptr = ExecBuffer<CudaExec, int64_t>(static_cast<size_t>(n_rows) + 1);
    d->indices = ExecBuffer<CudaExec, int32_t>(static_cast<size_t>(nnz));
    d->data = ExecBuffer<CudaExec, float>(static_cast<size_t>(nnz));
    d->y = ExecBuffer<CudaExec, double>(static_cast<size_t>(n_rows));
    ExecBuffer<CudaExec, long long> problems(kProblems), lo_hi(2);
    long long host_problems[kProblems];
    for (auto& p : host_problems) p = LLONG_MAX;
    problems.upload(host_problems, kProblems);
    const long long init[2] = {LLONG_MAX, LLONG_MIN};
    lo_hi.upload(init, 2);

    take_rows<<<grid_fill(n_rows + 1), kBlock>>>(indptr, n_rows, nnz, d->indptr.get(), problems.get());
    if (nnz > 0)
        take_entries<<<grid_fill(nnz), kBlock>>>(indices, data, nnz, n_cols, d->indices.get(), d->data.get(),
                                                  problems.get());
    check_rows<<<grid_fill(n_rows), kBlock>>>(d->indptr.get(), d->indices.get(), n_rows, nnz, problems.get());
    label_range<<<grid_fill(n_rows), kBlock>>>(y, n_rows, d->y.get(), lo_hi.get(), problems.get());
    check(cudaGetLastError(), "launching the input checks");
    long long range[2];
    lo_hi.download(range, 2);  // waits for the kernels
    problems.download(host_problems, kProblems);

    auto at = [&](int what) { return std::to_string(host_problems[what]); };
    if (host_problems[kIndptrStart] != LLONG_MAX)
        throw std::invalid_argument("CSR indptr must start at 0 and end at len(indices) (entry " + at(kIndptrStart) +
                                    ")");
    if (host_problems[kIndptrDecreases] != LLONG_MAX)
        throw std::invalid_argument("CSR indptr decreases at row " + at(kIndptrDecreases));
    if (host_problems[kColumnRange] != LLONG_MAX)
        throw std::invalid_argument("CSR column index out of range [0, " + std::to_string(n_cols) + ") at entry " +
                                    at(kColumnRange));
    if (host_problems[kColumnOrder] != LLONG_MAX)
        throw std::invalid_argument("CSR columns not strictly ascending in row " + at(kColumnOrder) +
                                    " (sum duplicates and sort the indices first)");
    if (host_problems[kDataNonFinite] != LLONG_MAX)
        throw std::invalid_argument("data holds NaN or infinity (as float32) at entry " + at(kDataNonFinite));
    if (host_problems[kLabelNonFinite] != LLONG_MAX)
        throw std::invalid_argument("y holds NaN or infinity at row " + at(kLabelNonFinite));
    const double lo = from_order_key(range[0]), hi = from_order_key(range[1]);
    if (n_rows == 0 || lo == hi)
        throw std::invalid_argument("y must hold exactly two classes for binary logistic regression, got one");

    label_signs<<<grid_fill(n_rows), kBlock>>>(d->y.get(), n_rows, lo, hi, problems.get());
    check(cudaGetLastError(), "launching the label mapping");
    problems.download(host_problems, kProblems);
    if (host_problems[kLabelThird] != LLONG_MAX)
        throw std::invalid_argument("y must hold exactly two classes for binary logistic regression; row " +
                                    at(kLabelThird) + " holds a third");
    *negative = lo;
    *positive = hi;
    return d;
}

std::unique_ptr<LogisticEngine> logistic_engine(const GpuDataset& data, RuleKind kind, const void* state,
                                                const float* reg_scale, const int32_t* active, int64_t n_active,
                                                const int64_t* perm, int64_t n, const StepConfig& sc,
                                                const GpuLogisticConfig& cfg) {
    return make_logistic_engine<CudaExec>(data, kind, state, reg_scale, active, n_active, perm, n, sc, cfg);
}

}  // namespace cuda_api
}  // namespace asyncopt
