"""Trade-off sweeps (dislib.sweep), their command and their figures, on tiny fake digits."""

import json
import shutil

import pytest
import torch

from dislib import __main__ as cli
from dislib import compare, data, sweep, viz
from dislib.data.base import ImageDataset
from dislib.models import Zheng
from dislib.train import RunDirectoryError
from tests.test_compare import fake_styled  # noqa: F401 (a fixture)

TINY = sweep.SweepBudget("smoke", seeds=(0, 1), probe_size=60, jobs=1)
SMALL = dict(widths=(4, 4, 8, 8), hidden_width=8, discriminator_widths=(4, 8, 8), discriminator_hidden=8,
             adversary_hidden=8, specified_dim=3)
TOY = sweep.Sweep("zheng", "mnist", (
    sweep.Point("paper", "paper", {**SMALL, "unspecified_dim": 5}, faithful=True),
    sweep.Point("strong C_z", "strong", {**SMALL, **sweep.STRONG_ADVERSARY, "code_adversary_memory": 64, "unspecified_dim": 4}),
))


@pytest.fixture
def fake_mnist(monkeypatch):
    """``mnist`` replaced by 80 noisy 1x28x28 images of four classes, the class drawn as a bright row."""

    def load(split, root):
        g = torch.Generator().manual_seed(int(split == "test"))
        labels = torch.arange(80) % 4
        images = torch.rand(80, 1, 28, 28, generator=g) * 0.3
        images[torch.arange(80), 0, 4 + 5 * labels] = 1.0
        return ImageDataset(images, labels, 4, "mnist")

    monkeypatch.setitem(data._LOADERS, "mnist", load)
    monkeypatch.setitem(sweep.BUDGETS, "smoke", TINY)
    monkeypatch.setitem(sweep.SWEEPS, "toy", TOY)
    monkeypatch.setattr(Zheng, "BUDGETS", {**Zheng.BUDGETS, "smoke": Zheng.BUDGETS["smoke"].__class__(
        steps=4, batch_size=16, eval_every=2, eval_size=40)})


def test_a_sweep_trains_every_point_and_seed_measures_each_and_reuses_finished_runs(fake_mnist, tmp_path):
    summary = sweep.run("toy", "smoke", tmp_path, progress=False)
    assert list(summary["points"]) == ["paper", "strong C_z"] and summary["budget"] == "smoke"
    point = summary["points"]["strong C_z"]
    assert [r["seed"] for r in point["runs"]] == [0, 1] and point["faithful"] is False
    for key in ("s_mlp_mean", "z_mlp_mean", "z_linear_mean", "z_mlp_sample", "z_linear_sample", "z_kl_nats", "swap_ratio"):
        assert key in point["mean"] and key in point["std"]
    assert point["empty"] == (point["mean"]["swap_ratio"] < sweep.EMPTY_SWAP)
    lag = point["runs"][0]["history"]
    assert lag["steps"] == [2, 4] and "test_code_adversary_accuracy" in lag["metrics"][0]
    stored = json.loads((tmp_path / "sweep.json").read_text())
    assert stored["points"]["paper"]["mean"] == summary["points"]["paper"]["mean"]
    before = (tmp_path / "strong-seed0" / "evaluation.json").stat().st_mtime_ns
    assert sweep.run("toy", "smoke", tmp_path, points=["strong"], progress=False)["points"]["strong C_z"]["runs"] == point["runs"]
    assert (tmp_path / "strong-seed0" / "evaluation.json").stat().st_mtime_ns == before  # reused, not redone
    shown = sweep.summary_table(summary)
    assert list(shown.index) == ["paper", "strong C_z"] and shown.loc["paper", "settings"] == "the paper's"
    assert shown.loc["strong C_z", "z: MLP accuracy, means"].endswith("%") and "±" in shown.loc["strong C_z", "swap ratio"]


