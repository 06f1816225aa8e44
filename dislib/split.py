"""Table 1's split for a reference-based model (Ruiz et al. 2019): what ``e`` and ``z`` each read of
the style, and what ``z`` still carries.

Ruiz et al. read the style factors from each code with linear regressions (Sec. 5.3, Table 1):
the target code ``e`` should read them well, the common code ``z`` at chance. :func:`style_split`
measures both in each factor's range units (the paper's, see :func:`dislib.evaluate.factor_ranges`)
beside the chance level, adds an MLP regression from ``z`` (a reader that a factor bent out of
linear reach does not escape), and, because a code that carries nothing also reads nothing, what
``z`` still carries: its KL in nats, the digit an MLP probe reads from it (and from ``e``), how much worse an image
is rebuilt with the ``z`` of another image of the same digit, and how much of a reference digit's
stroke the reference branch draws. :func:`style_from_latents` reads the style the same way from the
one code of an unsupervised baseline.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from dislib import evaluate, losses
from dislib.data.base import LabelledData
from dislib.models.base import Disentangler

COLOUR = ("R", "G", "B")


def regress_mlp(train_features: Tensor, train_targets: Tensor, test_features: Tensor, test_targets: Tensor,
                seed: int = 0) -> Tensor:
    """Mean absolute test error of each target column under an MLP regressor (one hidden layer of 256
    units, early stopping on 10% of the training rows), features and targets standardised with the
    training set's statistics, as :func:`dislib.evaluate.probe` does for classes. Returns ``[targets]``."""
    if len(train_features) != len(train_targets) or len(test_features) != len(test_targets):
        raise ValueError(f"features and targets differ in length: train {len(train_features)} vs {len(train_targets)}, "
                         f"test {len(test_features)} vs {len(test_targets)}")
    if len(train_features) < 20:
        raise ValueError(f"the MLP regressor needs at least 20 training rows (early stopping), got {len(train_features)}")
    features, targets = StandardScaler().fit(train_features.numpy()), StandardScaler().fit(train_targets.numpy())
    regressor = MLPRegressor(hidden_layer_sizes=(256,), early_stopping=True, max_iter=300, random_state=seed)
    with warnings.catch_warnings():  # a regressor stopped at its iteration limit is still a reading
        warnings.simplefilter("ignore", ConvergenceWarning)
        regressor.fit(features.transform(train_features.numpy()), targets.transform(train_targets.numpy()))
    predicted = targets.inverse_transform(regressor.predict(features.transform(test_features.numpy())).reshape(len(test_features), -1))
    return torch.from_numpy(np.abs(predicted - test_targets.numpy()).mean(0)).float()


def _colour(errors: dict[str, float]) -> float:
    return sum(errors[f] for f in COLOUR) / len(COLOUR)


