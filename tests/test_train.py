"""The training loop: determinism, resume, divergence, checkpoints of the wrong model."""

import json
import math
import re
import warnings

import pytest
import torch

from dislib import data, settings, train
from dislib.models import GAN, VAE, Budget, Mathieu
from dislib.models.base import Model
from dislib.train import CHECKPOINT, History, TrainingDiverged, fit, load_model, train_or_load
from tests.helpers import tiny_images

BUDGET = Budget(steps=6, batch_size=16, eval_every=3, eval_size=32)


def _vae(seed: int = 0, **overrides) -> VAE:
    settings.seed_everything(seed)
    return VAE.for_dataset(tiny_images(), widths=(8, 16, 16), **overrides)


def _weights(model: Model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def test_same_seed_same_weights():
    data = tiny_images()
    a, b = _vae(), _vae()
    fit(a, data, budget=BUDGET, progress=False)
    fit(b, data, budget=BUDGET, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b)))


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    data, test = tiny_images(), tiny_images(seed=1)
    straight = _vae()
    straight_history = fit(straight, data, test, budget=BUDGET, out=tmp_path / "straight", progress=False)
    first = _vae()
    fit(first, data, test, budget=BUDGET, out=tmp_path / "resumed", stop_after=4, progress=False)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    second = _vae(seed=123)  # a fresh process would build the model anew; the checkpoint restores it
    history = fit(second, data, test, budget=BUDGET, out=tmp_path / "resumed", progress=False)
    assert history.steps == [3, 6]
    assert all(torch.equal(x, y) for x, y in zip(_weights(straight), _weights(second)))
    assert history.losses == straight_history.losses  # the interrupted interval's sums were kept
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["steps"] == 6 and "test_negative_elbo" in metrics


def test_history_has_losses_and_metrics():
    history = fit(_vae(), tiny_images(), tiny_images(seed=1), budget=BUDGET, progress=False)
    assert history.steps == [3, 6]
    assert {"loss", "reconstruction", "kl", "test_negative_elbo"} <= set(history.last())


@pytest.mark.filterwarnings("ignore:.*NaN or infinite values:UserWarning")  # decode's own warning, before the stop
def test_diverging_loss_stops_with_a_message():
    model = _vae(lr=1e30)
    with pytest.raises(TrainingDiverged, match=r"NaN/inf between steps 1 and 20: .*another seed"):
        fit(model, tiny_images(), budget=Budget(steps=50, batch_size=16, eval_every=50), progress=False)


def _scripted(model: Model, values: list[float]) -> list[float]:
    """Make ``model.train_step`` return ``values`` in turn as 0-d tensors; returns the list of calls made."""
    calls = []

    def train_step(batch):
        calls.append(values[len(calls)])
        return {"loss": torch.tensor(calls[-1]), "half": calls[-1] / 2}  # a float still works

    model.train_step = train_step
    return calls


def test_losses_reach_the_host_every_sync_interval_and_means_are_exact(monkeypatch):
    syncs = []
    sync = train._IntervalLosses.sync
    monkeypatch.setattr(train._IntervalLosses, "sync", lambda self, step: syncs.append(step) or sync(self, step))
    values = [1 / (k + 3) for k in range(60)]
    model = _vae()
    _scripted(model, values)
    history = fit(model, tiny_images(), budget=Budget(steps=60, batch_size=16, eval_every=30), progress=False)
    assert syncs == [20, 30, 40, 60]  # every SYNC_EVERY steps and before each evaluation
    assert train.SYNC_EVERY == 20
    float32 = [float(torch.tensor(v)) for v in values]
    assert history.losses[0]["loss"] == sum(float32[:30]) / 30 and history.losses[1]["loss"] == sum(float32[30:]) / 30
    assert history.losses[1]["half"] == sum(v / 2 for v in values[30:]) / 30


def test_no_checkpoint_is_written_with_diverged_weights(tmp_path):
    model = _vae()
    _scripted(model, [1.0] * 6 + [math.nan] + [1.0] * 10)
    plan = Budget(steps=16, batch_size=16, eval_every=16)
    with pytest.raises(TrainingDiverged, match=r"between steps 6 and 10: \{'loss': nan"):
        fit(model, tiny_images(), budget=plan, out=tmp_path, checkpoint_every=5, progress=False)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == 5
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / train.LOCK).exists()


def test_history_records_device_and_threads_and_old_checkpoints_load(tmp_path):
    fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path, stop_after=4, progress=False)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert (state["history"]["device"], state["history"]["threads"]) == ("cpu", torch.get_num_threads())
    for key in ("device", "threads"):  # a checkpoint written before these were recorded
        del state["history"][key]
    del state["interval"]
    torch.save(state, tmp_path / CHECKPOINT)
    history = fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path, progress=False)
    assert history.steps == [3, 6] and history.device == "cpu"


