// pybind11 glue for LDA (csrc/asyncopt/threads/lda.hpp): array checks, GIL release. No logic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "asyncopt/core/sparse.hpp"
#include "asyncopt/server/lda.hpp"
#include "asyncopt/threads/lda.hpp"
#include "arrays.hpp"

namespace py = pybind11;
using namespace asyncopt;
using asyncopt_bindings::checked;
using asyncopt_bindings::csr_view;

namespace {

CsrView<double> counts_view(const py::array& indptr, const py::array& indices, const py::array& data, int64_t n_cols) {
    const CsrView<double> X = csr_view<double>(indptr, indices, data, n_cols);
    for (int64_t p = 0; p < X.nnz(); ++p)
        if (!(X.data[p] >= 0) || !std::isfinite(X.data[p]))
            throw py::value_error("data: word counts must be finite and >= 0");
    return X;
}

LdaModel model_view(const py::array& mu, const py::array& topic_mass, int64_t n_cols, const LdaConfig& c,
                    bool writable) {
    if (c.n_components < 1) throw py::value_error("n_components must be >= 1");
    LdaModel m;
    m.n_words = n_cols;
    m.n_topics = c.n_components;
    m.mu = checked<double>(mu, "mu", {n_cols, c.n_components}, writable);
    m.topic_mass = checked<double>(topic_mass, "topic_mass", {c.n_components}, writable);
    return m;
}

void check_config(const LdaConfig& c) {
    if (!(c.doc_topic_prior > 0)) throw py::value_error("doc_topic_prior must be > 0");
    if (!(c.topic_word_prior > 0)) throw py::value_error("topic_word_prior must be > 0");
    if (!(c.learning_offset > 0)) throw py::value_error("learning_offset must be > 0");
    if (!(c.learning_decay > 0.5 && c.learning_decay <= 1)) throw py::value_error("learning_decay must be in (0.5, 1]");
    if (!(c.total_samples > 0)) throw py::value_error("total_samples must be > 0");
    if (c.max_doc_update_iter < 1) throw py::value_error("max_doc_update_iter must be >= 1");
    if (!(c.mean_change_tol >= 0)) throw py::value_error("mean_change_tol must be >= 0");
}

py::dict run_epoch(py::array indptr, py::array indices, py::array data, int64_t n_features, py::array perm,
                   py::array mu, py::array topic_mass, const LdaConfig& given) {
    if (given.batch_size < 1) throw py::value_error("batch_size must be >= 1");
    check_n_threads(given.n_threads);
    // As for logistic regression (bind_logistic.cpp): no mini-batch holds more documents than
    // there are, and the driver's claims add batch_size to row positions, so a huge batch_size is
    // clamped to the documents (the same epoch) rather than left to overflow them.
    LdaConfig cfg = given;
    cfg.batch_size = std::min<int64_t>(cfg.batch_size, std::max<py::ssize_t>(1, indptr.shape(0) - 1));
    check_config(cfg);
    const CsrView<double> X = counts_view(indptr, indices, data, n_features);
    const LdaModel m = model_view(mu, topic_mass, n_features, cfg, true);
    int64_t* p = checked<int64_t>(perm, "perm", {X.n_rows}, true);
    for (int64_t i = 0; i < X.n_rows; ++i)
        if (p[i] < 0 || p[i] >= X.n_rows) throw py::value_error("perm holds an out-of-range document");
    EpochResult r;
    LdaEpochStats s;
    {
        py::gil_scoped_release nogil;
        const int nt = have_openmp() ? cfg.n_threads : 1;
        LdaWork work(X, m, cfg, nt);
        r = hogwild_epoch(X.n_rows, p, cfg, work);
        s = work.stats();
    }
    py::dict d = asyncopt_bindings::staleness_dict(r);
    d["e_step_iterations"] = s.e_step_iterations;
    d["topic_mass_drift"] = s.topic_mass_drift;
    return d;
}

py::tuple infer(py::array indptr, py::array indices, py::array data, int64_t n_features, py::array mu,
                py::array topic_mass, const LdaConfig& cfg, int64_t n_threads, bool with_loglik) {
    check_config(cfg);
    check_n_threads(n_threads);
    const CsrView<double> X = counts_view(indptr, indices, data, n_features);
    const LdaModel m = model_view(mu, topic_mass, n_features, cfg, false);
    py::array_t<double> gamma({static_cast<py::ssize_t>(X.n_rows), static_cast<py::ssize_t>(cfg.n_components)});
    py::array_t<double> loglik(with_loglik ? X.n_rows : 0);
    double* g = gamma.mutable_data();
    double* ll = with_loglik ? loglik.mutable_data() : nullptr;
    {
        py::gil_scoped_release nogil;
        lda_infer(X, m, cfg, static_cast<int>(n_threads), g, ll);
    }
    if (!with_loglik) return py::make_tuple(gamma, py::none());
    return py::make_tuple(gamma, loglik);
}

py::array_t<double> doc_loglik(py::array indptr, py::array indices, py::array data, int64_t n_features, py::array mu,
                               py::array topic_mass, py::array gamma, const LdaConfig& cfg, int64_t n_threads) {
    check_config(cfg);
    check_n_threads(n_threads);
    const CsrView<double> X = counts_view(indptr, indices, data, n_features);
    const LdaModel m = model_view(mu, topic_mass, n_features, cfg, false);
    const double* g = checked<double>(gamma, "gamma", {X.n_rows, cfg.n_components}, false);
    for (int64_t i = 0; i < X.n_rows * cfg.n_components; ++i)
        if (!(g[i] > 0) || !std::isfinite(g[i])) throw py::value_error("gamma must be finite and > 0");
    py::array_t<double> out(X.n_rows);
    double* o = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        lda_doc_loglik(X, m, cfg.topic_word_prior, g, static_cast<int>(n_threads), o);
    }
    return out;
}

