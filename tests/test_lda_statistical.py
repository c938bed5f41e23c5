"""Tier 2 for LDA: two threads running concurrent global steps recover the topics of a corpus
drawn from the LDA generative model, and reach a held-out perplexity on real corpora (kos,
20news) no worse than scikit-learn's online LDA with the same settings and epochs. As in
test_statistical.py, free-running threads are held only to what scheduling cannot change; the
staleness is checked exactly in lockstep rounds."""
import gzip

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import LatentDirichletAllocation

import asyncopt
from asyncopt.datasets import load_uci_bow
from conftest import shared_data
from test_statistical import check_counted, check_staleness, lockstep, lockstep_staleness


def lda_corpus(n_docs=2000, n_words=500, n_topics=8, doc_len=100, alpha=0.1, eta=0.05, seed=0):
    """Documents drawn from the LDA generative model; returns (counts CSR, true topics K x V)."""
    rng = np.random.default_rng(seed)
    beta = rng.dirichlet(np.full(n_words, eta), size=n_topics)
    theta = rng.dirichlet(np.full(n_topics, alpha), size=n_docs)
    lengths = rng.poisson(doc_len, size=n_docs) + 1
    rows = []
    for d in range(n_docs):
        z = rng.choice(n_topics, size=lengths[d], p=theta[d])
        words = np.concatenate([rng.choice(n_words, size=c, p=beta[k]) for k, c in
                                enumerate(np.bincount(z, minlength=n_topics)) if c])
        rows.append(np.bincount(words, minlength=n_words))
    return sp.csr_matrix(np.array(rows, dtype=np.float64)), beta


def best_match_cosine(learned, true):
    a = learned / np.linalg.norm(learned, axis=1, keepdims=True)
    b = true / np.linalg.norm(true, axis=1, keepdims=True)
    cos = a @ b.T
    r, c = linear_sum_assignment(-cos)
    return cos[r, c].mean()


def test_two_threads_recover_true_topics():
    # Online VB / SVI for LDA has local optima in which two true topics merge into one learned topic:
    # on K=6 and K=8 corpora of this size about a third of the starts end there, with one thread or
    # two, and scikit-learn's online LDA does the same (3 of 8 seeds at K=6). K=4 over 3000
    # documents of 150 words recovered the topics in 12 of 12 starts; the best of three starts
    # keeps a chance merge from failing the test, while a broken update recovers them from none.
    X, beta = lda_corpus(n_docs=3000, n_topics=4, doc_len=150, alpha=0.1, eta=0.05)
    best = 0.0
    for seed in range(3):
        lda = asyncopt.LDA(n_components=4, doc_topic_prior=0.1, topic_word_prior=0.05, batch_size=64, epochs=10,
                           n_threads=2, random_state=seed, train_perplexity_docs=500).fit(X)
        assert lda.n_threads_ == 2
        check_counted(lda)
        tp = lda.history_.column("train_perplexity")
        assert tp[-1] < tp[0]
        topics = lda.components_ / lda.components_.sum(axis=1, keepdims=True)
        best = max(best, best_match_cosine(topics, beta))
        if best >= 0.9:
            break
    assert best >= 0.9


