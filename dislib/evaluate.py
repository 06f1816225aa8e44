"""How well a two-code model separates the label from the rest, for any :class:`Disentangler`.

The quantitative test of Mathieu et al. (2016, Table 1): train a small classifier (two layers,
256 hidden units, early stopping) to predict the label (or each ground-truth factor) from the
specified code ``s`` and, separately, from the mean of the unspecified code ``z``. A good split
predicts the label well from ``s`` and no better than chance from ``z``. Three more numbers say
whether ``z`` still carries the rest: its KL to the prior in nats, and the *swap ratio*, how much
worse an image is rebuilt when its ``z`` is replaced by that of another image of the same class.

Where the factors are real numbers (colour, scale, stroke width), Ruiz et al. (2019, Table 1) fit
a linear least-squares regressor from a code to the factors and report the mean absolute error
per factor: :func:`regress_codes`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from dislib import losses
from dislib.data import samplers
from dislib.data.base import ImageDataset, LabelledData
from dislib.models.base import Codes, Disentangler, Model

CODES = ("s", "z")
PROBES = ("mlp", "linear")


@dataclass(frozen=True)
class ProbeResult:
    """Errors (fractions in ``[0, 1]``) of one probe; ``chance_error`` predicts the majority class."""

    train_error: float
    test_error: float
    chance_error: float


@contextmanager
def inference(model: Model) -> Iterator[None]:
    """Eval mode and no gradients, restoring the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def encode_dataset(
    model: Disentangler, data: LabelledData | Tensor, batch_size: int = 500, labels: Tensor | None = None
) -> Codes:
    """``model.encode`` of every input of ``data`` in batches (eval mode, no gradients), codes on the CPU.

    ``data`` is a dataset or a tensor of inputs. For a model whose specified code is the label
    (``model.label_is_code``: the conditional VAE) the labels, a dataset's own or ``labels``, go
    to ``encode``; other models read the inputs alone. Fields a model does not have stay ``None``.
    """
    if isinstance(data, LabelledData):
        inputs, labels = data.inputs, data.labels if labels is None else labels
    else:
        inputs = data
    if labels is not None and len(labels) != len(inputs):
        raise ValueError(f"{len(labels)} labels for {len(inputs)} inputs: pass one label per input")
    with_labels = labels is not None and model.label_is_code
    parts = []
    with inference(model):
        for i in range(0, len(inputs), batch_size):
            x = inputs[i : i + batch_size].to(model.device)
            codes = model.encode(x, labels[i : i + batch_size].to(model.device)) if with_labels else model.encode(x)
            parts.append([None if c is None else c.float().cpu() for c in codes])
    return Codes(*(None if part[0] is None else torch.cat(part) for part in zip(*parts)))  # fields in Codes' order


def decode_codes(model: Disentangler, specified: Tensor | None, unspecified: Tensor, batch_size: int = 256) -> Tensor:
    """``model.decode`` of code pairs row by row in batches (eval mode, no gradients), on the model's
    device; images back on the CPU. The counterpart of :func:`encode_dataset`."""
    device, out = model.device, []
    with inference(model):
        for i in range(0, unspecified.shape[0], batch_size):
            s = None if specified is None else specified[i : i + batch_size].to(device)
            out.append(model.decode(s, unspecified[i : i + batch_size].to(device)).float().cpu())
    return torch.cat(out)


def probe(
    train_features: Tensor,
    train_targets: Tensor,
    test_features: Tensor,
    test_targets: Tensor,
    seed: int = 0,
    kind: str = "mlp",
) -> ProbeResult:
    """Fit a probe and report its errors: ``kind="mlp"``, a 256-hidden-unit MLP with early stopping
    (10% validation split), or ``"linear"``, a multinomial logistic regression (L2, ``C = 1``).

    Features are standardised with the training set's mean and variance first.
    """
    if kind not in PROBES:
        raise ValueError(f"kind is one of {PROBES}, got {kind!r}")
    if len(train_features) != len(train_targets) or len(test_features) != len(test_targets):
        raise ValueError(
            f"features and targets differ in length: train {len(train_features)} vs {len(train_targets)}, "
            f"test {len(test_features)} vs {len(test_targets)}"
        )
    if len(train_features) < 20:
        raise ValueError(f"the probe needs at least 20 training examples (early stopping), got {len(train_features)}")
    scaler = StandardScaler().fit(train_features.numpy())
    x_train, x_test = scaler.transform(train_features.numpy()), scaler.transform(test_features.numpy())
    y_train, y_test = train_targets.numpy(), test_targets.numpy()
    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(256,), early_stopping=True, max_iter=200, random_state=seed)
    else:
        clf = LogisticRegression(max_iter=1_000)
    with warnings.catch_warnings():  # a probe stopped at its iteration limit is still a reading
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train, y_train)
    majority = np.bincount(y_train).argmax()
    return ProbeResult(
        train_error=float((clf.predict(x_train) != y_train).mean()),
        test_error=float((clf.predict(x_test) != y_test).mean()),
        chance_error=float((y_test != majority).mean()),
    )


