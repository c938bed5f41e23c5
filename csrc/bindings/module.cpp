// The compiled module asyncopt._core: pybind11 glue only. Each area binds its own
// functions (bind_io.cpp, bind_logistic.cpp, bind_lda.cpp, bind_server.cpp); logic lives in the headers under csrc/asyncopt.
#include <pybind11/pybind11.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

void bind_io(py::module_& m);
void bind_logistic(py::module_& m);
void bind_lda(py::module_& m);
void bind_server(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "asyncopt native core (header-only C++ under csrc/asyncopt, bound here)";
    bind_io(m);
    bind_logistic(m);
    bind_lda(m);  // after bind_logistic: LdaConfig derives from EpochConfig
    bind_server(m);

    m.def("build_info", []() {
        py::dict d;
        d["version"] = ASYNCOPT_VERSION;
        d["compiler"] = ASYNCOPT_COMPILER;
        d["native_arch"] = static_cast<bool>(ASYNCOPT_NATIVE_BUILD);
#ifdef _OPENMP
        d["openmp"] = true;
        d["openmp_version"] = static_cast<int>(_OPENMP);
        d["omp_max_threads"] = omp_get_max_threads();
#else
        d["openmp"] = false;
        d["openmp_version"] = py::none();
        d["omp_max_threads"] = 1;
#endif
        d["cuda"] = false;
        return d;
    }, "What this build of the native core contains (OpenMP, CUDA, compiler).");
}
