"""The training loop: determinism, resume, divergence, checkpoints of the wrong model."""

import json

import pytest
import torch

from dislib import settings
from dislib.models import GAN, VAE, Budget
from dislib.models.base import Model
from dislib.train import CHECKPOINT, TrainingDiverged, fit, load_model
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
    fit(straight, data, test, budget=BUDGET, out=tmp_path / "straight", progress=False)
    first = _vae()
    fit(first, data, test, budget=BUDGET, out=tmp_path / "resumed", stop_after=4, progress=False)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    second = _vae(seed=123)  # a fresh process would build the model anew; the checkpoint restores it
    history = fit(second, data, test, budget=BUDGET, out=tmp_path / "resumed", progress=False)
    assert history.steps == [3, 6]
    assert all(torch.equal(x, y) for x, y in zip(_weights(straight), _weights(second)))
    metrics = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert metrics["steps"] == 6 and "test_negative_elbo" in metrics


def test_history_has_losses_and_metrics():
    history = fit(_vae(), tiny_images(), tiny_images(seed=1), budget=BUDGET, progress=False)
    assert history.steps == [3, 6]
    assert {"loss", "reconstruction", "kl", "test_negative_elbo"} <= set(history.last())


def test_diverging_loss_stops_with_a_message():
    model = _vae(lr=1e30)
    with pytest.raises(TrainingDiverged, match="diverged at step"):
        fit(model, tiny_images(), budget=Budget(steps=50, batch_size=16, eval_every=50), progress=False)


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


def test_load_model_from_an_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        load_model(tmp_path)
