"""Data for asyncopt: a LIBSVM/svmlight loader, a synthetic sparse classification problem, and
bag-of-words loaders for topic models (UCI docword + vocab, Blei's lda-c, raw texts).

Both return what every asyncopt estimator consumes (DESIGN.md, "Data flow"): a
``scipy.sparse.csr_matrix`` in canonical form (indices sorted and unique within each row) with
``data`` float32 or float64, plus float64 labels. Index arrays have the dtype scipy picks (int32
whenever the matrix allows it), so the matrices work unchanged with scikit-learn, which rejects
mixed int64/int32 index arrays; the native core takes int64 row offsets and converts only those.
"""
import bz2
import lzma
import math
import numbers
import operator
import os
import zlib

import numpy as np
import scipy.sparse as sp
from scipy.special import expit

from . import _core

__all__ = ["load_libsvm", "make_sparse_classification", "load_uci_bow", "load_ldac", "counts_from_texts"]

# Leading bytes of the compressed formats the loaders read, and a decompressor of one member of each;
# the suffix is not trusted, because files get renamed and downloads lose or gain extensions.
_MAGIC = (
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),  # checks the CRC-32 trailer
    (b"BZh", "bzip2", bz2.BZ2Decompressor),
    (b"\xfd7zXZ\x00", "xz", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ)),
)

# int32 indices hold 0-based feature ids below 2**31 - 1.
_MAX_FEATURES = np.iinfo(np.int32).max


def _check_dtype(dtype):
    # np.dtype(None) is float64 and np.dtype compares equal to None: reject None explicitly.
    try:
        dt = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}")
    return dt


