// The SIGINT handler of native fits (csrc/asyncopt/core/interrupt.hpp says why): installed by
// asyncopt.training around an epoch loop run in Python's main thread, restored after it, so Ctrl-C
// outside a fit (and in a process whose SIGINT handler is not Python's default) is untouched.
#include <pybind11/pybind11.h>

#include <csignal>

#include "asyncopt/core/interrupt.hpp"

namespace py = pybind11;

namespace {

#ifndef _WIN32
struct sigaction g_previous;
#else
void (*g_previous)(int) = SIG_DFL;
#endif
bool g_installed = false;

extern "C" void on_sigint(int) { asyncopt::request_stop(); }

}  // namespace

void bind_interrupt(py::module_& m) {
    m.def(
        "sigint_install",
        []() {
            if (g_installed) return false;
            asyncopt::clear_stop();
#ifndef _WIN32
            struct sigaction sa {};
            sa.sa_handler = on_sigint;
            sigemptyset(&sa.sa_mask);
            sa.sa_flags = 0;  // no SA_RESTART: a blocking call returns, as under Python's own handler
            if (sigaction(SIGINT, &sa, &g_previous) != 0) return false;
#else
            g_previous = std::signal(SIGINT, on_sigint);
#endif
            g_installed = true;
            return true;
        },
        "Route SIGINT to the native stop flag (until sigint_restore); False if already routed.");
    m.def(
        "sigint_restore",
        []() {
            if (!g_installed) return;
#ifndef _WIN32
            sigaction(SIGINT, &g_previous, nullptr);
#else
            std::signal(SIGINT, g_previous);
#endif
            g_installed = false;
        },
        "Give SIGINT back to the handler it had before sigint_install.");
    m.def("stop_requested", &asyncopt::stop_requested, "Whether a SIGINT (or request_stop) asked the fit to stop.");
    m.def("request_stop", &asyncopt::request_stop, "Ask running native loops to stop after their mini-batch.");
    m.def("clear_stop", &asyncopt::clear_stop, "Forget a stop request.");
}