def test_the_figures_read_a_sweep_and_a_run_history(fake_mnist, tmp_path):
    summary = sweep.run("toy", "smoke", tmp_path, progress=False)
    figure = viz.plot_tradeoff(summary)
    assert len(figure.axes) == 2 and "swap ratio" in figure.axes[0].get_xlabel()
    run = summary["points"]["paper"]["runs"][0]
    lag = viz.plot_adversary_lag(run["history"], final=run)
    labels = [line.get_label() for line in lag.axes[0].lines]
    assert labels[:2] == ["the adversary C_z (in training)", "quick probe, means of z"]
    assert labels[-2:] == ["full probe, means of z", "full probe, samples of z"]
    with pytest.raises(ValueError, match="no test_code_adversary_accuracy"):
        viz.plot_adversary_lag({"steps": [1], "metrics": [{"z_accuracy": 0.5}]})
    with pytest.raises(ValueError, match="no points"):
        viz.plot_tradeoff({"points": {}})
    curves = viz.plot_sweep_curves(summary, "z_accuracy", ylabel="digit from z (quick)")
    assert [ax.get_title() for ax in curves.axes] == ["paper", "strong C_z"]
    assert [line.get_label() for line in curves.axes[1].lines] == ["seed 0", "seed 1"]
    assert list(curves.axes[0].lines[0].get_xdata()) == run["history"]["steps"]
    with pytest.raises(ValueError, match="no point .'nope'. in this sweep; its points are paper, strong C_z"):
        viz.plot_sweep_curves(summary, "z_accuracy", points=["nope"])
    with pytest.raises(KeyError, match="recorded no 's_factor_mae'; they recorded .*z_accuracy"):
        viz.plot_sweep_curves(summary, "s_factor_mae")


def test_a_damaged_measurement_is_named_and_a_run_of_another_budget_refused_with_the_fix(fake_mnist, monkeypatch, tmp_path):
    first = sweep.run("toy", "smoke", tmp_path, points=["paper"], progress=False)["points"]["paper"]["runs"]
    evaluation = tmp_path / "paper-seed0" / "evaluation.json"
    for damage in ("{not json", "[1, 2]"):
        evaluation.write_text(damage)
        with pytest.raises(RunDirectoryError, match="evaluation.json is damaged .*delete it to measure the run again"):
            sweep.run("toy", "smoke", tmp_path, points=["paper"], progress=False)
        assert evaluation.read_text() == damage
    evaluation.unlink()
    again = sweep.run("toy", "smoke", tmp_path, points=["paper"], progress=False)["points"]["paper"]["runs"]
    assert again[0]["z_mlp_mean"] == first[0]["z_mlp_mean"]  # measured again, the same (seeded)
    monkeypatch.setitem(sweep.BUDGETS, "full", sweep.SweepBudget("full", seeds=(0,), probe_size=60, jobs=1))
    (tmp_path / "paper-seed0" / "evaluation.json").unlink()
    with pytest.raises(RunDirectoryError, match="give --runs another folder.*or replace it with --restart"):
        sweep.run("toy", "full", tmp_path, points=["paper"], progress=False)
    evaluation.write_text("{not json")
    replaced = sweep.run("toy", "full", tmp_path, points=["paper"], progress=False, restart=True)  # the flag it advises
    assert replaced["points"]["paper"]["runs"][0]["probe_size"] == 60 and json.loads(evaluation.read_text())["seed"] == 0


def test_bad_names_are_refused_with_the_known_ones(fake_mnist, tmp_path):
    with pytest.raises(ValueError, match="the sweeps are"):
        sweep.run("nothing", "smoke", tmp_path)
    with pytest.raises(ValueError, match="its points are paper, strong"):
        sweep.run("toy", "smoke", tmp_path, points=["huge"])
    with pytest.raises(ValueError, match="at least 1"):
        compare.map_runs(len, [("a",)], 0, 1, False, "x")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        sweep.run("toy", "smoke", tmp_path / "a-file")


