// pybind11 glue for the MPI backend (python/asyncopt/backends/mpi): the parameter server's model
// and a worker's mini-batch gradient. Array checks, dtype and rule dispatch, GIL release. No logic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>

#include "asyncopt/optim/rules.hpp"
#include "asyncopt/server/logistic.hpp"
#include "asyncopt/problems/logistic.hpp"
#include "arrays.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::checked;
using asyncopt_bindings::csr_view;
using asyncopt_bindings::is_dtype;

namespace {

// The rule-independent face of ServerModel<T, Rule, Steps>, so Python holds one type.
class ServerHandle {
public:
    virtual ~ServerHandle() = default;
    virtual uint64_t steps() const = 0;
    virtual int64_t n_features() const = 0;
    virtual void read(const int32_t* keys, int64_t n, double* out) const = 0;
    virtual double read_intercept() const = 0;
    virtual void apply(const int32_t* idx, const double* g, int64_t nnz, double g0) = 0;
    virtual void add(const int32_t* idx, const double* delta, int64_t nnz, double delta0, uint64_t n_steps) = 0;
    virtual double distance(int slot) const = 0;
    virtual void reset(int slot) = 0;
    virtual bool tracking() const = 0;
    virtual void settle() = 0;
    virtual void set_step_scale(double s) = 0;
    virtual const std::vector<int32_t>& touched() const = 0;

