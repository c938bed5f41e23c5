"""The asyncopt command: the main job's table, train, info, and errors as exit status 2."""
import json

import pytest

import asyncopt
from asyncopt.cli import main
from conftest import shared_data


def test_demo_prints_one_row_per_optimizer_and_thread_count(capsys, tmp_path):
    out_json = tmp_path / "demo.json"
    assert main(["demo", "--samples", "3000", "--features", "4096", "--epochs", "2", "--threads", "1,2",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "built-in synthetic problem" in out and "speedup" in out and "vs sklearn" in out
    rows = json.loads(out_json.read_text())["rows"]
    assert [(r["optimizer"], r["threads"]) for r in rows] == [("sklearn-sgd", 1), ("sgd", 1), ("sgd", 2),
                                                              ("amsgrad", 1), ("amsgrad", 2)]
    # every model learned: training objective well below log 2 (the zero model's), test accuracy > 0.6
    assert all(r["objective"] < 0.6 and r["test_accuracy"] > 0.6 and r["fit_time"] > 0 for r in rows)
    assert rows[1]["speedup"] == 1.0 and rows[1]["staleness_max"] == 0 and rows[1]["epochs"] == 2
    # the table's objective is measured at the final model: it matches the estimator's exact objective
    X, y = asyncopt.datasets.make_sparse_classification(n_samples=3000 + 750, n_features=4096, random_state=0)
    clf = asyncopt.LogisticRegression(schedule="optimal", alpha=1e-5, epochs=2, tol=None, n_threads=1,
                                      random_state=0, train_loss="exact").fit(X[:3000], y[:3000])
    assert rows[1]["objective"] == pytest.approx(clf.history_[-1]["objective"], rel=1e-6)


def test_demo_and_train_on_a_data_file(capsys):
    path = str(shared_data("libsvm", "a9a.xz"))
    assert main(["demo", "--data", path, "--epochs", "1", "--threads", "1", "--optimizers", "sgd"]) == 0
    assert "a9a.xz" in capsys.readouterr().out
    assert main(["train", path, "--epochs", "2", "--n-threads", "1", "--optimizer", "amsgrad"]) == 0
    out = capsys.readouterr().out
    assert out.count("epoch") >= 2 and "regularization 'sparse'" in out


@pytest.mark.parametrize("rule", ["adagrad", "adam"])
def test_train_and_demo_take_every_registered_rule(capsys, rule):
    path = str(shared_data("libsvm", "a9a.xz"))
    assert main(["train", path, "--epochs", "2", "--n-threads", "1", "--optimizer", rule]) == 0
    out = capsys.readouterr().out
    assert f"({rule}, 1 threads" in out
    assert main(["demo", "--data", path, "--epochs", "1", "--threads", "1", "--optimizers", rule]) == 0
    assert rule in capsys.readouterr().out
    assert main(["demo", "--data", path, "--epochs", "1", "--threads", "1", "--optimizers", "lbfgs"]) == 2
    assert "lbfgs" in capsys.readouterr().err


def test_info_and_errors(capsys, tmp_path):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["openmp"] is True and info["threads"]["usable"] >= 1
    assert info["cpu"]["lda_e_step_variant"] in ("default", "haswell (AVX2+FMA)")
    assert "mpi4py" in info["mpi"] and info["cuda_device"] in (True, False)
    bad = tmp_path / "bad.libsvm"
    bad.write_text("1 3:1\n-1 2:x\n")
    assert main(["train", str(bad)]) == 2
    assert "line 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not a backend
        main(["train", str(bad), "--backend", "gpu"])
    good = tmp_path / "good.libsvm"
    good.write_text("1 3:1\n-1 2:1\n1 1:1 3:1\n-1 2:2\n")
    if not asyncopt.build_info()["cuda"]:
        assert main(["train", str(good), "--backend", "cuda"]) == 2
        assert "backend 'cuda' is not available in this build" in capsys.readouterr().err
    assert main(["train", str(good), "--device", "cuda"]) == 2  # the GPU's number, for backend cuda only
    assert "pass backend='cuda'" in capsys.readouterr().err


def test_train_mpi_options_are_checked_before_mpi_starts(capsys):
    path = str(shared_data("libsvm", "a9a.xz"))
    assert main(["train", path, "--method", "sync"]) == 2
    assert "--method needs --backend mpi" in capsys.readouterr().err
    assert main(["train", path, "--backend", "mpi", "--method", "apam", "--optimizer", "sgd"]) == 2
    assert "--method apam runs 'amsgrad'" in capsys.readouterr().err
    assert main(["train", path, "--backend", "mpi", "--straggler", "two:3"]) == 2
    assert "--straggler takes RANK:FACTOR" in capsys.readouterr().err


def test_simulate_prints_one_row_per_method(capsys, tmp_path):
    path = str(shared_data("libsvm", "a8a.xz"))
    out_json = tmp_path / "sim.json"
    assert main(["simulate", path, "--method", "sgd,picky,apam,adaptive,sync", "--delay", "straggler:4:10",
                 "--steps", "3000", "--record-every", "500", "--batch-size", "4", "--target", "1.2",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "steps to target" in out and "accepted" in out and "target" in out
    rows = json.loads(out_json.read_text())["rows"]
    assert [r["method"] for r in rows] == ["sgd", "picky", "apam", "adaptive", "sync"]
    assert all(r["steps"] == 3000 for r in rows)
    assert rows[0]["accepted_fraction"] == 1.0 and 0 < rows[1]["accepted_fraction"] <= 1.0
    assert rows[0]["delay_max"] > rows[0]["delay_mean"] > 2 and rows[4]["delay_max"] == 0
    assert rows[0]["steps_to_target"] is not None and rows[0]["time_to_target"] > 0
    assert main(["simulate", path, "--delay", "poisson:3"]) == 2
    assert "the model must be one of" in capsys.readouterr().err
