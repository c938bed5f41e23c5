"""Tier 3 for LDA: the bag-of-words loaders, and clear errors for bad input and parameters."""
import bz2
import gzip
import lzma
import os
import pickle
import tempfile

import numpy as np
import pytest
import scipy.sparse as sp

import asyncopt
from asyncopt import _core
from asyncopt.datasets import counts_from_texts, load_ldac, load_uci_bow
from conftest import shared_data

DOCWORD = "3\n4\n5\n1 1 2\n1 3 1\n2 2 4\n3 1 1\n3 4 7\n"
VOCAB = "apple\nbanana\ncherry\ndate\n"
EXPECTED = np.array([[2, 0, 1, 0], [0, 4, 0, 0], [1, 0, 0, 7]], dtype=np.float64)


def write(path, text, compress=None):
    data = text.encode()
    if compress:
        data = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compress](data)
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ loaders
@pytest.mark.parametrize("compress", [None, "gz", "bz2", "xz"])
def test_load_uci_bow(tmp_path, compress):
    X, vocab = load_uci_bow(write(tmp_path / "docword", DOCWORD, compress), write(tmp_path / "vocab", VOCAB, compress))
    assert isinstance(X, sp.csr_matrix) and X.dtype == np.float64 and X.has_canonical_format
    np.testing.assert_array_equal(X.toarray(), EXPECTED)
    assert vocab == ["apple", "banana", "cherry", "date"]
    X2, v2 = load_uci_bow(tmp_path / "docword")
    assert v2 is None and (X2 != X).nnz == 0


def test_load_uci_bow_unsorted_and_empty_documents(tmp_path):
    X, _ = load_uci_bow(write(tmp_path / "d", "4\n3\n3\n4 3 1\n1 2 5\n1 1 1\n"))
    np.testing.assert_array_equal(X.toarray(), [[1, 5, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]])


@pytest.mark.parametrize("text,line,message", [
    ("3\nx\n5\n", 2, "expected one integer"),
    ("3\n4\n", 2, "header"),
    ("3\n4\n2\n1 1 2\n1 3\n", 5, "expected 'docID wordID count'"),
    ("3\n4\n2\n1 1 2\n1 3 1.5\n", 5, "three integers"),
    ("3\n4\n2\n1 1 2\n4 3 1\n", 5, "docID 4 outside"),
    ("3\n4\n2\n1 0 2\n1 3 1\n", 4, "wordID 0 outside"),
    ("3\n4\n2\n1 1 -2\n1 3 1\n", 4, "negative count"),
    ("3\n4\n3\n1 1 2\n2 2 1\n1 1 1\n", 6, "repeated"),
])
def test_load_uci_bow_malformed(tmp_path, text, line, message):
    path = write(tmp_path / "docword.txt", text)
    with pytest.raises(ValueError, match=rf"docword.txt: line {line}: .*{message}"):
        load_uci_bow(path)


def test_load_uci_bow_nnz_and_vocab_mismatch(tmp_path):
    with pytest.raises(ValueError, match="NNZ = 6"):
        load_uci_bow(write(tmp_path / "d", DOCWORD.replace("\n5\n", "\n6\n", 1)))
    with pytest.raises(ValueError, match="3 words, but the docword file declares W = 4"):
        load_uci_bow(write(tmp_path / "d", DOCWORD), write(tmp_path / "v", "a\nb\nc\n"))
    with pytest.raises(ValueError, match="v2: line 2: empty word"):
        load_uci_bow(write(tmp_path / "d", DOCWORD), write(tmp_path / "v2", "a\n\nc\nd\n"))


def test_load_ldac(tmp_path):
    X = load_ldac(write(tmp_path / "c.ldac", "2 0:2 2:1\n\n1 1:4\n0\n2 3:7 0:1\n", "xz"))
    np.testing.assert_array_equal(X.toarray(), [[2, 0, 1, 0], [0, 4, 0, 0], [0, 0, 0, 0], [1, 0, 0, 7]])
    assert X.has_canonical_format
    assert load_ldac(tmp_path / "c.ldac", n_features=10).shape == (4, 10)


