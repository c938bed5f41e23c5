"""Property-based tests (hypothesis) of the loaders and of the estimators' input validation.

Whatever the bytes, a loader returns a canonical CSR matrix equal to what the file says, or raises
ValueError naming the file (and the line, for a line's fault); never a crash, a hang, another
exception or a silently shortened result. Derandomized and without an example database, so CI runs
the same examples every time; sizes are kept small for a run time of seconds.
"""
import bz2
import gzip
import lzma
import re

import numpy as np
import pytest
import scipy.sparse as sp

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import asyncopt  # noqa: E402
from asyncopt.datasets import load_ldac, load_libsvm, load_uci_bow  # noqa: E402

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
LOADERS = {"libsvm": load_libsvm, "uci": lambda p: load_uci_bow(p)[0], "ldac": load_ldac}
COMPRESS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}
# the errors that concern a whole file rather than one of its lines
WHOLE_FILE = ("no samples", "no documents", "cannot decompress", "do not start another", "feature index")


def load(tmp_path, name, content):
    path = tmp_path / f"{name}.dat"
    path.write_bytes(content)
    return path, LOADERS[name](path)


def assert_named(err, path, line=None):
    message = str(err)
    assert message.startswith(f"{path}: "), message
    rest = message[len(str(path)) + 2:]
    if line is not None:
        assert rest.startswith(f"line {line}: "), message
    else:
        assert re.match(r"line \d+: ", rest) or any(w in rest for w in WHOLE_FILE), message


def assert_canonical(X):
    assert sp.isspmatrix_csr(X) and X.has_canonical_format
    assert np.isfinite(X.data).all()
    if X.nnz:
        assert X.indices.min() >= 0 and X.indices.max() < X.shape[1]
        assert np.all(np.diff(X.indptr) >= 0)


# ------------------------------------------------------------------ any bytes at all
NOISY = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"1", b"0", b"-1", b"+1", b" ", b"\t", b"\n", b"\r\n", b":", b"#", b"\x00", b"\xff",
                     b"9223372036854775808", b"2147483648", b"18446744073709551616", b"1e400", b"nan",
                     b"3\n4\n2\n", b"1 1 1\n", b"2 0:1 1:1\n", b"1_0", b"\xef\xbc\x91", b"\x0c", b"1.5"]),
    max_size=40).map(b"".join)


@PROPERTY
@given(content=NOISY, name=st.sampled_from(sorted(LOADERS)), packed=st.sampled_from([None, *sorted(COMPRESS)]))
def test_any_bytes_load_or_raise_a_named_value_error(tmp_path, content, name, packed):
    if packed:
        content = COMPRESS[packed](content)
    path = tmp_path / f"{name}.dat"
    path.write_bytes(content)
    try:
        X = LOADERS[name](path)
    except ValueError as e:
        assert_named(e, path)
    else:
        assert_canonical(X[0] if isinstance(X, tuple) else X)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(sorted(COMPRESS)))
def test_truncated_or_corrupt_compressed_files_never_load_something_else(tmp_path, data, kind):
    text = b"".join(b"%d 1:%d 3:0.5\n" % (1 if i % 2 else -1, i + 1) for i in range(40))
    packed = COMPRESS[kind](text)
    cut = data.draw(st.integers(0, len(packed) - 1), label="cut")
    path = tmp_path / "c.dat"
    path.write_bytes(packed[:cut])
    with pytest.raises(ValueError) as info:  # a strict prefix never parses as a shorter file
        load_libsvm(path)
    assert_named(info.value, path)
    flip = data.draw(st.integers(0, len(packed) - 1), label="flip")
    bit = data.draw(st.integers(0, 7), label="bit")
    corrupt = bytearray(packed)
    corrupt[flip] ^= 1 << bit
    path.write_bytes(bytes(corrupt))
    try:
        X, y = load_libsvm(path)
    except ValueError as e:
        assert_named(e, path)
    else:  # the checksums leave only bits that do not change the data (header flags, mtime)
        ref_X, ref_y = load_libsvm_bytes(tmp_path, text)
        assert (X != ref_X).nnz == 0 and np.array_equal(y, ref_y)


def load_libsvm_bytes(tmp_path, text):
    path = tmp_path / "ref.dat"
    path.write_bytes(text)
    return load_libsvm(path)


# ------------------------------------------------------------------ valid files, and one bad token
BLANK = st.sampled_from([" ", "\t", "  ", " \t "])
EOL = st.sampled_from(["\n", "\r\n", " \n", "\t\r\n"])
FILLER = st.lists(st.sampled_from(["", " ", "\t", "\r", "\x0c"]), max_size=2)  # blank lines


