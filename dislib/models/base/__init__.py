"""The interface every model of the book implements, its budgets, and its checkpoints.

A model owns its networks *and* its optimizers, so that ``train_step`` can read like the
paper's algorithm box (GANs alternate between players inside one step). The training loop
(:func:`dislib.train.fit`) only samples batches, calls ``train_step`` and keeps the books.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from dislib import losses
from dislib.data.base import ImageDataset, LabelledData, PointDataset, check_pixels

MODELS: dict[str, type["Model"]] = {}


def register(cls: type["Model"]) -> type["Model"]:
    """Class decorator: make a model reachable by its ``name`` (CLI, checkpoints)."""
    MODELS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Budget:
    """How long to train: a number of optimisation steps on batches of a given size.

    ``train_size`` keeps only the first images of the training set (smoke runs); ``eval_size``
    caps the test images used by the periodic evaluation. With ``seconds``, training also stops
    once it has trained that many seconds (the steps and checkpoints of every session of the run
    counted, the periodic evaluations not): a wall-clock budget, for comparing models of different costs at one
    time (the step it reached is in ``metrics.json``; on another machine it reaches another).
    """

    steps: int
    batch_size: int
    eval_every: int
    train_size: int | None = None
    eval_size: int = 10_000
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError(f"a budget needs steps, batch_size and eval_every >= 1, got {self.steps}, "
                             f"{self.batch_size}, {self.eval_every}")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError(f"a wall-clock budget needs seconds > 0, got {self.seconds}")


COMPARISON_BUDGETS = {
    "smoke": Budget(steps=30, batch_size=32, eval_every=15, train_size=1_024, eval_size=400),
    "full": Budget(steps=2_000, batch_size=96, eval_every=500, eval_size=2_000),
}
"""The budgets of Zheng & Sun's model (``Zheng.BUDGETS``), which the baselines it is compared with
(cVAE, cVAE-GAN, cGAN) share, so that each sees as many images: 2000 steps of 96 images in full."""

COMPARISON_NETWORKS = dict(widths=(16, 32, 64, 128), hidden_width=256, discriminator_widths=(32, 64, 128))
"""The networks of Zheng & Sun's ``mnist`` and ``fashion-mnist`` presets, which their baselines
share: the paper's widths halved or less, so that the full budget trains in about 15 minutes on
one CPU thread."""

TOY_NETWORKS = dict(widths=(32, 64, 64), discriminator_widths=(32, 64, 64), discriminator_hidden=0, pixel_scale=0.1)
"""The networks of the three-moons toy (Zheng & Sun, App. B.1), theirs and cVAE-GAN's: MLPs of 32,
64 and 64 hidden units (no fc 512 in ``D``), and a reconstruction std of 0.1, the noise of the data (ours)."""


_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def check_types(config: Any) -> None:
    """Raise a TypeError naming the field for a setting of the wrong kind: a whole number, a number, a
    string, a flag, a tuple (a list, as JSON holds it, counts), or ``None`` where the field allows it."""
    for f in dataclasses.fields(config):
        kind, value = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)), getattr(config, f.name)
        optional = kind.endswith(" | None")
        kind = kind.removesuffix(" | None")
        if value is None and optional:
            continue
        if kind.startswith("tuple"):
            ok, wanted = isinstance(value, (tuple, list)), "a tuple"
        elif kind in _KINDS:
            ok = isinstance(value, _KINDS[kind]) and (kind == "bool" or not isinstance(value, bool))
            wanted = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "True or False"}[kind]
        else:
            continue
        if not ok:
            raise TypeError(f"{type(config).__name__}.{f.name} takes {wanted}{' or None' if optional else ''}, "
                            f"got {value!r} ({type(value).__name__})")


@dataclass(frozen=True)
class ImageConfig:
    """Fields every model config starts with: the shape of the images and the class count.

    Every config's own checks (its ``__post_init__``) run after :func:`check_types`, so that a
    setting of the wrong kind is named before a comparison on it fails.
    """

    image_channels: int = 1
    image_size: int = 28
    num_classes: int = 10

    def __post_init__(self) -> None:
        check_types(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is None:
            return

        @functools.wraps(own)
        def checked(self: Any) -> None:
            check_types(self)
            own(self)

        cls.__post_init__ = checked


def reads_points(config: Any) -> bool:
    """Whether a model with this configuration reads points (its ``point_dim > 0``) instead of images."""
    return getattr(config, "point_dim", 0) > 0


class Codes(NamedTuple):
    """What ``encode`` returns: the specified code, the unspecified code and their log-variances.

    ``specified`` is the part tied to the label (or the reference set), ``unspecified`` the rest;
    each is the posterior mean where the code is stochastic, with its log-variance in
    ``specified_logvar`` / ``unspecified_logvar`` (``None`` for a deterministic code or a model
    without that code). Read the fields by name: ``codes.specified``, never ``codes[0]``.
    """

    specified: Tensor | None
    unspecified: Tensor
    unspecified_logvar: Tensor | None = None
    specified_logvar: Tensor | None = None


class Model(nn.Module):
    """Base class: configuration, optimizers, batches, a training step and an evaluation.

    Subclasses set ``name``, ``Config`` and ``BUDGETS`` and implement :meth:`train_step` and
    :meth:`evaluate`. Every model counts its training steps in the buffer ``steps_done`` (kept
    by checkpoints), for schedules such as a learning-rate drop or a pre-training stage. Each
    subclass's ``train_step`` first checks that its batch is the dict :meth:`make_batch` returns
    (:func:`check_batch_type`), so that no model meets a bare tensor.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    BUDGETS: ClassVar[dict[str, Budget]]
    PRESETS: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(config).__name__}")
        check_sizes(config)
        self.config = config
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.autocast_dtype: torch.dtype | None = None
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make a subclass's own ``train_step`` check its batch first (:func:`check_batch_type`)."""
        super().__init_subclass__(**kwargs)
        if "train_step" in vars(cls):
            cls.train_step = _checking_batch(vars(cls)["train_step"])

    # construction -----------------------------------------------------------------------
    @classmethod
    def for_dataset(cls, data: LabelledData, preset: str | None = None, **overrides: Any) -> "Model":
        """Build the model for ``data``: the named preset (default: the dataset's own, if any),
        with the image shape and class count taken from the data, then ``overrides``. A model whose
        configuration has a ``point_dim`` setting also reads points (a :class:`PointDataset`)."""
        if not isinstance(data, LabelledData):
            raise TypeError(f"{cls.__name__}.for_dataset builds the model for a dataset of dislib.data, got "
                            f"{type(data).__name__}: load one with dislib.data.load(name, 'train')")
        base = cls.PRESETS.get(preset or data.name, cls.Config())
        if preset is not None and preset not in cls.PRESETS:
            raise KeyError(f"{cls.name} has no preset {preset!r}; presets: {sorted(cls.PRESETS)}")
        cls.check_settings(overrides)
        if isinstance(data, PointDataset) and hasattr(base, "point_dim"):
            shape = dict(point_dim=data.point_dim, num_classes=data.num_classes)
            return cls(dataclasses.replace(base, **{**shape, **overrides}))
        if not isinstance(data, ImageDataset):
            raise TypeError(_reads_images(cls.name, data))
        channels, height, width = data.image_shape
        if height != width:
            raise ValueError(f"{cls.name} needs square images, got {height}x{width}")
        shape = dict(image_channels=channels, image_size=height, num_classes=data.num_classes)
        return cls(dataclasses.replace(base, **{**shape, **overrides}))

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], where: str = "settings") -> None:
        """Raise a ValueError naming any key of ``settings`` that is no field of the model's
        configuration, and the fields there are (instead of the dataclass's TypeError)."""
        known = [f.name for f in dataclasses.fields(cls.Config)]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ValueError(f"{cls.name} has no setting {', '.join(map(repr, unknown))} (in its {where}); "
                             f"its settings are: {', '.join(known)}")

    @classmethod
    def budget(cls, name: str) -> Budget:
        """The named budget (``"smoke"`` or ``"full"``) of this model."""
        return cls.BUDGETS[name]

    # training ---------------------------------------------------------------------------
    def make_batch(self, data: LabelledData, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        """Turn the indices the loop drew into a batch; pair/triplet models draw partners here."""
        self.check_images(data.inputs[:1])
        return {"x": data.inputs[indices], "y": data.labels[indices]}

    def autocast(self) -> AbstractContextManager:
        """Mixed precision for a forward pass when ``autocast_dtype`` is set (the loop sets
        bfloat16 on CUDA); backward passes and optimizer steps run outside it, as PyTorch advises."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def optimizer_step(self, optimizer: str, loss: Tensor) -> None:
        """Back-propagate ``loss`` and step the named optimizer (gradients zeroed first)."""
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def require(self, batch: dict[str, Tensor], *keys: str) -> tuple[Tensor, ...]:
        """``batch[key]`` for each of ``keys``, after a clear error naming the keys a batch lacks."""
        missing = [k for k in keys if k not in batch]
        if missing:
            raise ValueError(f"this {self.name} batch has no {', '.join(map(repr, missing))} (got keys {sorted(batch)}): "
                             "build batches with model.make_batch(data, indices, generator)")
        return tuple(batch[k] for k in keys)

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One optimisation step on ``batch``, ending with ``steps_done += 1``.

        Returns each loss term as a detached 0-d tensor on the model's device: the loop brings
        them to the host every few steps, not after every step (each transfer waits for a GPU).
        """
        raise NotImplementedError

    @property
    def generates_classes(self) -> bool:
        """Whether :meth:`sample_classes` works: the model generates images of a class it is told
        (here: a configuration with ``conditional`` set, the conditional VAE and GAN)."""
        return bool(getattr(self.config, "conditional", False))

    def sample_classes(self, labels: Tensor) -> Tensor:
        """One generated image (or point) per label, of that class: what the inception score, the
        diversity and the sample grids of the Zheng & Sun chapter ask of every label-conditional
        generator. Here ``sample(len(labels), labels)``, the conditional VAE's and GAN's signature
        (Zheng & Sun's model and cVAE-GAN name their own ``sample(labels)``); models that cannot
        generate a given class raise a clear error."""
        if not self.generates_classes:
            raise ValueError(f"{self.name} does not generate images of a given class; use a label-conditional model "
                             "(cvae, cgan, cvaegan, zheng)")
        return self.sample(len(labels), labels)

    @staticmethod
    def report(terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """The batch means of ``terms``, detached: what :meth:`train_step` returns."""
        return {k: v.detach().float().mean() for k, v in terms.items()}

    @torch.no_grad()
    def evaluate(self, data: LabelledData) -> dict[str, float]:
        """Metrics on held-out data (called in eval mode by the loop)."""
        raise NotImplementedError

    def diagnose(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Numbers about the training itself on the last training ``batch``, which the loop records
        beside :meth:`evaluate`'s at every evaluation (in train mode, before it; no weight changes).
        None by default; the reference-based models give each objective term's :func:`gradient_shares`."""
        return {}

    # validation -------------------------------------------------------------------------
    def _check_values(self, x: Tensor) -> bool:
        """Whether to check values as well as shapes: reading a value back waits for a GPU, so
        training on a GPU skips it (its dataset was checked when it was built)."""
        return x.device.type == "cpu" or not self.training

    def check_data(self, data: LabelledData) -> None:
        """Raise a clear error unless ``data`` holds what this model reads: images of its shape, or
        points of its dimension (its first input is checked, as :meth:`check_images` does)."""
        if isinstance(data, PointDataset) and not hasattr(self.config, "point_dim"):
            raise TypeError(_reads_images(self.name, data))
        self.check_images(data.inputs[:1])

    def check_images(self, x: Tensor) -> None:
        """Raise a clear error if ``x`` is not a batch of float32 images in ``[0, 1]`` this model was
        built for (or of finite float32 points, for a model that reads points)."""
        if reads_points(self.config):
            d = self.config.point_dim
            if x.ndim != 2 or x.shape[1] != d or x.dtype != torch.float32:
                raise ValueError(f"{self.name} expects float32 points of shape [N, {d}], got {x.dtype} {tuple(x.shape)}; "
                                 f"build the model with {type(self).__name__}.for_dataset(data) to match your data")
            return
        c, s = self.config.image_channels, self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (c, s, s):
            raise ValueError(
                f"{self.name} expects images of shape [N, {c}, {s}, {s}], got {tuple(x.shape)}; "
                f"build the model with {type(self).__name__}.for_dataset(data) to match your data"
            )
        if x.dtype != torch.float32 or self._check_values(x):
            check_pixels(f"{self.name} input", x)

    def check_labels(self, y: Tensor) -> None:
        """Raise a clear error if labels are not integers in ``[0, num_classes)``."""
        k = self.config.num_classes
        if y.dtype != torch.long or self._check_values(y) and y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
            lo, hi = (int(y.min()), int(y.max())) if y.numel() else (0, 0)
            raise ValueError(f"{self.name} expects int64 labels in [0, {k}), got {y.dtype} in [{lo}, {hi}]")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # checkpoints ------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """Everything needed to rebuild this model and continue training it."""
        return {
            "model": self.name,
            "config": dataclasses.asdict(self.config),
            "weights": self.state_dict(),
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
        }

    def restore(self, checkpoint: dict[str, Any]) -> None:
        """Load weights and optimizer states, after checking the checkpoint is one of ours."""
        if checkpoint.get("model") != self.name:
            raise ValueError(
                f"this checkpoint holds a {checkpoint.get('model')!r} model, not {self.name!r}: "
                f"load it with dislib.load_model(run_dir), or train a {self.name} first"
            )
        mine = dataclasses.asdict(self.config)
        # a setting added after the checkpoint was written counts as its default value
        defaults = {f.name: f.default for f in dataclasses.fields(self.config)}
        saved = {**{k: v for k, v in defaults.items() if k not in checkpoint["config"]}, **checkpoint["config"]}
        if saved != mine:
            diff = {k: (saved.get(k, "absent"), mine.get(k, "absent")) for k in {**saved, **mine} if saved.get(k) != mine.get(k)}
            raise ValueError(
                f"this checkpoint was trained with another configuration (checkpoint, model): {diff}; "
                "build the model from the checkpoint's config (dislib.load_model), or train anew with "
                "--restart (resume=False) or into another --out"
            )
        try:
            self.load_state_dict(checkpoint["weights"])
            for k, state in checkpoint["optimizers"].items():
                self.optimizers[k].load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as error:
            first = str(error).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:3])
            raise ValueError(f"this checkpoint's weights do not fit a {self.name} of its own configuration ({detail}): "
                             "the file was damaged or edited; train anew with --restart (resume=False)") from None

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> "Model":
        """Rebuild a model (of any registered class) from :meth:`checkpoint`'s output."""
        name = checkpoint.get("model")
        if name not in MODELS:
            raise ValueError(f"unknown model {name!r} in checkpoint; known models: {sorted(MODELS)}")
        model_cls = MODELS[name]
        model_cls.check_settings(checkpoint["config"], where="checkpoint's configuration: written by another version of dislib?")
        model = model_cls(model_cls.Config(**checkpoint["config"]))
        model.restore(checkpoint)
        return model


class Disentangler(Model):
    """A model with two codes: ``encode`` splits an image, ``decode`` puts any pair back.

    Swap grids, interpolations, sliders and probes use only these two methods.
    """

    specified_dim: int
    unspecified_dim: int
    specified_symbol: ClassVar[str] = "s"
    """The paper's letter for the specified code (Ruiz et al.: ``e``), for reports."""

    @property
    def label_is_code(self) -> bool:
        """True for a model whose specified code is the label itself (the conditional VAE): its
        ``encode(x, labels)`` takes the labels as an optional argument, which the generic probes,
        grids and sliders pass. Every other model encodes from images alone."""
        return False

    def encode(self, x: Tensor) -> Codes:
        """Split images into codes."""
        raise NotImplementedError

    def decoder_output(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        """The decoder's pre-activation output for ``[specified, unspecified]`` (Bernoulli logits,
        or the mean image before its sigmoid): the decoder of every model of the book is one
        network ``self.decoder`` fed with the two codes side by side."""
        self.check_codes(specified, unspecified)
        return self.decoder(unspecified if specified is None else torch.cat([specified, unspecified], 1))

    def decode(self, specified: Tensor | None, unspecified: Tensor) -> Tensor:
        """Images in ``[0, 1]`` from a specified and an unspecified code (points: the decoder's output)."""
        output = self.decoder_output(specified, unspecified)
        return output if reads_points(self.config) else losses.mean_image(output, getattr(self.config, "likelihood", "bernoulli"))

    def reconstruction_nll(self, output: Tensor, x: Tensor) -> Tensor:
        """``-log p(x | codes)`` per input for the decoder's pre-activation ``output``: the
        configured ``likelihood`` with ``pixel_scale`` for images, a Gaussian of std ``pixel_scale``
        around the output itself for points."""
        c = self.config
        if reads_points(c):
            return losses.gaussian_nll(output, x, c.pixel_scale)
        return losses.image_nll(output, x, c.likelihood, c.pixel_scale)

    def check_codes(self, specified: Tensor | None, unspecified: Tensor) -> None:
        """Raise a clear error if the codes given to ``decode`` have the wrong size or are not floating
        point; warn (on the CPU, where reading a value costs nothing) if they hold NaN or infinity."""
        for what, code, dim in (("specified", specified, self.specified_dim), ("unspecified", unspecified, self.unspecified_dim)):
            if dim == 0:
                if code is not None:
                    raise ValueError(f"{self.name} has no {what} code: pass None")
            elif code is None or code.ndim != 2 or code.shape[1] != dim:
                got = None if code is None else tuple(code.shape)
                raise ValueError(f"{self.name}.decode expects a {what} code of shape [N, {dim}], got {got}")
            elif not code.is_floating_point() or code.dtype == torch.float64:  # bfloat16 comes from autocast
                raise ValueError(f"{self.name}.decode expects a float32 {what} code, got {code.dtype}: "
                                 "convert it with .float()")
            elif code.device.type == "cpu" and not bool(code.isfinite().all()):
                warnings.warn(f"{self.name}.decode: the {what} code holds NaN or infinite values; "
                              "the images decoded from them are meaningless", stacklevel=3)
        if specified is not None and unspecified is not None and len(specified) != len(unspecified):
            raise ValueError(f"{self.name}.decode got {len(specified)} specified codes and {len(unspecified)} "
                             "unspecified ones: pass one of each per image")


def _reads_images(name: str, data: LabelledData) -> str:
    """The refusal of a model of images (named ``name``) to learn from ``data``, which holds something else."""
    return (f"{name} reads images, but dataset {data.name!r} holds {type(data).__name__}: "
            f"give {name} an image dataset, or {data.name!r} a model made for its kind of data")


def check_batch_type(model: Model, batch: object) -> None:
    """Raise a TypeError unless ``batch`` is a dict of tensors, as ``model.make_batch`` returns: a bare
    tensor of images, a tuple of images and labels, or a dict holding other values is named with the fix."""
    if isinstance(batch, Mapping):
        others = [f"{k!r}: {type(v).__name__}" for k, v in batch.items() if not isinstance(v, Tensor)]
        if not others:
            return
        got = f"a dict holding {', '.join(others)}"
    elif isinstance(batch, Tensor):
        got = f"a tensor of shape {tuple(batch.shape)}"
    else:
        got = f"a {type(batch).__name__}"
    raise TypeError(f"{model.name}.train_step takes a batch as model.make_batch(data, indices, generator) returns it, "
                    f"a dict of tensors, got {got}: build the batch with make_batch")


def _checking_batch(train_step: Callable[[Model, dict[str, Tensor]], dict[str, Tensor]]) -> Callable:
    """``train_step`` after :func:`check_batch_type` (every subclass's, by :meth:`Model.__init_subclass__`)."""

    @functools.wraps(train_step)
    def checked(model: Model, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        check_batch_type(model, batch)
        return train_step(model, batch)

    return checked


def check_sizes(config: Any) -> None:
    """Raise a clear error for a setting no model can train with: a code of fewer than one dimension
    (fields ending in ``_dim``; ``point_dim`` is 0 for images and ``specified_dim`` 0 for a model of
    one code), empty or non-positive ``widths``, a learning rate that is not a positive finite
    number, and a negative or infinite loss weight or ``beta`` (:func:`check_weights`)."""
    for name, value in vars(config).items():
        least = 0 if name in ("point_dim", "specified_dim") else 1
        if name.endswith("_dim") and not (isinstance(value, int) and value >= least):
            raise ValueError(f"{name} (the size of a code) must be a whole number >= {least}, got {value!r}")
        if name == "widths" and not (value and all(isinstance(w, int) and w >= 1 for w in value)):
            raise ValueError(f"widths (the channels of each convolution) must be whole numbers >= 1, one per layer, "
                             f"like [32, 64, 128], got {list(value) if isinstance(value, tuple) else value!r}")
        if name == "lr" and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"lr (Adam's learning rate) must be > 0 and finite, like lr=0.0005, got {value}")
    check_weights(config, also=("beta",) if hasattr(config, "beta") else ())


def check_weights(config: Any, also: tuple[str, ...] = ()) -> None:
    """Raise a clear error for a negative loss weight: every field of ``config`` ending in
    ``_weight``, and the fields named in ``also`` (``beta``, ``lambda_od``)."""
    for name, value in vars(config).items():
        if (name.endswith("_weight") or name in also) and not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be >= 0 and finite (a weight of a term to minimise), got {value}")


def gradient_shares(parts: dict[str, Tensor], params: list[nn.Parameter]) -> dict[str, float]:
    r"""How much each part of an objective pulls on ``params``: the norm of each part's gradient over
    the sum of the norms, ``{"gradient_share_{name}": share}`` (the shares add up to 1).

    .. math::
        \text{share}_k = \frac{\lVert \nabla_\theta L_k \rVert_2}{\sum_j \lVert \nabla_\theta L_j \rVert_2}

    A part whose share is near 0 does not move training, whatever its value.
    """
    norms = {}
    for name, part in parts.items():
        grads = torch.autograd.grad(part, params, retain_graph=True, allow_unused=True)
        norms[name] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
    total = sum(norms.values())
    if not total > 0:
        raise ValueError(f"no part of the objective has a gradient on these parameters ({norms}): nothing to share")
    return {f"gradient_share_{name}": norm / total for name, norm in norms.items()}
