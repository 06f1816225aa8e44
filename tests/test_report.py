"""Results tables: formatting, HTML, clear errors, and the Table 1 helpers on a hand-made model."""

import dataclasses

import pytest
import torch

from dislib import evaluate, report
from dislib.models.base import Budget
from dislib.train import History
from tests.helpers import Pixels, pixel_data


@dataclasses.dataclass(frozen=True)
class Settings:
    lr: float = 0.001
    widths: tuple[int, ...] = (16, 32)
    name: str = "paper"


ROWS = {
    "full model": {"s test error": 0.0123, "z accuracy": 0.973, "KL of z (nats)": 12.204, "steps": 2500},
    "lambda = 0": {"s test error": 0.016, "z accuracy": 0.852, "KL of z (nats)": 9.0},
}


def test_table_renders_an_html_table_with_percentages_and_numbers():
    frame = report.table(ROWS, label="model")
    html = frame._repr_html_()
    assert "<table" in html and "</table>" in html and "model" in html
    assert list(frame.index) == ["full model", "lambda = 0"]
    assert list(frame.columns) == ["s test error", "z accuracy", "KL of z (nats)", "steps"]
    assert frame.loc["full model"].tolist() == ["1.2%", "97.3%", "12.20", "2,500"]
    assert frame.loc["lambda = 0", "steps"] == report.MISSING
    assert "1.2%" in html and "97.3%" in html


def test_table_takes_digits_and_explicit_percent_columns():
    frame = report.table(ROWS, percent=["z accuracy"], digits=1, percent_digits=2)
    assert frame.loc["full model", "z accuracy"] == "97.30%"
    assert frame.loc["full model", "s test error"] == "0.0"  # not a percent column any more
    assert frame.loc["full model", "KL of z (nats)"] == "12.2"


def test_table_shows_the_chosen_columns_in_order():
    frame = report.table(ROWS, columns=["KL of z (nats)", "s test error"])
    assert list(frame.columns) == ["KL of z (nats)", "s test error"]
    with pytest.raises(ValueError, match="no row has the columns"):
        report.table(ROWS, columns=["swap ratio"])


def test_table_rejects_bad_input_with_a_clear_message():
    with pytest.raises(ValueError, match="at least one row"):
        report.table({})
    with pytest.raises(ValueError, match="error or an accuracy"):
        report.table({"a": {"swap ratio": 0.5}}, percent=["swap ratio"])
    with pytest.raises(ValueError, match="does not show"):
        report.table(ROWS, percent=["z error"])
    with pytest.raises(TypeError, match="sequence of column names"):
        report.table(ROWS, percent="z accuracy")
    with pytest.raises(ValueError, match="not a fraction"):
        report.table({"a": {"z test error": 12.5}})
    with pytest.raises(TypeError, match="number or a string"):
        report.table({"a": {"KL": torch.tensor(1.0)}})


def test_config_table_shows_one_setting_per_row():
    frame = report.config_table(Settings())
    assert list(frame.index) == ["lr", "widths", "name"] and list(frame.columns) == ["value"]
    assert frame["value"].tolist() == ["0.001", "(16, 32)", "paper"]
    assert "<table" in frame._repr_html_()


def test_config_table_compares_configurations():
    a, b = Budget(steps=10, batch_size=64, eval_every=5), Budget(steps=20, batch_size=64, eval_every=5)
    both = report.config_table(a, b, names=["smoke", "full"])
    assert list(both.columns) == ["smoke", "full"] and len(both) == len(dataclasses.fields(Budget))
    differences = report.config_table(a, b, names=["smoke", "full"], only_differences=True)
    assert list(differences.index) == ["steps"] and differences.loc["steps"].tolist() == ["10", "20"]
    mixed = report.config_table(a, Settings(), names=["budget", "settings"])
    assert mixed.loc["lr", "budget"] == report.MISSING


def test_config_table_rejects_bad_input_with_a_clear_message():
    with pytest.raises(TypeError, match="dataclass instances"):
        report.config_table({"lr": 0.1})
    with pytest.raises(TypeError, match="dataclass instances"):
        report.config_table(Settings)
    with pytest.raises(ValueError, match="name the configurations"):
        report.config_table(Settings(), Settings(lr=0.1))
    with pytest.raises(ValueError, match="2 configurations but 1 names"):
        report.config_table(Settings(), Settings(lr=0.1), names=["one"])
    with pytest.raises(ValueError, match="identical"):
        report.config_table(Settings(), Settings(), names=["a", "b"], only_differences=True)


def test_last_metrics_picks_and_renames_the_last_interval():
    history = History(steps=[5, 10], losses=[{"loss": 2.0}, {"loss": 1.0}],
                      metrics=[{"s_accuracy": 0.5}, {"s_accuracy": 0.9}])
    rows = report.last_metrics({"run": history}, {"s_accuracy": "s accuracy", "loss": "loss"})
    assert rows == {"run": {"s accuracy": 0.9, "loss": 1.0}}
    assert report.table(rows).loc["run", "s accuracy"] == "90.0%"
    with pytest.raises(KeyError, match="recorded no"):
        report.last_metrics({"run": history}, {"swap_ratio": "swap ratio"})


