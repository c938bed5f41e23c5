"""Tier 1 for LDA: one-thread native SVI == a dense NumPy reference of the same algorithm
(Hoffman et al. 2013 Alg. 1 with scikit-learn's E-step conventions, gamma started at 1), and the
bound == scikit-learn's _approx_bound for the same lambda."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import gammaln, logsumexp, psi
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.utils import check_random_state

import asyncopt

EPS = np.finfo(np.float64).eps


def tiny_corpus(n_docs=40, n_words=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.6, size=(n_docs, n_words)).astype(np.float64)
    X[3] = 0  # an empty document
    X[:, 7] = 0  # a word no document uses
    return sp.csr_matrix(X)


def e_step(ids, cnts, exp_elog_beta, alpha, max_iter, tol):
    """One document's E-step (dense reference): gamma from 1, scikit-learn's update and stopping rule."""
    K = exp_elog_beta.shape[0]
    gamma = np.ones(K)
    etheta = np.exp(psi(gamma) - psi(gamma.sum()))
    B = exp_elog_beta[:, ids]
    for _ in range(max_iter):
        last = gamma
        phinorm = etheta @ B + EPS
        gamma = etheta * (B @ (cnts / phinorm)) + alpha
        etheta = np.exp(psi(gamma) - psi(gamma.sum()))
        if np.mean(np.abs(gamma - last)) < tol:
            break
    phinorm = etheta @ B + EPS
    return gamma, np.outer(etheta, cnts / phinorm)


def svi_reference(X, lam0, alpha, eta, tau0, kappa, batch_size, epochs, max_iter, tol):
    """Dense SVI: lambda <- (1 - rho_t) lambda + rho_t (eta + D/|B| sstats), batches in order."""
    lam = lam0.copy()
    D = X.shape[0]
    t = 0
    for _ in range(epochs):
        for start in range(0, D, batch_size):
            Xb = X[start:start + batch_size]
            t += 1
            exp_elog_beta = np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None])
            sstats = np.zeros_like(lam)
            for d in range(Xb.shape[0]):
                ids = Xb.indices[Xb.indptr[d]:Xb.indptr[d + 1]]
                cnts = Xb.data[Xb.indptr[d]:Xb.indptr[d + 1]]
                _, ss = e_step(ids, cnts, exp_elog_beta, alpha, max_iter, tol)
                sstats[:, ids] += ss
            sstats *= exp_elog_beta
            rho = (tau0 + t) ** -kappa
            lam = (1 - rho) * lam + rho * (eta + D / Xb.shape[0] * sstats)
    return lam


def bound_reference(X, lam, gamma, alpha, eta):
    """scikit-learn's _approx_bound (sub_sampling=False), written out."""
    K, V = lam.shape
    elog_theta = psi(gamma) - psi(gamma.sum(axis=1))[:, None]
    elog_beta = psi(lam) - psi(lam.sum(axis=1))[:, None]
    score = 0.0
    for d in range(X.shape[0]):
        ids = X.indices[X.indptr[d]:X.indptr[d + 1]]
        cnts = X.data[X.indptr[d]:X.indptr[d + 1]]
        score += cnts @ logsumexp(elog_theta[d][:, None] + elog_beta[:, ids], axis=0)
    score += np.sum((alpha - gamma) * elog_theta) + np.sum(gammaln(gamma) - gammaln(alpha))
    score += np.sum(gammaln(alpha * K) - gammaln(gamma.sum(axis=1)))
    score += np.sum((eta - lam) * elog_beta) + np.sum(gammaln(lam) - gammaln(eta))
    score += np.sum(gammaln(eta * V) - gammaln(lam.sum(axis=1)))
    return score


CASES = [
    dict(batch_size=7, learning_offset=10.0, learning_decay=0.7),  # last batch shorter than the others
    dict(batch_size=1, learning_offset=1.0, learning_decay=0.9),
    # rho_1 ~ 1 - 7e-7: S falls so fast that an epoch runs as several segments (folding exercised)
    dict(batch_size=1, learning_offset=1e-6, learning_decay=0.7),
]


