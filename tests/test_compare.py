"""The comparison protocol (dislib.compare), its wall-clock budget and its command, on tiny fake styled digits."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dislib import __main__ as cli
from dislib import compare, compare_table, data
from dislib.data.base import ImageDataset
from dislib.evaluate import swap_ratio
from dislib.models import VAE, Budget
from dislib.train import METRICS, RunDirectoryError, fit, read_run
from tests.helpers import Pixels, pixel_data, tiny_images

TINY = compare.CompareBudget(seconds=0.3, seeds=(0, 1), test_size=80, dci_size=40, train_size=64, jobs=1, eval_size=100,
                              evaluations=3)


@pytest.fixture
def fake_styled(monkeypatch):
    """``styled-mnist`` replaced by 3x32x32 noise whose five factors are read off the pixels."""

    def load(split, root, label="set"):
        n = 96 if split == "train" else 100
        g = torch.Generator().manual_seed(int(split == "test"))
        images = torch.rand(n, 3, 32, 32, generator=g)
        factors = torch.stack([images[:, 0].mean((1, 2)), images[:, 1].mean((1, 2)), images[:, 2].mean((1, 2)),
                               images[:, :, :16].mean((1, 2, 3)), images[:, :, :, :16].mean((1, 2, 3))], 1)
        labels = torch.arange(n) % (10 if label == "digit" else 2)
        return ImageDataset(images, labels, 10 if label == "digit" else 2, "styled-mnist", factors=factors,
                            factor_names=("R", "G", "B", "scale", "width"))

    monkeypatch.setitem(data._LOADERS, "styled-mnist", load)
    monkeypatch.setitem(compare.BUDGETS, "smoke", TINY)


def test_a_wall_clock_budget_stops_training_and_a_finished_run_trains_no_more(tmp_path):
    model, images = VAE.for_dataset(tiny_images()), tiny_images()
    plan = Budget(steps=10**9, batch_size=16, eval_every=10**9, seconds=0.5)
    start = time.perf_counter()
    history = fit(model, images, images, budget=plan, out=tmp_path, progress=False)
    assert 0.5 <= history.seconds < 0.5 + (time.perf_counter() - start)
    metrics = json.loads((tmp_path / METRICS).read_text())
    assert 1 <= metrics["steps"] < 10**9 and metrics["seconds"] >= 0.5
    assert history.steps == [metrics["steps"]]  # evaluated once, when the time ran out
    assert read_run(tmp_path)["budget"]["seconds"] == 0.5
    again = fit(VAE.for_dataset(images), images, None, budget=plan, out=tmp_path, progress=False)
    assert again.steps == history.steps and again.seconds == pytest.approx(history.seconds)


@pytest.mark.parametrize("fields, message", [
    (dict(seconds=0.0), "seconds > 0"), (dict(seconds=-5.0), "seconds > 0"), (dict(steps=0), "steps, batch_size"),
])
def test_a_budget_that_cannot_train_is_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        Budget(**{**dict(steps=10, batch_size=16, eval_every=5), **fields})


def test_swapping_the_specified_code_instead_of_z():
    images = pixel_data(200)
    model = Pixels(uses_z=True)  # draws the image from z alone
    assert swap_ratio(model, images, swapped="unspecified") > 5
    assert swap_ratio(model, images, swapped="specified") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="'specified' or 'unspecified'"):
        swap_ratio(model, images, swapped="s")


def test_unknown_methods_are_named_with_the_known_ones():
    with pytest.raises(ValueError, match="no method \\['vea'\\].*vae, betavae"):
        compare.methods_named(["vea"])
    assert compare.methods_named(None) == compare.METHODS
    assert [m.style_code for m in compare.methods_named(["vae", "mathieu", "rbvae"])] == [
        "unspecified", "unspecified", "specified"]


def test_every_method_builds_on_its_styled_preset(fake_styled):
    train = data.load("styled-mnist", "train", label="digit")
    for method in compare.METHODS:
        model = compare.build(method, train)
        assert model.config.image_channels == 3 and model.config.image_size == 32, method.name
        for key, value in method.settings.items():
            assert getattr(model.config, key) == value


def test_run_measures_every_code_writes_the_table_and_reuses_finished_runs(fake_styled, tmp_path):
    summary = compare.run("smoke", tmp_path, ["vae", "mathieu", "rbvae"], progress=False)
    methods = summary["methods"]
    assert list(methods) == ["VAE", "Mathieu et al.", "Rb-VAE"]
    for name, result in methods.items():
        assert [r["seed"] for r in result["runs"]] == [0, 1]
        for r in result["runs"]:
            assert r["seconds"] >= TINY.seconds and r["steps"] >= 1
            assert 0 <= r["style_code_digit_accuracy"] <= 1 and r["style_code_style_mae"] > 0
            assert 0 <= r["dci_disentanglement"] <= 1 and 0 <= r["dci_completeness"] <= 1
        assert result["std"]["seconds"] >= 0 and set(result["mean"]) == set(result["std"])
    assert "digit_code_digit_accuracy" not in methods["VAE"]["mean"] and "swap_ratio" not in methods["VAE"]["mean"]
    assert {"digit_code_digit_accuracy", "swap_ratio"} <= set(methods["Mathieu et al."]["mean"])
    assert "digit_code_kl_nats" not in methods["Mathieu et al."]["mean"]  # its s is deterministic
    assert {"digit_code_kl_nats", "style_code_kl_nats"} <= set(methods["Rb-VAE"]["mean"])  # z and e are Gaussian
    written = json.loads((tmp_path / "compare.json").read_text())
    assert written["methods"]["Rb-VAE"]["mean"] == pytest.approx(methods["Rb-VAE"]["mean"])
    html = (tmp_path / "compare.html").read_text()
    assert "<table" in html and "Mathieu et al." in html and " ± " in html
    checkpoint = tmp_path / "mathieu-seed1" / "checkpoint.pt"
    stamp = checkpoint.stat().st_mtime_ns
    assert compare.run("smoke", tmp_path, ["mathieu"], progress=False)["methods"]["Mathieu et al."]["runs"] == \
        methods["Mathieu et al."]["runs"]
    assert checkpoint.stat().st_mtime_ns == stamp
    # a stored result that is damaged, or a JSON list, is named with the fix, and nothing is written;
    # deleted, it is measured again (the run is not retrained)
    evaluation, table = tmp_path / "results" / "mathieu-seed1.json", (tmp_path / "compare.json").read_text()
    for damaged, why in (("[1, 2]", "not the JSON dislib writes"), ("{not json", "not JSON: "), ("", "empty")):
        evaluation.write_text(damaged)
        with pytest.raises(RunDirectoryError, match=re.escape(f"{evaluation} is damaged ({why}") + ".*delete it to measure"):
            compare.run("smoke", tmp_path, ["mathieu"], progress=False)
        assert evaluation.read_text() == damaged and (tmp_path / "compare.json").read_text() == table
    evaluation.unlink()
    again = compare.run("smoke", tmp_path, ["mathieu"], progress=False)["methods"]["Mathieu et al."]["runs"]
    assert again[1]["seed"] == 1 and again[1]["steps"] == methods["Mathieu et al."]["runs"][1]["steps"]
    assert json.loads(evaluation.read_text())["seed"] == 1
    assert checkpoint.stat().st_mtime_ns == stamp


def test_cells_show_mean_and_spread_in_the_columns_unit():
    assert compare_table.spread_cell("style_code_digit_accuracy", 0.9712, 0.004, 3) == "97.1 ± 0.4%"
    assert compare_table.spread_cell("swap_ratio", 2.5, 0.25, 3) == "2.500 ± 0.250"
    assert compare_table.spread_cell("style_code_kl_nats", 24.44, 1.0, 3) == "24.4 ± 1.0"
    assert compare_table.spread_cell("images_per_second", 1234.5, 56.2, 3) == "1,234 ± 56"
    assert compare_table.spread_cell("steps", 700.0, 0.0, 1) == "700"


def test_swaps_take_the_style_of_one_image_and_the_digit_of_another(fake_styled):
    train = data.load("styled-mnist", "train", label="digit")
    rb, mathieu = (compare.build(m, train).eval() for m in compare.methods_named(["rbvae", "mathieu"]))
    a, b = train.images[:4], train.images[4:8]
    for method, model in zip(compare.methods_named(["rbvae", "mathieu"]), (rb, mathieu)):
        assert compare.swaps(model, method, a, b).shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="one code"):
        compare.swaps(rb, compare.methods_named(["vae"])[0], a, b)


def test_compare_command_prints_the_means_and_refuses_unknown_methods(fake_styled, tmp_path, capsys):
    assert cli.main(["compare", "--budget", "smoke", "--runs", str(tmp_path), "--method", "dipvae1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["means"]) == ["DIP-VAE-I"] and printed["table"].endswith("compare.html")
    with pytest.raises(SystemExit):
        cli.main(["compare", "--method", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_the_command_names_a_damaged_evaluation_and_restart_trains_anew(fake_styled, tmp_path, capsys):
    args = ["compare", "--budget", "smoke", "--runs", str(tmp_path), "--method", "vae"]
    assert cli.main(args) == 0
    capsys.readouterr()
    evaluation, checkpoint = tmp_path / "results" / "vae-seed0.json", tmp_path / "vae-seed0" / "checkpoint.pt"
    evaluation.write_text("{cut sho")
    stamp = checkpoint.stat().st_mtime_ns
    assert cli.main(args) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar's line
    assert err.startswith(f"error: {evaluation} is damaged (not JSON: ")
    assert err.endswith("delete it to measure the run again (its training is kept)")
    assert evaluation.read_text() == "{cut sho" and checkpoint.stat().st_mtime_ns == stamp
    assert cli.main([*args, "--restart"]) == 0  # the flag the messages of the training loop advise
    assert json.loads(evaluation.read_text())["seed"] == 0 and checkpoint.stat().st_mtime_ns != stamp


def test_runs_of_another_budget_are_not_reused_but_refused_with_the_fix(fake_styled, monkeypatch, tmp_path):
    compare.run("smoke", tmp_path, ["vae"], progress=False)
    monkeypatch.setitem(compare.BUDGETS, "smoke", compare.CompareBudget(
        seconds=0.2, seeds=(0,), test_size=80, dci_size=40, train_size=64, jobs=1))
    with pytest.raises(RunDirectoryError, match="another budget .*0.2 s on 64 training images.*another folder.*--restart"):
        compare.run("smoke", tmp_path, ["vae"], progress=False)
    assert compare.run("smoke", tmp_path, ["vae"], progress=False, restart=True)["methods"]["VAE"]["runs"][0]["seed"] == 0
    assert read_run(tmp_path / "vae-seed0")["budget"]["seconds"] == 0.2
    with pytest.raises(ValueError, match="at least 1, got 0"):
        compare.run("smoke", tmp_path, ["vae"], jobs=0, progress=False)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"  # a zombie has ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_end_when_their_parent_is_killed(tmp_path):
    code = ("from dislib import compare; from tests import helpers; "
            f"compare.map_runs(helpers.write_pid_and_sleep, [({str(tmp_path)!r},)] * 2, 2, 1, False, 'runs')")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 120
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.2)
    workers = [int(p.name) for p in tmp_path.iterdir()]
    assert len(workers) == 2, "the pool did not start its two workers"
    os.kill(parent.pid, signal.SIGKILL)  # the pool gets no chance to stop them
    parent.wait()
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "a worker outlived its killed parent"


def test_a_refusal_of_the_training_loop_is_said_in_compares_own_flags(fake_styled, tmp_path):
    (tmp_path / "vae-seed0" / "checkpoint.pt").mkdir(parents=True)  # a checkpoint without its run.json
    with pytest.raises(RunDirectoryError, match=r"has no run.json .*compare keeps each run in a folder of --runs .*--restart"):
        compare.run("smoke", tmp_path, ["vae"], progress=False)


def test_periodic_evaluations_do_not_count_against_a_wall_clock_budget(monkeypatch):
    model, images = VAE.for_dataset(tiny_images()), tiny_images()
    slow = lambda model, data: time.sleep(0.2) or {"probe": 1.0}  # noqa: E731
    monkeypatch.setattr("dislib.evaluate.held_out", slow)
    plan = Budget(steps=10**9, batch_size=16, eval_every=10**9, seconds=0.6)
    history = fit(model, images, images, budget=plan, progress=False, eval_seconds=0.2)
    assert len(history.steps) >= 3 and history.steps == sorted(history.steps)  # every 0.2 s, and at the end
    assert history.eval_seconds >= 0.2 * len(history.steps)
    assert 0.6 <= history.seconds - history.eval_seconds < 0.6 + 0.2
    for bad in (0, -1.0, float("nan"), "5", True):
        with pytest.raises(ValueError, match="eval_seconds must be a number of seconds > 0 or None"):
            fit(model, images, images, budget=plan, progress=False, eval_seconds=bad)


def test_each_result_file_says_whether_its_budget_converged_and_the_table_reads_them_back(fake_styled, tmp_path):
    summary = compare.run("smoke", tmp_path / "runs", ["vae", "rbvae"], progress=False, results=tmp_path / "results")
    stored = json.loads((tmp_path / "results" / "rbvae-seed1.json").read_text())
    assert stored["method"]["key"] == "rbvae" and stored["budget"] == {"seconds": 0.3, "train_size": 64}
    history = stored["history"]
    assert history["steps"] == sorted(history["steps"]) and len(history["s_factor_mae"]) == len(history["steps"]) >= 2
    converged = stored["converged"]
    assert converged["metric"] == "s_factor_mae"  # the style code of a reference-based model is e, the specified one
    assert converged["last_fifth_change"] is None or converged["converged"] == (converged["last_fifth_change"] < 0.02)
    assert json.loads((tmp_path / "results" / "vae-seed0.json").read_text())["converged"]["metric"] == "z_factor_mae"
    read = compare.load_results(tmp_path / "results", "smoke")
    assert read["methods"]["Rb-VAE"]["mean"] == pytest.approx(summary["methods"]["Rb-VAE"]["mean"])
    assert list(read["methods"]) == ["VAE", "Rb-VAE"]
    cells = compare.summary_table(read)["budget"].tolist()
    assert all(c == "converged" or c.startswith("not converged (") for c in cells)
    # the results alone make the table: without the run directories nothing trains again
    for run_dir in (tmp_path / "runs").glob("*-seed*"):
        for f in run_dir.iterdir():
            f.unlink()
        run_dir.rmdir()
    again = compare.run("smoke", tmp_path / "runs", ["rbvae"], progress=False, results=tmp_path / "results")
    assert again["methods"]["Rb-VAE"]["runs"] == summary["methods"]["Rb-VAE"]["runs"]
    assert not (tmp_path / "runs" / "rbvae-seed0").exists()
    with pytest.raises(FileNotFoundError, match="no result of the full budget .*python -m dislib compare --budget full"):
        compare.load_results(tmp_path / "results", "full")


def test_the_budget_cell_names_the_seeds_that_did_not_converge():
    run = lambda change: {"converged": {"last_fifth_change": change}}  # noqa: E731
    assert compare_table.budget_cell([run(0.01), run(0.0)]) == "converged"
    assert compare_table.budget_cell([run(0.01), run(0.041), run(None)]) == "not converged (2 of 3 seeds; up to 4.1%)"
    assert compare_table.budget_cell([run(None)]) == "not converged (1 of 1 seed; too few evaluations)"


def test_the_shared_likelihood_is_the_gaussian_of_the_reconstruction_and_the_same_for_every_model():
    images = pixel_data(60)
    model = Pixels(uses_z=True)
    codes = compare.encode_dataset(model, images)
    rebuilt = compare.decode_codes(model, codes.specified, codes.unspecified)
    expected = torch.distributions.Normal(rebuilt, 0.1).log_prob(images.images).flatten(1).sum(1).mean()
    assert compare.shared_nll(model, images, codes) == pytest.approx(-float(expected), rel=1e-5)
    assert compare.shared_nll(model, images, codes, scale=0.2) != pytest.approx(compare.shared_nll(model, images, codes))


def test_a_result_file_that_lacks_what_the_protocol_writes_is_named(fake_styled, tmp_path):
    compare.run("smoke", tmp_path, ["vae"], progress=False)
    path = tmp_path / "results" / "vae-seed0.json"
    result = json.loads(path.read_text())
    del result["converged"], result["history"]
    path.write_text(json.dumps(result))
    with pytest.raises(RunDirectoryError, match=re.escape(f"{path} is damaged (it lacks converged, history): delete it")):
        compare.run("smoke", tmp_path, ["vae"], progress=False)
    with pytest.raises(RunDirectoryError, match="lacks converged, history"):
        compare.load_results(tmp_path / "results", "smoke")
    path.write_text(json.dumps({**result, "protocol_version": 1}))  # an older protocol's result is measured anew
    assert "converged" in compare.run("smoke", tmp_path, ["vae"], progress=False)["methods"]["VAE"]["runs"][0]