@pytest.mark.parametrize("text,line,message", [
    ("2 0:2 2:1\n3 1:4\n", 2, "declares 3 words but holds 1"),
    ("x 0:2\n", 1, "number of distinct words"),
    ("1 0:2\n1 5\n", 2, "id:count"),
    ("1 0:2\n1 a:1\n", 2, "id:count"),
    ("1 0:-2\n", 1, "negative count"),
    ("2 0:2 0:1\n", 1, "repeated"),
])
def test_load_ldac_malformed(tmp_path, text, line, message):
    with pytest.raises(ValueError, match=rf"bad.ldac: line {line}: .*{message}"):
        load_ldac(write(tmp_path / "bad.ldac", text))


def test_load_ldac_limits(tmp_path):
    with pytest.raises(ValueError, match="line 1: word id 5 >= n_features=4"):
        load_ldac(write(tmp_path / "c", "1 5:1\n"), n_features=4)
    with pytest.raises(ValueError, match="no documents"):
        load_ldac(write(tmp_path / "e", "\n\n"))


def test_counts_from_texts():
    X, vocab = counts_from_texts(["the cat sat", "the dog sat on the cat"], stop_words="english")
    assert vocab == ["cat", "dog", "sat"]
    np.testing.assert_array_equal(X.toarray(), [[1, 0, 1], [1, 1, 1]])
    assert X.dtype == np.float64 and X.has_canonical_format
    with pytest.raises(ValueError, match="not a single string"):
        counts_from_texts("the cat sat")


def test_real_corpora_load():
    X, vocab = load_uci_bow(shared_data("bow", "kos", "docword.kos.txt.gz"), shared_data("bow", "kos", "vocab.kos.txt.xz"))
    assert X.shape == (3430, 6906) and X.sum() == 467714 and len(vocab) == 6906
    R = load_ldac(shared_data("bow", "reuters_ldac", "reuters.ldac.xz"))
    assert R.shape[0] == 395 and R.sum() == 84010 and R.shape[1] <= 4258


# ------------------------------------------------------------------ estimator input
def small():
    return sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 3, 0, 1], [2, 1, 0, 0]], dtype=np.float64))


@pytest.mark.parametrize("X,message", [
    (np.array([[1.0, -1.0], [0.0, 2.0]]), "Negative values in data passed to LDA.fit: X has negative counts"),
    (sp.csr_matrix(np.array([[1.0, -1.0], [0.0, 2.0]])), "negative counts"),
    (np.array([[np.nan, 1.0], [0.0, 2.0]]), "NaN or infinity"),
    (np.array([[np.inf, 1.0], [0.0, 2.0]]), "NaN or infinity"),
    (sp.csr_matrix(np.array([[np.nan, 1.0], [0.0, 2.0]])), "NaN or infinity"),
    (np.zeros((3, 4)), "empty corpus"),
    (np.zeros((0, 4)), r"0 sample\(s\) \(shape=\(0, 4\)\)"),
    (np.zeros((3, 0)), r"0 feature\(s\) \(shape=\(3, 0\)\)"),
    (np.ones(4), "2-dimensional .* Reshape your data"),
    (np.ones((2, 2), dtype=complex), "Complex data not supported"),
])
def test_bad_counts(X, message):
    with pytest.raises(ValueError, match=message):
        asyncopt.LDA(n_components=2, n_threads=1).fit(X)


def test_bad_counts_are_refused_before_native_code_by_every_method():
    lda = asyncopt.LDA(n_components=2, epochs=1, n_threads=1, random_state=0).fit(small())
    for method in ("transform", "score", "perplexity", "partial_fit"):
        with pytest.raises(ValueError, match=f"Negative values in data passed to LDA.{method}"):
            getattr(lda, method)(-small())
        with pytest.raises(ValueError, match="NaN or infinity"):
            getattr(lda, method)(np.full((1, 4), np.nan))
        with pytest.raises(ValueError, match="Reshape your data"):
            getattr(lda, method)(np.ones(4))
    with pytest.raises(TypeError, match="object array must hold numbers only"):
        lda.transform(np.array([[1, {"a": 1}, 0, 0]], dtype=object))


def test_non_integer_weights_are_accepted():
    """tf-idf and other non-negative weights train and transform (scikit-learn accepts them too); an
    object array of numbers is read as the numbers."""
    X = small().toarray() * 0.37
    lda = asyncopt.LDA(n_components=2, epochs=2, n_threads=1, random_state=0).fit(X)
    theta = lda.transform(X)
    assert np.all(np.isfinite(theta)) and np.allclose(theta.sum(axis=1), 1)
    assert np.isfinite(lda.perplexity(X)) and np.isfinite(lda.score(X))
    np.testing.assert_array_equal(lda.transform(X.astype(object)), theta)


