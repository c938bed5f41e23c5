"""asyncopt.plot and the progress display: every figure rendered (Agg) from a real fit, with the
data it draws checked against what the fit recorded; the CLI's --plot; the bar and the lines."""
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import asyncopt  # noqa: E402
from asyncopt import plot, progress  # noqa: E402
from asyncopt.backends.mpi.server import Timeline  # noqa: E402
from asyncopt.cli import main  # noqa: E402

from conftest import sparse_problem  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fits():
    X, y = sparse_problem(n=400, d=200, nnz_per_row=6, seed=3)
    out = []
    for n in (1, 2):
        clf = asyncopt.LogisticRegression(epochs=4, tol=None, n_threads=n, random_state=0, shuffle=True)
        out.append(clf.fit(X, y))
    return out


@pytest.fixture(scope="module")
def lda():
    rng = np.random.default_rng(0)
    import scipy.sparse as sp

    X = sp.random(120, 60, density=0.2, random_state=rng, format="csr", data_rvs=lambda k: rng.integers(1, 5, k))
    X.data = X.data.astype(np.float64)
    return asyncopt.LDA(n_components=4, epochs=3, n_threads=1, random_state=0).fit(X, eval_set=X[:30])


def test_loss_draws_each_fits_history_on_one_axis(fits):
    ax = plot.loss(fits, x="updates")
    lines = ax.get_lines()
    assert len(lines) == 2
    for line, clf in zip(lines, fits):
        np.testing.assert_array_equal(line.get_xdata(), clf.history_.column("updates"))
        np.testing.assert_array_equal(line.get_ydata(), clf.history_.column("objective"))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sgd (1 thread)", "sgd (2 threads)"]
    ax = plot.loss({"a": fits[0]}, x="time", y="train_accuracy")
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), fits[0].history_.column("time"))
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), fits[0].history_.column("train_accuracy"))
    plot.loss(list(fits[0].history_))  # a bare history, e.g. loaded from JSON


def test_loss_refuses_what_it_cannot_draw(fits):
    with pytest.raises(ValueError, match="x must be one of"):
        plot.loss(fits, x="walltime")
    with pytest.raises(ValueError, match="no values of 'val_loss'"):
        plot.loss(fits, y="val_loss")  # fitted without eval_set
    with pytest.raises(ValueError, match="fitted asyncopt estimator or a list"):
        plot.loss(42)
    with pytest.raises(ValueError, match="no fits"):
        plot.loss([])
    with pytest.raises(ValueError, match="2 labels for 1 fits"):
        plot.loss(fits[0], labels=["a", "b"])


def test_speedup_is_throughput_over_the_fewest_threads(fits):
    ax = plot.speedup(fits)
    line, ideal = ax.get_lines()
    rate = [c.history_[-1]["updates"] / c.history_[-1]["time"] for c in fits]
    np.testing.assert_allclose(line.get_ydata(), [1.0, rate[1] / rate[0]])
    np.testing.assert_array_equal(line.get_xdata(), [1, 2])
    np.testing.assert_array_equal(ideal.get_ydata(), [1, 2])
    ax = plot.speedup({1: 4.0, 2: 2.5, 4: 1.6})
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 1.6, 2.5])


def test_staleness_bars_are_the_histogram(fits):
    ax = plot.staleness(fits[1])
    st = fits[1].staleness_
    heights = [p.get_height() for p in ax.patches]
    last = int(np.flatnonzero(st.histogram)[-1]) + 1
    assert heights == list(st.histogram[:last])
    assert [t.get_text() for t in ax.get_xticklabels()][:4] == ["0", "1", "2-3", "4-7"][:last]
    with pytest.raises(ValueError, match="staleness_"):
        plot.staleness(object())


def test_perplexity_and_top_words_of_an_lda_fit(lda):
    ax = plot.perplexity(lda)
    held, train = ax.get_lines()
    np.testing.assert_array_equal(held.get_ydata(), lda.history_.column("perplexity"))
    np.testing.assert_array_equal(train.get_ydata(), lda.history_.column("train_perplexity"))
    assert held.get_color() == train.get_color()
    vocab = [f"w{j}" for j in range(lda.components_.shape[1])]
    fig = plot.top_words(lda, vocab, n_words=5, n_cols=3)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 4 and len(fig.axes) == 6
    for k, ax in enumerate(visible):
        top = np.argsort(lda.components_[k])[::-1][:5]
        # the heaviest word is drawn at the top: the labels from the highest bar down are the top words
        by_height = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)
        assert [label for _, label in by_height] == [vocab[j] for j in top], k
    with pytest.raises(ValueError, match="vocabulary has 3 words"):
        plot.top_words(lda, ["a", "b", "c"])
    assert plot.loss(lda).get_lines()[0].get_ydata().tolist() == lda.history_.column("perplexity").tolist()


def test_mpi_timeline_from_recorded_stats():
    stats = {"workers": {1: {"timeline": {"time": [0.1, 0.2, 0.3], "tau": [0, 2, -1], "stride": 1, "events": 3}},
                         2: {"timeline": {"time": [0.15, 0.25], "tau": [1, 1], "stride": 1, "events": 2}}}}
    ax = plot.mpi_timeline(stats)
    kept1, dropped1, kept2 = ax.collections
    np.testing.assert_array_equal(kept1.get_offsets(), [[0.1, 1], [0.2, 1]])
    np.testing.assert_array_equal(dropped1.get_offsets(), [[0.3, 1]])
    np.testing.assert_array_equal(kept2.get_array(), [1, 1])
    with pytest.raises(ValueError, match="rank 0 of an MPI fit"):
        plot.mpi_timeline({"method": "async"})