def test_convergence_reports_each_metric_and_the_two_percent_rule():
    settled = History(steps=[400, 800, 1000], losses=[{"loss": 3.0}, {"loss": 2.0}, {"loss": 1.99}],
                      metrics=[{"s_accuracy": 0.5}, {"s_accuracy": 0.900}, {"s_accuracy": 0.905}])
    moving = History(steps=[400, 800, 1000], losses=[{"loss": 3.0}, {"loss": 2.0}, {"loss": 1.5}],
                     metrics=[{"s_accuracy": 0.5}, {"s_accuracy": 0.8}, {"s_accuracy": 0.9}])
    rows = report.convergence({"settled": settled, "moving": moving}, {"s_accuracy": "s accuracy", "loss": "loss"})
    assert rows["settled"]["steps"] == 1000
    assert rows["settled"]["s accuracy"] == 0.905
    assert rows["settled"]["loss: last-fifth change"] == "0.5%"
    assert rows["settled"]["converged"] == "yes"
    assert rows["moving"]["s accuracy: last-fifth change"] == "11.1%"
    assert rows["moving"]["converged"] == "no"
    assert report.table(rows).loc["moving", "s accuracy"] == "90.0%"
    baseline = History(steps=[400, 800, 1000], losses=[{"loss": 3.0}, {"loss": 2.0}, {"loss": 1.99}], metrics=[{}, {}, {}])
    rows = report.convergence({"baseline": baseline}, {"s_accuracy": "s accuracy", "loss": "loss"})
    assert rows["baseline"]["s accuracy"] is None and rows["baseline"]["s accuracy: last-fifth change"] is None
    assert rows["baseline"]["converged"] == "yes"  # judged on what it records
    with pytest.raises(KeyError, match="records none of"):
        report.convergence({"baseline": baseline}, {"s_accuracy": "s accuracy"})


def test_mean_row_averages_each_column():
    rows = {"seed 0": {"z test error": 0.5, "swap ratio": 2.0}, "seed 1": {"z test error": 0.3, "swap ratio": 4.0}}
    assert report.mean_row(rows) == pytest.approx({"z test error": 0.4, "swap ratio": 3.0})
    with pytest.raises(ValueError, match="different columns"):
        report.mean_row({"a": {"x": 1.0}, "b": {"y": 1.0}})
    with pytest.raises(ValueError, match="at least one row"):
        report.mean_row({})


def test_table1_measures_probes_kl_and_swap_ratio():
    model, train, test = Pixels(), pixel_data(200, 0), pixel_data(200, 1)
    result = report.table1(model, train, test, targets=("label", "noise"))
    assert set(result.probes) == {"s", "z"} and set(result.probes["s"]) == {"label", "noise"}
    assert result.kl_nats == pytest.approx(evaluate.kl_nats(model, test))
    assert result.swap_ratio == pytest.approx(evaluate.swap_ratio(model, test))
    label = result.row(["label"])
    assert list(label) == ["s train error", "s test error", "z train error", "z test error", "chance error",
                           "KL of z (nats)", "swap ratio"]
    assert label["s test error"] < 0.05
    both = result.row()
    noise = result.probes["s"]["noise"].test_error
    assert both["s test error"] == pytest.approx((label["s test error"] + noise) / 2)
    frame = report.table({"pixels": label}, label="model")
    assert frame.loc["pixels", "s test error"].endswith("%") and "<table" in frame._repr_html_()


def test_probe_table_has_a_row_per_target_and_per_mean():
    result = report.table1(Pixels(), pixel_data(200, 0), pixel_data(200, 1), targets=("label", "copy", "noise"))
    frame = report.probe_table(result, means={"mean": ["label", "copy"]})
    assert list(frame.index) == ["label", "copy", "noise", "mean"]
    assert list(frame.columns) == ["s train error", "s test error", "z train error", "z test error", "chance error"]
    assert all(cell.endswith("%") for cell in frame.to_numpy().ravel())


def test_versus_paper_puts_the_published_numbers_first():
    ours = {"s train error": 0.08, "s test error": 0.119, "z train error": 0.105, "z test error": 0.166,
            "chance error": 0.594, "KL of z (nats)": 12.2, "swap ratio": 6.4}
    frame = report.versus_paper({"ours": ours})
    assert list(frame.index) == ["paper, Sprites", "ours"]
    assert frame.loc["paper, Sprites", "z test error"] == "59.8%"
    assert frame.loc["paper, Sprites", "s test error"] == "5.2%"
    assert frame.loc["ours", "z test error / chance"] == "0.28"
    assert "swap ratio" not in frame.columns
    with pytest.raises(KeyError, match="no 'MNIST'"):
        report.versus_paper({"ours": ours}, dataset="MNIST")


def test_leak_table_has_a_row_per_model_and_marks_missing_views():
    models = {"pixels": Pixels()}
    frame = report.leak_table(models, pixel_data(200, 0), pixel_data(200, 1))
    assert list(frame.index) == ["pixels"]
    assert list(frame.columns) == ["active dims", "error from mean", "error from sample", "error from active",
                                   "error from collapsed"]
    # every dimension has a KL below 0.5 nats (pixels in [0, 1], unit variance): none is active
    assert frame.loc["pixels", "active dims"] == "0"
    assert frame.loc["pixels", "error from active"] == report.MISSING
    assert frame.loc["pixels", "error from mean"].endswith("%")