@torch.no_grad()
def style_split(model: Disentangler, fit: LabelledData, score: LabelledData, reference_images: Tensor,
                probe_train: LabelledData, seed: int = 0) -> dict[str, float]:
    """Table 1's split of a reference-based model, and what its ``z`` still carries.

    ``fit`` and ``score`` are styled-mnist images with their factors and *digit* labels
    (:func:`dislib.data.styled.regression_sets` of the test split loaded with ``label="digit"``):
    regressions are fitted on ``fit`` and scored on ``score``. ``reference_images`` are training
    reference digits for :meth:`~dislib.models.ruiz.ReferenceVAE.reference_stroke`. The digit probes
    (the book's leak protocol) are fitted on the codes of ``probe_train``, training images with their
    digits that are not references (10,000 in the book), and tested on those of ``fit`` and ``score``
    together (the 10,000 test images).

    Returns, errors in range units (as :func:`dislib.evaluate.regress_codes` with ``in_ranges``, on
    codes encoded once for every reader):
    ``e_mae`` (Table 1's average from ``e``), ``e_colour``, ``e_scale``, ``e_width``; ``z_mae``;
    ``z_ratio`` (``z_mae`` over the chance error ``chance_mae``: 1 is a ``z`` that reads none of
    the style), ``z_colour_ratio``, ``z_scale_ratio``, ``z_width_ratio``; the same ratios from an MLP
    regressor (:func:`regress_mlp`), ``z_mlp_ratio`` and ``z_mlp_scale_ratio``; and what ``z``
    carries: ``z_kl_nats``, ``z_digit_mlp`` (test accuracy of an MLP probe reading the digit from the
    means of ``z``, beside ``digit_chance``; ``e_digit_mlp`` the same from ``e``, which should read
    little of it: the digit is the common factor), ``swap_ratio`` (:func:`dislib.evaluate.swap_ratio`,
    same-digit partners), ``reference_stroke_drawn``.
    """
    if not hasattr(model, "reference_stroke"):
        raise ValueError(f"style_split measures a reference-based model (rbvae, srbvae); {model.name} has no reference "
                         "branch: for a model with one code, read its latents with dislib.evaluate.regress_codes")
    for name, data in (("fit", fit), ("score", score), ("probe_train", probe_train)):
        if not isinstance(data, LabelledData):
            raise TypeError(f"style_split's {name} is a {type(data).__name__}, not images with factors and digits: pass "
                            "dislib.data.styled.regression_sets(dislib.data.load('styled-mnist', 'test', label='digit'))")
        if data.num_classes != 10:
            raise ValueError(f"style_split reads the digit from each code, but {name} has {data.num_classes} classes: "
                             "load the images with their digits, dislib.data.load('styled-mnist', 'test', label='digit')")
    chance = evaluate.chance_errors(fit, score, in_ranges=True)
    codes = {name: evaluate.encode_dataset(model, data) for name, data in (("fit", fit), ("score", score),
                                                                            ("probe_train", probe_train))}
    ranges = evaluate.factor_ranges(score)

    def errors(regressor, code: str) -> dict[str, float]:  # regressor's MAE from ``code``, range units, as regress_codes
        mae = regressor(getattr(codes["fit"], code), fit.factors.cpu(), getattr(codes["score"], code), score.factors.cpu()) / ranges
        return {**dict(zip(score.factor_names, mae.tolist())), "mean": float(mae.mean())}

    linear = {"s": errors(evaluate.regress, "specified"), "z": errors(evaluate.regress, "unspecified")}
    mlp = errors(lambda *sets: regress_mlp(*sets, seed=seed), "unspecified")
    ratio = {f: linear["z"][f] / chance[f] for f in score.factor_names}
    tested = torch.cat([fit.labels.cpu(), score.labels.cpu()])
    digit = {code: evaluate.probe(getattr(codes["probe_train"], code), probe_train.labels.cpu(),
                                  torch.cat([getattr(codes["fit"], code), getattr(codes["score"], code)]), tested, seed)
             for code in ("specified", "unspecified")}
    kl = losses.kl_normal_standard(codes["score"].unspecified, codes["score"].unspecified_logvar).mean()
    return {
        "e_mae": linear["s"]["mean"], "e_colour": _colour(linear["s"]), "e_scale": linear["s"]["scale"],
        "e_width": linear["s"]["width"], "z_mae": linear["z"]["mean"], "chance_mae": chance["mean"],
        "z_ratio": linear["z"]["mean"] / chance["mean"], "z_colour_ratio": _colour(ratio),
        "z_scale_ratio": ratio["scale"], "z_width_ratio": ratio["width"],
        "z_mlp_ratio": mlp["mean"] / chance["mean"],
        "z_mlp_scale_ratio": mlp["scale"] / chance["scale"],
        "z_kl_nats": float(kl), "z_digit_mlp": 1.0 - digit["unspecified"].test_error,
        "e_digit_mlp": 1.0 - digit["specified"].test_error, "digit_chance": 1.0 - digit["unspecified"].chance_error,
        "swap_ratio": evaluate.swap_ratio(model, score, seed, codes=codes["score"]),
        "reference_stroke_drawn": model.reference_stroke(reference_images.to(model.device)),
    }


@torch.no_grad()
def style_from_latents(model: Disentangler, fit: LabelledData, score: LabelledData) -> dict[str, float]:
    """Table 1's row of a model with one code, the unsupervised baselines of Sec. 5.2: linear regressions
    from the means of all its latents, fitted on ``fit`` and scored on ``score`` (styled-mnist images
    with their factors, as for :func:`style_split`), errors in range units.

    Returns ``latents_mae`` (the average over the factors), ``latents_colour``, ``latents_scale``,
    ``latents_width``, ``chance_mae`` (every factor predicted by its mean), and what the latents carry:
    ``latents_kl_nats``, their KL in nats over ``score``.
    """
    if hasattr(model, "reference_stroke"):
        raise ValueError(f"style_from_latents reads a model with one code; {model.name} has two (e and z): "
                         "measure it with style_split")
    for name, data in (("fit", fit), ("score", score)):
        if not isinstance(data, LabelledData) or not data.real_factors:
            raise TypeError(f"style_from_latents' {name} must be images with real-valued factors, got "
                            f"{getattr(data, 'name', type(data).__name__)!r}: pass "
                            "dislib.data.styled.regression_sets(dislib.data.load('styled-mnist', 'test'))")
    errors = evaluate.regress_codes(model, fit, score, in_ranges=True)["z"]
    return {"latents_mae": errors["mean"], "latents_colour": _colour(errors), "latents_scale": errors["scale"],
            "latents_width": errors["width"], "chance_mae": evaluate.chance_errors(fit, score, in_ranges=True)["mean"],
            "latents_kl_nats": evaluate.kl_nats(model, score)}
