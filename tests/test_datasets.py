"""Tests of asyncopt.datasets: the LIBSVM loader (native parser) and the synthetic generator."""
import bz2
import gzip
import lzma
from pathlib import Path

import numpy as np
import pytest

from asyncopt import _core
from asyncopt.datasets import load_libsvm, make_sparse_classification

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LIBSVM_DIR = DATA / "libsvm"


def write(tmp_path, content, name="data.svm"):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def assert_canonical(X):
    """scipy's own index dtype (int32 for these sizes), strictly ascending indices within every row."""
    assert X.indptr.dtype == X.indices.dtype == np.int32
    assert X.indptr[0] == 0 and X.indptr[-1] == X.nnz == X.indices.size == X.data.size
    assert np.all(np.diff(X.indptr) >= 0)
    if X.nnz:
        assert X.indices.min() >= 0 and X.indices.max() < X.shape[1]
        steps = np.diff(X.indices.astype(np.int64))
        row_starts = X.indptr[1:-1]
        inside_row = np.ones(X.nnz - 1, dtype=bool)
        inside_row[row_starts[(row_starts > 0) & (row_starts < X.nnz)] - 1] = False
        assert np.all(steps[inside_row] > 0)


# --------------------------------------------------------------------------- parser: valid input

def test_basic_file(tmp_path):
    path = write(tmp_path, b"+1 1:0.5 3:-2\n-1 2:1e-3\n")
    X, y = load_libsvm(path, dtype=np.float64)
    assert X.shape == (2, 3)
    np.testing.assert_array_equal(X.toarray(), [[0.5, 0, -2], [0, 1e-3, 0]])
    np.testing.assert_array_equal(y, [1.0, -1.0])
    assert y.dtype == np.float64
    assert_canonical(X)
    assert X.has_canonical_format


