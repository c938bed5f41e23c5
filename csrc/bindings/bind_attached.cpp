// pybind11 glue of the update rules on a caller's own array (csrc/asyncopt/optim/attached.hpp):
// array checks, dtype and rule dispatch, GIL release. No logic. python/asyncopt/optim.py validates
// with messages naming the user's arguments first; these checks guard the native entry points.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "asyncopt/optim/attached.hpp"
#include "asyncopt/optim/rules.hpp"
#include "arrays.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::is_dtype;

namespace {

class PyAttached {
public:
    PyAttached(py::array param, RuleKind rule, const StepConfig& sc, uint64_t segment) : param_(param) {
        if (param.ndim() != 1 && param.ndim() != 2) throw py::value_error("param: expected a 1-d or 2-d array");
        if (!(param.flags() & py::array::c_style)) throw py::value_error("param: expected a C-contiguous array");
        if (!param.writeable()) throw py::value_error("param: array is read-only");
        rows_ = param.shape(0);
        dim_ = param.ndim() == 2 ? param.shape(1) : 1;
        if (rows_ < 1 || dim_ < 1) throw py::value_error("param: must not be empty");
        const py::dtype dt = param.dtype();
        if (is_dtype<float>(dt)) make<float>(rule, sc, segment);
        else if (is_dtype<double>(dt)) make<double>(rule, sc, segment);
        else throw py::value_error("param: dtype must be float32 or float64, got " + std::string(py::str(dt)));
    }

    uint64_t step(py::array grad, py::object rows) {
        const int64_t* idx = nullptr;
        int64_t n = rows_;
        py::array r;
        if (!rows.is_none()) {
            r = py::array(rows);
            idx = checked_rows(r);
            n = r.shape(0);
        }
        if (!grad.dtype().is(param_.dtype()) && !grad.dtype().attr("__eq__")(param_.dtype()).cast<bool>())
            throw py::value_error("grad: dtype must equal param's, got " + std::string(py::str(grad.dtype())));
        if (!(grad.flags() & py::array::c_style)) throw py::value_error("grad: expected a C-contiguous array");
        if (grad.size() != n * dim_) throw py::value_error("grad: expected " + std::to_string(n * dim_) + " values");
        const void* g = grad.data();
        py::gil_scoped_release nogil;
        return impl_->step(idx, n, g);
    }

    uint64_t catch_up(py::object rows) {
        const int64_t* idx = nullptr;
        int64_t n = rows_;
        py::array r;
        if (!rows.is_none()) {
            r = py::array(rows);
            idx = checked_rows(r);
            n = r.shape(0);
        }
        py::gil_scoped_release nogil;
        return impl_->catch_up(idx, n);
    }

    void finish() {
        py::gil_scoped_release nogil;
        impl_->finish();
    }

    uint64_t steps() const { return impl_->steps(); }
    uint64_t segment_steps() const { return impl_->segment_steps(); }
    uint64_t rebases() const { return impl_->rebases(); }

private:
    template <class T>
    void make(RuleKind rule, const StepConfig& sc, uint64_t segment) {
        T* W = static_cast<T*>(param_.mutable_data());
        impl_ = visit_rule<T>(rule, sc, [&](auto v) -> std::unique_ptr<AttachedOptimizer> {
            using V = decltype(v);
            return std::make_unique<Attached<T, typename V::Rule, typename V::Steps>>(W, rows_, dim_, sc, segment);
        });
    }

    const int64_t* checked_rows(const py::array& r) const {
        const int64_t* idx = asyncopt_bindings::checked<int64_t>(r, "rows", {-1}, false);
        for (py::ssize_t i = 0; i < r.shape(0); ++i)
            if (idx[i] < 0 || idx[i] >= rows_) throw py::value_error("rows holds an out-of-range index");
        return idx;
    }

    py::array param_;  // keeps the caller's array alive while the native side points into it
    int64_t rows_ = 0, dim_ = 1;
    std::unique_ptr<AttachedOptimizer> impl_;
};

}  // namespace

void bind_attached(py::module_& m) {
    py::class_<PyAttached>(m, "AttachedOptimizer",
                           "An update rule attached to a caller's float32/float64 array, updated in place "
                           "(csrc/asyncopt/optim/attached.hpp); python/asyncopt/optim.py's attach() wraps it")
        .def(py::init<py::array, RuleKind, const StepConfig&, uint64_t>(), py::arg("param"), py::arg("rule"),
             py::arg("steps"), py::arg("segment_steps") = 0)
        .def("step", &PyAttached::step, py::arg("grad"), py::arg("rows") = py::none(),
             "One step: grad for the given distinct rows (int64) of param, or for all of it; GIL released. Returns its step number k")
        .def("catch_up", &PyAttached::catch_up, py::arg("rows") = py::none(),
             "Bring the given rows (all: None) to the latest step begun; returns its number k")
        .def("finish", &PyAttached::finish, "Every coordinate to the last completed step; stamps rebased")
        .def_property_readonly("steps", &PyAttached::steps, "global steps begun (all completed when no step runs)")
        .def_property_readonly("segment_steps", &PyAttached::segment_steps, "steps per stamp segment")
        .def_property_readonly("rebases", &PyAttached::rebases, "segments closed so far");
}