    py::object state_owner;  // keeps the numpy state array alive while the model points into it
    int n_slots = 0;
};

template <class T, class Rule, class Steps>
class ServerImpl final : public ServerHandle {
public:
    template <class... Args>
    explicit ServerImpl(Args&&... args) : m_(std::forward<Args>(args)...) {}
    uint64_t steps() const override { return m_.steps(); }
    int64_t n_features() const override { return m_.n_cols(); }
    void read(const int32_t* keys, int64_t n, double* out) const override { m_.read(keys, n, out); }
    double read_intercept() const override { return m_.read_intercept(); }
    void apply(const int32_t* idx, const double* g, int64_t nnz, double g0) override { m_.apply(idx, g, nnz, g0); }
    void add(const int32_t* idx, const double* d, int64_t nnz, double d0, uint64_t n) override {
        m_.add(idx, d, nnz, d0, n);
    }
    double distance(int slot) const override { return m_.distance(slot); }
    void reset(int slot) override { m_.reset(slot); }
    bool tracking() const override { return m_.tracking(); }
    void settle() override { m_.settle(); }
    void set_step_scale(double s) override { m_.set_step_scale(s); }
    const std::vector<int32_t>& touched() const override { return m_.touched(); }

private:
    ServerModel<T, Rule, Steps> m_;
};

template <class T, class Rule, class Steps>
std::unique_ptr<ServerHandle> make_typed(const py::array& state, int64_t n_features, const StepConfig& sc, uint64_t k0,
                                         bool fit_intercept, double intercept_scale, const py::array& active,
                                         int n_slots) {
    using State = typename Rule::State;
    State* st = checked<State>(state, "state", {n_features + 1}, true, 'V');
    const asyncopt_bindings::Features act = asyncopt_bindings::checked_active(active, n_features);
    std::unique_ptr<ServerHandle> h = std::make_unique<ServerImpl<T, Rule, Steps>>(
        st, n_features, sc, k0, fit_intercept, intercept_scale, act.ids, act.count, n_slots);
    h->state_owner = state;
    h->n_slots = n_slots;
    return h;
}

std::unique_ptr<ServerHandle> make_server(py::array state, int64_t n_features, RuleKind rule, const std::string& dtype,
                                          const StepConfig& sc, uint64_t k0, bool fit_intercept,
                                          double intercept_scale, py::array active, int n_slots) {
    if (n_features < 1) throw py::value_error("n_features must be >= 1");
    if (n_slots < 0) throw py::value_error("n_slots must be >= 0");
    if (n_slots > 0 && (!rule_capabilities(rule).additive || sc.decay != 0))
        throw py::value_error("move tracking (Picky SGD) needs an additive rule (SGD) without exact L2");
    auto make = [&](auto precision) {
        using T = decltype(precision);
        return visit_rule<T>(rule, sc, [&](auto v) {
            return make_typed<T, typename decltype(v)::Rule, typename decltype(v)::Steps>(
                state, n_features, sc, k0, fit_intercept, intercept_scale, active, n_slots);
        });
    };
    if (dtype == "float32") return make(float{});
    if (dtype == "float64") return make(double{});
    throw py::value_error("dtype must be 'float32' or 'float64'");
}

// (idx int32, values float64) of one sparse message, checked against the model's size.
std::pair<const int32_t*, const double*> sparse_pair(const ServerHandle& h, const py::array& idx,
                                                     const py::array& val, const char* what) {
    const int32_t* ip = checked<int32_t>(idx, "idx", {-1}, false);
    const double* vp = checked<double>(val, what, {idx.shape(0)}, false);
    const int64_t d = h.n_features();
    for (py::ssize_t a = 0; a < idx.shape(0); ++a)
        if (ip[a] < 0 || ip[a] >= d) throw py::value_error("idx holds an out-of-range feature");
    return {ip, vp};
}

void check_slot(const ServerHandle& h, int slot) {
    if (!h.tracking()) throw py::value_error("this server model was built without move tracking (n_slots=0)");
    if (slot < 0 || slot >= h.n_slots)
        throw py::value_error("slot must be in [0, " + std::to_string(h.n_slots) + ")");
}

template <class T>
py::tuple gradient_typed(const py::array& indptr, const py::array& indices, const py::array& data, int64_t n_features,
                         const py::array& y, const py::array& rows, const py::array& w, const py::object& reg_scale,
                         double sparse_alpha, bool fit_intercept, const py::array& idx_out, const py::array& g_out,
                         bool check_input) {
    const CsrView<T> X = csr_view<T>(indptr, indices, data, n_features, check_input);
    const double* yp = checked<double>(y, "y", {X.n_rows}, false);
    const int64_t* rp = checked<int64_t>(rows, "rows", {-1}, false);
    const int64_t count = rows.shape(0);
    if (count < 1) throw py::value_error("rows must not be empty");
    for (int64_t q = 0; q < count; ++q)
        if (rp[q] < 0 || rp[q] >= X.n_rows) throw py::value_error("rows holds an out-of-range row");
    const double* wp = checked<double>(w, "w", {n_features + 1}, false);
    const T* rs = nullptr;
    if (sparse_alpha > 0) rs = checked<T>(py::array(reg_scale), "reg_scale", {n_features}, false);
    int32_t* ip = checked<int32_t>(idx_out, "idx_out", {-1}, true);
    double* gp = checked<double>(g_out, "g_out", {idx_out.shape(0)}, true);
    if (idx_out.shape(0) < batch_nnz(X, rp, count)) throw py::value_error("idx_out is shorter than the batch's nonzeros");
    double g0 = 0;
    int64_t n;
    {
        py::gil_scoped_release nogil;
        thread_local BatchAccumulator acc;
        n = batch_gradient(X, yp, rp, count, wp, rs, sparse_alpha, fit_intercept, acc, ip, gp, &g0);
    }
    return py::make_tuple(n, g0);
}

template <class T>
int64_t features_typed(const py::array& indptr, const py::array& indices, const py::array& data, int64_t n_features,
                       const py::array& rows, const py::array& out, bool check_input) {
    const CsrView<T> X = csr_view<T>(indptr, indices, data, n_features, check_input);
    const int64_t* rp = checked<int64_t>(rows, "rows", {-1}, false);
    const int64_t count = rows.shape(0);
    for (int64_t q = 0; q < count; ++q)
        if (rp[q] < 0 || rp[q] >= X.n_rows) throw py::value_error("rows holds an out-of-range row");
    int32_t* op = checked<int32_t>(out, "out", {-1}, true);
    if (out.shape(0) < batch_nnz(X, rp, count)) throw py::value_error("out is shorter than the batch's nonzeros");
    py::gil_scoped_release nogil;
    thread_local BatchAccumulator acc;
    return batch_features(X, rp, count, acc, op);
}

}  // namespace