def targets(data: LabelledData) -> dict[str, Tensor]:
    """What the classification probes predict: the label, then each categorical factor by name
    (real-valued factors are for :func:`regress_codes`)."""
    out = {"label": data.labels.cpu()}
    if data.factors is not None and not data.real_factors:
        for j, name in enumerate(data.factor_names):
            out[name] = data.factors[:, j].cpu()
    return out


def _code_features(model: Disentangler, data: LabelledData, batch_size: int) -> dict[str, Tensor]:
    codes = encode_dataset(model, data, batch_size)
    return {name: c for name, c in zip(CODES, (codes.specified, codes.unspecified)) if c is not None}


def probe_codes(
    model: Disentangler,
    train: LabelledData,
    test: LabelledData,
    names: tuple[str, ...] | None = None,
    seed: int = 0,
    batch_size: int = 500,
) -> dict[str, dict[str, ProbeResult]]:
    """Probe the targets of :func:`targets` (all, or those in ``names``) from ``s`` and from ``z``'s mean.

    Returns ``{"s": {target: ProbeResult}, "z": {...}}``; a model without ``s`` only has ``"z"``.
    """
    train_targets, test_targets = targets(train), targets(test)
    unknown = set(names or ()) - set(train_targets)
    if unknown:
        real = " (real-valued factors: use regress_codes)" if train.real_factors else ""
        raise KeyError(f"no categorical target named {sorted(unknown)}{real}; this dataset has {sorted(train_targets)}")
    codes_train, codes_test = _code_features(model, train, batch_size), _code_features(model, test, batch_size)
    chosen = names or tuple(train_targets)
    return {
        code: {t: probe(codes_train[code], train_targets[t], codes_test[code], test_targets[t], seed) for t in chosen}
        for code in codes_train
    }


def regress(train_features: Tensor, train_targets: Tensor, test_features: Tensor, test_targets: Tensor) -> Tensor:
    r"""Mean absolute test error of each target column under a linear least-squares regressor.

    .. math::
        \hat W = \arg\min_W \lVert [F_{train}, 1]\,W - Y_{train} \rVert_2^2, \qquad
        \mathrm{MAE}_j = \operatorname{mean}_i \big|([F_{test}, 1]\,\hat W)_{ij} - (Y_{test})_{ij}\big|

    The protocol of Ruiz et al. (2019, Sec. 5.2, Table 1), in float64. Returns ``[targets]``.
    """
    if train_targets.ndim != 2 or test_targets.ndim != 2 or train_targets.shape[1] != test_targets.shape[1]:
        raise ValueError(f"targets must be [N, F] with one F, got {tuple(train_targets.shape)} and {tuple(test_targets.shape)}")
    if len(train_features) != len(train_targets) or len(test_features) != len(test_targets):
        raise ValueError(
            f"features and targets differ in length: train {len(train_features)} vs {len(train_targets)}, "
            f"test {len(test_features)} vs {len(test_targets)}"
        )
    ones = lambda f: torch.cat([f.double(), torch.ones(len(f), 1, dtype=torch.float64)], 1)  # noqa: E731
    weights = torch.linalg.lstsq(ones(train_features), train_targets.double(), driver="gelsd").solution
    return (ones(test_features) @ weights - test_targets.double()).abs().mean(0).float()


def factor_ranges(data: LabelledData) -> Tensor:
    """Each real-valued factor's range over ``data``, ``max - min``: the unit in which Ruiz et al.'s
    Table 1 reads (its errors from ``z``, 0.195 and 0.189, are the chance level in these units)."""
    if not data.real_factors:
        raise ValueError(f"dataset {data.name!r} has no real-valued factors, so no factor ranges")
    ranges = (data.factors.max(0).values - data.factors.min(0).values).cpu().float()
    if (ranges <= 0).any():
        flat = [name for name, r in zip(data.factor_names, ranges.tolist()) if r <= 0]
        raise ValueError(f"factors {flat} take one value over these {len(data)} images, so they have no range: "
                         "score on more images")
    return ranges


