"""The command line: train, evaluate, bench (on a tiny synthetic dataset)."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dislib import __main__ as cli
from dislib import data, train
from dislib.train import fit
from dislib.data import mnist
from dislib.data.base import ImageDataset
from dislib.models import MODELS, VAE
from tests.helpers import tiny_images


@pytest.fixture
def tiny_dataset(monkeypatch):
    def load_tiny(split, root, size: int = 28):
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
    assert cli.main(["evaluate", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == evaluated  # seeded: one sample of q(z|x) each time, the same


def test_bench_reports_every_model(capsys):
    assert cli.main(["bench", "--steps", "1", "--warmup", "0", "--batch-size", "8"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"vae", "gan", "cvae", "cgan", "cvaegan"} <= set(result["models"])
    assert all(m["images_per_second"] > 0 for m in result["models"].values())
    assert result["device"] == "cpu" and result["threads"] >= 1 and result["dtype"] == "float32"
    peaks = [m["peak_memory_mb"] for m in result["models"].values()]
    assert all(p is None or p > 10 for p in peaks)  # MiB of the whole process: at least the interpreter
    # each row names the preset it was built with: "mnist" where the model has one, else "styled-mnist"
    # (Ruiz et al.'s models), else "default"
    assert {name: m["preset"] for name, m in result["models"].items()} == {
        name: next((p for p in ("mnist", "styled-mnist") if p in cls.PRESETS), "default") for name, cls in MODELS.items()
    }
    assert result["models"]["srbvae"]["preset"] == "styled-mnist"
    assert result["models"]["cvaegan"]["preset"] == "mnist"
    assert "speedup" not in result["models"]["vae"]  # one mode: today's fields only


def test_bench_measures_both_modes_in_one_run(capsys):
    assert cli.main(["bench", "--steps", "1", "--warmup", "0", "--batch-size", "8", "--mode", "eager", "--mode", "fast"]) == 0
    result = json.loads(capsys.readouterr().out)
    for name, row in result["models"].items():
        assert set(row["modes"]) == {"eager", "fast"}, name
        assert row["images_per_second"] == row["modes"]["eager"]["images_per_second"]  # today's fields: the first mode
        assert row["speedup"] == pytest.approx(row["modes"]["fast"]["images_per_second"] / row["images_per_second"], abs=0.01)  # rounded to 2 decimals


@pytest.mark.parametrize("model", ["zheng", "cvaegan", "cvae", "cgan"])
def test_zhengs_baselines_train_and_evaluate_by_name(model, monkeypatch, tmp_path, capsys):
    # 48 images: enough for the label probes of a model with a specified code (20 to train on)
    monkeypatch.setitem(data._LOADERS, "tiny", lambda split, root: tiny_images(48, seed=int(split == "test")))
    out = tmp_path / model
    args = ["train", model, "--dataset", "tiny", "--preset", "mnist", "--budget", "smoke", "--out", str(out)]
    assert cli.main(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["model"] == model and trained["steps"] == 30
    assert cli.main(["evaluate", str(out), "--per-class", "4", "--classifier-steps", "3"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["model"] == model and all(isinstance(v, float) for k, v in evaluated.items() if k.startswith("test_"))
    # label-conditional generators get the paper's inception score and intra-class diversity, beside real images'
    for key in ("inception_score", "real_inception_score", "intra_class_diversity", "real_intra_class_diversity"):
        assert evaluated[key] > 0, key
    assert 1.0 <= evaluated["inception_score"] <= evaluated["classifier_classes"]
    assert 0.0 <= evaluated["asked_class_accuracy"] <= 1.0 and 0.0 <= evaluated["real_asked_class_accuracy"] <= 1.0
    assert (out / "classifier.pt").exists()
    # two-code models get the leak report: MLP and linear probes on each code's means (and samples of z)
    if model in ("zheng", "cvaegan", "cvae"):
        leak = evaluated["leak"]
        assert {"s_mlp_mean", "s_linear_mean", "z_mlp_mean", "z_linear_mean", "z_mlp_sample", "z_kl_nats",
                "swap_ratio", "chance_accuracy"} <= set(leak)
        assert all(0.0 <= leak[k] <= 1.0 for k in leak if k.endswith(("_mean", "_sample", "chance_accuracy")))
    else:
        assert "leak" not in evaluated


def test_evaluate_refuses_runs_it_cannot_trust(tiny_dataset, tmp_path, capsys):
    out, other = tmp_path / "run", tmp_path / "other"
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(out)]) == 0
    assert cli.main(["train", "gan", "--dataset", "tiny", "--budget", "smoke", "--out", str(other)]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse: one line naming the option
        cli.main(["evaluate", str(out), "--limit", "-5"])
    assert "--limit: must be at least 1, got -5" in capsys.readouterr().err
    run = json.loads((out / "run.json").read_text())
    assert run["format"] == 1
    (out / "run.json").write_text(json.dumps({**run, "format": 2}))
    assert cli.main(["evaluate", str(out)]) == 2
    assert "format 2" in capsys.readouterr().err
    for damage, message in [({"format": "1"}, "its format is '1', not a version dislib writes"),
                            ({"format": 0}, "its format is 0"), ({"data_options": [1]}, "its data_options are [1]"),
                            ({"dataset": "mnist"}, "holds a dataset 'tiny' but run.json beside it says 'mnist'")]:
        (out / "run.json").write_text(json.dumps({**run, **damage}))
        assert cli.main(["evaluate", str(out)]) == 2
        assert message in _one_line_error(capsys)
    (out / "run.json").write_text(json.dumps(run))
    shutil.copy(other / "checkpoint.pt", out / "checkpoint.pt")  # another model's checkpoint
    assert cli.main(["evaluate", str(out)]) == 2
    assert "holds a model 'gan' but run.json beside it says 'vae'" in capsys.readouterr().err
    state = torch.load(other / "checkpoint.pt", weights_only=False)
    name = next(k for k, v in state["weights"].items() if v.is_floating_point())
    state["weights"][name] = torch.full_like(state["weights"][name], float("nan"))
    torch.save(state, other / "checkpoint.pt")
    assert cli.main(["evaluate", str(other)]) == 2
    err = capsys.readouterr().err
    assert "NaN or infinite" in err and name in err


def test_paths_that_cannot_be_folders_and_bad_option_types_are_one_line(tiny_dataset, tmp_path, capsys):
    (tmp_path / "afile").touch()
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert "a file stands where a folder is needed on this path" in _one_line_error(capsys)
    assert cli.main(["compare", "--runs", str(tmp_path / "afile"), "--budget", "smoke"]) == 2
    assert f"{tmp_path / 'afile'} is a file, where compare keeps a folder: give --runs and --results folders" in \
        _one_line_error(capsys)
    assert cli.main(["compare", "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "afile"), "--budget", "smoke"]) == 2
    assert f"{tmp_path / 'afile'} is a file, where compare keeps a folder" in _one_line_error(capsys)
    assert cli.main(["compare", "--runs", str(tmp_path / "afile" / "sub"), "--budget", "smoke"]) == 2
    assert "a file stands where a folder is needed" in _one_line_error(capsys)
    assert cli.main(["train", "vae", "--dataset", "tiny", "--option", "size=32.0", "--out", str(tmp_path / "run")]) == 2
    assert "option size of tiny takes a whole number, like size=28, got 32.0" in _one_line_error(capsys)
    with pytest.raises(SystemExit):
        cli.main(["train", "vae", "--dataset", "tiny", "--seed", "-1"])
    assert "--seed: must be at least 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_command_out_of_memory_is_one_line(monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 6272000000000 bytes")

    monkeypatch.setattr(cli, "bench_all", no_memory)
    assert cli.main(["bench", "--batch-size", "100000000"]) == 2
    assert "not enough memory for this command" in (err := _one_line_error(capsys)) and "lower --batch-size" in err


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


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.rsplit("\r", 1)[-1]  # what a terminal shows once the progress bar is cleared
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_refused_resume_leaves_the_run_to_evaluate_on_its_own_data(tiny_dataset, monkeypatch, tmp_path, capsys):
    def load_tiny2(split, root):
        tiny = tiny_images(32, seed=int(split == "test"))
        return ImageDataset(tiny.images, tiny.labels, tiny.num_classes, "tiny2")

    monkeypatch.setitem(data._LOADERS, "tiny2", load_tiny2)
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", out]) == 0
    capsys.readouterr()
    assert cli.main(["train", "vae", "--dataset", "tiny2", "--budget", "smoke", "--out", out]) == 2
    assert "dataset 'tiny' (asked for: 'tiny2')" in _one_line_error(capsys)
    assert cli.main(["evaluate", out]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "tiny"
    assert cli.main(["train", "vae", "--dataset", "tiny2", "--budget", "smoke", "--out", out, "--restart"]) == 0
    assert json.loads(capsys.readouterr().out)["dataset"] == "tiny2"


def test_an_option_the_dataset_does_not_take_lists_those_it_does(tiny_dataset, tmp_path, capsys):
    assert cli.main(["train", "vae", "--dataset", "tiny", "--option", "colour=red", "--out", str(tmp_path)]) == 2
    assert "tiny takes no option colour; the options it takes: size" in _one_line_error(capsys)
    with pytest.raises(ValueError, match="mnist takes no option size; the options it takes: download"):
        data.load("mnist", size=32)


def test_cuda_without_a_gpu_is_one_line(tiny_dataset, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("DISLIB_DEVICE", "cuda")
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(tmp_path)]) == 2
    assert "DISLIB_DEVICE asks for 'cuda'" in _one_line_error(capsys)


def test_divergence_is_one_line(tiny_dataset, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(VAE, "train_step", lambda self, batch: {"loss": torch.tensor(float("nan"))})
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(tmp_path)]) == 2
    assert "a loss became NaN/inf between steps 1 and 20" in _one_line_error(capsys)


def test_locked_or_damaged_run_directories_are_one_line(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(out)]) == 0
    capsys.readouterr()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / train.LOCK).write_text(str(other.pid))
        assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(out)]) == 2
        assert f"is in use by process {other.pid}" in _one_line_error(capsys)
    finally:
        other.kill()
        other.wait()
    (out / train.CHECKPOINT).write_bytes(b"")
    assert cli.main(["evaluate", str(out)]) == 2
    assert "checkpoint.pt is damaged (empty)" in _one_line_error(capsys)


def test_a_truncated_mnist_file_is_named_with_its_size(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, size in mnist._SIZES.items():  # sparse files of the right size, one cut short
        with open(raw / name, "wb") as f:
            f.truncate(size // 2 if name == "train-images-idx3-ubyte" else size)
    monkeypatch.setenv("DISLIB_DATA", str(tmp_path))
    assert cli.main(["train", "vae", "--dataset", "mnist", "--budget", "smoke", "--out", str(tmp_path / "run")]) == 2
    assert "train-images-idx3-ubyte is truncated: 23,520,008 bytes, expected 47,040,016" in _one_line_error(capsys)
    (raw / "train-images-idx3-ubyte").write_bytes(b"")
    with open(raw / "train-images-idx3-ubyte", "wb") as f:
        f.truncate(mnist._SIZES["train-images-idx3-ubyte"])
    with pytest.raises(data.DatasetDamaged, match="cannot read mnist .*not an idx file.*good copies"):
        data.load("mnist", "test")


def test_evaluate_gives_the_ruiz_table1_row_for_real_factors(monkeypatch, tmp_path, capsys):
    def load_styled(split, root):
        g = torch.Generator().manual_seed(int(split == "test"))
        images = torch.rand(40, 3, 32, 32, generator=g)
        factors = torch.stack([images.mean((1, 2, 3)), images[:, 0].mean((1, 2))], 1)  # two real factors
        return ImageDataset(images, (torch.arange(40) % 2 == 0).long(), 2, "tinyreal", factors=factors,
                            factor_names=("brightness", "red"))

    monkeypatch.setitem(data._LOADERS, "tinyreal", load_styled)
    out = tmp_path / "rb"
    assert cli.main(["train", "rbvae", "--dataset", "tinyreal", "--budget", "smoke", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out)]) == 0
    row = json.loads(capsys.readouterr().out)["factor_mae"]
    assert set(row) == {"from_e", "from_z", "chance"}  # Ruiz et al.'s letters, and predicting the mean
    for errors in row.values():
        assert set(errors) == {"brightness", "red", "mean"}
        assert errors["mean"] == pytest.approx((errors["brightness"] + errors["red"]) / 2)
    # in factor ranges (Table 1's units): predicting the mean of a factor misses by a fraction of its range
    assert all(0.0 < row["chance"][name] < 1.0 for name in ("brightness", "red"))


def test_model_settings_reach_the_config_and_unknown_ones_are_listed(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--set", "beta=2.5", "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["config"]["beta"] == 2.5
    capsys.readouterr()
    assert cli.main(["train", "vae", "--dataset", "tiny", "--set", "bta=2", "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "vae has no setting bta" in err and "beta" in err
    assert cli.main(["train", "vae", "--dataset", "tiny", "--set", "beta", "--out", str(tmp_path / "other")]) == 2
    assert "model settings look like KEY=VALUE (e.g. beta=10)" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("widths=abc", "setting widths takes a tuple like widths=["),
    ("image_size=64", "image_size comes from the dataset, not from --set"),
    ("beta=true", "setting beta takes a float like beta=1.0, got True"),
    ("latent_dim=2.5", "setting latent_dim takes an int like latent_dim="),
    ("beta=Infinity", "setting beta must be a finite number, got inf"),
    ("beta=NaN", "setting beta must be a finite number, got nan"),
])
def test_model_settings_of_the_wrong_kind_are_named(tiny_dataset, tmp_path, capsys, setting, message):
    assert cli.main(["train", "vae", "--dataset", "tiny", "--set", setting, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("beta=-1", "beta must be >= 0 and finite"),
    ("widths=[0,32,64]", "widths (the channels of each convolution) must be whole numbers >= 1"),
    ("widths=[]", "like [32, 64, 128], got []"),
    ("latent_dim=0", "latent_dim (the size of a code) must be a whole number >= 1, got 0"),
    ("latent_dim=-3", "got -3"),
    ("lr=-1", "lr (Adam's learning rate) must be > 0 and finite, like lr=0.0005, got -1.0"),
])
def test_sizes_and_rates_no_model_can_have_are_refused_before_anything_is_written(tiny_dataset, tmp_path, capsys,
                                                                                 setting, message):
    assert cli.main(["train", "vae", "--dataset", "tiny", "--set", setting, "--out", str(tmp_path / "run")]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model", ["mathieu", "srbvae"])
def test_a_model_of_images_on_points_is_one_line(capsys, model):
    assert cli.main(["train", model, "--dataset", "three-moons", "--budget", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {model} reads images, but dataset 'three-moons' holds PointDataset: give {model} an image dataset") and err.count(":") == 2


def test_resuming_with_the_default_option_spelled_out_is_the_same_run(tiny_dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", out]) == 0
    capsys.readouterr()
    assert cli.main(["train", "vae", "--dataset", "tiny", "--option", "size=28", "--budget", "smoke", "--out", out]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 40  # resumed (nothing left to train), not refused
    assert cli.main(["train", "vae", "--dataset", "tiny", "--option", "size=32", "--budget", "smoke", "--out", out]) == 2
    assert "holds a run with data_options" in (err := _one_line_error(capsys)) and "(asked for: {'size': 32})" in err


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file_or_lock(tiny_dataset, monkeypatch, tmp_path, capsys):
    import errno

    def full(obj, f, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(train.torch, "save", full)
    out = tmp_path / "run"
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "no space left on the device" in err and "free some space" in err
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # no checkpoint.pt.tmp, no run.lock


def test_a_lock_that_cannot_be_written_is_not_left_behind(monkeypatch, tmp_path):
    import errno

    def full(fd, *args, **kwargs):
        import os

        os.close(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train.os, "fdopen", full)
    with pytest.raises(OSError):
        train._take_lock(tmp_path / "run.lock")
    assert not (tmp_path / "run.lock").exists()


def test_ctrl_c_and_a_read_only_folder_are_one_line(tiny_dataset, monkeypatch, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", out]) == 0
    capsys.readouterr()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "held_out", interrupted)
    assert cli.main(["evaluate", out]) == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted: evaluate stopped") and err.count("\n") == 1

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", out)

    monkeypatch.setattr(cli, "fit", refused)
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", out]) == 2
    assert "give a folder you can write to (--out" in _one_line_error(capsys)


def test_unknown_settings_and_weights_that_do_not_fit_are_named(tiny_dataset):
    from dislib.models.base import Model

    tiny = data.load("tiny", "train")
    with pytest.raises(ValueError, match="vae has no setting 'colour' .*its settings are: image_channels"):
        VAE.for_dataset(tiny, colour=1)
    checkpoint = VAE.for_dataset(tiny).checkpoint()
    with pytest.raises(ValueError, match="vae has no setting 'colour' \\(in its checkpoint's configuration"):
        Model.from_checkpoint({**checkpoint, "config": {**checkpoint["config"], "colour": 1}})
    weights = dict(checkpoint["weights"])
    first = next(k for k, v in weights.items() if v.dim() > 1)
    weights[first] = torch.zeros(3)
    with pytest.raises(ValueError, match="weights do not fit a vae of its own configuration .*size mismatch"):
        Model.from_checkpoint({**checkpoint, "weights": weights})


def test_evaluating_an_unfinished_run_warns_in_one_line_how_to_finish_it(tiny_dataset, tmp_path, capsys):
    out, tiny = tmp_path / "run", data.load("tiny", "train")
    fit(VAE.for_dataset(tiny), tiny, budget="smoke", out=out, stop_after=3, progress=False)
    written = sorted(p.name for p in out.iterdir())
    assert cli.main(["evaluate", str(out), "--limit", "16"]) == 0
    captured = capsys.readouterr()
    assert captured.err == (f"warning: {out} holds an unfinished run: it stopped at step 3 of 40, so its model is not "
                            f"fully trained; train again with the same --out {out} (out=) to finish it, it resumes there\n")
    assert "test_negative_elbo" in json.loads(captured.out) and sorted(p.name for p in out.iterdir()) == written
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 40
    assert cli.main(["evaluate", str(out), "--limit", "16"]) == 0
    assert capsys.readouterr().err == ""


def _maps(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/maps").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return ""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_while_torch_imports_is_one_line_and_status_130(tmp_path):
    command = [sys.executable, "-m", "dislib", "train", "vae", "--dataset", "mnist", "--out", str(tmp_path / "run")]
    # A shell's background job ignores SIGINT and its children inherit that (Python then installs no
    # handler): restore the default, as a terminal's Ctrl-C finds it.
    process = subprocess.Popen(command, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while "libtorch" not in _maps(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)  # torch's libraries are loading: its Python modules are still to come
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out) == (130, "")
    assert err == "interrupted: stopped while starting, before anything was read or written\n"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, flags", [("run.json", []), ("checkpoint.pt", ["--restart"])])
def test_a_folder_where_a_run_file_belongs_is_named_with_a_fix_restart_cannot_undo(tiny_dataset, tmp_path, capsys, name, flags):
    (tmp_path / "run" / name).mkdir(parents=True)
    assert cli.main(["train", "vae", "--dataset", "tiny", "--budget", "smoke", "--out", str(tmp_path / "run"), *flags]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"error: {tmp_path / 'run' / name}: a folder stands where dislib keeps a file")
    assert err.endswith("move or delete that folder (--restart replaces files, not folders)\n")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [name]  # nothing written beside it