// The server's model over the estimator's own mu and topic_mass arrays, kept alive by the handle.
struct LdaServerHandle {
    py::object mu_owner, mass_owner;
    std::unique_ptr<LdaServerModel> model;
    int64_t n_words;
    int n_topics;
};

LdaServerHandle make_lda_server(py::array mu, py::array topic_mass, const LdaConfig& cfg, uint64_t k0) {
    check_config(cfg);
    if (mu.ndim() != 2) throw py::value_error("mu: expected a 2-d array (V x K)");
    const LdaModel m = model_view(mu, topic_mass, mu.shape(0), cfg, true);
    return LdaServerHandle{mu, topic_mass, std::make_unique<LdaServerModel>(m, cfg, k0), m.n_words, m.n_topics};
}

// words: distinct, in [0, V); rows of K values follow in `values`
const int32_t* checked_words(const LdaServerHandle& h, const py::array& words, const py::array& values,
                             const char* what, double** vp, bool writable) {
    const int32_t* wp = checked<int32_t>(words, "words", {-1}, false);
    *vp = checked<double>(values, what, {words.shape(0), h.n_topics}, writable);
    for (py::ssize_t r = 0; r < words.shape(0); ++r)
        if (wp[r] < 0 || wp[r] >= h.n_words) throw py::value_error("words holds an out-of-range word");
    return wp;
}

