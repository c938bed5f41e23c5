// asyncopt_bench: the C++ microbenchmarks (bench/cpp/README.md). Registered here in a fixed order,
// the machine's limits first, so that every report's frac_of_* uses limits measured in the same run
// (a filtered run measures the limits it needs itself, untimed).
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>

#include "asyncopt/core/parallel.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
    using namespace asyncopt_bench;
    // --quick is ours (common.hpp); every other flag goes to Google Benchmark
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0)
            set_quick(true);
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    register_limits();
    register_logistic();
    register_lda();
    register_libsvm();
    register_gpu_emulator();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("asyncopt_threads", std::to_string(max_threads()) + " (1.." +
                                                        std::to_string(max_threads()) + " in every scaling report)");
    benchmark::AddCustomContext("asyncopt_openmp", asyncopt::have_openmp() ? "yes" : "no");
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(ASYNCOPT_NO_CLONES)
    // the test GCC's resolver makes for the E-step's target_clones("arch=haswell", "default")
    // (problems/lda.hpp): the CPU model, not its features
    benchmark::AddCustomContext("asyncopt_lda_e_step_clone", __builtin_cpu_is("haswell")
                                                                 ? "arch=haswell (AVX2+FMA)"
                                                                 : "default (the build's baseline ISA: this CPU is no Haswell)");
#endif
    const SparseData& d = logistic_data();  // built here, so that its size heads the report
    benchmark::AddCustomContext("asyncopt_logistic_data",
                                std::to_string(d.n_rows) + " rows x " + std::to_string(d.n_cols) + " features, " +
                                    std::to_string(d.nnz()) + " nonzeros" +
                                    (quick() ? " (--quick: reduced data sets, a smoke run only)" : ""));
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
