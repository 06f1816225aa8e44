"""The fast path (bfloat16 forward passes, channels-last) against the float32 path."""

import json

import pytest
import torch

from dislib import data, losses, precision, settings
from dislib.models import MODELS
from dislib.models.base import Budget
from dislib.train import RUN, RunDirectoryError, fit
from tests.helpers import tiny_images

SHORT_RUN = Budget(steps=10, batch_size=64, eval_every=10)
HELD_OUT = 300


def _data(preset: str | None) -> tuple:
    name = "styled-mnist" if preset == "styled-mnist" else "mnist"
    return data.load(name, "train").subset(slice(0, 2_000)), data.load(name, "test").subset(slice(0, HELD_OUT))


def _held_out_metric(model_name: str, mode: str) -> tuple[str, float]:
    """The first metric of the model's own held-out evaluation after a short run in ``mode``."""
    cls = MODELS[model_name]
    preset = next((p for p in ("mnist", "styled-mnist") if p in cls.PRESETS), None)
    train, test = _data(preset)
    settings.seed_everything(0)
    model = cls.for_dataset(train, preset)
    fit(model, train, None, budget=SHORT_RUN, seed=0, progress=False, mode=mode)
    model.eval()
    with torch.no_grad():
        settings.seed_everything(1)
        key, value = next(iter(model.evaluate(test).items()))
    return key, value


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_the_fast_path_ends_a_short_run_within_two_percent_of_float32(model_name):
    key, eager = _held_out_metric(model_name, "eager")
    _, fast = _held_out_metric(model_name, "fast")
    assert abs(fast - eager) <= 0.02 * abs(eager), f"{model_name} {key}: fast {fast:.4f}, float32 {eager:.4f}"


def test_losses_compute_in_float32_inside_bf16_autocast():
    mean, target = torch.rand(4, 1, 8, 8).bfloat16(), torch.rand(4, 1, 8, 8)
    mu, logvar = torch.randn(4, 3).bfloat16(), torch.randn(4, 3).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll = losses.image_nll(mean, target, "gaussian", 0.05)
        kl = losses.kl_normal_standard(mu, logvar)
        mmd = losses.class_mmd(torch.randn(8, 3).bfloat16(), torch.arange(8) % 2)
    assert nll.dtype == kl.dtype == mmd.dtype == torch.float32
    expected = losses.image_nll(mean.float(), target, "gaussian", 0.05)
    assert torch.equal(nll, expected)


def test_a_loss_keeps_float64_inputs():
    assert losses.kl_normal_standard(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)).dtype == torch.float64


def test_prepare_sets_the_mode_and_back():
    model = MODELS["vae"].for_dataset(tiny_images(), latent_dim=2)
    cpu = torch.device("cpu")
    precision.prepare(model, cpu, "fast")
    conv = next(p for p in model.parameters() if p.ndim == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert model.autocast_dtype == (torch.bfloat16 if precision.bf16_capable(cpu) else None)
    precision.prepare(model, cpu, "eager")
    assert conv.is_contiguous() and model.autocast_dtype is None
    with pytest.raises(ValueError, match="mode is one of eager, fast"):
        precision.prepare(model, cpu, "bf16")


def test_fit_records_the_mode_and_resumes_in_it(tmp_path):
    images = tiny_images()
    budget = Budget(steps=4, batch_size=8, eval_every=2)
    out = tmp_path / "run"
    fit(MODELS["vae"].for_dataset(images, latent_dim=2), images, budget=budget, out=out, progress=False, stop_after=2)
    assert json.loads((out / RUN).read_text())["mode"] == "fast"
    with pytest.raises(RunDirectoryError, match="mode 'fast' \\(asked for: 'eager'\\)"):
        fit(MODELS["vae"].for_dataset(images, latent_dim=2), images, budget=budget, out=out, progress=False, mode="eager")
    fit(MODELS["vae"].for_dataset(images, latent_dim=2), images, budget=budget, out=out, progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4
    assert metrics["forward_dtype"] == ("bfloat16" if precision.bf16_capable(torch.device("cpu")) else "float32")
    eager = tmp_path / "eager"
    fit(MODELS["vae"].for_dataset(images, latent_dim=2), images, budget=budget, out=eager, progress=False, mode="eager")
    assert json.loads((eager / "metrics.json").read_text())["forward_dtype"] == "float32"  # on the CPU, whatever it has


def test_a_run_from_before_the_fast_path_resumes_in_float32(tmp_path):
    images = tiny_images()
    budget = Budget(steps=4, batch_size=8, eval_every=2)
    out = tmp_path / "run"
    fit(MODELS["vae"].for_dataset(images, latent_dim=2), images, budget=budget, out=out, progress=False, stop_after=2,
        mode="eager")
    run = json.loads((out / RUN).read_text())
    del run["mode"]  # as run.json was written before modes existed
    (out / RUN).write_text(json.dumps(run))
    model = MODELS["vae"].for_dataset(images, latent_dim=2)
    fit(model, images, budget=budget, out=out, progress=False)
    assert json.loads((out / RUN).read_text())["mode"] == "eager" and model.autocast_dtype is None


def test_a_wrong_mode_is_refused_before_anything_is_written(tmp_path):
    images = tiny_images()
    with pytest.raises(ValueError, match="mode is one of eager, fast \\(--mode / mode=\\), got 'bfloat16'"):
        fit(MODELS["vae"].for_dataset(images, latent_dim=2), images, budget=Budget(steps=2, batch_size=8, eval_every=2),
            out=tmp_path / "run", progress=False, mode="bfloat16")
    assert not (tmp_path / "run").exists()