int64_t batch_stats(py::array indptr, py::array indices, py::array data, int64_t n_features, py::array docs,
                    py::array words, py::array mu, py::array mass, const LdaConfig& cfg, int64_t n_threads,
                    py::array out, bool check_input) {
    check_config(cfg);
    check_n_threads(n_threads);
    const CsrView<double> X = check_input ? counts_view(indptr, indices, data, n_features)
                                          : csr_view<double>(indptr, indices, data, n_features, /*deep=*/false);
    const int64_t* dp = checked<int64_t>(docs, "docs", {-1}, false);
    const int64_t count = docs.shape(0);
    if (count < 1) throw py::value_error("docs must not be empty");
    for (int64_t q = 0; q < count; ++q)
        if (dp[q] < 0 || dp[q] >= X.n_rows) throw py::value_error("docs holds an out-of-range document");
    const int K = cfg.n_components;
    const int32_t* wp = checked<int32_t>(words, "words", {-1}, false);
    const int64_t n = words.shape(0);
    for (int64_t r = 0; r < n; ++r)
        if (wp[r] < 0 || wp[r] >= n_features) throw py::value_error("words holds an out-of-range word");
    const double* mp = checked<double>(mu, "mu", {n, K}, false);
    const double* sp = checked<double>(mass, "mass", {K}, false);
    double* op = checked<double>(out, "out", {n, K}, true);
    try {
        py::gil_scoped_release nogil;
        return lda_batch_stats(X, dp, count, wp, n, mp, sp, cfg, static_cast<int>(n_threads), op);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

}  // namespace

void bind_lda(py::module_& m) {
    py::class_<LdaConfig, EpochConfig>(m, "LdaConfig", "Driver settings plus SVI constants (threads/lda.hpp)")
        .def(py::init<>())
        .def_readwrite("n_components", &LdaConfig::n_components)
        .def_readwrite("doc_topic_prior", &LdaConfig::doc_topic_prior)
        .def_readwrite("topic_word_prior", &LdaConfig::topic_word_prior)
        .def_readwrite("learning_offset", &LdaConfig::learning_offset)
        .def_readwrite("learning_decay", &LdaConfig::learning_decay)
        .def_readwrite("total_samples", &LdaConfig::total_samples)
        .def_readwrite("max_doc_update_iter", &LdaConfig::max_doc_update_iter)
        .def_readwrite("mean_change_tol", &LdaConfig::mean_change_tol);

    py::class_<LdaServerHandle>(m, "LdaServerModel",
                                "The parameter server's LDA model: SVI's global step applied one message at a time "
                                "to mu and topic_mass in place (csrc/asyncopt/server/lda.hpp).")
        .def(py::init(&make_lda_server), py::arg("mu").noconvert(), py::arg("topic_mass").noconvert(),
             py::arg("config"), py::arg("k0"))
        .def_property_readonly("steps", [](const LdaServerHandle& h) { return h.model->steps(); })
        .def(
            "read",
            [](const LdaServerHandle& h, py::array words, py::array out, py::array mass) {
                double* op;
                const int32_t* wp = checked_words(h, words, out, "out", &op, true);
                double* mp = checked<double>(mass, "mass", {h.n_topics}, true);
                py::gil_scoped_release nogil;
                h.model->read(wp, words.shape(0), op, mp);
            },
            py::arg("words"), py::arg("out"), py::arg("mass"),
            "out[r] = lambda - eta of words[r] (K values) and mass = its topic sums, as of the latest step.")
        .def(
            "apply",
            [](LdaServerHandle& h, py::array words, py::array stats, double n_docs) {
                double* sp;
                const int32_t* wp = checked_words(h, words, stats, "stats", &sp, false);
                if (!(n_docs > 0)) throw py::value_error("n_docs must be > 0");
                py::gil_scoped_release nogil;
                h.model->apply(wp, sp, words.shape(0), n_docs);
            },
            py::arg("words"), py::arg("stats"), py::arg("n_docs"),
            "One global step from a mini-batch of n_docs documents: stats = sstats x exp(E[log beta]) of words.")
        .def(
            "settle",
            [](LdaServerHandle& h) {
                py::gil_scoped_release nogil;
                return h.model->settle();
            },
            "Fold the lazy decay into mu (mu and topic_mass then hold the model); returns the topic-sum drift.");
    m.def("lda_batch_stats", &batch_stats, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_features"), py::arg("docs"), py::arg("words"), py::arg("mu"), py::arg("mass"), py::arg("config"),
          py::arg("n_threads"), py::arg("out").noconvert(), py::arg("check_input") = true,
          "A DPSVI worker's E-steps of the documents `docs` against lambda - eta of their words (mu, K per word "
          "of `words`, every word of the documents) and the topic sums; writes sstats x exp(E[log beta]) to "
          "out and returns the E-step iterations. check_input=False skips the O(nnz) CSR check. The GIL is released.");
    m.def("lda_epoch", &run_epoch, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"),
          py::arg("perm").noconvert(), py::arg("mu").noconvert(), py::arg("topic_mass").noconvert(),
          py::arg("config"),
          "One lock-free SVI epoch in place on mu (V x K, lambda - eta) and topic_mass (K, its column sums); "
          "returns update, staleness, E-step iteration and topic-sum drift counts. The GIL is released.");
    m.def("lda_infer", &infer, py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"),
          py::arg("mu"), py::arg("topic_mass"), py::arg("config"), py::arg("n_threads"), py::arg("with_loglik"),
          "gamma (D x K) of every document with lambda fixed, and optionally each document's expected "
          "log-likelihood term of the bound. The GIL is released.");
    m.def("lda_doc_loglik", &doc_loglik, py::arg("indptr"), py::arg("indices"), py::arg("data"),
          py::arg("n_features"), py::arg("mu"), py::arg("topic_mass"), py::arg("gamma"), py::arg("config"),
          py::arg("n_threads"), "Each document's expected log-likelihood term of the bound at the given gamma.");
}