@st.composite
def uci_files(draw):
    D, W = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    cells = draw(st.dictionaries(st.tuples(st.integers(1, D), st.integers(1, W)),
                                 st.integers(0, 2 ** 53) | st.integers(0, 9), min_size=1, max_size=12))
    triples = list(cells.items())
    if draw(st.booleans()):
        triples = draw(st.permutations(triples))
    else:
        triples.sort()
    lines = [str(D), str(W), str(len(triples))] + [f"{d}{draw(BLANK)}{w}{draw(BLANK)}{c}" for (d, w), c in triples]
    return D, W, cells, lines


def render(draw, lines):
    """The lines with random blank lines between them and random line ends; the file line of each."""
    out, numbers = [], []
    for line in lines:
        out += [f + "\n" for f in draw(FILLER)]
        numbers.append(len(out) + 1)
        out.append(line + draw(EOL))
    return "".join(out).encode(), numbers


@PROPERTY
@given(data=st.data())
def test_uci_files_load_exactly(tmp_path, data):
    D, W, cells, lines = data.draw(uci_files())
    text, _ = render(data.draw, lines)
    _, X = load(tmp_path, "uci", text)
    expected = np.zeros((D, W))
    for (d, w), c in cells.items():
        expected[d - 1, w - 1] = c
    assert_canonical(X)
    assert X.shape == (D, W) and np.array_equal(X.toarray(), expected)


UCI_BAD = {0: ["0", "-1", "7", "9223372036854775808", "99999999999999999999", "1_0", "\uff11", "x", "1.0", "\x00"],
           1: ["0", "-3", "9", "2147483648", "4294967297", "1e3", "\x001", "+-1"],
           2: ["-1", "9007199254740993", "9223372036854775808", "1.5", "2_0", "nan", "\xff", ""]}


@PROPERTY
@given(data=st.data())
def test_a_bad_uci_token_names_its_line(tmp_path, data):
    D, W, cells, lines = data.draw(uci_files())
    k = data.draw(st.integers(3, len(lines) - 1), label="triple line")
    pos = data.draw(st.sampled_from(sorted(UCI_BAD)), label="token")
    parts = lines[k].split()
    parts[pos] = data.draw(st.sampled_from(UCI_BAD[pos]))
    if pos == 0 and parts[0] == "7" and D >= 7 or pos == 1 and parts[1] == "9" and W >= 9:
        return  # in range after all
    lines[k] = " ".join(p for p in parts)
    text, numbers = render(data.draw, lines)
    path = tmp_path / "uci.dat"
    path.write_bytes(text.replace(b"\xc3\xbf", b"\xff"))  # a raw byte that is not UTF-8
    with pytest.raises(ValueError) as info:
        load_uci_bow(path)
    assert_named(info.value, path, numbers[k])


@PROPERTY
@given(data=st.data())
def test_a_repeated_uci_pair_names_the_later_line(tmp_path, data):
    D, W, cells, lines = data.draw(uci_files())
    k = data.draw(st.integers(3, len(lines) - 1), label="copied")
    at = data.draw(st.integers(k + 1, len(lines)), label="inserted at")
    lines.insert(at, lines[k])
    lines[2] = str(int(lines[2]) + 1)
    text, numbers = render(data.draw, lines)
    path = tmp_path / "uci.dat"
    path.write_bytes(text)
    with pytest.raises(ValueError, match="repeated") as info:
        load_uci_bow(path)
    assert_named(info.value, path, numbers[at])


@st.composite
def ldac_files(draw):
    docs = draw(st.lists(st.dictionaries(st.integers(0, 30), st.integers(0, 2 ** 53) | st.integers(0, 9), max_size=6),
                         min_size=1, max_size=6))
    lines = []
    for doc in docs:
        pairs = draw(st.permutations(sorted(doc.items())))
        lines.append(draw(BLANK).join([str(len(pairs))] + [f"{w}:{c}" for w, c in pairs]))
    return docs, lines


@PROPERTY
@given(data=st.data())
def test_ldac_files_load_exactly(tmp_path, data):
    docs, lines = data.draw(ldac_files())
    text, _ = render(data.draw, lines)
    _, X = load(tmp_path, "ldac", text)
    width = max([w for d in docs for w in d], default=0) + 1
    expected = np.zeros((len(docs), width))
    for i, d in enumerate(docs):
        for w, c in d.items():
            expected[i, w] = c
    assert_canonical(X)
    assert X.shape == expected.shape and np.array_equal(X.toarray(), expected)


LDAC_BAD = ["-1:1", "2147483647:1", "99999999999999999999:1", "1:-1", "1:9007199254740993",
            "1:18446744073709551616", "1_0:1", "1:1_0", "\uff11:1", "1", ":1", "1:", "1:1:1", "\x00:1"]