def test_timeline_thins_evenly_and_keeps_its_memory_bounded():
    line = Timeline(cap=8)
    for i in range(100):
        line.add(float(i), i)
    d = line.as_dict()
    assert d["events"] == 100 and len(d["time"]) < 8 and d["stride"] == 16
    # what is kept is every stride-th arrival from the first: evenly spread over the whole run
    assert d["tau"] == list(range(0, 100, 16))


def test_save_figures_writes_each_figure_that_applies(tmp_path, fits, lda):
    paths = plot.save_figures(fits[1], tmp_path / "logistic")
    assert [os.path.basename(p) for p in paths] == ["loss.png", "staleness.png"]
    paths = plot.save_figures(lda, tmp_path / "lda", vocabulary=[str(j) for j in range(60)])
    assert [os.path.basename(p) for p in paths] == ["perplexity.png", "top_words.png", "staleness.png"]
    for p in Path(tmp_path).rglob("*.png"):
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 1000


def test_cli_plot_writes_the_figures_and_fails_before_training_without_matplotlib(tmp_path, monkeypatch, capsys):
    data = tmp_path / "d.svm"
    X, y = sparse_problem(n=300, d=50, nnz_per_row=5, seed=1)
    from sklearn.datasets import dump_svmlight_file

    dump_svmlight_file(X, y, str(data), zero_based=False)
    assert main(["train", str(data), "--epochs", "3", "--plot", str(tmp_path / "t")]) == 0
    assert sorted(os.listdir(tmp_path / "t")) == ["loss.png", "staleness.png"]
    assert main(["demo", "--data", str(data), "--threads", "1,2", "--epochs", "2", "--plot", str(tmp_path / "d")]) == 0
    assert sorted(os.listdir(tmp_path / "d")) == ["loss.png", "speedup.png", "staleness.png"]
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert main(["train", str(data), "--epochs", "3", "--plot", str(tmp_path / "x")]) == 2
    err = capsys.readouterr()
    assert "pip install asyncopt[plot]" in err.err and "epoch" not in err.out  # refused before any epoch
    assert not (tmp_path / "x").exists()


MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


@pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install 'asyncopt[mpi]')")
def test_cli_plot_of_an_mpi_run_writes_the_worker_timeline(tmp_path):
    pytest.importorskip("mpi4py")
    data = tmp_path / "d.svm"
    X, y = sparse_problem(n=300, d=50, nnz_per_row=5, seed=1)
    from sklearn.datasets import dump_svmlight_file

    dump_svmlight_file(X, y, str(data), zero_based=False)
    proc = subprocess.run([MPIEXEC, "-n", "3", sys.executable, "-m", "asyncopt", "train", str(data), "--backend",
                           "mpi", "--method", "picky", "--epochs", "2", "--plot", str(tmp_path / "f")],
                          capture_output=True, text=True, timeout=180, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(os.listdir(tmp_path / "f")) == ["loss.png", "mpi_timeline.png", "staleness.png"]
    assert proc.stdout.count("figures:") == 1  # rank 0 only


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_verbose_1_draws_a_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    pytest.importorskip("tqdm")
    X, y = sparse_problem(n=200, d=40, nnz_per_row=4, seed=2)
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    asyncopt.LogisticRegression(epochs=3, tol=None, n_threads=1, verbose=1).fit(X, y)
    out = term.getvalue()
    assert "3/3 epochs" in out and "loss=" in out and "staleness=" in out and "updates/s=" in out
    assert "\r" in out  # redrawn in place
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)
    asyncopt.LogisticRegression(epochs=3, tol=None, n_threads=1, verbose=1).fit(X, y)
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 3 and all(line.startswith("epoch") for line in lines)
    term2 = _Terminal()
    monkeypatch.setattr(sys, "stdout", term2)
    asyncopt.LogisticRegression(epochs=2, tol=None, n_threads=1, verbose=2).fit(X, y)
    assert len(term2.getvalue().splitlines()) == 2 and "\r" not in term2.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stdout", quiet)
    asyncopt.LogisticRegression(epochs=2, tol=None, n_threads=1).fit(X, y)
    assert quiet.getvalue() == ""


def test_the_bar_counts_this_fits_passes_only_and_falls_back_without_tqdm(monkeypatch):
    pytest.importorskip("tqdm")
    bar = progress.reporter(1, 4, str, stream=_Terminal())
    assert isinstance(bar, progress.Bar)
    bar.show({"epoch": 7, "updates": 70, "epoch_time": 0.5, "objective": 0.3}, {"epoch": 6, "updates": 60})
    assert bar.bar.n == 1  # a warm start's sixth pass was the earlier fit's
    assert progress.postfix({"epoch": 7, "updates": 70, "epoch_time": 0.5}, {"epoch": 6, "updates": 60})[
        "updates/s"] == "20"
    bar.close()
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert isinstance(progress.reporter(1, 4, str, stream=_Terminal()), progress.Lines)
    assert progress.reporter(0, 4, str) is None