@pytest.mark.parametrize("case", CASES)
def test_one_thread_svi_equals_dense_reference(case):
    X = tiny_corpus()
    K, alpha, eta = 3, 0.2, 0.05
    lda = asyncopt.LDA(n_components=K, doc_topic_prior=alpha, topic_word_prior=eta, epochs=2, shuffle=False,
                       n_threads=1, random_state=0, train_perplexity_docs=0, **case)
    lda.fit(X)
    lam0 = check_random_state(0).gamma(100.0, 0.01, (K, X.shape[1]))
    lam = svi_reference(X, lam0, alpha, eta, case["learning_offset"], case["learning_decay"], case["batch_size"],
                        epochs=2, max_iter=100, tol=1e-3)
    np.testing.assert_allclose(lda.components_, lam, rtol=1e-6)
    assert lda.t_ == 2 * -(-X.shape[0] // case["batch_size"])
    assert lda.staleness_.count == lda.t_ and lda.staleness_.max == 0

    # transform: each document's E-step with lambda fixed, normalised
    exp_elog_beta = np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None])
    gamma = np.array([e_step(X.indices[X.indptr[d]:X.indptr[d + 1]], X.data[X.indptr[d]:X.indptr[d + 1]],
                             exp_elog_beta, alpha, 100, 1e-3)[0] for d in range(X.shape[0])])
    np.testing.assert_allclose(lda.transform(X), gamma / gamma.sum(axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(lda.transform(X, normalize=False), gamma, rtol=1e-6)

    # the bound, against the written-out reference at the model's own lambda
    lam_model = lda.components_
    eb = np.exp(psi(lam_model) - psi(lam_model.sum(axis=1))[:, None])
    g = np.array([e_step(X.indices[X.indptr[d]:X.indptr[d + 1]], X.data[X.indptr[d]:X.indptr[d + 1]],
                         eb, alpha, 100, 1e-3)[0] for d in range(X.shape[0])])
    expected = bound_reference(X, lam_model, g, alpha, eta)
    assert lda.score(X) == pytest.approx(expected, rel=1e-9)
    assert lda.perplexity(X) == pytest.approx(np.exp(-expected / X.sum()), rel=1e-9)


def test_bound_matches_sklearn_approx_bound():
    """Same lambda in scikit-learn's estimator: perplexity, score and transform agree (scikit-learn's
    own digamma is accurate to ~1e-7, hence the tolerance)."""
    X = tiny_corpus(60, 50, seed=1)
    lda = asyncopt.LDA(n_components=4, epochs=3, batch_size=8, n_threads=1, random_state=3,
                       train_perplexity_docs=0).fit(X)
    sk = LatentDirichletAllocation(n_components=4, learning_method="online", random_state=0)
    sk.fit(X)  # sets the fitted attributes; then take our lambda and priors
    sk.components_ = lda.components_.copy()
    from sklearn.decomposition._online_lda_fast import _dirichlet_expectation_2d
    sk.exp_dirichlet_component_ = np.exp(_dirichlet_expectation_2d(sk.components_))
    sk.doc_topic_prior_ = lda.doc_topic_prior_
    sk.topic_word_prior_ = lda.topic_word_prior_
    Xt = tiny_corpus(25, 50, seed=2)
    for data in (X, Xt):
        assert lda.perplexity(data) == pytest.approx(sk.perplexity(data), rel=1e-5)
        assert lda.score(data) == pytest.approx(sk.score(data), rel=1e-5)
        np.testing.assert_allclose(lda.transform(data), sk.transform(data), rtol=1e-4, atol=1e-7)


def test_one_thread_bit_reproducible_with_shuffles():
    X = tiny_corpus(80, 40, seed=4)
    kw = dict(n_components=3, epochs=3, batch_size=5, n_threads=1, random_state=7, train_perplexity_docs=0)
    a = asyncopt.LDA(**kw).fit(X)
    b = asyncopt.LDA(**kw).fit(X)
    assert np.array_equal(a.components_, b.components_)
    c = asyncopt.LDA(**{**kw, "random_state": 8}).fit(X)
    assert not np.array_equal(a.components_, c.components_)


def test_partial_fit_uses_total_samples():
    """partial_fit continues lambda with D = total_samples, as the dense algorithm would."""
    X = tiny_corpus()
    K, alpha, eta = 3, 0.2, 0.05
    lda = asyncopt.LDA(n_components=K, doc_topic_prior=alpha, topic_word_prior=eta, batch_size=8, shuffle=False,
                       n_threads=1, random_state=0, total_samples=500, train_perplexity_docs=0)
    lda.partial_fit(X[:20])
    lda.partial_fit(X[20:])
    lam0 = check_random_state(0).gamma(100.0, 0.01, (K, X.shape[1]))
    # the reference's D is the batch's corpus; emulate total_samples by rescaling: run it per call
    lam = lam0
    t = 0
    for part in (X[:20], X[20:]):
        for start in range(0, part.shape[0], 8):
            Xb = part[start:start + 8]
            t += 1
            eb = np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None])
            ss = np.zeros_like(lam)
            for d in range(Xb.shape[0]):
                ids = Xb.indices[Xb.indptr[d]:Xb.indptr[d + 1]]
                ss[:, ids] += e_step(ids, Xb.data[Xb.indptr[d]:Xb.indptr[d + 1]], eb, alpha, 100, 1e-3)[1]
            rho = (10.0 + t) ** -0.7
            lam = (1 - rho) * lam + rho * (eta + 500 / Xb.shape[0] * ss * eb)
    np.testing.assert_allclose(lda.components_, lam, rtol=1e-6)
    assert lda.t_ == t


