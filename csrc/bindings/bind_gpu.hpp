// pybind11 glue of the GPU executor's logistic regression (asyncopt/gpu/engine.hpp), shared by the
// two modules that hold one: asyncopt._cuda (the kernels, csrc/cuda) and asyncopt._core (the host
// emulator, bind_gpu_emulator.cpp). Array checks, GIL release, no logic. The classes are
// module-local: each module binds its own Dataset and LogisticEngine.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <memory>
#include <string>

#include "arrays.hpp"
#include "asyncopt/gpu/engine.hpp"
#include "asyncopt/optim/rules.hpp"

namespace asyncopt_bindings {

namespace py = pybind11;

// What a module supplies: the data set from host arrays, the engine, and a hook run before every
// call that touches the executor (the CUDA module selects the object's device there).
struct GpuBackend {
    std::function<std::unique_ptr<asyncopt::GpuDataset>(const int64_t*, const int32_t*, const float*, const double*,
                                                        int64_t, int64_t, int)>
        dataset_from_host;
    std::function<std::unique_ptr<asyncopt::LogisticEngine>(const asyncopt::GpuDataset&, asyncopt::RuleKind,
                                                            const void*,
                                                            const float*, const int32_t*, int64_t, const int64_t*,
                                                            int64_t, const asyncopt::StepConfig&,
                                                            const asyncopt::GpuLogisticConfig&)>
        logistic_engine;
    std::function<void(int)> use_device;
};

// A data set and the device it lives on (-1: host memory).
struct PyGpuDataset {
    std::unique_ptr<asyncopt::GpuDataset> data;
    int device;
};

struct PyLogisticEngine {
    std::unique_ptr<asyncopt::LogisticEngine> engine;
    int device;
    int64_t n_cols;
    asyncopt::RuleKind rule;
};

// The state array of `rule`'s float32 model with n_cols + 1 coordinates, checked.
inline void* gpu_state(asyncopt::RuleKind rule, const py::array& state, int64_t n_cols, bool writable) {
    return asyncopt::visit_state<float>(rule, [&](auto tag) {
        using State = typename decltype(tag)::type;
        return static_cast<void*>(checked<State>(state, "state", {n_cols + 1}, writable, 'V'));
    });
}

inline void bind_gpu_backend(py::module_& m, GpuBackend backend) {
    auto be = std::make_shared<GpuBackend>(std::move(backend));

    py::class_<PyGpuDataset>(m, "Dataset", py::module_local(),
                             "A CSR matrix (float32 values) and labels in {-1, +1} in the executor's memory")
        .def(py::init([be](py::array indptr, py::array indices, py::array data, py::array y, int64_t n_features,
                           int device) {
                 const asyncopt::CsrView<float> X = csr_view<float>(indptr, indices, data, n_features, true);
                 const double* yp = checked<double>(y, "y", {X.n_rows}, false);
                 for (int64_t i = 0; i < X.n_rows; ++i)
                     if (yp[i] != 1.0 && yp[i] != -1.0) throw py::value_error("y must hold -1 and +1 only");
                 for (int64_t p = 0; p < X.nnz(); ++p)
                     if (!std::isfinite(X.data[p])) throw py::value_error("data holds NaN or infinity");
                 py::gil_scoped_release nogil;
                 be->use_device(device);
                 return PyGpuDataset{be->dataset_from_host(X.indptr, X.indices, X.data, yp, X.n_rows, X.n_cols, device),
                                     device};
             }),
             py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("y"), py::arg("n_features"),
             py::arg("device") = 0, "Copy a checked CSR matrix (float32 values) and its +-1 labels to the executor.")
        .def_property_readonly("n_rows", [](const PyGpuDataset& d) { return d.data->n_rows(); })
        .def_property_readonly("n_features", [](const PyGpuDataset& d) { return d.data->n_cols(); })
        .def_property_readonly("nnz", [](const PyGpuDataset& d) { return d.data->nnz(); })
        .def_readonly("device", &PyGpuDataset::device)
        .def(
            "column_counts",
            [be](const PyGpuDataset& d) {
                py::array_t<int32_t> out(d.data->n_cols());
                int32_t* p = out.mutable_data();
                py::gil_scoped_release nogil;
                be->use_device(d.device);
                d.data->column_counts(p);
                return out;
            },
            "Rows holding each feature (canonical CSR: one entry per row and feature).")
        .def(
            "indptr",
            [be](const PyGpuDataset& d) {
                py::array_t<int64_t> out(d.data->n_rows() + 1);
                int64_t* p = out.mutable_data();
                py::gil_scoped_release nogil;
                be->use_device(d.device);
                d.data->download_indptr(p);
                return out;
            },
            "The row offsets, copied to the host (8 bytes per row; the nonzeros stay on the executor).");

    py::class_<PyLogisticEngine>(m, "LogisticEngine", py::module_local(),
                                 "Hogwild! logistic regression under any update rule on one executor (gpu/engine.hpp)")
        .def(py::init([be](const PyGpuDataset& data, asyncopt::RuleKind rule, py::array state,
                           py::object reg_scale, py::array active, py::array perm, const asyncopt::StepConfig& sc,
                           const asyncopt::GpuLogisticConfig& cfg) {
                 if (cfg.workers < 1) throw py::value_error("workers must be >= 1");
                 if (cfg.batch_size < 1) throw py::value_error("batch_size must be >= 1");
                 if (cfg.batch_size > 1 && cfg.max_batch_nnz < 1)
                     throw py::value_error("max_batch_nnz must bound a mini-batch's nonzeros when batch_size > 1");
                 const int64_t d = data.data->n_cols();
                 const void* st = gpu_state(rule, state, d, false);
                 const float* rs = nullptr;
                 if (!reg_scale.is_none()) rs = checked<float>(py::array(reg_scale), "reg_scale", {d}, false);
                 const Features act = checked_active(active, d);
                 // read only: the engine uploads the order and shuffles its device copy
                 const Visit visit = checked_perm(perm, data.data->n_rows(), true, false);
                 py::gil_scoped_release nogil;
                 be->use_device(data.device);
                 return PyLogisticEngine{
                     be->logistic_engine(*data.data, rule, st, rs, act.ids, act.count, visit.rows, visit.count, sc, cfg), data.device, d,
                     rule};
             }),
             py::arg("data"), py::arg("rule"), py::arg("state"), py::arg("reg_scale"), py::arg("active"),
             py::arg("perm"), py::arg("steps"), py::arg("config"), py::keep_alive<1, 2>(),
             "Upload the model (state, reg_scale, active features) and the visiting order; keeps `data` alive.")
        .def(
            "epoch",
            [be](PyLogisticEngine& e, uint64_t seed, uint64_t k0, double step_scale) {
                if (!(step_scale > 0 && step_scale <= 1)) throw py::value_error("step_scale must be in (0, 1]");
                asyncopt::EpochResult r;
                {
                    py::gil_scoped_release nogil;
                    be->use_device(e.device);
                    r = e.engine->epoch(seed, k0, step_scale);
                }
                return staleness_dict(r);
            },
            py::arg("seed"), py::arg("k0"), py::arg("step_scale") = 1.0,
            "One epoch, every step multiplied by step_scale; returns update and staleness counts like "
            "logistic_epoch.")
        .def(
            "evaluate",
            [be](PyLogisticEngine& e, const PyGpuDataset& data) {
                if (data.device != e.device) throw py::value_error("the data set is on another device");
                if (data.data->n_cols() != e.n_cols) throw py::value_error("the data set has another feature count");
                double loss = 0;
                int64_t correct = 0;
                {
                    py::gil_scoped_release nogil;
                    be->use_device(e.device);
                    e.engine->evaluate(data.data->view(), data.data->labels(), &loss, &correct);
                }
                return py::make_tuple(loss, correct);
            },
            py::arg("data"), "Sum of log-losses and number of correct predictions on a data set.")
        .def(
            "squared_norm",
            [be](PyLogisticEngine& e) {
                py::gil_scoped_release nogil;
                be->use_device(e.device);
                return e.engine->squared_norm();
            },
            "sum of w_j^2 over the active features")
        .def(
            "download_state",
            [be](PyLogisticEngine& e, py::array state) {
                void* p = gpu_state(e.rule, state, e.n_cols, true);
                py::gil_scoped_release nogil;
                be->use_device(e.device);
                e.engine->download_state(p, e.engine->state_bytes());
            },
            py::arg("state"), "Copy the model (every coordinate settled) into a host state array.")
        .def(
            "download_perm",
            [be](PyLogisticEngine& e) {
                py::array_t<int64_t> out(e.engine->n_rows());
                int64_t* p = out.mutable_data();
                py::gil_scoped_release nogil;
                be->use_device(e.device);
                e.engine->download_perm(p);
                return out;
            },
            "The visiting order as the epochs left it (a checkpoint keeps it).");
}

}  // namespace asyncopt_bindings
