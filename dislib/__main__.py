"""Command line: ``python -m dislib train | evaluate | bench | compare | sweep``.

Examples
--------
``python -m dislib train vae --dataset mnist --budget full --out runs/vae-mnist``
``python -m dislib train betavae --dataset styled-mnist --set beta=10 --out runs/betavae-10``
``python -m dislib evaluate runs/vae-mnist``
``python -m dislib bench``
``python -m dislib compare --dataset styled-mnist --budget full``
``python -m dislib sweep zheng-mnist --budget full``
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import functools
import json
import math
import sys
import warnings
from pathlib import Path

try:  # torch takes seconds to import: Ctrl-C meanwhile is one line, without a traceback
    import torch

    from dislib import compare as comparison, data, quality, settings, sweep as sweeps
    from dislib.bench import bench_all
    from dislib.data.base import ImageDataset, LabelledData
    from dislib.evaluate import chance_errors, held_out, leak_report, regress_codes
    from dislib.models import MODELS, Disentangler
    from dislib.precision import MODES
    from dislib.train import METRICS, RunDirectoryError, TrainingDiverged, fit, load_model, read_run
except KeyboardInterrupt:
    print("interrupted: stopped while starting, before anything was read or written", file=sys.stderr)
    sys.exit(130)


def train(args: argparse.Namespace) -> dict:
    """Train a model on a dataset for a budget; write the run directory; return its metrics."""
    model_cls = MODELS[args.model]
    options = dict(_option(o) for o in args.option)
    train_data = data.load(args.dataset, "train", **options)
    test_data = data.load(args.dataset, "test", **options)
    settings.seed_everything(args.seed)
    try:
        model = model_cls.for_dataset(train_data, args.preset, **_settings(model_cls, args.set))
    except TypeError as err:  # a model of images on points: the message names the problem and the fix
        raise ValueError(str(err)) from None
    out = Path(args.out or f"runs/{args.model}-{args.dataset}")
    fit(model, train_data, test_data, budget=args.budget, seed=args.seed, out=out, device=args.device,
        resume=not args.restart, data_options=options, mode=args.mode)
    return json.loads((out / METRICS).read_text())


DATA_SHAPE = ("image_channels", "image_size", "num_classes", "point_dim")
"""Settings every model takes from its dataset, never from ``--set``."""


def _settings(model_cls: type, texts: list[str]) -> dict[str, object]:
    """``["beta=10"]`` -> ``{"beta": 10.0}``: model settings for ``for_dataset``, each a field of the
    model's configuration, its value of the field's type (a JSON list for a tuple)."""
    defaults = model_cls.Config()
    fields = {f.name for f in dataclasses.fields(defaults)} - set(DATA_SHAPE)
    chosen = dict(_option(t, "model settings", "beta=10") for t in texts)
    for key in sorted(chosen):
        if key in DATA_SHAPE:
            raise ValueError(f"{key} comes from the dataset, not from --set; choose the data instead "
                             "(e.g. --option size=64 for styled-mnist)")
        if key not in fields:
            raise ValueError(f"{model_cls.name} has no setting {key}; its settings: {', '.join(sorted(fields))}")
        chosen[key] = _typed(key, chosen[key], getattr(defaults, key))
    return chosen


def _typed(key: str, value: object, default: object) -> object:
    """``value`` as the type of ``default`` (int -> float, list -> tuple), or a ValueError naming both."""
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if type(value) is not type(default):
        example = json.dumps(list(default) if isinstance(default, tuple) else default)
        kind = type(default).__name__
        raise ValueError(f"setting {key} takes {'an' if kind[0] in 'aeiou' else 'a'} {kind} like {key}={example}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"setting {key} must be a finite number, got {value!r}: give a value like {key}={default!r}")
    return value


def _option(text: str, what: str = "dataset options", example: str = "size=32") -> tuple[str, object]:
    """``"size=32"`` -> ``("size", 32)``: a dataset option, its value read as JSON when it parses."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{what} look like KEY=VALUE (e.g. {example}), got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum``, refused in one line otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def evaluate(args: argparse.Namespace) -> dict:
    """Re-evaluate a trained run on its dataset's test split (the first ``--limit`` images): the loop's
    held-out metrics; for real-valued factors, the Table 1 row of Ruiz et al. (the mean absolute error of
    a linear regressor per factor and on average, fitted on the first half, tested on the second, from
    each code, in factor ranges, beside the chance row); for a model with two codes and a label, the leak report (probes fitted on the codes of as
    many training images, :func:`dislib.evaluate.leak_report`); for a label-conditional generator, the
    inception score and intra-class diversity. Seeded: the same run gives the same numbers."""
    settings.seed_everything(0)
    model = load_model(args.run, args.device)
    run = read_run(args.run)

    @functools.cache
    def train_data() -> LabelledData:
        return data.load(run["dataset"], "train", **run.get("data_options", {}))

    test = data.load(run["dataset"], "test", **run.get("data_options", {})).subset(slice(0, args.limit)).to(model.device)
    with torch.no_grad():
        metrics = {"model": run["model"], "dataset": run["dataset"], **held_out(model, test)}
    if isinstance(model, Disentangler) and test.real_factors:
        half = len(test) // 2
        fit, score = test.subset(slice(0, half)), test.subset(slice(half, 2 * half))
        with torch.no_grad():
            table1 = regress_codes(model, fit, score, in_ranges=True)
        letter = {"s": model.specified_symbol, "z": "z"}
        metrics["factor_mae"] = {f"from_{letter[code]}": errors for code, errors in table1.items()}
        metrics["factor_mae"]["chance"] = chance_errors(fit, score, in_ranges=True)
    if isinstance(model, Disentangler) and model.specified_dim > 0 and len(test.labels.unique()) > 1:
        metrics["leak"] = leak_report(model, train_data().subset(slice(0, len(test))).to(model.device), test)
    if model.generates_classes and isinstance(test, ImageDataset) and args.per_class > 0:
        classifier = quality.cached_classifier(train_data(), Path(args.run) / "classifier.pt", steps=args.classifier_steps,
                                               device=model.device, progress=False)
        metrics |= quality.generation_quality(model, classifier, test, args.per_class)
    return metrics