@PROPERTY
@given(data=st.data())
def test_a_bad_ldac_token_names_its_line(tmp_path, data):
    docs, lines = data.draw(ldac_files())
    k = data.draw(st.integers(0, len(lines) - 1), label="line")
    parts = lines[k].split()
    how = data.draw(st.sampled_from(["token", "count", "duplicate"]))
    if how == "token":
        parts = [str(len(parts))] + parts[1:] + [data.draw(st.sampled_from(LDAC_BAD))]
    elif how == "count":
        parts[0] = data.draw(st.sampled_from([str(len(parts)), str(len(parts) + 5), "-1", "x", "1_0"]))
    else:
        if len(parts) < 2:
            return
        parts = [str(len(parts))] + parts[1:] + [parts[1].split(":")[0] + ":3"]
    lines[k] = " ".join(parts)
    text, numbers = render(data.draw, lines)
    path = tmp_path / "bad.ldac"
    path.write_bytes(text)
    with pytest.raises(ValueError) as info:
        load_ldac(path)
    assert_named(info.value, path, numbers[k])


@st.composite
def libsvm_files(draw):
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        idx = sorted(draw(st.sets(st.integers(1, 2 ** 31 - 1) | st.integers(1, 20), max_size=5)))
        vals = [draw(st.floats(allow_nan=False, allow_infinity=False, width=32)) for _ in idx]
        rows.append((draw(st.sampled_from([-1.0, 1.0, 0.0, 2.5])), idx, vals))
    lines = [draw(BLANK).join([repr(y)] + [f"{i}:{v!r}" for i, v in zip(idx, vals)]) for y, idx, vals in rows]
    return rows, lines


@PROPERTY
@given(data=st.data())
def test_libsvm_files_load_exactly(tmp_path, data):
    rows, lines = data.draw(libsvm_files())
    text, _ = render(data.draw, lines)
    path, (X, y) = load(tmp_path, "libsvm", text)
    assert_canonical(X)
    assert np.array_equal(y, [r[0] for r in rows])
    for i, (_, idx, vals) in enumerate(rows):
        row = X.getrow(i)
        assert row.indices.tolist() == [j - 1 for j in idx]
        assert row.data.tolist() == [float(np.float32(v)) for v in vals]


LIBSVM_BAD = ["0:1", "-2:1", "2147483648:1", "99999999999999999999:1", "5", "5:nan", "5:inf", "5:1e400",
              "5:x", "5:\x00", "qid:1", "5:1,5", "5:1:2", "\xff:1"]


@PROPERTY
@given(data=st.data())
def test_a_bad_libsvm_token_names_its_line(tmp_path, data):
    rows, lines = data.draw(libsvm_files())
    k = data.draw(st.integers(0, len(lines) - 1), label="line")
    bad = data.draw(st.sampled_from(LIBSVM_BAD + ["1:1"]))
    if bad == "1:1" and not rows[k][1]:
        return  # 1:1 fails to ascend only after another index
    lines[k] = lines[k] + " " + bad
    text, numbers = render(data.draw, lines)
    path = tmp_path / "bad.svm"
    path.write_bytes(text)
    with pytest.raises(ValueError) as info:
        load_libsvm(path)
    assert_named(info.value, path, numbers[k])


def test_a_very_long_line_is_read_whole(tmp_path):
    # 200k features on one line, 2 MB: nothing cut at a buffer size
    idx = np.arange(1, 200_001)
    path = tmp_path / "long.svm"
    path.write_bytes(("1 " + " ".join(f"{i}:1" for i in idx) + "\n-1 3:2\n").encode())
    X, y = load_libsvm(path)
    assert X.shape == (2, 200_000) and X.nnz == 200_001 and y.tolist() == [1.0, -1.0]
    path.write_bytes(b"1 " + b"1" * 100_000 + b":1\n")
    with pytest.raises(ValueError, match=r"line 1: feature index '1111.*\.\.\.' is larger than"):
        load_libsvm(path)


# ------------------------------------------------------------------ the estimators' validation
ARRAYS = st.sampled_from([np.float64, np.float32, np.float16, np.int8, np.uint16, np.bool_, np.complex64]).flatmap(
    lambda dt: st.tuples(st.integers(0, 6), st.integers(0, 4)).flatmap(
        lambda shape: st.builds(lambda v: np.array(v, dtype=np.float64).reshape(shape).astype(dt),
                                st.lists(st.sampled_from([0.0, 1.0, -2.5, np.nan, np.inf, 1e300]),
                                         min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(X=ARRAYS, y=st.lists(st.sampled_from([0, 1, -1, 2, np.nan]), max_size=7), sparse=st.booleans())
def test_fit_input_is_accepted_or_refused_with_value_error(X, y, sparse):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float16 and complex casts
        if sparse and X.dtype.kind != "c" and X.dtype != np.float16:  # scipy.sparse has no float16
            X = sp.csr_matrix(X)
    try:
        asyncopt.LogisticRegression(n_threads=1, epochs=1, random_state=0).fit(X, np.array(y))
    except ValueError as e:
        assert str(e)
    for model in (asyncopt.LDA(n_components=2, n_threads=1, epochs=1, random_state=0),):
        try:
            model.fit(X)
        except ValueError as e:
            assert str(e)