def test_vocabulary_size_mismatch():
    lda = asyncopt.LDA(n_components=2, epochs=1, n_threads=1, random_state=0).fit(small())
    wide = sp.csr_matrix(np.ones((2, 5)))
    for method in (lda.transform, lda.perplexity, lda.score, lda.partial_fit):
        with pytest.raises(ValueError, match="X has 5 features, but LDA is expecting 4 features as input"):
            method(wide)
    with pytest.raises(ValueError, match="eval_set has 5 features, but LDA is expecting 4 features as input"):
        asyncopt.LDA(n_components=2, epochs=1, n_threads=1).fit(small(), eval_set=wide)
    with pytest.raises(ValueError, match="vocab has 3 words"):
        lda.top_words(["a", "b", "c"])
    with pytest.raises(ValueError, match="empty corpus"):
        lda.perplexity(np.zeros((2, 4)))
    np.testing.assert_allclose(lda.transform(np.zeros((2, 4))), 0.5)  # empty documents: the prior


@pytest.mark.parametrize("params,message", [
    (dict(n_components=0), "n_components must be >= 1"),
    (dict(n_components=2.5), "n_components must be an integer"),
    (dict(doc_topic_prior=0.0), "doc_topic_prior must be > 0"),
    (dict(topic_word_prior=-1.0), "topic_word_prior must be > 0"),
    (dict(topic_word_prior=float("nan")), "topic_word_prior must be a finite real number"),
    (dict(learning_decay=0.5), r"learning_decay must be in \(0.5, 1\]"),
    (dict(learning_decay=1.2), r"learning_decay must be in \(0.5, 1\]"),
    (dict(learning_offset=-1.0), "learning_offset must be > 0"),
    (dict(learning_offset=0.0), "learning_offset must be > 0"),
    (dict(batch_size=0), "batch_size must be >= 1"),
    (dict(max_doc_update_iter=0), "max_doc_update_iter must be >= 1"),
    (dict(mean_change_tol=-1e-3), "mean_change_tol must be >= 0"),
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(total_samples=0), "total_samples must be > 0"),
    (dict(n_threads=0), "n_threads must be >= 1"),
    (dict(random_state="x"), "random_state must be an integer"),
    (dict(shuffle="yes"), "shuffle must be True or False"),
    (dict(callback=3), "callback must be callable"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        asyncopt.LDA(**params).fit(small())


def test_native_refuses_converting_copies():
    """In-place arrays with a wrong dtype or layout raise instead of being silently copied."""
    lda = asyncopt.LDA(n_components=2, epochs=1, n_threads=1, random_state=0).fit(small())
    X = small()
    args = (X.indptr.astype(np.int64), X.indices.astype(np.int32), X.data, 4)
    cfg = lda._model.settings.native_config(1, 3.0)
    perm = np.arange(3, dtype=np.int64)
    with pytest.raises(ValueError, match="mu: wrong dtype"):
        _core.lda_epoch(*args, perm, lda._model.mu.astype(np.float32), lda._model.topic_mass, cfg)
    with pytest.raises((ValueError, TypeError)):
        _core.lda_epoch(*args, perm.astype(np.int32), lda._model.mu, lda._model.topic_mass, cfg)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.lda_epoch(*args, perm, np.asfortranarray(lda._model.mu), lda._model.topic_mass, cfg)
    with pytest.raises(ValueError, match="word counts must be finite and >= 0"):
        _core.lda_epoch(args[0], args[1], -args[2], 4, perm, lda._model.mu, lda._model.topic_mass, cfg)


def test_estimator_api():
    X = small()
    lda = asyncopt.LDA(n_components=2, epochs=2, n_threads=1, random_state=0)
    theta = lda.fit_transform(X)
    assert theta.shape == (3, 2) and np.allclose(theta.sum(axis=1), 1)
    assert lda.components_.shape == (2, 4) and lda.n_iter_ == 2 and lda.n_threads_ == 1
    assert [r["epoch"] for r in lda.history_] == [1, 2] and lda.history_[-1]["train_perplexity"] > 0
    assert np.all(np.diff(lda.history_.column("time")) > 0)
    assert len(lda.top_words(["a", "b", "c", "d"], n=3)) == 2
    clone = pickle.loads(pickle.dumps(lda))
    np.testing.assert_array_equal(clone.transform(X), lda.transform(X))
    assert lda.get_params()["n_components"] == 2
    stopped = asyncopt.LDA(n_components=2, epochs=5, n_threads=1, callback=lambda rec: rec["epoch"] == 2).fit(X)
    assert stopped.n_iter_ == 2
    np.testing.assert_allclose(lda.transform(X.toarray().astype(np.int64)), lda.transform(X))


@pytest.mark.parametrize("kw,match", [
    (dict(backend="gpu"), "backend must be"),
    (dict(mpi={"method": "sync"}), "backend is 'threads'"),
    (dict(backend="mpi", mpi={"method": "picky"}), "runs method 'async' \\(DPSVI\\) or 'sync'"),
    (dict(backend="mpi", mpi={"method": "dpsgd"}), "runs method 'async' \\(DPSVI\\) or 'sync'"),
    (dict(backend="mpi", mpi={"timeout": -1}), "timeout must be >"),
    (dict(backend="mpi", n_threads=0), "n_threads must be >= 1"),
])
def test_mpi_settings_are_checked_first(kw, match):
    X = sp.csr_matrix(np.ones((5, 4)))
    with pytest.raises(ValueError, match=match):
        asyncopt.LDA(n_components=2, **kw).fit(X)


def test_partial_fit_is_refused_over_mpi():
    with pytest.raises(ValueError, match="partial_fit is not available with backend='mpi'"):
        asyncopt.LDA(n_components=2, backend="mpi").partial_fit(sp.csr_matrix(np.ones((5, 4))))


# ------------------------------------------------------------------ loaders: issue 13's bad input
# Each of these loaded silently wrong, or failed without naming the file and line, before the
# loaders' parsing moved to csrc/asyncopt/io/bow.hpp.

@pytest.mark.parametrize("text,line,message", [
    # np.fromstring saturated integers >= 2^63 to 9.22e18 without a word
    ("1\n1\n1\n1 1 9223372036854775808\n", 4, "count '9223372036854775808' does not fit in a 64-bit integer"),
    # float64 counts round above 2^53: refused instead of silently changed
    ("1\n1\n1\n1 1 9007199254740993\n", 4, "larger than 2\\^53"),
    # word ids >= 2^31 wrapped when narrowed to int32 (a W of 5e9 loaded indices == [1])
    ("1\n5000000000\n1\n1 4294967298 1\n", 2, "W = 5000000000 words exceeds"),
    ("1\n5\n1\n1 99999999999999999999 1\n", 4, "wordID '99999999999999999999' does not fit"),
    # Python's int() took underscores and non-ASCII digits
    ("1\n20\n1\n1 1_0 1\n", 4, "three integers"),
    ("1\n20\n1\n1 \uff11 1\n", 4, "three integers"),
    # a NUL or a byte that is not UTF-8 is named, escaped, in the message (not cut at the NUL)
    ("1\n20\n1\n1 1\x00 1\n", 4, r"three integers, got '1 1\\x00 1'"),
    ("1\n4\n2\n1 1 1\n1 1 1\n", 5, "wordID 1 repeated in docID 1"),
    ("1\n4\n1\n1 1 1\n1 2 1\n", 5, "more triples than the header's NNZ = 1"),
])
def test_load_uci_bow_refuses_what_it_cannot_represent(tmp_path, text, line, message):
    path = write(tmp_path / "docword.txt", text)
    with pytest.raises(ValueError, match=rf"docword.txt: line {line}: .*{message}"):
        load_uci_bow(path)


def test_load_uci_bow_non_utf8_byte_names_the_line(tmp_path):
    path = tmp_path / "docword.txt"
    path.write_bytes(b"1\n4\n1\n1 \xff 1\n")
    with pytest.raises(ValueError, match=r"docword.txt: line 4: expected three integers, got '1 \\xff 1'"):
        load_uci_bow(path)
    vocab = tmp_path / "vocab.txt"
    vocab.write_bytes(b"apple\nbanana\nch\xe9rry\ndate\n")
    with pytest.raises(ValueError, match=r"vocab.txt: line 3: not UTF-8 text"):
        load_uci_bow(write(tmp_path / "d", DOCWORD), vocab)


def test_load_uci_bow_lying_header_d_allocates_nothing(tmp_path):
    # D sized the row offsets before any triple was read: 10^9 documents and one triple raised
    # MemoryError for 7.45 GiB. Now the header is refused, naming its line, without allocating.
    path = write(tmp_path / "docword.txt", "1000000000\n4\n1\n1 1 1\n")
    with pytest.raises(ValueError, match=r"docword.txt: line 1: the header declares D = 1000000000 documents"):
        load_uci_bow(path)
    # ... while a few empty documents (after the last one named, too) are what they were: empty rows
    X, _ = load_uci_bow(write(tmp_path / "ok.txt", "6\n4\n1\n2 3 1\n"))
    assert X.shape == (6, 4) and X.nnz == 1 and X[1, 2] == 1


def test_vocab_line_numbers_are_an_editors(tmp_path):
    # str.splitlines split at a form feed (and NEL, U+2028): the vocabulary got one word too many
    # and the lines after it were misnumbered. Words hold any character but '\n'.
    X, vocab = load_uci_bow(write(tmp_path / "d", DOCWORD), write(tmp_path / "v", "apple\nban\x0cana\ncherry\ndate\r\n"))
    assert vocab == ["apple", "ban\x0cana", "cherry", "date"]


@pytest.mark.parametrize("text,line,message", [
    # a bare OverflowError from numpy before
    ("1 0:9223372036854775808\n", 1, "count '9223372036854775808' does not fit in a 64-bit integer"),
    ("1 0:9007199254740993\n", 1, "larger than 2\\^53"),
    ("1 2147483647:1\n", 1, "word id '2147483647' outside"),
    ("1 99999999999999999999:1\n", 1, "word id '99999999999999999999' outside"),
    ("1 0:1_0\n", 1, "id:count with integers"),
    ("1 0:1\n1 0\x00:1\n", 2, r"id:count with integers, got '0\\x00:1'"),
    ("1 0:1\n1 \xe9:1\n", 2, r"id:count with integers, got '\\xc3\\xa9:1'"),
])
def test_load_ldac_refuses_what_it_cannot_represent(tmp_path, text, line, message):
    with pytest.raises(ValueError, match=rf"bad.ldac: line {line}: .*{message}"):
        load_ldac(write(tmp_path / "bad.ldac", text))


def test_load_ldac_line_numbers_count_only_newlines(tmp_path):
    # a form feed is blank space within a line, not a line break (splitlines made this line 3)
    with pytest.raises(ValueError, match="bad.ldac: line 2: .*declares 2 words"):
        load_ldac(write(tmp_path / "bad.ldac", "1 0:1\x0c\n2 0:1\n"))


def test_uci_loader_agrees_with_a_plain_reading_of_the_file():
    # The native parser against numpy's reading of the same triples (kos: sorted by document).
    path = shared_data("bow", "kos", "docword.kos.txt.gz")
    X, _ = load_uci_bow(path)
    t = np.loadtxt(gzip.open(path), skiprows=3, dtype=np.int64)
    ref = sp.csr_matrix((t[:, 2].astype(np.float64), (t[:, 0] - 1, t[:, 1] - 1)), shape=X.shape)
    assert (X != ref).nnz == 0 and X.has_canonical_format
    # and the same triples shuffled take the unsorted path to the same matrix
    rng = np.random.default_rng(0)
    lines = ["3430", "6906", str(len(t))] + [f"{a} {b} {c}" for a, b, c in t[rng.permutation(len(t))]]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "shuffled.txt")
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        Y, _ = load_uci_bow(p)
    assert (Y != ref).nnz == 0 and Y.has_canonical_format


def test_a_divergence_raises_with_advice():
    """Counts so large that lambda overflows: FloatingPointError naming the cure, not NaN topics."""
    X = sp.random(100, 50, density=0.2, random_state=1, format="csr")
    X.data[:] = 1e306
    with pytest.raises(FloatingPointError, match="no longer finite.*learning_offset"):
        asyncopt.LDA(n_components=3, n_threads=1, epochs=3, evaluate_every=0).fit(X)