def bench(args: argparse.Namespace) -> dict:
    """Training throughput (images per second through ``train_step``) and peak memory of every model
    (:func:`dislib.bench.bench_all`)."""
    return bench_all(settings.device(args.device), args.steps, args.warmup, args.batch_size,
                     tuple(dict.fromkeys(args.mode or ["eager"])))


def compare(args: argparse.Namespace) -> dict:
    """Every method of the book on ``styled-mnist`` under one protocol (:mod:`dislib.compare`): trains
    or reuses (``--restart``: trains anew) the runs in ``--runs`` and their results in ``--results``,
    writes ``compare.json`` and ``compare.html`` in ``--runs``, and returns the mean of each number
    over the seeds, per method."""
    summary = comparison.run(args.budget, args.runs, args.method or None, args.device, args.jobs, restart=args.restart,
                             results=args.results)
    return {"table": str(Path(args.runs) / "compare.html"), "json": str(Path(args.runs) / "compare.json"),
            "protocol": summary["protocol"], "means": {name: m["mean"] for name, m in summary["methods"].items()}}


def sweep(args: argparse.Namespace) -> dict:
    """A trade-off curve over one model's settings (:mod:`dislib.sweep`): trains or reuses the runs in
    ``--runs``, writes ``sweep.json`` there, and returns each point's mean over the seeds."""
    summary = sweeps.run(args.name, args.budget, args.runs, args.point or None, args.device, args.jobs, restart=args.restart)
    return {"json": str(Path(args.runs or f"runs/sweep-{args.name}") / "sweep.json"), "protocol": summary["protocol"],
            "means": {name: {"empty": p["empty"], **p["mean"]} for name, p in summary["points"].items()}}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dislib", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model; writes checkpoint.pt, run.json and metrics.json")
    t.add_argument("model", choices=sorted(MODELS))
    t.add_argument("--dataset", required=True, choices=data.names())
    t.add_argument("--budget", choices=settings.BUDGETS, default=None, help="default: DISLIB_BUDGET, else full")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option passed to dislib.data.load, e.g. --option size=32 (repeatable)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model setting, a field of the model's configuration, e.g. --set beta=10 (repeatable)")
    t.add_argument("--preset", default=None, help="named configuration (default: the dataset's own)")
    t.add_argument("--out", default=None, help="run directory (default: runs/MODEL-DATASET)")
    t.add_argument("--seed", type=_at_least(0), default=0)
    t.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1 ...")
    t.add_argument("--restart", action="store_true",
                   help="train from scratch, replacing what --out holds, instead of resuming")
    t.add_argument("--mode", choices=MODES, default=None,
                   help="fast (bf16 forward passes where the hardware computes in bf16, channels-last; losses in "
                        "float32) or eager (float32 on the CPU); default: a resumed run's own, else fast")
    t.set_defaults(handler=train)
    e = sub.add_parser("evaluate", help="print a trained run's test metrics as JSON")
    e.add_argument("run", help="run directory written by `train`")
    e.add_argument("--limit", type=_at_least(1), default=10_000, help="number of test images")
    e.add_argument("--device", default=None)
    e.add_argument("--per-class", type=_at_least(0), default=500,
                   help="samples per class for the inception score and the diversity of a label-conditional "
                        "generator (0: skip them)")
    e.add_argument("--classifier-steps", type=_at_least(1), default=1_500,
                   help="training steps of the scoring classifier (trained once, cached in the run directory)")
    e.set_defaults(handler=evaluate)
    b = sub.add_parser("bench", help="print each model's training throughput and peak memory as JSON")
    b.add_argument("--steps", type=_at_least(1), default=10)
    b.add_argument("--warmup", type=_at_least(0), default=2)
    b.add_argument("--batch-size", type=_at_least(1), default=64)
    b.add_argument("--device", default=None)
    b.add_argument("--mode", action="append", choices=MODES, default=None,
                   help="eager (float32 on the CPU) or fast (as the training loop runs by default: bf16 autocast "
                        "where the hardware computes in bf16, channels-last); repeatable: --mode eager --mode fast adds "
                        "each model's speedup (default: eager)")
    b.set_defaults(handler=bench)
    c = sub.add_parser("compare", help="train and measure every method under one protocol (the comparison chapter)")
    c.add_argument("--dataset", default=comparison.DATASET, choices=[comparison.DATASET],
                   help="the dataset every method can learn from (only styled-mnist)")
    c.add_argument("--budget", choices=settings.BUDGETS, default=None, help="default: DISLIB_BUDGET, else full")
    c.add_argument("--runs", default="runs/compare", help="folder of the run directories and the table")
    c.add_argument("--results", default=None,
                   help="folder of the small result files, one per run, which a later compare reuses without "
                        "training (default: RUNS/results)")
    c.add_argument("--method", action="append", default=[], choices=[m.key for m in comparison.METHODS],
                   help="only this method (repeatable; default: all)")
    c.add_argument("--jobs", type=_at_least(1), default=None,
                   help="runs trained at once, one CPU thread each (default: the budget's, 2 for full)")
    c.add_argument("--device", default=None)
    c.add_argument("--restart", action="store_true",
                   help="train and measure the chosen runs from scratch, replacing what --runs holds for them, "
                        "instead of reusing or resuming them")
    c.set_defaults(handler=compare)
    w = sub.add_parser("sweep", help="train one model at several settings and seeds, and measure each (the leak of the label, or Table 1's split)")
    w.add_argument("name", choices=sorted(sweeps.SWEEPS))
    w.add_argument("--budget", choices=settings.BUDGETS, default=None, help="default: DISLIB_BUDGET, else full")
    w.add_argument("--runs", default=None, help="folder of the run directories and sweep.json (default: runs/sweep-NAME)")
    w.add_argument("--point", action="extend", nargs="+", default=[], metavar="KEY",
                   help="only these points (one or more keys, repeatable; default: all); sweep.json keeps the other "
                        "points it already holds")
    w.add_argument("--jobs", type=_at_least(1), default=None,
                   help="runs trained at once, one CPU thread each (default: the budget's, 2 for full)")
    w.add_argument("--device", default=None)
    w.add_argument("--restart", action="store_true",
                   help="train and measure the chosen runs from scratch, replacing what --runs holds for them, "
                        "instead of reusing or resuming them")
    w.set_defaults(handler=sweep)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            result = args.handler(args)
    except (FileNotFoundError, ValueError, KeyError, TrainingDiverged, RunDirectoryError) as err:
        message = err.args[0] if isinstance(err, KeyError) else err  # a KeyError's str() adds quotes
        print(f"error: {message}", file=sys.stderr)
        return 2
    except PermissionError as err:
        print(f"error: {err}: not allowed to write or read there; give a folder you can write to "
              "(--out, DISLIB_CACHE) or change its permissions", file=sys.stderr)
        return 2
    except OSError as err:
        if err.errno in _PATH_ERRORS:
            print(f"error: {err.filename or 'a path'}: {_PATH_ERRORS[err.errno]}", file=sys.stderr)
            return 2
        if err.errno != errno.ENOSPC:
            raise
        print(f"error: no space left on the device ({err.filename or 'while writing'}): nothing half-written was kept; "
              "free some space, or write to another disk (--out, DISLIB_CACHE), and run the command again "
              "(a training resumes from its last checkpoint)", file=sys.stderr)
        return 2
    except RuntimeError as err:
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in str(err):
            raise
        print(f"error: not enough memory for this command ({str(err).splitlines()[0][:120]}): lower --batch-size "
              "(or --limit), or free memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {args.command} stopped; a training resumes from its last checkpoint when run again, "
              "an evaluation writes nothing until it finishes", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2))
    return 0


_PATH_ERRORS = {
    errno.EROFS: "the file system is read-only; give a folder on a writable disk (--out, --runs, DISLIB_CACHE)",
    errno.ENOTDIR: "a file stands where a folder is needed on this path; give a folder (--out, --runs)",
    errno.EEXIST: "a file stands where a folder is needed; give a folder (--out, --runs) or remove the file",
    errno.EISDIR: "a folder stands where dislib keeps a file (run.json, checkpoint.pt, evaluation.json); move or delete "
                  "that folder (--restart replaces files, not folders)",
}
"""What an OSError of these kinds means for a user, and the fix."""


def _show_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> None:
    """Print a warning as one line on stderr, without the source line Python adds."""
    print(f"warning: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
