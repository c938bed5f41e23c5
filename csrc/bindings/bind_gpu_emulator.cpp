// pybind11 glue: the GPU executor's settings (GpuConfig, shared with asyncopt._cuda) and its host
// emulator (asyncopt/gpu/host_exec.hpp) as _core.gpu_emulator, which runs the kernels' per-worker
// code on the CPU in lockstep rounds. It is how the GPU path's logic is tested where no GPU is.
#include <pybind11/pybind11.h>

#include "asyncopt/gpu/engine.hpp"
#include "asyncopt/gpu/host_exec.hpp"
#include "bind_gpu.hpp"

namespace py = pybind11;
using namespace asyncopt;

void bind_gpu_emulator(py::module_& m) {
    py::class_<GpuLogisticConfig>(m, "GpuConfig", "Settings of the GPU executor (csrc/asyncopt/gpu/engine.hpp)")
        .def(py::init<>())
        .def_readwrite("workers", &GpuLogisticConfig::workers)
        .def_readwrite("batch_size", &GpuLogisticConfig::batch_size)
        .def_readwrite("shuffle", &GpuLogisticConfig::shuffle)
        .def_readwrite("sparse_alpha", &GpuLogisticConfig::sparse_alpha)
        .def_readwrite("fit_intercept", &GpuLogisticConfig::fit_intercept)
        .def_readwrite("intercept_scale", &GpuLogisticConfig::intercept_scale)
        .def_readwrite("atomic", &GpuLogisticConfig::atomic)
        .def_readwrite("max_batch_nnz", &GpuLogisticConfig::max_batch_nnz)
        .def_readwrite("max_segment_updates", &GpuLogisticConfig::max_segment_updates);

    py::module_ em = m.def_submodule(
        "gpu_emulator", "The GPU executor run on the host: the kernels' per-worker code, workers in lockstep rounds");
    asyncopt_bindings::GpuBackend be;
    be.dataset_from_host = [](const int64_t* indptr, const int32_t* indices, const float* data, const double* y,
                              int64_t n_rows, int64_t n_cols, int /*device*/) -> std::unique_ptr<GpuDataset> {
        return ExecCsr<HostExec>::from_host(indptr, indices, data, y, n_rows, n_cols);
    };
    be.logistic_engine = [](const GpuDataset& data, RuleKind kind, const void* state, const float* reg_scale,
                            const int32_t* active, int64_t n_active, const int64_t* perm, int64_t n,
                            const StepConfig& sc, const GpuLogisticConfig& cfg) {
        return make_logistic_engine<HostExec>(data, kind, state, reg_scale, active, n_active, perm, n, sc, cfg);
    };
    be.use_device = [](int) {};
    asyncopt_bindings::bind_gpu_backend(em, std::move(be));
}
