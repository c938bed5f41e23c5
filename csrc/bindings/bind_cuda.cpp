// The CUDA module asyncopt._cuda: pybind11 glue over csrc/cuda/cuda_api.hpp, compiled by the host
// compiler. Loaded only when a GPU fit or a device query asks for it (python/asyncopt/gpu.py), so
// importing asyncopt never initialises CUDA.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind_gpu.hpp"
#include "cuda/cuda_api.hpp"

namespace py = pybind11;
using namespace asyncopt;

namespace {

cuda_api::DeviceArray device_array(const py::tuple& t) {
    if (t.size() != 4) throw py::value_error("a device array is (pointer, kind, itemsize, length)");
    cuda_api::DeviceArray a;
    a.ptr = t[0].cast<uintptr_t>();
    const std::string kind = t[1].cast<std::string>();
    if (kind.size() != 1) throw py::value_error("device array kind must be one character");
    a.kind = kind[0];
    a.itemsize = t[2].cast<int>();
    a.length = t[3].cast<int64_t>();
    return a;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "asyncopt CUDA kernels (csrc/cuda): Hogwild! SGD and AMSGrad for logistic regression on one GPU";
    m.def("device_count", &cuda_api::device_count, "CUDA devices visible (0 without a driver or device).");
    m.def("no_device_reason", &cuda_api::no_device_reason, "Why device_count() is 0 ('' when it is not).");
    m.def("runtime_version", &cuda_api::runtime_version);
    m.def("driver_version", &cuda_api::driver_version);
    m.def("architectures", []() { return std::string(ASYNCOPT_CUDA_ARCHS); },
          "The CUDA architectures this module was compiled for (CMake's CUDA_ARCHITECTURES, comma-separated).");
    m.def(
        "device_info",
        [](int device) {
            const cuda_api::DeviceInfo d = cuda_api::device_info(device);
            py::dict r;
            r["name"] = d.name;
            r["compute_capability"] = py::make_tuple(d.major, d.minor);
            r["sm_count"] = d.sm_count;
            r["max_warps_per_sm"] = d.max_warps_per_sm;
            r["total_memory"] = d.total_memory;
            r["free_memory"] = d.free_memory;
            r["peak_bandwidth_gbs"] = d.peak_bandwidth_gbs;
            return r;
        },
        py::arg("device"));

    asyncopt_bindings::GpuBackend be;
    be.dataset_from_host = &cuda_api::dataset_from_host;
    be.logistic_engine = &cuda_api::logistic_engine;
    be.use_device = &cuda_api::use_device;
    asyncopt_bindings::bind_gpu_backend(m, std::move(be));

    m.def(
        "dataset_from_device",
        [](py::tuple indptr, py::tuple indices, py::tuple data, py::tuple y, int64_t n_features, int device) {
            const auto ip = device_array(indptr), ix = device_array(indices), dv = device_array(data),
                       yv = device_array(y);
            double negative = 0, positive = 0;
            std::unique_ptr<GpuDataset> d;
            {
                py::gil_scoped_release nogil;
                d = cuda_api::dataset_from_device(ip, ix, dv, yv, n_features, device, &negative, &positive);
            }
            return py::make_tuple(asyncopt_bindings::PyGpuDataset{std::move(d), device}, negative, positive);
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("y"), py::arg("n_features"),
        py::arg("device"),
        "A Dataset from device arrays, each (pointer, kind, itemsize, length), converted and checked on the "
        "device; returns (dataset, negative label value, positive label value).");
}