def test_staleness_zero_with_one_thread_counted_with_two():
    X, _ = lda_corpus(n_docs=1500, n_words=300, n_topics=5, doc_len=60, seed=1)
    kw = dict(n_components=5, batch_size=16, epochs=1, random_state=0, train_perplexity_docs=0)
    one = asyncopt.LDA(**kw, n_threads=1).fit(X)
    assert one.staleness_.count == one.t_ == -(-1500 // 16)
    assert one.staleness_.max == 0 and one.history_[-1]["staleness_mean"] == 0
    # one thread: the topic sums kept by atomic adds equal lambda's column sums to rounding
    assert one.history_[-1]["topic_mass_drift"] < 1e-12
    # free-running threads: how much their global steps overlap is the OS's doing (an epoch takes a
    # few ms: time-sliced on one busy core, one thread may finish before the other starts)
    two = asyncopt.LDA(**kw, n_threads=2).fit(X)
    assert two.t_ == 2 * -(-750 // 16)
    check_counted(two)
    assert two.history_[-1]["staleness_max"] == two.staleness_.max
    # two threads: Hogwild! lost writes on lambda (two threads adding to the same word at once;
    # frequent on a 300-word vocabulary) leave the atomically kept sums slightly off until the
    # segment end recomputes them; measured ~1e-3 here
    assert two.history_[-1]["topic_mass_drift"] < 0.05


def test_lockstep_rounds_give_exact_staleness_and_still_learn():
    """Lockstep rounds (EpochConfig.lockstep, hogwild.hpp): one thread is the free loop's fit, bit
    for bit; two threads (750 documents each, 47 mini-batches of 16) take 47 rounds whose two
    global steps have tau 1 and 0: max 1, mean exactly 1/2, whatever the scheduling; three on 1,490
    documents (496 / 497 / 497: 31 / 32 / 32 mini-batches) take 31 rounds of taus 0, 1, 2 and one of
    0, 1 with thread 0 only in the barriers. The round's racing global steps still fit the corpus:
    perplexity within 30% of the one-thread fit's and topic sums off by lost writes only
    (measured 1e-2 and below). Which thread's write lands first within a round is up to the
    scheduler, and SVI's early steps decide which local optimum a fit reaches: over 25 lockstep
    fits the ratio was 0.96-1.06 or, in about one fit in five, 1.16-1.17 (two topics merged; 1.21
    after 3 epochs too), so a 10% bar failed by scheduling. A model that learned nothing scores
    about the vocabulary size, 300, against 46 here."""
    X, _ = lda_corpus(n_docs=1500, n_words=300, n_topics=5, doc_len=60, seed=1)
    kw = dict(n_components=5, batch_size=16, epochs=1, random_state=0, train_perplexity_docs=0)
    free = asyncopt.LDA(**kw, n_threads=1).fit(X)
    with lockstep("lda_epoch"):
        one = asyncopt.LDA(**kw, n_threads=1).fit(X)
        two = asyncopt.LDA(**kw, n_threads=2).fit(X)
        three = asyncopt.LDA(**kw, n_threads=3).fit(X[:1490])
    np.testing.assert_array_equal(one.components_, free.components_)
    assert one.staleness_.max == 0

    expected = lockstep_staleness(1500, 2, 16)
    assert (expected["count"], expected["sum"], expected["max"]) == (94, 47, 1)
    check_staleness(two.staleness_, expected)
    assert two.t_ == 94 and two.staleness_.mean == 0.5
    assert two.history_[-1]["staleness_mean"] == 0.5 and two.history_[-1]["staleness_max"] == 1

    expected = lockstep_staleness(1490, 3, 16)
    assert (expected["count"], expected["sum"], expected["max"]) == (31 * 3 + 2, 31 * 3 + 1, 2)
    check_staleness(three.staleness_, expected)
    assert three.t_ == 95

    best = free.perplexity(X)
    for lda in (two, three):
        assert lda.perplexity(X) <= 1.3 * best, (lda.perplexity(X), best)
        assert lda.history_[-1]["topic_mass_drift"] < 0.05


def compare_with_sklearn(X_train, X_test, K, epochs, batch_size=128):
    common = dict(n_components=K, doc_topic_prior=1.0 / K, topic_word_prior=1.0 / K, learning_offset=10.0,
                  learning_decay=0.7, batch_size=batch_size)
    sk = LatentDirichletAllocation(learning_method="online", max_iter=epochs, random_state=0, n_jobs=1,
                                   **common).fit(X_train)
    ours = asyncopt.LDA(epochs=epochs, n_threads=2, random_state=0, train_perplexity_docs=0, **common)
    ours.fit(X_train, eval_set=X_test)
    p_ours, p_sk = ours.perplexity(X_test), sk.perplexity(X_test)
    print(f"held-out perplexity: asyncopt {p_ours:.1f}, scikit-learn {p_sk:.1f}")
    assert ours.history_[-1]["perplexity"] == pytest.approx(p_ours, rel=1e-12)
    return p_ours, p_sk


def test_kos_held_out_perplexity_no_worse_than_sklearn():
    X, _ = load_uci_bow(shared_data("bow", "kos", "docword.kos.txt.gz"))
    rng = np.random.default_rng(0)
    test = np.zeros(X.shape[0], dtype=bool)
    test[rng.choice(X.shape[0], size=X.shape[0] // 10, replace=False)] = True
    p_ours, p_sk = compare_with_sklearn(X[~test], X[test], K=20, epochs=3)
    assert p_ours <= p_sk, (p_ours, p_sk)


def test_20news_held_out_perplexity_no_worse_than_sklearn():
    """The official train/test split (docs.20news.tsv.gz); to keep the test short, the 3,000 most
    frequent words and a random 4,000 training / 1,000 test documents, the same for both."""
    X, _ = load_uci_bow(shared_data("bow", "20news", "docword.20news.txt.gz"))
    with gzip.open(shared_data("bow", "20news", "docs.20news.tsv.gz"), "rt") as f:
        split = np.array([line.split("\t")[1] for line in f if line.strip()])
    assert split.shape[0] == X.shape[0]
    keep = np.argsort(-np.asarray(X.sum(axis=0)).ravel(), kind="stable")[:3000]
    X = X[:, np.sort(keep)].tocsr()
    rng = np.random.default_rng(0)
    train = rng.choice(np.flatnonzero(split == "train"), size=4000, replace=False)
    test = rng.choice(np.flatnonzero(split == "test"), size=1000, replace=False)
    Xtr, Xte = X[np.sort(train)], X[np.sort(test)]
    Xte = Xte[np.asarray(Xte.sum(axis=1)).ravel() > 0]
    p_ours, p_sk = compare_with_sklearn(Xtr, Xte, K=20, epochs=3)
    assert p_ours <= p_sk, (p_ours, p_sk)