def test_comments_blank_lines_crlf_tabs(tmp_path):
    content = (b"# header comment\r\n"
               b"\r\n"
               b"1 1:1 2:2 # trailing comment 7:7\r\n"
               b"   \t \r\n"
               b"   # indented comment\n"
               b"-1\t3:3\t\t4:4   \r\n"
               b"2 5:5#comment glued to the value\n"
               b"0")  # last line without newline, label only
    X, y = load_libsvm(write(tmp_path, content), dtype=np.float64)
    np.testing.assert_array_equal(y, [1, -1, 2, 0])
    np.testing.assert_array_equal(X.indptr, [0, 2, 4, 5, 5])
    np.testing.assert_array_equal(X.indices, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(X.data, [1, 2, 3, 4, 5])
    assert X.shape == (4, 5)


def test_explicit_zeros_are_kept(tmp_path):
    X, _ = load_libsvm(write(tmp_path, b"1 1:0 3:0.0 5:-0 6:1\n"))
    assert X.nnz == 4
    np.testing.assert_array_equal(X.indices, [0, 2, 4, 5])
    np.testing.assert_array_equal(X.data, [0, 0, 0, 1])


@pytest.mark.parametrize("text", ["1", "-0.5", "1e-3", ".5", "+1", "5.", "-.5e1", "1E3",
                                  "0.1", "3.141592653589793", "1e-310", "2.2250738585072014e-308",
                                  "123456789.123456789", "-0", "1e-400"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numbers_parse_like_strtod(tmp_path, text, dtype):
    X, y = load_libsvm(write(tmp_path, f"{text} 1:{text}\n".encode()), n_features=1, dtype=dtype)
    expected = float(text)  # Python's float() is correctly rounded, as strtod is
    assert y[0] == expected and np.signbit(y[0]) == np.signbit(expected)
    assert X.data.dtype == dtype
    assert X.data[0] == dtype(expected)
    assert np.signbit(X.data[0]) == np.signbit(expected)


def test_empty_rows_and_max_index(tmp_path):
    X, y = load_libsvm(write(tmp_path, b"1\n-1\n1 7:1\n"))
    assert X.shape == (3, 7)
    np.testing.assert_array_equal(np.diff(X.indptr), [0, 0, 1])


def test_largest_allowed_index(tmp_path):
    X, _ = load_libsvm(write(tmp_path, b"1 2147483647:1\n"))
    assert X.shape == (1, 2**31 - 1)
    assert X.indices[0] == 2**31 - 2


def test_path_types(tmp_path):
    path = write(tmp_path, b"1 2:1\n")
    X1, y1 = load_libsvm(path)
    X2, y2 = load_libsvm(str(path))
    assert (X1 != X2).nnz == 0 and np.array_equal(y1, y2)


# --------------------------------------------------------------------------- parser: errors

ERRORS = [
    # (content, line of the error, words the message must contain)
    (b"1 1:1\nabc 2:1\n", 2, "label 'abc' is not a number"),
    (b"# multi-label\n1,2 3:1\n", 2, "multi-label"),
    (b"1 1:1\n\n1 2 3:1\n", 3, "no ':'"),
    (b"1 a:1\n", 1, "not an integer"),
    (b"1 1.5:1\n", 1, "not an integer"),
    (b"1 :1\n", 1, "not an integer"),
    (b"1 0:1\n", 1, "not positive"),
    (b"1 -3:1\n", 1, "not positive"),
    (b"1 2147483648:1\n", 1, "larger than 2147483647"),
    (b"1 99999999999999999999999:1\n", 1, "larger than 2147483647"),
    (b"1 1:1\n1 3:1 2:1\n", 2, "strictly ascending"),
    (b"1 3:1 3:2\n", 1, "strictly ascending"),
    (b"1 1:abc\n", 1, "not a number"),
    (b"1 1:\n", 1, "not a number"),
    (b"1 1:1:2\n", 1, "not a number"),
    (b"1 1:0x10\n", 1, "not a number"),
    (b"1 1:1,5\n", 1, "not a number"),
    (b"1 1:nan\n", 1, "NaN or infinite"),
    (b"1 1:inf\n", 1, "NaN or infinite"),
    (b"1 1:-inf\n", 1, "NaN or infinite"),
    (b"1 1:1e400\n", 1, "NaN or infinite"),
    (b"nan 1:1\n", 1, "NaN or infinite"),
    (b"1 1:1\n-inf\n", 2, "NaN or infinite"),
    (b"+inf 1:1\n", 1, "NaN or infinite"),
    (b"+-1 1:1\n", 1, "not a number"),
    (b"1 qid:3 1:1\n", 1, "qid"),
    (b"1:1 2:1\n", 1, "instead of a label"),
    (b"1 1:1\r\n\r\n# c\r\n1 1:x\r\n", 4, "not a number"),
]


@pytest.mark.parametrize("content, line, words", ERRORS)
def test_malformed_lines_name_file_and_line(tmp_path, content, line, words):
    path = write(tmp_path, content, name="bad file.svm")
    with pytest.raises(ValueError) as info:
        load_libsvm(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line {line}: "), message
    assert words in message


@pytest.mark.parametrize("content, escaped", [
    # a NUL in the quoted token ended the message where pybind11 read it as a C string
    (b"1 1:1 2:\x00junk-after-the-nul\n", r"'\x00junk-after-the-nul'"),
    # a byte that is not UTF-8 made the message itself undecodable
    (b"1 1:1 2:\xff\xfe\n", r"'\xff\xfe'"),
    (b"1 1:1 \x1b[31m:1\n", r"'\x1b[31m'"),
])
def test_unprintable_bytes_are_escaped_in_the_message(tmp_path, content, escaped):
    path = write(tmp_path, content)
    with pytest.raises(ValueError) as info:
        load_libsvm(path)
    message = str(info.value)
    assert message.startswith(f"{path}: line 1: ") and escaped in message, message
    assert message.isprintable()


def test_float32_overflow_needs_float64(tmp_path):
    path = write(tmp_path, b"1 1:1e39\n")
    with pytest.raises(ValueError, match="overflows float32"):
        load_libsvm(path, dtype=np.float32)
    X, _ = load_libsvm(path, dtype=np.float64)
    assert X.data[0] == 1e39


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# only a comment\n  \r\n"])
def test_file_without_samples(tmp_path, content):
    path = write(tmp_path, content)
    with pytest.raises(ValueError, match="no samples") as info:
        load_libsvm(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_libsvm(tmp_path / "nope.svm")


# --------------------------------------------------------------------------- compression

PLAIN = b"# compressed round trip\n+1 1:0.25 4:1\n-1 2:-3.5\n1\n-1 3:1e-5 4:2\n"
COMPRESSORS = {"plain": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress,
               "xz": lzma.compress}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("suffix", [".svm", ".gz", ".bz2", ".xz"])
def test_compressed_round_trip(tmp_path, kind, suffix):
    # The suffix is deliberately unrelated to the content: detection uses the magic bytes.
    expected_X, expected_y = load_libsvm(write(tmp_path, PLAIN, "reference.txt"))
    X, y = load_libsvm(write(tmp_path, COMPRESSORS[kind](PLAIN), "data" + suffix))
    assert X.shape == expected_X.shape
    np.testing.assert_array_equal(X.indptr, expected_X.indptr)
    np.testing.assert_array_equal(X.indices, expected_X.indices)
    np.testing.assert_array_equal(X.data, expected_X.data)
    np.testing.assert_array_equal(y, expected_y)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_corrupt_compressed_file(tmp_path, kind):
    packed = COMPRESSORS[kind](PLAIN * 10)
    path = write(tmp_path, packed[: len(packed) // 2], "broken.dat")
    with pytest.raises(ValueError, match=kind) as info:
        load_libsvm(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
@pytest.mark.parametrize("tail", [b"garbage", b"1 7:1\n", b"BZ", b"\xfd7zXY"])
def test_bytes_after_the_compressed_data_are_refused(tmp_path, kind, tail):
    # bz2.decompress and lzma.decompress stopped silently at bytes that do not start another
    # stream: a second member corrupt in its first bytes (or plain text appended) was dropped
    path = write(tmp_path, COMPRESSORS[kind](PLAIN) + tail, "tail.dat")
    with pytest.raises(ValueError, match=rf"tail.dat: {len(tail)} bytes after the {kind} data end at byte \d+ "
                                         rf"do not start another {kind} member"):
        load_libsvm(path)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_concatenated_members_and_nul_padding_are_read(tmp_path, kind):
    expected_X, expected_y = load_libsvm(write(tmp_path, PLAIN * 2, "reference.txt"))
    packed = COMPRESSORS[kind](PLAIN)
    X, y = load_libsvm(write(tmp_path, packed + packed + b"\0" * 8, "two.dat"))
    assert (X != expected_X).nnz == 0 and np.array_equal(y, expected_y)
    # a second member cut short is an error, not the first member alone
    with pytest.raises(ValueError, match=f"{kind} file: it is truncated"):
        load_libsvm(write(tmp_path, packed + packed[:-4], "cut.dat"))


def test_parse_error_in_compressed_file_names_it(tmp_path):
    path = write(tmp_path, gzip.compress(b"1 1:1\n1 2:1 1:1\n"), "x.gz")
    with pytest.raises(ValueError, match=r"x\.gz: line 2: .*strictly ascending"):
        load_libsvm(path)


# --------------------------------------------------------------------------- n_features, dtype

def test_n_features(tmp_path):
    path = write(tmp_path, b"1 2:1\n-1 5:1\n")
    assert load_libsvm(path)[0].shape == (2, 5)
    assert load_libsvm(path, n_features=5)[0].shape == (2, 5)
    assert load_libsvm(path, n_features=np.int64(9))[0].shape == (2, 9)
    with pytest.raises(ValueError, match=r"feature index 5 exceeds n_features=4.*sample 1"):
        load_libsvm(path, n_features=4)


@pytest.mark.parametrize("bad", [0, -3, 2.5, 3.0, "5", True, 2**31])
def test_n_features_invalid(tmp_path, bad):
    with pytest.raises(ValueError, match="n_features"):
        load_libsvm(write(tmp_path, b"1 2:1\n"), n_features=bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, "float32", "float64",
                                   np.dtype("float64"), float])
def test_dtype(tmp_path, dtype):
    X, y = load_libsvm(write(tmp_path, b"1 2:0.1\n"), dtype=dtype)
    assert X.data.dtype == np.dtype(dtype)
    assert X.data[0] == np.dtype(dtype).type(0.1)
    assert y.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float16, np.int32, int, "nonsense", None, np.complex64])
def test_dtype_invalid(tmp_path, dtype):
    with pytest.raises(ValueError, match="dtype"):
        load_libsvm(write(tmp_path, b"1 2:1\n"), dtype=dtype)


# --------------------------------------------------------------------------- the binding itself

def test_core_accepts_bytes_like():
    for buffer in (b"1 2:3\n", bytearray(b"1 2:3\n"), memoryview(b"1 2:3\n")):
        indptr, indices, data, labels, max_index = _core.parse_libsvm(buffer, "float64")
        assert indptr.tolist() == [0, 1] and indices.tolist() == [1]
        assert data.tolist() == [3.0] and labels.tolist() == [1.0] and max_index == 2


def test_core_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dtype"):
        _core.parse_libsvm(b"1 1:1", "int32")
    with pytest.raises(TypeError):
        _core.parse_libsvm(np.zeros(4, dtype=np.int32), "float64")
    with pytest.raises(TypeError):
        _core.parse_libsvm(memoryview(b"1 1:1 2:2")[::2], "float64")
    with pytest.raises(ValueError, match="^line 1: "):
        _core.parse_libsvm(b"1 0:1", "float32")


# --------------------------------------------------------------------------- real files vs sklearn

REAL_FILES = [
    ("a9a.xz", None, np.float64),
    ("a9a.xz", None, np.float32),
    ("a9a.t.xz", 123, np.float32),  # the test split only uses 122 of the 123 features
    ("rcv1_vw_small.train.libsvm.xz", None, np.float32),
    ("news20bydate_tfidf.binary.test.xz", None, np.float64),
]


@pytest.fixture(scope="module")
def decompressed(tmp_path_factory):
    """Plain copies of the real .xz files, for scikit-learn's loader (made once per file)."""
    folder = tmp_path_factory.mktemp("libsvm_plain")
    made = {}

    def get(name):
        if name not in made:
            made[name] = folder / name.removesuffix(".xz")
            made[name].write_bytes(lzma.decompress((LIBSVM_DIR / name).read_bytes()))
        return made[name]

    return get


@pytest.mark.parametrize("name, n_features, dtype", REAL_FILES)
def test_real_files_agree_with_sklearn(decompressed, name, n_features, dtype):
    path = LIBSVM_DIR / name
    if not path.exists():
        pytest.skip(f"real data not found at {path} (the shared/ folder beside the repository)")
    load_svmlight_file = pytest.importorskip("sklearn.datasets").load_svmlight_file

    X, y = load_libsvm(path, n_features=n_features, dtype=dtype)
    X_ref, y_ref = load_svmlight_file(str(decompressed(name)), n_features=n_features,
                                      dtype=dtype)
    assert X.shape == X_ref.shape
    assert X.data.dtype == X_ref.data.dtype == dtype
    np.testing.assert_array_equal(X.indptr, X_ref.indptr)
    np.testing.assert_array_equal(X.indices, X_ref.indices)
    np.testing.assert_array_equal(X.data, X_ref.data)
    np.testing.assert_array_equal(y, y_ref)
    assert_canonical(X)
    assert set(np.unique(y)) == {-1.0, 1.0}


# --------------------------------------------------------------------------- generator

SMALL = dict(n_samples=3000, n_features=2**14, nnz_per_row=20)


def test_generator_is_deterministic():
    X1, y1 = make_sparse_classification(**SMALL, random_state=7)
    X2, y2 = make_sparse_classification(**SMALL, random_state=7)
    for a, b in [(X1.indptr, X2.indptr), (X1.indices, X2.indices), (X1.data, X2.data), (y1, y2)]:
        np.testing.assert_array_equal(a, b)
    X3, y3 = make_sparse_classification(**SMALL, random_state=8)
    assert X3.nnz != X1.nnz or not np.array_equal(X3.indices, X1.indices)


def test_generator_shapes_and_canonical_csr():
    X, y = make_sparse_classification(**SMALL)
    assert X.shape == (3000, 2**14)
    assert y.shape == (3000,) and y.dtype == np.float64
    assert X.data.dtype == np.float32
    assert_canonical(X)
    row_nnz = np.diff(X.indptr)
    assert row_nnz.min() >= 1
    # Tokens per row average nnz_per_row; merging repeats leaves fewer, but not far fewer.
    assert 0.5 * 20 < row_nnz.mean() <= 20
    assert np.all(X.data > 0)
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1.0, rtol=1e-5)


def test_generator_dtype():
    X32, y32 = make_sparse_classification(**SMALL, dtype=np.float32)
    X64, y64 = make_sparse_classification(**SMALL, dtype=np.float64)
    assert X64.data.dtype == np.float64
    np.testing.assert_array_equal(X64.indices, X32.indices)
    np.testing.assert_array_equal(X64.data.astype(np.float32), X32.data)
    np.testing.assert_array_equal(y64, y32)


def test_generator_labels_balanced_and_informative():
    X, y = make_sparse_classification(n_samples=20000, n_features=2**14, random_state=1)
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert 0.1 <= np.mean(y > 0) <= 0.9
    linear_model = pytest.importorskip("sklearn.linear_model")
    clf = linear_model.LogisticRegression(C=10, max_iter=300).fit(X[:15000], y[:15000])
    assert clf.score(X[15000:], y[15000:]) > 0.65  # signal=0 scores about 0.5

    X0, y0 = make_sparse_classification(n_samples=4000, n_features=2**14, signal=0.0)
    assert 0.4 < np.mean(y0 > 0) < 0.6


def test_generator_zipf_skew_with_scattered_hot_features():
    X, _ = make_sparse_classification(n_samples=5000, n_features=2**16)
    document_frequency = np.bincount(X.indices, minlength=X.shape[1])
    order = np.argsort(document_frequency)[::-1]
    top = order[: X.shape[1] // 100]
    assert document_frequency[top].sum() > 0.4 * X.nnz  # uniform features would give ~1 %
    # Hot features are spread over the id range, not packed at its start.
    assert 0.3 * X.shape[1] < top.mean() < 0.7 * X.shape[1]
    # A flatter law (smaller exponent) is less skewed.
    X_flat, _ = make_sparse_classification(n_samples=5000, n_features=2**16, zipf_exponent=0.3)
    df_flat = np.sort(np.bincount(X_flat.indices, minlength=X.shape[1]))[::-1]
    assert df_flat[: X.shape[1] // 100].sum() < 0.5 * document_frequency[top].sum()


def test_generator_edge_sizes():
    X, y = make_sparse_classification(n_samples=1, n_features=1, nnz_per_row=1)
    assert X.shape == (1, 1) and X.nnz == 1 and X.data[0] == 1.0 and y.shape == (1,)
    X, _ = make_sparse_classification(n_samples=50, n_features=8, nnz_per_row=8)
    assert_canonical(X)


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_samples=0), "n_samples"),
    (dict(n_samples=-1), "n_samples"),
    (dict(n_samples=10.0), "n_samples"),
    (dict(n_samples=True), "n_samples"),
    (dict(n_features=0), "n_features"),
    (dict(n_features=2**31), "n_features"),
    (dict(nnz_per_row=0), "nnz_per_row"),
    (dict(nnz_per_row=2.5), "nnz_per_row"),
    (dict(n_features=10, nnz_per_row=11), "nnz_per_row must be at most n_features=10"),
    (dict(zipf_exponent=0), "zipf_exponent"),
    (dict(zipf_exponent=-1.0), "zipf_exponent"),
    (dict(zipf_exponent=float("nan")), "zipf_exponent"),
    (dict(zipf_exponent="1.1"), "zipf_exponent"),
    (dict(signal=float("inf")), "signal"),
    (dict(dtype=np.int64), "dtype"),
    (dict(dtype=np.float16), "dtype"),
])
def test_generator_argument_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        make_sparse_classification(**{"n_samples": 10, "n_features": 64, **kwargs})


def test_make_sparse_classification_with_more_classes():
    X, y = make_sparse_classification(n_samples=3000, n_features=500, nnz_per_row=20, n_classes=5, random_state=1)
    X2, y2 = make_sparse_classification(n_samples=3000, n_features=500, nnz_per_row=20, n_classes=5, random_state=1)
    assert np.array_equal(y, y2) and (X != X2).nnz == 0
    assert y.dtype.kind == "i" and set(np.unique(y)) == set(range(5))
    assert min(np.bincount(y)) > 100  # every class drawn (a softmax teacher, no empty class)
    # the binary problem is unchanged by the parameter: the same stream, labels in {-1, +1}
    Xb, yb = make_sparse_classification(n_samples=300, n_features=50, random_state=2)
    Xc, yc = make_sparse_classification(n_samples=300, n_features=50, random_state=2, n_classes=2)
    assert np.array_equal(yb, yc) and set(np.unique(yb)) == {-1.0, 1.0} and (Xb != Xc).nnz == 0
    with pytest.raises(ValueError, match="n_classes must be at least 2"):
        make_sparse_classification(n_samples=10, n_features=10, nnz_per_row=3, n_classes=1)
