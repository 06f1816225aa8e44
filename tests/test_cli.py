"""The command line: train, evaluate, bench (on a tiny synthetic dataset)."""

import json

import pytest

from dislib import __main__ as cli
from dislib import data
from tests.helpers import tiny_images


@pytest.fixture
def tiny_dataset(monkeypatch):
    def load_tiny(split, root, size=28):
        return tiny_images(32, size=size, seed=int(split == "test"))

    monkeypatch.setitem(data._LOADERS, "tiny", load_tiny)


def test_train_then_evaluate(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(out)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == "vae" and trained["steps"] == 40
    assert (out / "checkpoint.pt").exists() and (out / "metrics.json").exists()
    assert cli.main(["evaluate", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test_negative_elbo"] == pytest.approx(trained["test_negative_elbo"], rel=0.2)


def test_bench_reports_every_model(capsys):
    assert cli.main(["bench", "--steps", "1", "--warmup", "0", "--batch-size", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"vae", "gan"} <= set(result["models"])
    assert all(m["images_per_second"] > 0 for m in result["models"].values())


def test_evaluate_without_a_run_explains(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "train first" in capsys.readouterr().err


def test_dataset_options_are_used_and_remembered_for_evaluate(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run32"
    args = ["train", "vae", "--dataset", "tiny", "--option", "size=32", "--budget", "smoke", "--out", str(out)]
    assert cli.main(args) == 0
    assert json.loads((out / "run.json").read_text())["data_options"] == {"size": 32}
    assert json.loads((out / "run.json").read_text())["config"]["image_size"] == 32
    capsys.readouterr()
    assert cli.main(["evaluate", str(out)]) == 0
    assert "test_negative_elbo" in json.loads(capsys.readouterr().out)


def test_malformed_dataset_option_is_refused(tiny_dataset, tmp_path, capsys):
    assert cli.main(["train", "vae", "--dataset", "tiny", "--option", "size32", "--out", str(tmp_path)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
