"""Run directories that never lie: refused resumes, restarts, locks, damaged files."""

import json
import subprocess
import sys

import pytest
import torch

from dislib import settings
from dislib.data.base import ImageDataset
from dislib.models import VAE, Budget
from dislib.train import CHECKPOINT, LOCK, METRICS, RUN, RunDirectoryError, fit, load_model, read_run
from tests.helpers import tiny_images

BUDGET = Budget(steps=6, batch_size=16, eval_every=3, eval_size=32)


def _vae() -> VAE:
    settings.seed_everything(0)
    return VAE.for_dataset(tiny_images(), widths=(8, 16, 16))


def _train(out, data=None, **kwargs):
    kwargs = {"budget": BUDGET, "progress": False, **kwargs}
    return fit(_vae(), data or tiny_images(), out=out, **kwargs)


def _contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def finished(tmp_path):
    """A finished run directory trained with data option size=28."""
    _train(tmp_path / "run", data_options={"size": 28})
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"data": ImageDataset(tiny_images().images, tiny_images().labels, 10, "other")}, "dataset 'tiny' (asked for"),
        ({"data_options": {"size": 32}}, "data_options {'size': 28} (asked for: {'size': 32})"),
        ({"seed": 1}, "seed 0 (asked for: 1)"),
        ({"budget": Budget(8, 16, eval_every=3, eval_size=32)}, "budget {'steps': 6} (asked for: {'steps': 8})"),
    ],
)
def test_resume_of_another_run_is_refused_and_changes_nothing(finished, change, named):
    before = _contents(finished)
    kwargs = {"data_options": {"size": 28}, **change}
    with pytest.raises(RunDirectoryError, match=r"holds a run with .*--restart \(resume=False\).*another --out") as err:
        _train(finished, **kwargs)
    assert named in str(err.value)
    assert _contents(finished) == before


def test_restart_replaces_the_run_cleanly(finished):
    _train(finished, seed=1, resume=False, stop_after=2)
    assert read_run(finished)["seed"] == 1 and read_run(finished)["data_options"] == {}
    assert torch.load(finished / CHECKPOINT, weights_only=False)["step"] == 2
    assert not (finished / METRICS).exists()  # no metrics of the replaced run
    _train(finished, seed=1)
    assert json.loads((finished / METRICS).read_text())["seed"] == 1
    assert sorted(p.name for p in finished.iterdir()) == [CHECKPOINT, METRICS, RUN]  # no lock, no temporary files


def test_a_directory_in_use_is_refused(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK).write_text(str(other.pid))
        with pytest.raises(RunDirectoryError, match=f"in use by process {other.pid} .*another --out"):
            _train(tmp_path)
        assert _contents(tmp_path) == {LOCK: str(other.pid).encode()}
    finally:
        other.kill()
        other.wait()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK).write_text(gone.stdout.strip())
    with pytest.warns(UserWarning, match=f"stale lock .*process {gone.stdout.strip()} no longer runs"):
        _train(tmp_path)
    assert (tmp_path / METRICS).exists() and not (tmp_path / LOCK).exists()


def test_the_lock_is_removed_after_an_error(finished):
    with pytest.raises(RunDirectoryError):
        _train(finished, seed=3)
    assert not (finished / LOCK).exists()


def _cut(at: int):
    def cut(path):
        path.write_bytes(path.read_bytes()[:at])

    return cut


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_cut(200), "truncated, or not a torch file"),
        (_cut(5000), "truncated, or not a torch file"),  # torch raises OSError here, RuntimeError above
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("not a checkpoint"), "truncated, or not a torch file"),
        (lambda p: torch.save(torch.zeros(3), p), "not a dislib checkpoint"),
    ],
)
def test_a_damaged_checkpoint_is_named_with_the_fix(finished, damage, why):
    damage(finished / CHECKPOINT)
    message = rf"{CHECKPOINT} is damaged \({why}\): delete it, or train again with --restart \(resume=False\)"
    with pytest.raises(RunDirectoryError, match=message):
        _train(finished, data_options={"size": 28})
    with pytest.raises(RunDirectoryError, match=message):
        load_model(finished)


@pytest.mark.parametrize(
    ("content", "why"),
    [('{"model": "vae", "data', "not JSON"), ("", "empty"), ("[1, 2]", "not the JSON dislib writes")],
)
def test_a_damaged_run_json_is_named_with_the_fix(finished, content, why):
    (finished / RUN).write_text(content)
    with pytest.raises(RunDirectoryError, match=rf"{RUN} is damaged \({why}.*--restart"):
        _train(finished, data_options={"size": 28})
    assert (finished / RUN).read_text() == content


def test_a_checkpoint_without_run_json_is_not_resumed(finished):
    (finished / RUN).unlink()
    with pytest.raises(RunDirectoryError, match=f"has no {RUN} beside it.*--restart"):
        _train(finished, data_options={"size": 28})


def test_a_file_given_as_the_run_directory_is_refused_by_name(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    with pytest.raises(RunDirectoryError, match="notes.txt is a file: give a folder"):
        _train(afile)
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("name", [CHECKPOINT, RUN])
def test_a_folder_where_a_run_file_belongs_is_named_with_a_fix_that_works(finished, name):
    (finished / name).unlink()
    (finished / name).mkdir()
    with pytest.raises(RunDirectoryError, match=rf"{name} is a folder, where dislib keeps .*: move or delete that folder "
                                                r"\(--restart replaces files, not folders\)$"):
        load_model(finished)