def test_the_command_prints_each_points_means(fake_mnist, tmp_path, capsys):
    assert cli.main(["sweep", "toy", "--budget", "smoke", "--runs", str(tmp_path), "--point", "paper"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["means"]) == {"paper"} and "z_mlp_mean" in printed["means"]["paper"]
    stamp = (tmp_path / "paper-seed0" / "checkpoint.pt").stat().st_mtime_ns
    assert cli.main(["sweep", "toy", "--budget", "smoke", "--runs", str(tmp_path), "--point", "paper", "--restart"]) == 0
    assert (tmp_path / "paper-seed0" / "checkpoint.pt").stat().st_mtime_ns != stamp  # trained anew
    assert cli.main(["sweep", "toy", "--budget", "smoke", "--runs", str(tmp_path), "--point", "huge"]) == 2
    capsys.readouterr()
    assert cli.main(["sweep", "toy", "--budget", "smoke", "--runs", str(tmp_path), "--point", "paper", "strong"]) == 0
    assert set(json.loads(capsys.readouterr().out)["means"]) == {"paper", "strong C_z"}  # several keys after one flag


RUIZ_SMALL = dict(widths=(4, 8), specified_dim=3, unspecified_dim=4)
RUIZ_TOY = sweep.Sweep("rbvae", "styled-mnist", (
    sweep.Point("Rb-VAE", "rbvae", RUIZ_SMALL, faithful=True),
    sweep.Point("Rb-VAE + both regressors", "both", {**RUIZ_SMALL, **sweep.BOTH_REGRESSORS, "extension_start": 1}),
), measure="split", mode="fast")


def test_a_split_sweep_measures_table_1s_split_and_what_z_still_carries(fake_styled, monkeypatch, tmp_path):
    monkeypatch.setitem(sweep.BUDGETS, "smoke", TINY)
    monkeypatch.setitem(sweep.SWEEPS, "ruiz-toy", RUIZ_TOY)
    summary = sweep.run("ruiz-toy", "smoke", tmp_path, progress=False)
    assert summary["measure"] == "split" and summary["mode"] == "fast"
    point = summary["points"]["Rb-VAE + both regressors"]
    for key in ("e_mae", "z_ratio", "z_scale_ratio", "z_mlp_ratio", "z_kl_nats", "z_digit_mlp", "e_digit_mlp",
                "swap_ratio", "reference_stroke_drawn", "chance_mae"):
        assert key in point["mean"]
    run = point["runs"][0]
    assert run["z_ratio"] == pytest.approx(run["z_mae"] / run["chance_mae"])
    assert 0.0 <= run["z_digit_mlp"] <= 1.0 and 0.0 <= run["reference_stroke_drawn"] <= 1.0
    assert "target_regressor" in run["history"]["metrics"][-1] or "gradient_share_target_adversarial" in run["history"]["metrics"][-1]
    shown = sweep.summary_table(summary)
    assert list(shown.index) == ["Rb-VAE", "Rb-VAE + both regressors"]
    assert shown.loc["Rb-VAE", "z: digit accuracy (MLP)"].endswith("%") and "±" in shown.loc["Rb-VAE", "z / chance"]
    assert "z: MLP accuracy, means" not in shown.columns  # the leak columns belong to leak sweeps
    figure = viz.plot_split_sweep(summary, paper={"Rb-VAE": (0.98, 0.070)})
    assert len(figure.axes) == 2 and "Rb-VAE (paper)" in [t.get_text() for t in figure.legends[0].get_texts()]
    monkeypatch.setattr(sweep, "fit", lambda *args, **kwargs: pytest.fail("a measured run is reused, not trained"))
    assert sweep.run("ruiz-toy", "smoke", tmp_path, progress=False) == summary  # every run's measurement read back
    stored = tmp_path / "rbvae-seed0" / "evaluation.json"
    stored.write_text(json.dumps({k: v for k, v in json.loads(stored.read_text()).items() if k != "z_ratio"}))
    with pytest.raises(RunDirectoryError, match="rbvae-seed0/evaluation.json is damaged \\(it lacks z_ratio\\)"):
        sweep.run("ruiz-toy", "smoke", tmp_path, progress=False)
    leak = {"points": {"p": {"mean": {"swap_ratio": 2.0}, "std": {}, "faithful": True, "empty": False}}}
    with pytest.raises(KeyError, match="measure='split'"):
        viz.plot_split_sweep(leak)


def test_the_ruiz_sweep_names_the_papers_models_and_the_extensions():
    ruiz = sweep.SWEEPS["ruiz-styled-mnist"]
    assert ruiz.measure == "split" and set(sweep.MEASURES) == {"leak", "split", "latents"}
    faithful = {p.model or ruiz.model for p in ruiz.points if p.faithful}
    assert faithful == {"rbvae", "srbvae"} and all(not p.settings for p in ruiz.points if p.faithful)
    from dislib.models import MODELS

    for point in (p for p in ruiz.points if not p.faithful):  # each extension moves a setting off the paper's
        preset = MODELS[point.model or ruiz.model].PRESETS["styled-mnist"]
        assert point.settings and any(getattr(preset, k) != v for k, v in point.settings.items()), point.name
    assert {p.settings.get("unspecified_dim", 32) for p in ruiz.points} == {32, 16, 8, 6, 4}


BASELINE_TOY = sweep.Sweep("dipvae1", "styled-mnist", (
    sweep.Point("DIP-VAE-I", "dipvae1", {"widths": (4, 8), "latent_dim": 3}, faithful=True),
    sweep.Point("DIP-VAE-I, twice the steps", "dipvae1-x2", {"widths": (4, 8), "latent_dim": 3}, faithful=True, step_multiple=2),
), measure="latents", mode="fast")


def test_a_pages_transfers_measure_every_run_of_its_points_or_read_the_committed_ones(fake_styled, monkeypatch, tmp_path):
    from dislib import transfer
    from dislib.train import write_json

    monkeypatch.setitem(sweep.BUDGETS, "smoke", TINY)
    monkeypatch.setitem(sweep.SWEEPS, "ruiz-toy", RUIZ_TOY)
    summary = sweep.page_summary("ruiz-toy", "smoke", tmp_path / "sweep.json", tmp_path / "runs", ["rbvae"])
    committed = tmp_path / "transfer.json"
    measured = transfer.page_transfers(summary, "smoke", committed, tmp_path / "runs", ["Rb-VAE", "Rb-VAE + both regressors"])
    assert list(measured["points"]) == ["Rb-VAE"] and measured["pairs"] == 50  # the points the smoke sweep trained
    point = measured["points"]["Rb-VAE"]
    assert [r["seed"] for r in point["runs"]] == [0, 1] and not committed.exists()
    for key in transfer.TRANSFER_COLUMNS:
        assert 0.0 <= point["mean"][key] <= 1.0 and key in point["std"]
    shown = transfer.transfer_table(measured)
    assert list(shown.index) == ["Rb-VAE"] and list(shown.columns) == list(transfer.TRANSFER_COLUMNS.values())
    assert all(cell.endswith("%") and "±" in cell for cell in shown.loc["Rb-VAE"])
    write_json(committed, measured)
    monkeypatch.setattr(transfer, "transfer_scores", lambda *args: pytest.fail("a committed measurement is read"))
    assert transfer.page_transfers(summary, "full", committed, tmp_path / "runs", ["Rb-VAE"]) == json.loads(
        json.dumps(measured))
    with pytest.raises(FileNotFoundError, match="no finished run in .*rbvae-seed0: train it with python -m dislib sweep "
                                                "ruiz-toy --budget smoke --runs .* --point rbvae"):
        transfer.sweep_transfers(summary, tmp_path / "elsewhere", ["Rb-VAE"], pairs=10, classifier_steps=2)
    with pytest.raises(ValueError, match="no point \\['Rb'\\] in the sweep 'ruiz-toy'"):
        transfer.sweep_transfers(summary, summary["runs"], ["Rb"], pairs=10, classifier_steps=2)
    with pytest.raises(ValueError, match="under the 'smoke' budget page_transfers measures the runs of a smoke sweep"):
        transfer.page_transfers({k: v for k, v in summary.items() if k != "runs"}, "smoke", committed, tmp_path, ["Rb-VAE"])
    with pytest.raises(ValueError, match="pairs and classifier_steps must be at least 1, got 0 and 2"):
        transfer.sweep_transfers(summary, summary["runs"], ["Rb-VAE"], pairs=0, classifier_steps=2)
    with pytest.raises(ValueError, match="60 pairs need 120 test images, styled-mnist has 100: ask for fewer pairs"):
        transfer.sweep_transfers(summary, summary["runs"], ["Rb-VAE"], pairs=60, classifier_steps=2)


def test_a_baseline_sweep_reads_the_style_from_all_latents_as_table_1_does(fake_styled, monkeypatch, tmp_path):
    from dislib import evaluate
    from dislib.data.styled import regression_sets
    from dislib.split import style_from_latents
    from dislib.train import load_model

    monkeypatch.setitem(sweep.BUDGETS, "smoke", TINY)
    monkeypatch.setitem(sweep.SWEEPS, "baseline-toy", BASELINE_TOY)
    summary = sweep.run("baseline-toy", "smoke", tmp_path, progress=False)
    run = summary["points"]["DIP-VAE-I"]["runs"][1]
    fit_set, score_set = regression_sets(data.load("styled-mnist", "test"), TINY.probe_size // 2)
    by_hand = evaluate.regress_codes(load_model(tmp_path / "dipvae1-seed1"), fit_set, score_set, in_ranges=True)["z"]
    assert run["latents_mae"] == pytest.approx(by_hand["mean"]) and run["latents_scale"] == pytest.approx(by_hand["scale"])
    assert run["latents_kl_nats"] > 0 and run["chance_mae"] > 0
    assert summary["points"]["DIP-VAE-I, twice the steps"]["runs"][0]["steps"] == 2 * run["steps"]
    shown = sweep.summary_table(summary)
    assert "±" in shown.loc["DIP-VAE-I", "all latents: style MAE"] and "z empty" not in shown.columns
    train = data.load("styled-mnist", "train")
    with pytest.raises(ValueError, match="rbvae has two \\(e and z\\): measure it with style_split"):
        style_from_latents(sweep.MODELS["rbvae"].for_dataset(train, **RUIZ_SMALL), fit_set, score_set)
    with pytest.raises(TypeError, match="score must be images with real-valued factors"):
        style_from_latents(sweep.MODELS["dipvae1"].for_dataset(train, widths=(4, 8), latent_dim=3), fit_set, score_set.images)


def test_style_split_refuses_what_it_cannot_measure_with_the_fix(fake_styled):
    from dislib.data.styled import regression_sets
    from dislib.models import MODELS
    from dislib.split import regress_mlp, style_split

    train, digits = data.load("styled-mnist", "train"), data.load("styled-mnist", "test", label="digit")
    fit_set, score_set = regression_sets(digits, 40)
    model = MODELS["rbvae"].for_dataset(train, **RUIZ_SMALL)
    reference = train.images[train.labels == 1][:8]
    probe_train = data.load("styled-mnist", "train", label="digit")
    with pytest.raises(ValueError, match="fit has 2 classes: load the images with their digits"):
        style_split(model, *regression_sets(data.load("styled-mnist", "test"), 40), reference, probe_train)
    with pytest.raises(ValueError, match="probe_train has 2 classes"):
        style_split(model, fit_set, score_set, reference, train)
    with pytest.raises(ValueError, match="ruizvae has no reference branch"):
        style_split(MODELS["ruizvae"].for_dataset(train, widths=(4, 8), latent_dim=3), fit_set, score_set, reference,
                    probe_train)
    with pytest.raises(TypeError, match="is a Tensor, not images with factors and digits"):
        style_split(model, fit_set.images, score_set, reference, probe_train)
    with pytest.raises(ValueError, match="at least 20 training rows"):
        regress_mlp(torch.zeros(10, 2), torch.zeros(10, 1), torch.zeros(5, 2), torch.zeros(5, 1))
    measured = style_split(model.eval(), fit_set, score_set, reference, probe_train)
    assert measured["chance_mae"] > 0 and measured["z_ratio"] == pytest.approx(measured["z_mae"] / measured["chance_mae"])


def test_a_sweep_of_some_points_keeps_the_other_points_of_the_summary_it_finds(fake_mnist, monkeypatch, tmp_path):
    summary = sweep.run("toy", "smoke", tmp_path, progress=False)
    stored = json.loads((tmp_path / "sweep.json").read_text())
    for seed in (0, 1):  # the runs of "paper" are gone; its summary stays
        shutil.rmtree(tmp_path / f"paper-seed{seed}")
    again = sweep.run("toy", "smoke", tmp_path, points=["strong"], progress=False)
    assert list(again["points"]) == ["paper", "strong C_z"]  # the sweep's order
    assert again["points"]["paper"] == stored["points"]["paper"] and not (tmp_path / "paper-seed0").exists()
    changed = sweep.Sweep("zheng", "mnist", (sweep.Point("paper", "paper", {**SMALL, "unspecified_dim": 6}, faithful=True),
                                             TOY.points[1]))
    monkeypatch.setitem(sweep.SWEEPS, "toy", changed)  # a point whose settings changed is not kept
    assert list(sweep.run("toy", "smoke", tmp_path, points=["strong"], progress=False)["points"]) == ["strong C_z"]
    monkeypatch.setitem(sweep.SWEEPS, "toy", TOY)
    (tmp_path / "sweep.json").write_text(json.dumps(summary))
    monkeypatch.setitem(sweep.BUDGETS, "smoke", sweep.SweepBudget("smoke", seeds=(0,), probe_size=60, jobs=1))
    assert list(sweep.run("toy", "smoke", tmp_path, points=["strong"], progress=False)["points"]) == ["strong C_z"]  # another protocol
    (tmp_path / "sweep.json").write_text("{not json")
    shutil.rmtree(tmp_path / "strong-seed0")
    with pytest.raises(RunDirectoryError, match="sweep.json is damaged .*move it out of --runs"):
        sweep.run("toy", "smoke", tmp_path, points=["strong"], progress=False)
    assert not (tmp_path / "strong-seed0").exists()  # said before any training
    assert list(sweep.run("toy", "smoke", tmp_path, progress=False)["points"]) == ["paper", "strong C_z"]  # all: rewritten


def test_a_point_with_a_step_multiple_trains_that_many_times_the_budgets_steps(fake_mnist, monkeypatch, tmp_path):
    longer = sweep.Point("strong C_z, twice the steps", "strong-x2", TOY.points[1].settings, step_multiple=2)
    monkeypatch.setitem(sweep.SWEEPS, "toy", sweep.Sweep("zheng", "mnist", (*TOY.points, longer)))
    summary = sweep.run("toy", "smoke", tmp_path, points=["strong", "strong-x2"], progress=False)
    once, twice = (summary["points"][name] for name in ("strong C_z", "strong C_z, twice the steps"))
    assert [r["steps"] for r in once["runs"]] == [4, 4] and [r["steps"] for r in twice["runs"]] == [8, 8]
    assert twice["runs"][0]["history"]["steps"] == [2, 4, 6, 8] and (once["step_multiple"], twice["step_multiple"]) == (1, 2)
    assert json.loads((tmp_path / "strong-x2-seed0" / "run.json").read_text())["budget"]["steps"] == 8
    assert sweep.run("toy", "smoke", tmp_path, points=["strong-x2"], progress=False)["points"]["strong C_z, twice the steps"][
        "runs"] == twice["runs"]  # reused: the run folder holds the longer budget
    thrice = sweep.Point("strong C_z, twice the steps", "strong-x2", TOY.points[1].settings, step_multiple=3)
    monkeypatch.setitem(sweep.SWEEPS, "toy", sweep.Sweep("zheng", "mnist", (*TOY.points, thrice)))
    kept = sweep.kept_points(tmp_path / "sweep.json", summary, sweep.SWEEPS["toy"])
    assert "strong C_z, twice the steps" not in kept and "strong C_z" in kept  # a point trained for other steps is not kept
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="step_multiple is how many times the budget's steps"):
            sweep.Point("p", "p", step_multiple=bad)


def test_a_pages_sweep_reads_the_committed_summary_or_trains_smoke_points_elsewhere(fake_mnist, monkeypatch, tmp_path):
    monkeypatch.setitem(sweep.BUDGETS, "full", sweep.SweepBudget("smoke", seeds=(0,), probe_size=60, jobs=1))  # tiny runs
    committed, runs = tmp_path / "results" / "sweep-toy.json", tmp_path / "runs"
    built = json.loads(json.dumps(sweep.page_summary("toy", "full", committed, runs, ["paper"])))  # no summary yet: it runs
    assert set(built["points"]) == {"paper", "strong C_z"} and json.loads(committed.read_text()) == built
    trains = sweep.fit
    monkeypatch.setattr(sweep, "fit", lambda *args, **kwargs: pytest.fail("a committed summary is read, not trained"))
    assert sweep.page_summary("toy", "full", committed, runs, ["paper"]) == built
    monkeypatch.setattr(sweep, "fit", trains)
    smoke = sweep.page_summary("toy", "smoke", committed, runs, ["paper"])
    assert list(smoke["points"]) == ["paper"] and sorted(p.name for p in runs.iterdir()) == ["paper-seed0", "strong-seed0", "sweep.json"]
    committed.write_text("{damaged")
    with pytest.raises(RunDirectoryError, match="sweep-toy.json is damaged .*restore it from the repository"):
        sweep.page_summary("toy", "full", committed, runs, ["paper"])