def test_named_budgets_come_from_the_setting(monkeypatch):
    monkeypatch.setenv("DISLIB_BUDGET", "smoke")
    assert settings.budget() == "smoke"
    monkeypatch.setenv("DISLIB_BUDGET", "huge")
    with pytest.raises(ValueError, match="DISLIB_BUDGET"):
        settings.budget()
    for cls in (VAE, GAN):
        assert cls.budget("smoke").steps < cls.budget("full").steps


def test_load_model_round_trip(tmp_path):
    model = _vae()
    fit(model, tiny_images(), budget=BUDGET, out=tmp_path, progress=False)
    loaded = load_model(tmp_path)
    x = tiny_images().images[:4]
    assert isinstance(loaded, VAE) and not loaded.training
    model.eval()
    assert torch.allclose(loaded.encode(x).unspecified, model.encode(x).unspecified)


def test_checkpoint_of_another_model_or_configuration_is_refused(tmp_path):
    fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path, progress=False)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    gan = GAN.for_dataset(tiny_images())
    with pytest.raises(ValueError, match="holds a 'vae' model"):
        gan.restore(state)
    other = _vae(latent_dim=3)
    with pytest.raises(ValueError, match="another configuration"):
        other.restore(state)
    with pytest.raises(ValueError, match="another configuration"):
        fit(other, tiny_images(), budget=BUDGET, out=tmp_path, progress=False)
    state["config"]["a_setting_since_removed"] = 5  # a checkpoint of an older dislib: the setting is named
    with pytest.raises(ValueError, match=r"'a_setting_since_removed': \(5, 'absent'\)"):
        _vae().restore(state)


def test_load_model_from_an_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        load_model(tmp_path)


def test_train_or_load_keeps_full_runs_and_loads_them_back(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(VAE, "BUDGETS", {"full": BUDGET, "smoke": BUDGET})
    data, test = tiny_images(), tiny_images(seed=1)
    trained = _vae()
    history = train_or_load(trained, data, test, name="vae", budget="full", seed=2, runs=tmp_path)
    threads = torch.get_num_threads()
    printed = f"vae: trained 6 steps of 16 images in {history.seconds:.0f} s on cpu ({threads} CPU threads)\n"
    assert capsys.readouterr().out == printed
    assert (tmp_path / "vae-seed2" / "metrics.json").exists()
    loaded = _vae(seed=5)
    again = train_or_load(loaded, data, test, name="vae", budget="full", seed=2, runs=tmp_path)
    assert capsys.readouterr().out == (
        f"vae: loaded the finished run from {tmp_path / 'vae-seed2'} "
        f"(trained 6 steps of 16 images in {history.seconds:.0f} s on cpu, {threads} CPU threads)\n"
    )
    assert again == history
    assert all(torch.equal(x, y) for x, y in zip(_weights(trained), _weights(loaded)))


def test_train_or_load_keeps_nothing_for_smoke_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(VAE, "BUDGETS", {"full": BUDGET, "smoke": BUDGET})
    monkeypatch.setenv("DISLIB_BUDGET", "smoke")
    train_or_load(_vae(), tiny_images(), name="vae", runs=tmp_path)
    assert "vae: trained 6 steps" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())


