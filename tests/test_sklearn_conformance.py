"""asyncopt.LDA and asyncopt.LogisticRegression as scikit-learn estimators: scikit-learn's own
estimator checks; for LDA its parameter names (aliases of asyncopt's), the fitted attributes scikit-learn users read, and the places a
scikit-learn transformer goes (pipelines, clone, grid search, set_output, the topic-extraction
example with LatentDirichletAllocation swapped out)."""
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import psi
from sklearn.base import clone
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import asyncopt
from asyncopt.datasets import load_uci_bow
from conftest import shared_data


def corpus(n_docs=60, n_words=40, seed=0):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix(rng.poisson(0.8, size=(n_docs, n_words)).astype(np.float64))


# ------------------------------------------------------------------ scikit-learn's checks
_HOGWILD = ("Hogwild!: with several threads the updates land in whatever order the threads finish, so two fits "
            "with the same random_state agree only statistically (one thread is bit-exact); when the threads happen "
            "to finish in the same order twice it passes (XPASS, not an error)")


def _expected_failures(estimator):
    """The checks an instance cannot pass by design, with the reason; only those."""
    failures = {}
    if isinstance(estimator, asyncopt.LogisticRegression):
        # as for scikit-learn's own SGDClassifier: a weight scales a row's step, while a repeated row
        # is visited twice (two steps at two models) and a removed one never; stochastic updates
        # are not invariant to that, only their expectation is
        for kind in ("dense", "sparse"):
            failures[f"check_sample_weight_equivalence_on_{kind}_data"] = (
                "stochastic updates: sample_weight=2 scales a row's step, a repeated row takes two steps")
    threads = estimator.n_jobs if isinstance(estimator, asyncopt.LDA) and estimator.n_jobs is not None \
        else estimator.n_threads
    if threads == 1:
        return failures
    # every check that compares the results of two separate fits (the others scikit-learn already
    # skips for a non_deterministic estimator)
    failures["check_fit_idempotent"] = _HOGWILD
    if isinstance(estimator, asyncopt.LogisticRegression):
        # y against y as a column, an array against an array-like: prediction for prediction
        for check in ("check_supervised_y_2d", "check_classifier_data_not_an_array"):
            failures[check] = _HOGWILD
    else:
        # transform's output with and without set_output: value for value
        for check in ("check_set_output_transform", "check_set_output_transform_pandas",
                      "check_global_output_transform_pandas", "check_set_output_transform_polars",
                      "check_global_set_output_transform_polars"):
            failures[check] = _HOGWILD
    return failures