def _check_positive_int(name, value):
    """Return ``value`` as an int if it is an integer > 0 (bool excluded), else raise."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    try:
        as_int = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive int, got {value!r}") from None
    if as_int <= 0:
        raise ValueError(f"{name} must be a positive int, got {as_int}")
    return as_int


def _read_bytes(path):
    """Whole file as bytes, decompressed when its magic bytes say gzip, bzip2 or xz."""
    with open(path, "rb") as f:
        raw = f.read()
    for magic, kind, decompressor in _MAGIC:
        if raw.startswith(magic):
            return _decompress(path, raw, magic, kind, decompressor)
    return raw


def _decompress(path, raw, magic, kind, decompressor):
    """Every member of a compressed file, concatenated (as gzip -d and bzip2 -d do), refusing a
    truncated member and anything after the last member but NUL padding. bz2.decompress and
    lzma.decompress stop silently at bytes that do not start another stream: a file whose second
    member was corrupt in its first bytes loaded as its first member alone."""
    parts = []
    data, offset = raw, 0
    while True:
        d = decompressor()
        try:
            parts.append(d.decompress(data))
        except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as e:
            raise ValueError(f"{path}: cannot decompress this {kind} file (member at byte {offset}): {e}") from None
        if not d.eof:
            raise ValueError(f"{path}: cannot decompress this {kind} file: it is truncated (the member at byte "
                             f"{offset} ends before its end-of-stream marker)")
        rest = d.unused_data
        if not rest:
            break
        offset += len(data) - len(rest)
        if rest.startswith(magic):
            data = rest
            continue
        if rest.count(0) == len(rest):  # NUL padding (tape blocks, some archivers): no data dropped
            break
        raise ValueError(f"{path}: {len(rest)} bytes after the {kind} data end at byte {offset} do not start "
                         f"another {kind} member (a corrupt or foreign tail; nothing of it was read)")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _csr(data, indices, indptr, shape):
    """A standard csr_matrix of these arrays (scipy picks one index dtype for both, int32 when it
    fits). The parser and the generator guarantee canonical rows."""
    X = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    X.has_canonical_format = True
    return X


def load_libsvm(path, n_features=None, dtype=np.float32):
    """Load a LIBSVM/svmlight file into a CSR matrix and a label vector.

    Each non-blank line is ``label index:value index:value ...`` with 1-based indices in
    strictly ascending order; ``#`` starts a comment. Plain, gzip, bzip2 and xz files are read
    (recognised by their leading bytes, whatever the file name says). Parsing runs in native code
    with the GIL released. Malformed input is never skipped: the first bad line raises.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    n_features : int, optional
        Number of columns of ``X``. Defaults to the largest index in the file; pass it to give
        a train and a test file the same width (the largest index of a test file may be smaller).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        dtype of ``X.data``. Values are parsed as float64 and rounded once to ``dtype``.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        Canonical CSR (sorted, unique indices per row; 0-based: file index - 1) with ``data`` of
        ``dtype``. Explicit zeros in the file
        are stored as explicit zeros.
    y : numpy.ndarray of shape (n_samples,), float64
        The labels as written.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        ``"{path}: line N: ..."`` for a malformed line (a label or value that is not a finite
        number, a multi-label target, a token without ``:``, an index that is not an integer in
        [1, 2**31 - 1], indices not strictly ascending, ``qid:`` tokens); also for a file
        without samples, an index larger than ``n_features``, an unreadable compressed file,
        and invalid ``n_features`` or ``dtype``.
    """
    dt = _check_dtype(dtype)
    if n_features is not None:
        n_features = _check_positive_int("n_features", n_features)
        if n_features > _MAX_FEATURES:
            raise ValueError(f"n_features must be at most {_MAX_FEATURES}, got {n_features}")
    path = os.fspath(path)

    raw = _read_bytes(path)
    try:
        indptr, indices, data, labels, max_index = _core.parse_libsvm(raw, dt.name)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    del raw

    n_samples = labels.shape[0]
    if n_samples == 0:
        raise ValueError(f"{path}: no samples (the file is empty or holds only blank and "
                         "comment lines)")
    if n_features is None:
        n_features = max_index
    elif max_index > n_features:
        first = int(np.flatnonzero(indices >= n_features)[0])
        row = int(np.searchsorted(indptr, first, side="right")) - 1
        raise ValueError(f"{path}: feature index {max_index} exceeds n_features={n_features} "
                         f"(the first index above it is in sample {row}, counting from 0)")
    return _csr(data, indices, indptr, (n_samples, n_features)), labels


def make_sparse_classification(n_samples=100_000, n_features=2**20, nnz_per_row=46,
                               zipf_exponent=1.1, signal=4.0, random_state=0,
                               dtype=np.float32, n_classes=2):
    """Synthetic text-like sparse classification problem (tf-idf rows, logistic or softmax labels).

    Models a bag-of-words corpus turned into tf-idf features, the kind of data asynchronous
    sparse SGD was designed for (RCV1, news20, ...):

    - each row is a "document" of ``1 + Poisson(nnz_per_row - 1)`` tokens;
    - each token is a feature drawn from a Zipf law over frequency ranks,
      ``p(rank r) ∝ (r + 1) ** -zipf_exponent``, and ranks are mapped to feature ids by a random
      permutation, so the hot features are scattered over ``[0, n_features)`` as in a hashed or
      alphabetical vocabulary (not packed at the start, which would flatter cache behaviour);
    - repeated tokens of a row are merged into one nonzero with their count;
    - values are ``log(1 + count) * idf`` with the smoothed inverse document frequency
      ``idf_j = log((1 + n_samples) / (1 + df_j)) + 1`` (``df_j``: rows holding feature ``j``),
      and each row is scaled to unit l2 norm, as ``TfidfVectorizer(sublinear_tf=True)`` does;
    - labels follow a logistic model, ``y = +1`` with probability
      ``sigmoid(signal * x @ w_star + b_star)``, where ``w_star ~ N(0, I)`` and ``b_star``
      centres the scores at their median so the two classes are about balanced. Larger
      ``signal`` means less label noise (lower Bayes error). With ``n_classes = K > 2`` the
      labels follow a softmax model instead: ``y = c`` with probability
      ``softmax(signal * x @ W_star)_c``, ``W_star ~ N(0, I)`` of shape (n_features, K), drawn
      as the argmax of the scores plus Gumbel noise.

    The problem is built with vectorised numpy, chunk by chunk, so a million rows with
    ``n_features=2**24`` take seconds and about a gigabyte of memory. The same arguments always
    give identical arrays; ``y`` does not depend on ``dtype``.

    Parameters
    ----------
    n_samples : int, default 100_000
        Number of rows.
    n_features : int, default 2**20
        Number of columns, at most 2**31 - 1.
    nnz_per_row : int, default 46
        Mean number of tokens per row, at most ``n_features``. Because repeated tokens are
        merged, rows hold fewer distinct nonzeros than this (with the defaults about 20 % fewer:
        the hottest features recur within a row).
    zipf_exponent : float, default 1.1
        Exponent of the Zipf law over feature ranks; > 0. Larger is more skewed.
    signal : float, default 4.0
        Scale of the true scores; finite. 0 gives labels independent of ``X``.
    random_state : int, numpy.random.Generator or None, default 0
        Seed of everything random (the permutation, ``w_star``, the rows and the labels).
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        dtype of ``X.data``.
    n_classes : int, default 2
        Number of classes; 2 gives labels in {-1, +1} (the binary problem, the same arrays as
        before this parameter existed), more give class indices 0 .. n_classes - 1.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features)
        Canonical CSR with ``data`` of ``dtype``, rows of
        unit l2 norm.
    y : numpy.ndarray of shape (n_samples,)
        Labels in {-1.0, +1.0} (float64) for two classes, else class indices (int64).
    """
    n_samples = _check_positive_int("n_samples", n_samples)
    n_features = _check_positive_int("n_features", n_features)
    nnz_per_row = _check_positive_int("nnz_per_row", nnz_per_row)
    if n_features > _MAX_FEATURES:
        raise ValueError(f"n_features must be at most {_MAX_FEATURES} (int32 indices), "
                         f"got {n_features}")
    if nnz_per_row > n_features:
        raise ValueError(f"nnz_per_row must be at most n_features={n_features}, "
                         f"got {nnz_per_row}")
    if (not isinstance(zipf_exponent, numbers.Real) or isinstance(zipf_exponent, bool)
            or not math.isfinite(zipf_exponent) or zipf_exponent <= 0):
        raise ValueError(f"zipf_exponent must be a finite number > 0, got {zipf_exponent!r}")
    if (not isinstance(signal, numbers.Real) or isinstance(signal, bool)
            or not math.isfinite(signal)):
        raise ValueError(f"signal must be a finite number, got {signal!r}")
    n_classes = _check_positive_int("n_classes", n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    dt = _check_dtype(dtype)
    rng = np.random.default_rng(random_state)

    # Feature id of each frequency rank, and the true weights (one column per class beyond two).
    rank_to_feature = rng.permutation(n_features).astype(np.int32)
    w_star = rng.standard_normal(n_features if n_classes == 2 else (n_features, n_classes))
    # Inverse-CDF sampling of ranks: searchsorted on the cumulative Zipf weights is exact for
    # the truncated law (no rejection, no continuous approximation).
    cdf = np.cumsum(np.arange(1, n_features + 1, dtype=np.float64) ** -float(zipf_exponent))
    cdf /= cdf[-1]
    lengths = 1 + rng.poisson(nnz_per_row - 1, size=n_samples)

    # Rows are drawn in chunks of about 4M tokens to bound the temporaries; the chunk size is
    # fixed, so the random stream and hence the result do not depend on anything but the args.
    rows_per_chunk = max(1, (1 << 22) // nnz_per_row)
    indices_parts, counts_parts, row_nnz_parts = [], [], []
    for start in range(0, n_samples, rows_per_chunk):
        chunk_lengths = lengths[start:start + rows_per_chunk]
        n_rows = chunk_lengths.shape[0]
        n_tokens = int(chunk_lengths.sum())
        ranks = np.searchsorted(cdf, rng.random(n_tokens), side="right")
        features = rank_to_feature[ranks]
        # One sortable key per token, row-major: sorting it orders each row's features and puts
        # repeated tokens next to each other, where they are merged with their count.
        keys = np.repeat(np.arange(n_rows, dtype=np.int64) * n_features, chunk_lengths)
        keys += features
        keys.sort()
        is_first = np.empty(n_tokens, dtype=bool)
        is_first[0] = True
        np.not_equal(keys[1:], keys[:-1], out=is_first[1:])
        first = np.flatnonzero(is_first)
        counts_parts.append(np.diff(first, append=n_tokens).astype(np.int32))
        unique_keys = keys[first]
        rows = unique_keys // n_features
        indices_parts.append((unique_keys - rows * n_features).astype(np.int32))
        row_nnz_parts.append(np.bincount(rows, minlength=n_rows))
        del ranks, features, keys, is_first, first, unique_keys, rows
    del cdf, rank_to_feature

    indices = np.concatenate(indices_parts)
    counts = np.concatenate(counts_parts)
    row_nnz = np.concatenate(row_nnz_parts)
    del indices_parts, counts_parts, row_nnz_parts
    indptr = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(row_nnz, out=indptr[1:])

    document_frequency = np.bincount(indices, minlength=n_features)
    idf = np.log((1.0 + n_samples) / (1.0 + document_frequency)) + 1.0
    del document_frequency
    values = np.log1p(counts)
    del counts
    values *= idf[indices]
    del idf
    # Every row has at least one token, so every reduceat segment is non-empty.
    starts = indptr[:-1]
    norms = np.sqrt(np.add.reduceat(values * values, starts))
    values /= np.repeat(norms, row_nnz)

    # Scores from the float64 values, so y is the same whatever dtype X is returned in.
    if n_classes == 2:
        scores = signal * np.add.reduceat(values * w_star[indices], starts)
        scores -= np.median(scores)
        y = np.where(rng.random(n_samples) < expit(scores), 1.0, -1.0)
    else:
        scores = signal * np.add.reduceat(values[:, None] * w_star[indices], starts, axis=0)
        y = np.argmax(scores + rng.gumbel(size=scores.shape), axis=1)  # Gumbel-max: a softmax draw

    data = values.astype(dt, copy=False)
    return _csr(data, indices, indptr, (n_samples, n_features)), y



# ---------------------------------------------------------------------------------------------
# Bag-of-words corpora for LDA. Each returns a canonical CSR document-word count matrix (rows =
# documents, float64 counts, which hold any integer count below 2^53 exactly).

def _text_lines(path):
    """The lines of a (possibly gzip/bzip2/xz-compressed) UTF-8 text file, split at '\\n' only (a
    '\\r' before it is dropped), so line numbers are those of an editor: str.splitlines would also
    split at form feeds, '\\x1c'-'\\x1e', NEL and U+2028, and number the lines after them wrongly."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte {raw[e.start:e.start + 1]!r} at offset "
                         f"{e.start}: {e.reason})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _parse_bow(path, parse, *args):
    """The native parse of a bag-of-words file as canonical CSR; its "line N: ..." errors get the
    file name."""
    raw = _read_bytes(path)
    try:
        indptr, indices, data, n_docs, n_words = parse(raw, *args)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    del raw
    return indptr, indices, data, n_docs, n_words


