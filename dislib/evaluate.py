"""How well a two-code model separates the label from the rest, for any :class:`Disentangler`.

The quantitative test of Mathieu et al. (2016, Table 1): train a small classifier (two layers,
256 hidden units, early stopping) to predict the label (or each ground-truth factor) from the
specified code ``s`` and, separately, from the mean of the unspecified code ``z``. A good split
predicts the label well from ``s`` and no better than chance from ``z``. Three more numbers say
whether ``z`` still carries the rest: its KL to the prior in nats, and the *swap ratio*, how much
worse an image is rebuilt when its ``z`` is replaced by that of another image of the same class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from dislib import losses
from dislib.data import samplers
from dislib.data.base import ImageDataset

if TYPE_CHECKING:
    from dislib.models.base import Disentangler

CODES = ("s", "z")


@dataclass(frozen=True)
class ProbeResult:
    """Errors (fractions in ``[0, 1]``) of one probe; ``chance_error`` predicts the majority class."""

    train_error: float
    test_error: float
    chance_error: float


@torch.no_grad()
def encode_dataset(model: "Disentangler", data: ImageDataset, batch_size: int = 500) -> tuple[Tensor | None, Tensor]:
    """Specified codes and unspecified means of every image of ``data``, as CPU tensors.

    The specified code is ``None`` for a model without one.
    """
    was_training = model.training
    model.eval()
    specified, unspecified = [], []
    for i in range(0, len(data), batch_size):
        codes = model.encode(data.images[i : i + batch_size].to(model.device))
        unspecified.append(codes.unspecified.float().cpu())
        if codes.specified is not None:
            specified.append(codes.specified.float().cpu())
    model.train(was_training)
    return (torch.cat(specified) if specified else None), torch.cat(unspecified)


def probe(
    train_features: Tensor,
    train_targets: Tensor,
    test_features: Tensor,
    test_targets: Tensor,
    seed: int = 0,
) -> ProbeResult:
    """Fit a 256-hidden-unit MLP with early stopping (10% validation split) and report its errors.

    Features are standardised with the training set's mean and variance first.
    """
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
    clf = MLPClassifier(hidden_layer_sizes=(256,), early_stopping=True, max_iter=200, random_state=seed)
    clf.fit(x_train, y_train)
    majority = np.bincount(y_train).argmax()
    return ProbeResult(
        train_error=float((clf.predict(x_train) != y_train).mean()),
        test_error=float((clf.predict(x_test) != y_test).mean()),
        chance_error=float((y_test != majority).mean()),
    )


def targets(data: ImageDataset) -> dict[str, Tensor]:
    """What the probes predict: the label, then each ground-truth factor column by name."""
    out = {"label": data.labels.cpu()}
    if data.factors is not None:
        for j, name in enumerate(data.factor_names):
            out[name] = data.factors[:, j].cpu()
    return out


def probe_codes(
    model: "Disentangler",
    train: ImageDataset,
    test: ImageDataset,
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
        raise KeyError(f"no target named {sorted(unknown)}; this dataset has {sorted(train_targets)}")
    codes_train = dict(zip(CODES, encode_dataset(model, train, batch_size)))
    codes_test = dict(zip(CODES, encode_dataset(model, test, batch_size)))
    chosen = names or tuple(train_targets)
    return {
        code: {t: probe(codes_train[code], train_targets[t], codes_test[code], test_targets[t], seed) for t in chosen}
        for code in CODES
        if codes_train[code] is not None
    }


def mean_error(results: dict[str, ProbeResult], names: tuple[str, ...] | list[str]) -> ProbeResult:
    """The errors averaged over several targets (Table 1's Sprites column averages the attributes)."""
    if not names:
        raise ValueError("mean_error needs at least one target name")
    picked = [results[n] for n in names]
    return ProbeResult(*(float(np.mean([getattr(r, f) for r in picked])) for f in ProbeResult.__dataclass_fields__))


def kl_nats(model: "Disentangler", data: ImageDataset, batch_size: int = 500) -> float:
    """Mean ``KL(q(z|x) || N(0, I))`` over the images of ``data``, in nats."""
    return float(kl_per_dimension(model, data, batch_size).sum())


@torch.no_grad()
def kl_per_dimension(model: "Disentangler", data: ImageDataset, batch_size: int = 500) -> Tensor:
    """Mean ``KL(q(z_j|x) || N(0, 1))`` of each dimension ``j`` of the unspecified code, in nats.

    A dimension whose KL is near zero is *collapsed*: its posterior is the prior whatever the
    image, so a sample of it is noise and the decoder cannot use it.
    """
    mu, logvar = _posterior(model, data, batch_size)
    return losses.kl_normal_standard_per_dimension(mu, logvar).mean(0)


@torch.no_grad()
def _posterior(model: "Disentangler", data: ImageDataset, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Means and log-variances of ``q(z|x)`` for every image of ``data``, as CPU tensors."""
    mean, logvar = [], []
    for i in range(0, len(data), batch_size):
        codes = model.encode(data.images[i : i + batch_size].to(model.device))
        if codes.unspecified_logvar is None:
            raise ValueError(f"{model.name}'s unspecified code is deterministic: it has no posterior over z")
        mean.append(codes.unspecified.float().cpu())
        logvar.append(codes.unspecified_logvar.float().cpu())
    return torch.cat(mean), torch.cat(logvar)


@torch.no_grad()
def where_z_leaks(
    model: "Disentangler", train: ImageDataset, test: ImageDataset, active_nats: float = 0.5, seed: int = 0
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


@torch.no_grad()
def swap_ratio(model: "Disentangler", data: ImageDataset, seed: int = 0, batch_size: int = 500) -> float:
    """Mean squared error of ``Dec(s_x, z_other)`` over that of ``Dec(s_x, z_x)``.

    ``z_other`` is the posterior mean of another image of the same class (images alone in their
    class are left out). A ratio near 1 means the
    decoder ignores ``z`` (the degenerate solution of Sec. 4.1 turned around: ``s`` took
    everything); a large ratio means ``z`` carries the image's style.
    """
    specified, unspecified = encode_dataset(model, data, batch_size)
    if specified is None:
        raise ValueError(f"{model.name} has no specified code to keep while swapping z")
    index = samplers.ClassIndex(data.labels.cpu())
    kept = index.has_partner().nonzero().squeeze(1)
    if len(kept) == 0:
        raise ValueError("swap_ratio needs at least one class with two or more images in the data")
    partners = index.same_class_partners(kept, torch.Generator().manual_seed(seed))
    own, swapped = 0.0, 0.0
    for i in range(0, len(kept), batch_size):
        rows, other = kept[i : i + batch_size], partners[i : i + batch_size]
        x = data.images[rows].to(model.device)
        s = specified[rows].to(model.device)
        z_own = unspecified[rows].to(model.device)
        z_other = unspecified[other].to(model.device)
        own += (model.decode(s, z_own).float() - x).pow(2).sum().item()
        swapped += (model.decode(s, z_other).float() - x).pow(2).sum().item()
    return swapped / own


def quick_metrics(model: "Disentangler", data: ImageDataset, size: int = 2_000, seed: int = 0) -> dict[str, float]:
    """Table-1 style numbers from a subsample, fast enough for the training loop.

    The first ``size`` images are split into even and odd positions, so that both halves hold
    every class even when the data is sorted by class; the probes train on one half and are tested
    on the other. Returns label accuracies from ``s`` and from ``z``, the chance accuracy, the KL
    of ``q(z|x)`` in nats and the swap ratio.
    """
    n = min(size, len(data))
    first, second = data.subset(slice(0, n, 2)), data.subset(slice(1, n, 2))
    results = probe_codes(model, first, second, ("label",), seed)
    out = {f"{code}_accuracy": 1.0 - results[code]["label"].test_error for code in results}
    out["chance_accuracy"] = 1.0 - results["z"]["label"].chance_error
    out["kl_nats"] = kl_nats(model, data.subset(slice(0, n)))
    out["swap_ratio"] = swap_ratio(model, data.subset(slice(0, n)), seed)
    return out
