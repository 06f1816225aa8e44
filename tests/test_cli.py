"""The command line: train, evaluate, bench (on a tiny synthetic dataset)."""

import json

import pytest

from dislib import __main__ as cli
from dislib import data
from tests.helpers import tiny_images


@pytest.fixture
def tiny_dataset(monkeypatch):
    monkeypatch.setitem(data._LOADERS, "tiny", lambda split, root, **kw: tiny_images(32, seed=int(split == "test")))


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
