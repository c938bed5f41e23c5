// The compiled module asyncopt._core: pybind11 glue only. Each area binds its own
// functions (bind_io.cpp, bind_optim.cpp, bind_logistic.cpp, bind_lda.cpp, bind_server.cpp, bind_compress.cpp,
// bind_gpu_emulator.cpp, bind_attached.cpp, bind_simulate.cpp, bind_rl.cpp); logic lives in the headers under csrc/asyncopt.
#include <pybind11/pybind11.h>

#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;

void bind_io(py::module_& m);
void bind_optim(py::module_& m);
void bind_compress(py::module_& m);
void bind_logistic(py::module_& m);
void bind_lda(py::module_& m);
void bind_server(py::module_& m);
void bind_gpu_emulator(py::module_& m);
void bind_interrupt(py::module_& m);
void bind_multinomial(py::module_& m);
void bind_attached(py::module_& m);
void bind_simulate(py::module_& m);
void bind_rl(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "asyncopt native core (header-only C++ under csrc/asyncopt, bound here)";
    bind_io(m);
    bind_optim(m);  // before the drivers: they take its Rule and StepConfig
    bind_logistic(m);
    bind_lda(m);  // after bind_logistic: LdaConfig derives from EpochConfig
    bind_server(m);
    bind_compress(m);
    bind_gpu_emulator(m);
    bind_interrupt(m);
    bind_multinomial(m);  // after bind_logistic: it takes LogisticConfig
    bind_attached(m);  // after bind_optim: it takes Rule and StepConfig
    bind_simulate(m);  // after bind_logistic: it takes LogisticConfig
    bind_rl(m);  // after bind_optim: its trainer takes Rule and StepConfig

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
        // Whether asyncopt._cuda was built, read from this module's own compile definitions so that
        // asking never loads the CUDA module (nor initialises CUDA).
        d["cuda"] = static_cast<bool>(ASYNCOPT_WITH_CUDA);
        py::list archs;
        const std::string list = ASYNCOPT_CUDA_ARCHS;
        for (size_t b = 0; b < list.size();) {
            size_t e = list.find(',', b);
            if (e == std::string::npos) e = list.size();
            if (e > b) archs.append(list.substr(b, e - b));
            b = e + 1;
        }
        d["cuda_architectures"] = archs;
        return d;
    }, "What this build of the native core contains (OpenMP, CUDA, compiler).");
}