def _named_errors(data: LabelledData, errors: Tensor, in_ranges: bool) -> dict[str, float]:
    """``{factor: MAE, ..., "mean": average}``, each error divided by its factor's range over ``data``
    when ``in_ranges``."""
    if in_ranges:
        errors = errors / factor_ranges(data)
    return {**dict(zip(data.factor_names, errors.tolist())), "mean": float(errors.mean())}


def regress_codes(
    model: Disentangler, train: LabelledData, test: LabelledData, batch_size: int = 500, in_ranges: bool = False
) -> dict[str, dict[str, float]]:
    """Regress every real-valued factor from ``s`` and from ``z``'s mean (:func:`regress`).

    Returns ``{"s": {factor: MAE, ..., "mean": average}, "z": {...}}``; a model without ``s``
    (the unsupervised baselines: all latents in one code) only has ``"z"``. With ``in_ranges`` each
    error is divided by its factor's range over ``test`` (:func:`factor_ranges`, Table 1's units).
    """
    if not (train.real_factors and test.real_factors):
        raise ValueError(f"regress_codes needs real-valued factors; dataset {train.name!r} has none: use probe_codes")
    codes_train, codes_test = _code_features(model, train, batch_size), _code_features(model, test, batch_size)
    return {code: _named_errors(test, regress(codes_train[code], train.factors.cpu(), codes_test[code], test.factors.cpu()),
                                in_ranges)
            for code in codes_train}


def chance_errors(train: LabelledData, test: LabelledData, in_ranges: bool = False) -> dict[str, float]:
    """What :func:`regress_codes` scores from a code that knows nothing: every factor of ``test``
    predicted by its mean over ``train``, as ``{factor: MAE, ..., "mean": average}``."""
    if not (train.real_factors and test.real_factors):
        raise ValueError(f"chance_errors needs real-valued factors; dataset {train.name!r} has none")
    errors = (test.factors.cpu().double() - train.factors.cpu().double().mean(0)).abs().mean(0).float()
    return _named_errors(test, errors, in_ranges)


def mean_error(results: dict[str, ProbeResult], names: tuple[str, ...] | list[str]) -> ProbeResult:
    """The errors averaged over several targets (Table 1's Sprites column averages the attributes)."""
    if not names:
        raise ValueError("mean_error needs at least one target name")
    picked = [results[n] for n in names]
    return ProbeResult(*(float(np.mean([getattr(r, f) for r in picked])) for f in ProbeResult.__dataclass_fields__))


def kl_nats(model: Disentangler, data: LabelledData, batch_size: int = 500) -> float:
    """Mean ``KL(q(z|x) || N(0, I))`` over the images of ``data``, in nats."""
    return float(kl_per_dimension(model, data, batch_size).sum())


def kl_per_dimension(model: Disentangler, data: LabelledData, batch_size: int = 500) -> Tensor:
    """Mean ``KL(q(z_j|x) || N(0, 1))`` of each dimension ``j`` of the unspecified code, in nats.

    A dimension whose KL is near zero is *collapsed*: its posterior is the prior whatever the
    image, so a sample of it is noise and the decoder cannot use it.
    """
    return _kl_per_dimension_of(model, encode_dataset(model, data, batch_size))


def _kl_per_dimension_of(model: Disentangler, codes: Codes) -> Tensor:
    """:func:`kl_per_dimension` of codes already encoded."""
    return losses.kl_normal_standard_per_dimension(*_posterior_of(model, codes)).mean(0)


