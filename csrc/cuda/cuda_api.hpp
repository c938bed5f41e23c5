// The CUDA module's plain C++ face (defined in logistic.cu, compiled by nvcc; bound by bind_cuda.cpp,
// compiled by the host compiler, so that pybind11 never goes through nvcc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "asyncopt/gpu/engine.hpp"

namespace asyncopt {
namespace cuda_api {

// Devices the runtime sees; 0 without a driver or a device (never throws: importing and asking
// must work on any machine).
int device_count() noexcept;
// Why device_count() is 0, or "" when it is not.
std::string no_device_reason();

struct DeviceInfo {
    std::string name;
    int major = 0, minor = 0;       // compute capability
    int sm_count = 0;
    int max_warps_per_sm = 0;
    size_t total_memory = 0, free_memory = 0;
    double peak_bandwidth_gbs = 0;  // 2 x memory clock x bus width (the vendor's theoretical peak)
};
DeviceInfo device_info(int device);
void use_device(int device);
int runtime_version();
int driver_version();

std::unique_ptr<GpuDataset> dataset_from_host(const int64_t* indptr, const int32_t* indices, const float* data,
                                              const double* y, int64_t n_rows, int64_t n_cols, int device);

// A device array handed over by __cuda_array_interface__ or DLPack: a pointer into this device's
// memory, one contiguous axis of `length` items of numpy kind ('i', 'u', 'f', 'b') and itemsize.
struct DeviceArray {
    uintptr_t ptr = 0;
    char kind = 'f';
    int itemsize = 4;
    int64_t length = 0;
};
// Copies and converts on the device (indptr to int64, indices to int32, values to float32, labels
// to +-1), checking on the device what dataset_from_host's caller checks on the host: a canonical
// CSR matrix, finite values and exactly two label values. *negative / *positive receive the two
// label values (the smaller is -1). Throws std::invalid_argument naming the first offending entry.
std::unique_ptr<GpuDataset> dataset_from_device(const DeviceArray& indptr, const DeviceArray& indices,
                                                const DeviceArray& data, const DeviceArray& y, int64_t n_cols,
                                                int device, double* negative, double* positive);

std::unique_ptr<LogisticEngine> logistic_engine(const GpuDataset& data, RuleKind kind, const void* state,
                                                const float* reg_scale, const int32_t* active, int64_t n_active,
                                                const int64_t* perm, int64_t n, const StepConfig& sc,
                                                const GpuLogisticConfig& cfg);

}  // namespace cuda_api
}  // namespace asyncopt
