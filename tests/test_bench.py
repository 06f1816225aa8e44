"""The cost of a training step: throughput and peak memory."""

import pytest
import torch

from dislib import bench
from dislib.models import VAE
from tests.helpers import tiny_images


def test_peak_memory_sees_a_large_allocation_inside_the_block():
    cpu = torch.device("cpu")
    with bench.peak_memory(cpu) as small:
        torch.zeros(1)
    with bench.peak_memory(cpu) as large:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page written
        del block
    if large["peak_memory_mb"] is None:
        pytest.skip("this system cannot reset the peak resident memory (/proc/self/clear_refs)")
    assert large["memory"] == "resident memory of the whole process"
    assert large["peak_memory_mb"] >= small["peak_memory_mb"] + 50


def test_bench_model_times_the_steps_and_refuses_bad_sizes():
    data = tiny_images(32)
    model = VAE.for_dataset(data, latent_dim=2)
    row = bench.bench_model(model, data, torch.device("cpu"), steps=2, warmup=1, batch_size=8)
    assert row["images_per_second"] > 0 and row["batch_size"] == 8 and "peak_memory_mb" in row
    assert int(model.steps_done) == 3
    with pytest.raises(ValueError, match="steps >= 1, warmup >= 0 and batch_size >= 2"):
        bench.bench_model(model, data, torch.device("cpu"), steps=0, warmup=0, batch_size=8)


def test_the_fast_mode_runs_bf16_channels_last_where_the_cpu_can_and_refuses_unknown_modes():
    data = tiny_images(32)
    cpu = torch.device("cpu")
    model = bench.prepare(VAE.for_dataset(data, latent_dim=2), cpu, "fast")
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.autocast_dtype == (torch.bfloat16 if bench.bf16_capable(cpu) else None)
    row = bench.bench_model(model, data, cpu, steps=1, warmup=0, batch_size=8, mode="fast")
    assert row["images_per_second"] > 0 and row["dtype"].endswith("channels-last")
    assert bench.prepare(VAE.for_dataset(data, latent_dim=2), cpu, "eager").autocast_dtype is None
    with pytest.raises(ValueError, match="mode is one of"):
        bench.prepare(model, cpu, "turbo")