def test_doc_loglik_at_given_gamma_matches_infer():
    """lda_doc_loglik (bound term at a given gamma) agrees with the one lda_infer computes, and the
    read-only functions give the same result with 1 and 2 threads."""
    from asyncopt import _core
    from asyncopt._checks import native_csr
    X = tiny_corpus(50, 30, seed=5)
    lda = asyncopt.LDA(n_components=3, epochs=2, n_threads=1, random_state=0, train_perplexity_docs=0).fit(X)
    cfg = lda._model.settings.native_config()
    args = (*native_csr(X), X.shape[1], lda._model.mu, lda._model.topic_mass)
    gamma, loglik = _core.lda_infer(*args, cfg, 1, True)
    gamma2, loglik2 = _core.lda_infer(*args, cfg, 2, True)
    assert np.array_equal(gamma, gamma2) and np.array_equal(loglik, loglik2)
    np.testing.assert_allclose(_core.lda_doc_loglik(*args, gamma, cfg, 2), loglik, rtol=1e-12)


def test_read_only_functions_use_only_the_documents_words():
    """transform and the bound's likelihood term read exp(E[log beta]) only for the words the documents
    hold (O(K x distinct words), not O(K V)). A corpus holding every word of the vocabulary makes
    that table the whole-vocabulary one (the previous path), so each document's result, computed
    alone from a table of its own few words (sorted-ids path) or inside the whole corpus (V-sized
    map path), must agree to the bit; and both agree with the dense reference E-step over the full
    exp(E[log beta])."""
    from asyncopt import _core
    from asyncopt._checks import native_csr
    V = 400
    rng = np.random.default_rng(3)
    X = rng.poisson(0.05, size=(60, V)).astype(np.float64)
    X[np.arange(V) % 60, np.arange(V)] += 1  # every word occurs: the table covers the vocabulary
    X = sp.csr_matrix(X)
    lda = asyncopt.LDA(n_components=4, epochs=2, n_threads=1, random_state=0, train_perplexity_docs=0).fit(X)
    cfg = lda._model.settings.native_config()
    model = (lda._model.mu, lda._model.topic_mass)
    gamma, loglik = _core.lda_infer(*native_csr(X), V, *model, cfg, 2, True)
    assert X[:1].nnz * 16 < V  # one document alone takes the sorted-ids path
    for d in range(X.shape[0]):
        g, ll = _core.lda_infer(*native_csr(X[d:d + 1]), V, *model, cfg, 1, True)
        assert np.array_equal(g[0], gamma[d]) and ll[0] == loglik[d]
        assert _core.lda_doc_loglik(*native_csr(X[d:d + 1]), V, *model, gamma[d:d + 1], cfg, 1)[0] == loglik[d]
    np.testing.assert_array_equal(lda.transform(X[::7], normalize=False), gamma[::7])
    lam = lda.components_
    beta = np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None])
    s = lda._model.settings
    for d in (0, 11, 59):
        ids, cnts = X.indices[X.indptr[d]:X.indptr[d + 1]], X.data[X.indptr[d]:X.indptr[d + 1]]
        ref, _ = e_step(ids, cnts, beta, s.doc_topic_prior, s.max_doc_update_iter, s.mean_change_tol)
        np.testing.assert_allclose(gamma[d], ref, rtol=1e-9)