def _read_vocab(path, n_words=None):
    lines = _text_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    vocab = []
    for lineno, line in enumerate(lines, 1):
        word = line.strip()
        if not word:
            raise ValueError(f"{path}: line {lineno}: empty word")
        vocab.append(word)
    if n_words is not None and len(vocab) != n_words:
        raise ValueError(f"{path}: {len(vocab)} words, but the docword file declares W = {n_words}")
    return vocab


def load_uci_bow(docword_path, vocab_path=None):
    """Load a corpus in the UCI Bag of Words format (Newman; archive.ics.uci.edu "Bag of Words").

    ``docword`` holds three header lines D (documents), W (vocabulary size), NNZ (number of
    triples), then NNZ lines ``docID wordID count`` with 1-based ids, in any order; ``vocab`` holds
    W lines, word ``i`` on line ``i``. Plain, gzip, bzip2 and xz files are read (by their leading
    bytes). The docword file is parsed in native code with the GIL released; its peak memory is the
    text plus the CSR arrays (about 20 bytes per triple) and, for triples not sorted by document,
    8 more bytes per triple.

    Documents without a triple are empty rows. At most max(NNZ, 65536) documents may be empty: a
    header declaring more is taken to be wrong (it would size the row offsets, 8 bytes per
    document, by a number the file does not support).

    Returns
    -------
    X : scipy.sparse.csr_matrix (D, W), float64 counts, canonical (sorted unique words per row)
    vocab : list of W str, or None when ``vocab_path`` is None

    Raises
    ------
    ValueError
        ``"{path}: line N: ..."`` for a malformed header or triple (not three integers, an integer
        beyond 64 bits, an id out of range, a negative count or one above 2^53, which float64 would
        round, a repeated (doc, word) pair), a triple count other than NNZ, a D with more empty
        documents than allowed, a W above 2^31 - 1, text that is not UTF-8 (vocab), or a
        vocabulary whose length is not W.
    """
    path = os.fspath(docword_path)
    indptr, indices, data, D, W = _parse_bow(path, _core.parse_uci_docword)
    X = _csr(data, indices, indptr, (D, W))
    vocab = _read_vocab(os.fspath(vocab_path), W) if vocab_path is not None else None
    return X, vocab