void bind_server(py::module_& m) {
    py::class_<ServerHandle>(m, "ServerModel",
                             "The parameter server's model: an optimizer state array updated one message at a "
                             "time by the rules of csrc/asyncopt/optim (csrc/asyncopt/server/logistic.hpp).")
        .def(py::init(&make_server), py::arg("state").noconvert(), py::arg("n_features"), py::arg("rule"),
             py::arg("dtype"), py::arg("steps"), py::arg("k0"), py::arg("fit_intercept"), py::arg("intercept_scale"),
             py::arg("active"), py::arg("n_slots") = 0)
        .def_property_readonly("steps", &ServerHandle::steps, "Steps applied (the schedule's k).")
        .def(
            "read",
            [](const ServerHandle& h, py::array keys, py::array out) {
                const int32_t* kp = checked<int32_t>(keys, "keys", {-1}, false);
                double* op = checked<double>(out, "out", {keys.shape(0)}, true);
                for (py::ssize_t a = 0; a < keys.shape(0); ++a)
                    if (kp[a] < 0 || kp[a] >= h.n_features()) throw py::value_error("keys holds an out-of-range feature");
                py::gil_scoped_release nogil;
                h.read(kp, keys.shape(0), op);
            },
            py::arg("keys"), py::arg("out"), "out[i] = x[keys[i]] as of the latest step.")
        .def("read_intercept", &ServerHandle::read_intercept)
        .def(
            "apply",
            [](ServerHandle& h, py::array idx, py::array g, double g0) {
                auto [ip, gp] = sparse_pair(h, idx, g, "g");
                py::gil_scoped_release nogil;
                h.apply(ip, gp, idx.shape(0), g0);
            },
            py::arg("idx"), py::arg("g"), py::arg("g0"),
            "One step of the rule with gradient g at the (distinct) features idx and intercept gradient g0.")
        .def(
            "add",
            [](ServerHandle& h, py::array idx, py::array delta, double delta0, uint64_t n_steps) {
                auto [ip, dp] = sparse_pair(h, idx, delta, "delta");
                py::gil_scoped_release nogil;
                h.add(ip, dp, idx.shape(0), delta0, n_steps);
            },
            py::arg("idx"), py::arg("delta"), py::arg("delta0"), py::arg("n_steps"),
            "x += delta (a DPSGD worker's local change over n_steps steps); SGD without exact L2 only.")
        .def(
            "distance",
            [](const ServerHandle& h, int slot) {
                check_slot(h, slot);
                return h.distance(slot);
            },
            py::arg("slot"), "||x_now - x_read|| for the worker in this slot (Picky SGD).")
        .def(
            "reset",
            [](ServerHandle& h, int slot) {
                check_slot(h, slot);
                h.reset(slot);
            },
            py::arg("slot"), "The worker in this slot has just read the model.")
        .def(
            "set_step_scale",
            [](ServerHandle& h, double s) {
                if (!(s > 0 && s <= 1)) throw py::value_error("step scale must be in (0, 1]");
                h.set_step_scale(s);
            },
            py::arg("scale"), "Multiply every later step by scale (the plateau drops); settles the model first.")
        .def("settle", &ServerHandle::settle,
             "Bring every touched coordinate up to the latest step, so the state array holds the model.")
        .def_property_readonly(
            "touched",
            [](const ServerHandle& h) {
                const auto& t = h.touched();
                py::array_t<int32_t> out(static_cast<py::ssize_t>(t.size()));
                std::copy(t.begin(), t.end(), out.mutable_data());
                return out;
            },
            "Features any step touched (with the initial active ones), in first-touch order.");

    m.def(
        "logistic_batch_gradient",
        [](py::array indptr, py::array indices, py::array data, int64_t n_features, py::array y, py::array rows,
           py::array w, py::object reg_scale, double sparse_alpha, bool fit_intercept, py::array idx_out,
           py::array g_out, bool check_input) {
            const py::dtype dt = data.dtype();
            if (is_dtype<float>(dt))
                return gradient_typed<float>(indptr, indices, data, n_features, y, rows, w, reg_scale, sparse_alpha,
                                             fit_intercept, idx_out, g_out, check_input);
            if (is_dtype<double>(dt))
                return gradient_typed<double>(indptr, indices, data, n_features, y, rows, w, reg_scale, sparse_alpha,
                                              fit_intercept, idx_out, g_out, check_input);
            throw py::value_error("data: dtype must be float32 or float64, got " + std::string(py::str(dt)));
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"), py::arg("y"), py::arg("rows"),
        py::arg("w"), py::arg("reg_scale"), py::arg("sparse_alpha"), py::arg("fit_intercept"),
        py::arg("idx_out").noconvert(), py::arg("g_out").noconvert(), py::arg("check_input") = true,
        "Mean gradient of the mini-batch `rows` at the dense model copy w (intercept last): writes the batch's "
        "features to idx_out and their gradients to g_out; returns (count, intercept gradient). "
        "check_input=False skips the O(nnz) CSR check (the caller ran validate_csr on these arrays).");
    m.def(
        "batch_features",
        [](py::array indptr, py::array indices, py::array data, int64_t n_features, py::array rows, py::array out,
           bool check_input) {
            const py::dtype dt = data.dtype();
            if (is_dtype<float>(dt))
                return features_typed<float>(indptr, indices, data, n_features, rows, out, check_input);
            if (is_dtype<double>(dt))
                return features_typed<double>(indptr, indices, data, n_features, rows, out, check_input);
            throw py::value_error("data: dtype must be float32 or float64, got " + std::string(py::str(dt)));
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"), py::arg("rows"),
        py::arg("out").noconvert(), py::arg("check_input") = true,
        "The distinct columns of the rows `rows` in first-occurrence order, written to out; returns how many. "
        "check_input=False skips the O(nnz) CSR check.");
}