@parametrize_with_checks([asyncopt.LDA(n_threads=1, epochs=2),
                          asyncopt.LDA(n_jobs=2, max_iter=2, learning_method="online"),
                          asyncopt.LogisticRegression(n_threads=1),
                          asyncopt.LogisticRegression(n_threads=2)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_tags():
    tags = asyncopt.LDA().__sklearn_tags__()
    assert tags.input_tags.sparse and tags.input_tags.positive_only
    assert tags.transformer_tags.preserves_dtype == ["float64"]
    assert not asyncopt.LDA(n_threads=1).__sklearn_tags__().non_deterministic
    assert asyncopt.LDA(n_jobs=2).__sklearn_tags__().non_deterministic


# ------------------------------------------------------------------ scikit-learn's parameter names
def test_max_iter_is_epochs():
    X = corpus()
    a = asyncopt.LDA(n_components=3, max_iter=3, n_threads=1, random_state=0).fit(X)
    b = asyncopt.LDA(n_components=3, epochs=3, n_threads=1, random_state=0).fit(X)
    assert a.n_iter_ == 3 and np.array_equal(a.components_, b.components_)
    # the same value under both names is no conflict; the default epochs yields to max_iter
    assert asyncopt.LDA(n_components=3, epochs=3, max_iter=3, n_threads=1).fit(X).n_iter_ == 3
    with pytest.raises(ValueError, match="max_iter=2 and epochs=3 disagree"):
        asyncopt.LDA(epochs=3, max_iter=2).fit(X)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        asyncopt.LDA(max_iter=0).fit(X)


def test_n_jobs_is_n_threads(monkeypatch):
    X = corpus()
    assert asyncopt.LDA(n_components=2, epochs=1, n_jobs=1).fit(X).n_threads_ == 1
    assert asyncopt.LDA(n_components=2, epochs=1, n_jobs=2, n_threads=2).fit(X).n_threads_ == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what "every usable core" resolves to
    assert asyncopt.LDA(n_components=2, epochs=1, n_jobs=-1).fit(X).n_threads_ == 3
    assert asyncopt.LDA(n_components=2, epochs=1, n_jobs=-2).fit(X).n_threads_ == 2
    assert asyncopt.LDA(n_components=2, epochs=1, n_jobs=-5).fit(X).n_threads_ == 1
    with pytest.raises(ValueError, match="n_jobs=2 and n_threads=1 disagree"):
        asyncopt.LDA(n_jobs=2, n_threads=1).fit(X)
    with pytest.raises(ValueError, match="n_jobs must be a number of threads >= 1"):
        asyncopt.LDA(n_jobs=0).fit(X)


def test_learning_method():
    X = corpus()
    asyncopt.LDA(n_components=2, epochs=1, n_threads=1, learning_method="online").fit(X)
    with pytest.raises(ValueError, match="learning_method='batch' .* is not implemented"):
        asyncopt.LDA(learning_method="batch").fit(X)
    with pytest.raises(ValueError, match="learning_method must be 'online'"):
        asyncopt.LDA(learning_method="stochastic").fit(X)


def test_aliases_survive_get_params_set_params_and_clone():
    lda = asyncopt.LDA(max_iter=5, n_jobs=-1, learning_method="online", evaluate_every=2, perp_tol=0.5)
    params = lda.get_params()
    assert {k: params[k] for k in ("max_iter", "n_jobs", "evaluate_every", "perp_tol", "epochs", "n_threads")} == \
        dict(max_iter=5, n_jobs=-1, evaluate_every=2, perp_tol=0.5, epochs=10, n_threads=None)
    copy = clone(lda)
    assert copy.get_params() == params
    copy.set_params(max_iter=7, n_jobs=None)
    assert copy.max_iter == 7 and copy.n_jobs is None and lda.max_iter == 5


def test_evaluate_every_and_perp_tol():
    X = corpus(80)
    kw = dict(n_components=3, n_threads=1, random_state=0, train_perplexity_docs=0)
    lda = asyncopt.LDA(epochs=5, evaluate_every=2, perp_tol=0.0, **kw).fit(X)
    full = lda.history_.column("full_train_perplexity")
    # passes 2 and 4, and always the last; the others are not evaluated
    assert np.isnan(full[[0, 2]]).all() and np.isfinite(full[[1, 3, 4]]).all()
    assert lda.bound_ == pytest.approx(lda.perplexity(X), rel=1e-12)  # all training documents, final model
    # a perp_tol no change can stay under never stops; one every change stays under stops at the
    # second evaluation, as scikit-learn's rule (compare with the previous evaluation)
    assert lda.n_iter_ == 5
    assert asyncopt.LDA(epochs=5, evaluate_every=1, perp_tol=1e9, **kw).fit(X).n_iter_ == 2
    off = asyncopt.LDA(epochs=3, evaluate_every=0, **kw).fit(X)
    assert np.isnan(off.history_.column("full_train_perplexity")).all()
    with pytest.raises(ValueError, match="perp_tol must be >= 0"):
        asyncopt.LDA(perp_tol=-1.0).fit(X)
    with pytest.raises(ValueError, match="evaluate_every must be an integer"):
        asyncopt.LDA(evaluate_every=1.5).fit(X)
    with pytest.raises(ValueError, match="evaluate_every > 0 is not available with backend='mpi'"):
        asyncopt.LDA(evaluate_every=1, backend="mpi").fit(X)


def test_fitted_attributes_match_scikit_learn():
    X = corpus(50)
    kw = dict(n_components=3, batch_size=16, learning_offset=20.0, random_state=0)
    ours = asyncopt.LDA(max_iter=2, n_threads=1, shuffle=False, **kw).fit(X)
    theirs = LatentDirichletAllocation(max_iter=2, learning_method="online", **kw).fit(X)
    assert ours.n_batch_iter_ == theirs.n_batch_iter_ == ours.t_ + 1 == 1 + 2 * 4
    lam = ours.components_
    np.testing.assert_allclose(ours.exp_dirichlet_component_, np.exp(psi(lam) - psi(lam.sum(axis=1))[:, None]),
                               rtol=1e-12)
    # bound_ is the final model's perplexity of the training documents in both libraries (here every
    # document: the corpus is no larger than train_perplexity_docs)
    assert theirs.bound_ == pytest.approx(theirs.perplexity(X), rel=1e-12)
    assert ours.bound_ == pytest.approx(ours.perplexity(X), rel=1e-12)
    assert not hasattr(asyncopt.LDA(train_perplexity_docs=0, n_threads=1, epochs=1).fit(X), "bound_")


def test_feature_names_and_set_output():
    pd = pytest.importorskip("pandas")
    X = corpus(30, 6)
    df = pd.DataFrame(X.toarray(), columns=[f"w{j}" for j in range(6)])
    lda = asyncopt.LDA(n_components=3, epochs=1, n_threads=1, random_state=0).fit(df)
    assert list(lda.feature_names_in_) == list(df.columns) and lda.n_features_in_ == 6
    assert list(lda.get_feature_names_out()) == ["lda0", "lda1", "lda2"]
    out = lda.set_output(transform="pandas").transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["lda0", "lda1", "lda2"]
    np.testing.assert_array_equal(out.to_numpy(), lda.set_output(transform="default").transform(df))
    with pytest.raises(ValueError, match="feature names"):
        lda.transform(df.rename(columns={"w0": "other"}))
    # refitting on an array forgets the names, as scikit-learn's estimators do
    assert not hasattr(lda.fit(X), "feature_names_in_")


def test_read_only_methods_write_nothing():
    X = corpus()
    lda = asyncopt.LDA(n_components=3, epochs=2, n_threads=1, random_state=0).fit(X)
    before = pickle.dumps(lda)
    lda.transform(X)
    lda.score(X)
    lda.perplexity(X)
    lda.get_feature_names_out()
    lda.exp_dirichlet_component_
    assert pickle.dumps(lda) == before


# ------------------------------------------------------------------ where a transformer goes
def texts_from_kos(n_docs=400):
    """Real documents as text: the first n_docs Daily Kos posts, each word repeated by its count."""
    X, vocab = load_uci_bow(shared_data("bow", "kos", "docword.kos.txt.gz"),
                            shared_data("bow", "kos", "vocab.kos.txt.xz"))
    vocab = np.asarray(vocab)
    X = X[:n_docs]
    return [" ".join(np.repeat(vocab[X.indices[X.indptr[d]:X.indptr[d + 1]]],
                               X.data[X.indptr[d]:X.indptr[d + 1]].astype(int))) for d in range(n_docs)]


def test_topic_extraction_example_runs_with_asyncopt():
    """scikit-learn's plot_topics_extraction_with_nmf_lda with asyncopt.LDA in place of
    LatentDirichletAllocation, the same keyword arguments, on real texts."""
    texts = texts_from_kos()
    tf_vectorizer = CountVectorizer(max_df=0.95, min_df=2, max_features=1000, stop_words="english")
    tf = tf_vectorizer.fit_transform(texts)
    kw = dict(n_components=5, max_iter=5, learning_method="online", learning_offset=50.0, random_state=0)
    lda = asyncopt.LDA(**kw).fit(tf)
    sk = LatentDirichletAllocation(**kw).fit(tf)
    # the example's plot_top_words
    names = tf_vectorizer.get_feature_names_out()
    top = [[names[i] for i in topic.argsort()[-10:][::-1]] for topic in lda.components_]
    assert len(top) == 5 and all(len(set(t)) == 10 for t in top)
    assert len({w for t in top for w in t}) > 25  # five different topics, not one topic five times
    # as good a model as scikit-learn's (shuffled mini-batches and two threads here, so not equal)
    assert lda.perplexity(tf) < 1.05 * sk.perplexity(tf)
    # the example's tf-idf features, which it feeds to NMF, train an LDA too
    tfidf = TfidfVectorizer(max_df=0.95, min_df=2, max_features=1000, stop_words="english").fit_transform(texts)
    theta = asyncopt.LDA(**kw).fit_transform(tfidf)
    assert np.isfinite(theta).all() and np.allclose(theta.sum(axis=1), 1)


def test_pipeline_clone_grid_search_and_cross_validation():
    texts = texts_from_kos(200)
    pipe = make_pipeline(CountVectorizer(min_df=2, stop_words="english"),
                         asyncopt.LDA(n_components=3, max_iter=2, n_jobs=1, random_state=0))
    theta = pipe.fit_transform(texts)
    assert theta.shape == (200, 3) and np.allclose(theta.sum(axis=1), 1)
    np.testing.assert_array_equal(clone(pipe).fit(texts).transform(texts), theta)  # one thread: bit-exact
    search = GridSearchCV(pipe, {"lda__n_components": [2, 4]}, cv=2, n_jobs=2).fit(texts)
    assert search.best_params_["lda__n_components"] in (2, 4)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()  # LDA.score, the bound
    scores = cross_val_score(pipe, texts, cv=3)
    assert scores.shape == (3,) and np.all(scores < 0)  # a log-likelihood bound


def test_partial_fit_does_not_evaluate_the_corpus():
    """evaluate_every is fit's (scikit-learn's meaning); a partial_fit chunk is not the corpus."""
    X = corpus()
    lda = asyncopt.LDA(n_components=2, n_threads=1, evaluate_every=1, random_state=0)
    lda.partial_fit(X[:30]).partial_fit(X[30:])
    assert np.isnan(lda.history_.column("full_train_perplexity")).all() and lda.n_batch_iter_ == lda.t_ + 1
    assert lda.bound_ == pytest.approx(lda.perplexity(X[30:]), rel=1e-12)  # the last chunk's documents