def test_train_or_load_adds_extra_steps_to_the_named_budget(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(VAE, "BUDGETS", {"full": BUDGET, "smoke": BUDGET})
    model = _vae()
    train_or_load(model, tiny_images(), name="vae", budget="full", extra_steps=3, runs=tmp_path)
    assert int(model.steps_done) == 9 and "trained 9 steps of 16 images" in capsys.readouterr().out
    assert (tmp_path / "vae-seed0" / "metrics.json").exists()
    with pytest.raises(ValueError, match="extra_steps must be >= 0"):
        train_or_load(model, tiny_images(), name="vae", budget="full", extra_steps=-1, runs=tmp_path)


def test_device_setting_explains_a_missing_gpu_or_an_unknown_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("DISLIB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="DISLIB_DEVICE asks for 'cuda' but torch sees no CUDA GPU here: set DISLIB_DEVICE"):
        settings.device()
    with pytest.raises(ValueError, match="device argument names an unknown device 'gpu'.*--device auto"):
        settings.device("gpu")
    monkeypatch.setenv("DISLIB_DEVICE", "cpu")
    assert settings.device() == torch.device("cpu")


def test_last_fifth_change_reads_the_evaluation_before_four_fifths():
    history = History(steps=[500, 1000, 1500, 2000, 2500], losses=[{"loss": v} for v in (9.0, 5.0, 4.0, 2.0, 1.0)],
                      metrics=[{"mae": v} for v in (0.5, 0.2, 0.11, 0.105, 0.1)])
    assert history.last_fifth_change("mae") == pytest.approx(0.05)  # 2000 is at 0.8 T: 0.105 -> 0.1
    assert history.last_fifth_change("loss") == pytest.approx(1.0)
    with pytest.raises(KeyError, match="no 'nll' at its last evaluation; it records: loss, mae"):
        history.last_fifth_change("nll")
    with pytest.raises(ValueError, match="evaluate more often"):
        History(steps=[100], losses=[{"loss": 1.0}], metrics=[{}]).last_fifth_change("loss")


def _snapshot(folder) -> dict[str, tuple[bytes, int]]:
    """Each file of ``folder``: its bytes and modification time."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("model, train_data, test_data, message", [
    ("vae", "tiny", None, "fit trains a model of dislib.models, got str: build one for the data, "
                          "e.g. dislib.models.VAE.for_dataset(train_data)"),
    (None, None, None, "fit's train_data must be a dataset of dislib.data, got NoneType: "
                       "load it with dislib.data.load(name, 'train')"),
    (None, "images", None, "fit's train_data must be a dataset of dislib.data, got Tensor"),
    (None, "tiny", "images", "fit's test_data must be a dataset of dislib.data or None, got Tensor: "
                             "load it with dislib.data.load(name, 'test')"),
    (None, "tiny", "mnist", "fit's test_data must be a dataset of dislib.data or None, got str"),
])
def test_a_model_or_data_of_the_wrong_type_is_refused_before_anything_is_written(tmp_path, model, train_data,
                                                                                 test_data, message):
    given = {"tiny": tiny_images(), "images": tiny_images().images, "mnist": "mnist", None: None}
    with pytest.raises(TypeError, match=f"^{re.escape(message)}"):
        fit(model or _vae(), given[train_data], given[test_data], budget=BUDGET, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_data_a_model_cannot_read_is_refused_before_anything_is_written(tmp_path):
    moons, out = data.load("three-moons", "train"), tmp_path / "run"
    reads_images = "^vae reads images, but dataset 'three-moons' holds PointDataset: give vae an image dataset, or 'three-moons' a model made for its kind of data$"
    with pytest.raises(TypeError, match=reads_images):
        fit(_vae(), moons, budget=BUDGET, out=out, progress=False)
    assert not out.exists()
    fit(_vae(), tiny_images(), budget=BUDGET, out=out, progress=False)  # a finished run, left exactly as it is
    before = _snapshot(out)
    for resume in (True, False):
        with pytest.raises(TypeError, match=reads_images):
            fit(_vae(), moons, budget=BUDGET, out=out, resume=resume, progress=False)
        assert _snapshot(out) == before
    with pytest.raises(ValueError, match=re.escape("vae expects images of shape [N, 1, 28, 28], got (1, 3, 32, 32)")):
        fit(_vae(), tiny_images(), tiny_images(channels=3, size=32), budget=BUDGET, out=out, resume=False, progress=False)
    mathieu = Mathieu.for_dataset(tiny_images())  # the checks of a model's own batches come first too
    with pytest.raises(ValueError, match="the data has 2 classes but the adversary's label tables have 10"):
        fit(mathieu, tiny_images(classes=2), budget=BUDGET, out=out, resume=False, progress=False)
    assert _snapshot(out) == before


def test_loading_an_unfinished_run_warns_where_it_stopped_and_how_to_finish(tmp_path):
    fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path, stop_after=4, progress=False)
    message = (f"{tmp_path} holds an unfinished run: it stopped at step 4 of 6, so its model is not fully trained; "
               f"train again with the same --out {tmp_path} (out=) to finish it, it resumes there")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$"):
        load_model(tmp_path)
    fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(tmp_path)


@pytest.mark.parametrize("count, message", [
    (dict(seed="a"), "fit's seed must be a whole number >= 0, got 'a'"),
    (dict(seed=-1), "fit's seed must be a whole number >= 0, got -1"),
    (dict(stop_after=0), "fit's stop_after must be a whole number >= 1 or None, got 0"),  # 0 trained the whole budget
    (dict(checkpoint_every=-2), "fit's checkpoint_every must be a whole number >= 1 or None, got -2"),
])
def test_counts_fit_cannot_use_are_refused_before_anything_is_written(tmp_path, count, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path / "run", progress=False, **count)
    assert not (tmp_path / "run").exists()


def test_load_model_of_a_file_says_it_needs_the_run_directory(tmp_path):
    fit(_vae(), tiny_images(), budget=BUDGET, out=tmp_path, progress=False)
    with pytest.raises(train.RunDirectoryError, match=f"^{re.escape(str(tmp_path / CHECKPOINT))} is a file, not a run "
                                                      "directory: pass the folder that `python -m dislib train"):
        load_model(tmp_path / CHECKPOINT)