def _posterior(model: Disentangler, data: LabelledData, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Means and log-variances of ``q(z|x)`` for every input of ``data``, as CPU tensors."""
    return _posterior_of(model, encode_dataset(model, data, batch_size))


def _posterior_of(model: Disentangler, codes: Codes) -> tuple[Tensor, Tensor]:
    """Means and log-variances of ``q(z|x)`` in codes already encoded."""
    if codes.unspecified_logvar is None:
        raise ValueError(f"{model.name}'s unspecified code is deterministic: it has no posterior over z")
    return codes.unspecified, codes.unspecified_logvar


def where_z_leaks(
    model: Disentangler, train: LabelledData, test: LabelledData, active_nats: float = 0.5, seed: int = 0
) -> dict[str, ProbeResult | int]:
    """The label probe of ``z`` read four ways, to find where a leak sits.

    ``mean`` is Table 1's probe (the posterior mean); ``sample`` reads one draw ``z ~ q(z|x)``, what
    the decoder sees; ``active`` and ``collapsed`` read the mean restricted to the dimensions whose
    KL (as in :func:`kl_per_dimension`, on ``test``) is above or below ``active_nats``. Also returns
    the number of active dimensions. A label read from ``collapsed`` dimensions is carried in
    directions the decoder cannot use, which the probe's standardisation magnifies.
    """
    generator = torch.Generator().manual_seed(seed)
    posterior = {"train": _posterior(model, train), "test": _posterior(model, test)}
    features = {}
    for split, (mu, logvar) in posterior.items():
        features[split] = {"mean": mu, "sample": mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator)}
    active = losses.kl_normal_standard_per_dimension(*posterior["test"]).mean(0) > active_nats
    for split in features:
        features[split]["active"] = features[split]["mean"][:, active]
        features[split]["collapsed"] = features[split]["mean"][:, ~active]
    y_train, y_test = train.labels.cpu(), test.labels.cpu()
    out: dict[str, ProbeResult | int] = {"active_dimensions": int(active.sum())}
    for view in ("mean", "sample", "active", "collapsed"):
        if features["train"][view].shape[1]:
            out[view] = probe(features["train"][view], y_train, features["test"][view], y_test, seed)
    return out


def named_codes(codes: Codes) -> list[tuple[str, Tensor, Tensor | None]]:
    """``[(name, code, log-variance or None)]`` for ``s`` and ``z``, leaving out a code the model lacks."""
    pairs = ((CODES[0], codes.specified, codes.specified_logvar), (CODES[1], codes.unspecified, codes.unspecified_logvar))
    return [(name, code, logvar) for name, code, logvar in pairs if code is not None]


def code_views(codes: Codes, generator: torch.Generator) -> dict[str, dict[str, Tensor]]:
    """Each code's readings: ``{"s": {"mean": ...[, "sample": ...]}, "z": {...}}``. ``mean`` is the
    code itself (the posterior mean of a Gaussian code); ``sample`` one draw of ``q(.|x)``, for codes
    with a log-variance (a deterministic code has no sample)."""
    out = {}
    for name, code, logvar in named_codes(codes):
        out[name] = {"mean": code}
        if logvar is not None:
            out[name]["sample"] = code + (0.5 * logvar).exp() * torch.randn(code.shape, generator=generator)
    return out


def leak_report(model: Disentangler, train: LabelledData, test: LabelledData, seed: int = 0) -> dict[str, float]:
    """How much of the label each code holds, and what it still carries: the book's leak protocol.

    Probes (:func:`probe`, MLP and linear) fitted afresh on the codes of ``train`` and tested on those
    of ``test``, for each code and each reading of it (:func:`code_views`: ``mean``, and ``sample``
    where the code is Gaussian), as accuracies ``{code}_{kind}_{view}`` (e.g. ``z_mlp_mean``); the
    ``chance_accuracy`` of the majority class; each Gaussian code's KL to ``N(0, I)`` in nats,
    ``{code}_kl_nats``, on ``test``; and the :func:`swap_ratio` of ``z`` on ``test`` where the model
    has both codes.
    """
    generator = torch.Generator().manual_seed(seed)
    encoded = {"train": encode_dataset(model, train), "test": encode_dataset(model, test)}
    views = {split: code_views(codes, generator) for split, codes in encoded.items()}
    y_train, y_test = train.labels.cpu(), test.labels.cpu()
    out = {"chance_accuracy": float((y_test == y_train.bincount().argmax()).float().mean())}
    for code, readings in views["train"].items():
        for view, features in readings.items():
            for kind in PROBES:
                result = probe(features, y_train, views["test"][code][view], y_test, seed, kind)
                out[f"{code}_{kind}_{view}"] = 1.0 - result.test_error
    for code, mu, logvar in named_codes(encoded["test"]):
        if logvar is not None:
            out[f"{code}_kl_nats"] = float(losses.kl_normal_standard_per_dimension(mu, logvar).mean(0).sum())
    if encoded["test"].specified is not None:
        out["swap_ratio"] = swap_ratio(model, test, seed)
    return out


@torch.no_grad()
def swap_ratio(
    model: Disentangler, data: ImageDataset, seed: int = 0, batch_size: int = 500, swapped: str = "unspecified",
    codes: Codes | None = None,
) -> float:
    """Mean squared error of ``Dec(s_x, z_other)`` over that of ``Dec(s_x, z_x)``.

    ``z_other`` is the posterior mean of another image of the same class (images alone in their
    class are left out). A ratio near 1 means the
    decoder ignores ``z`` (the degenerate solution of Sec. 4.1 turned around: ``s`` took
    everything); a large ratio means ``z`` carries the image's style. With ``swapped="specified"``
    the specified code is the one taken from the other image and ``z`` is kept (Ruiz et al.'s
    target code ``e``, which carries the style where the class is the digit). ``codes``: those of
    ``data`` (:func:`encode_dataset`), when they are at hand.
    """
    if swapped not in ("specified", "unspecified"):
        raise ValueError(f"swapped is 'specified' or 'unspecified' (the code taken from another image), got {swapped!r}")
    codes = encode_dataset(model, data, batch_size) if codes is None else codes
    if codes.specified is None:
        raise ValueError(f"{model.name} has no specified code: there is no second code to keep while swapping one")
    index = samplers.ClassIndex(data.labels.cpu())
    kept = index.has_partner().nonzero().squeeze(1)
    if len(kept) == 0:
        raise ValueError("swap_ratio needs at least one class with two or more images in the data")
    partners = index.same_class_partners(kept, torch.Generator().manual_seed(seed))
    own, changed = 0.0, 0.0
    with inference(model):
        for i in range(0, len(kept), batch_size):
            rows, other = kept[i : i + batch_size], partners[i : i + batch_size]
            x = data.inputs[rows].to(model.device)
            s, z = codes.specified[rows], codes.unspecified[rows]
            s_new, z_new = (codes.specified[other], z) if swapped == "specified" else (s, codes.unspecified[other])
            own += (model.decode(s.to(model.device), z.to(model.device)).float() - x).pow(2).sum().item()
            changed += (model.decode(s_new.to(model.device), z_new.to(model.device)).float() - x).pow(2).sum().item()
    return changed / own


def quick_metrics(model: Disentangler, data: ImageDataset, size: int = 2_000, seed: int = 0) -> dict[str, float]:
    """Table-1 style numbers from a subsample, fast enough for the training loop.

    The first ``size`` images are split into even and odd positions, so that both halves hold
    every class even when the data is sorted by class; the probes train on one half and are tested
    on the other. Returns label accuracies from ``s`` and from ``z``'s mean (and from a sample of
    ``z``, ``z_sample_accuracy``, where ``z`` is Gaussian), the chance accuracy, the KL of ``q(z|x)``
    in nats and the swap ratio: *quick* probes, which under-read a probe fitted on 10,000 codes.
    """
    n = min(size, len(data))
    data = data.subset(slice(0, n))
    codes = encode_dataset(model, data)  # once: the probes, the KL and the swap read the same codes
    halves = (Codes(*(None if c is None else c[start::2] for c in codes)) for start in (0, 1))
    generator = torch.Generator().manual_seed(seed)
    fit_views, test_views = (code_views(half, generator) for half in halves)
    y_fit, y_test = data.labels[0::2].cpu(), data.labels[1::2].cpu()
    out = {f"{code}_accuracy": 1.0 - probe(fit_views[code]["mean"], y_fit, test_views[code]["mean"], y_test, seed).test_error
           for code in fit_views}
    if "sample" in fit_views.get("z", {}):
        out["z_sample_accuracy"] = 1.0 - probe(fit_views["z"]["sample"], y_fit, test_views["z"]["sample"], y_test, seed).test_error
    out["chance_accuracy"] = float((y_test == y_fit.bincount().argmax()).double().mean())
    out["kl_nats"] = float(_kl_per_dimension_of(model, codes).sum())
    out["swap_ratio"] = swap_ratio(model, data, seed, codes=codes)
    return out


def quick_regression(model: Disentangler, data: LabelledData, size: int = 2_000) -> dict[str, float]:
    """The mean absolute error of :func:`regress_codes` from each code, on a subsample split into
    even and odd positions (fit on one half, tested on the other), as ``{code}_factor_mae``."""
    n = min(size, len(data))
    results = regress_codes(model, data.subset(slice(0, n, 2)), data.subset(slice(1, n, 2)))
    return {f"{code}_factor_mae": errors["mean"] for code, errors in results.items()}


def held_out(model: Model, data: LabelledData) -> dict[str, float]:
    """What the training loop records at each evaluation: the model's own held-out losses
    (``model.evaluate``); for a two-code model, :func:`quick_metrics` when the data holds more
    than one class, and :func:`quick_regression` when its factors are real numbers."""
    metrics = model.evaluate(data)
    if not isinstance(model, Disentangler):
        return metrics
    if model.specified_dim > 0 and len(data.labels.unique()) > 1:
        metrics.update(quick_metrics(model, data))
    if data.real_factors:
        metrics.update(quick_regression(model, data))
    return metrics