def load_ldac(path, n_features=None):
    """Load a corpus in Blei's lda-c format: one document per line, ``N id:count id:count ...``
    with N the number of distinct words and 0-based word ids. Plain/gzip/bzip2/xz files are read;
    parsing runs in native code with the GIL released.

    n_features : vocabulary size; default: the largest id + 1 (pass it to give several files the
    same width). Blank lines are skipped; an empty document is the line ``0``.

    Returns X : scipy.sparse.csr_matrix (documents, n_features), float64 counts, canonical.
    Raises ValueError ``"{path}: line N: ..."`` for a malformed line (N not matching the pairs, a
    token without ``:``, a non-integer id or count, an integer beyond 64 bits, a negative count or
    one above 2^53, a repeated id), an id >= ``n_features`` or >= 2^31 - 1, or a file without
    documents.
    """
    path = os.fspath(path)
    if n_features is not None:
        n_features = _check_positive_int("n_features", n_features)
        if n_features > _MAX_FEATURES:
            raise ValueError(f"n_features must be at most {_MAX_FEATURES}, got {n_features}")
    indptr, indices, data, n_docs, n_words = _parse_bow(path, _core.parse_ldac, n_features or 0)
    if n_docs == 0:
        raise ValueError(f"{path}: no documents (the file is empty or blank)")
    return _csr(data, indices, indptr, (n_docs, max(n_words, 1)))


def counts_from_texts(texts, **vectorizer_kwargs):
    """Document-word counts of raw texts with scikit-learn's ``CountVectorizer(**vectorizer_kwargs)``
    (e.g. ``stop_words="english", min_df=2, max_df=0.95``).

    Returns (X, vocab): canonical CSR (documents, words) with float64 counts, and the list of words
    (column j is ``vocab[j]``).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be an iterable of documents (e.g. a list of str), not a single string")
    if vectorizer_kwargs.get("binary"):
        raise ValueError("binary=True gives 0/1 presence flags, not counts: counts_from_texts returns word counts "
                         "(LDA accepts 0/1 weights too; build them with CountVectorizer(binary=True) directly)")
    vec = CountVectorizer(**vectorizer_kwargs)
    X = vec.fit_transform(texts).tocsr()
    X.sort_indices()
    X = _csr(X.data.astype(np.float64), X.indices, X.indptr, X.shape)
    return X, vec.get_feature_names_out().tolist()
