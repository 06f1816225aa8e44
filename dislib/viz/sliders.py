"""Sliders: a panel of two sliders over pre-computed frames (self-contained HTML) or live ipywidgets,
and the panels that slide codes between two images or decode one code with every label."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from dislib.evaluate import decode_codes
from dislib.models.base import Disentangler
from dislib.viz._common import _check_image, _check_images, _lerp, _specified_codes, _to_numpy

FrameFn = Callable[[float, float], Tensor] | Callable[[Tensor, Tensor], Tensor]


def _to_pil(image: Tensor, upscale: int = 1) -> Image.Image:
    """``[C, H, W]`` in ``[0, 1]`` as an 8-bit grey or RGB image, enlarged ``upscale`` times (nearest)."""
    pixels = np.round(_to_numpy(image) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    if upscale > 1:
        picture = picture.resize((picture.width * upscale, picture.height * upscale), Image.NEAREST)
    return picture


def _png(image: Tensor, upscale: int = 1) -> bytes:
    buffer = io.BytesIO()
    _to_pil(image, upscale).save(buffer, format="PNG", compress_level=9)
    return buffer.getvalue()


@dataclass(frozen=True)
class SliderRange:
    """One slider: its label, its range and its starting value (default: ``low``)."""

    label: str
    low: float = 0.0
    high: float = 1.0
    value: float | None = None

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"slider {self.label!r} needs low < high, got [{self.low}, {self.high}]")
        if self.value is not None and not self.low <= self.value <= self.high:
            raise ValueError(f"slider {self.label!r} starts at {self.value}, outside [{self.low}, {self.high}]")

    @property
    def start(self) -> float:
        return self.low if self.value is None else self.value

    def values(self, steps: int) -> list[float]:
        return torch.linspace(self.low, self.high, steps).tolist()


def _slider_range(spec: SliderRange | tuple) -> SliderRange:
    return spec if isinstance(spec, SliderRange) else SliderRange(*spec)


class SliderPanel:
    """Two sliders ``a`` and ``b`` over an image ``frame(a, b) -> [C, H, W]`` in ``[0, 1]``.

    Displaying the panel in a notebook shows a self-contained HTML slider over ``steps x steps``
    pre-computed frames (no kernel needed: it works in the static book, JupyterLab and Colab);
    :meth:`live` returns ipywidgets that call ``frame`` on every change while a kernel runs.

    Parameters
    ----------
    frame
        ``frame(a: float, b: float) -> [C, H, W]``; with ``batched=True`` instead
        ``frame(a: Tensor [N], b: Tensor [N]) -> [N, C, H, W]``, which decodes the
        ``steps**2`` frames of the HTML version in one call (much faster for a model).
    a, b
        The two sliders, as :class:`SliderRange` or ``(label, low, high[, value])`` tuples.
    steps
        Positions per slider in the HTML version (``steps**2`` frames are decoded).
    size
        Displayed width of the image in pixels; small images are enlarged by nearest neighbour.
    """

    def __init__(
        self,
        frame: FrameFn,
        a: SliderRange | tuple,
        b: SliderRange | tuple,
        steps: int = 11,
        size: int = 192,
        title: str | None = None,
        batched: bool = False,
    ) -> None:
        if steps < 2:
            raise ValueError(f"steps must be at least 2, got {steps}")
        self.frame, self.a, self.b = frame, _slider_range(a), _slider_range(b)
        self.steps, self.size, self.title, self.batched = steps, size, title, batched
        self._frames: Tensor | None = None
        self._first = self._render(self.a.start, self.b.start)

    def __repr__(self) -> str:
        return f"SliderPanel(a={self.a}, b={self.b}, steps={self.steps}, title={self.title!r})"

    def _render_all(self, a: Tensor, b: Tensor) -> Tensor:
        """Frames ``[N, C, H, W]`` at the slider positions ``(a[k], b[k])``."""
        with torch.no_grad():
            if self.batched:
                images = _check_images(self.frame(a, b), "frame(a, b)")
                if images.shape[0] != a.shape[0]:
                    raise ValueError(
                        f"a batched frame(a, b) must return one image per position: {a.shape[0]}, got {images.shape[0]}"
                    )
                return images.cpu()
            images = [self.frame(float(x), float(y)) for x, y in zip(a, b)]
        for image in images:
            if not isinstance(image, Tensor) or image.ndim != 3 or image.shape[0] not in (1, 3):
                got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
                raise ValueError(f"frame(a, b) must return one image [C, H, W] with C = 1 or 3, got {got}")
        return torch.stack(images).detach().float().cpu()

    def _render(self, a: float, b: float) -> Tensor:
        return self._render_all(torch.tensor([a]), torch.tensor([b]))[0]

    def frames(self) -> Tensor:
        """All pre-computed frames, ``[steps, steps, C, H, W]``: ``[i, j]`` is at the ``i``-th ``a`` and ``j``-th ``b``."""
        if self._frames is None:
            n = self.steps
            a, b = torch.tensor(self.a.values(n)), torch.tensor(self.b.values(n))
            images = self._render_all(a.repeat_interleave(n), b.repeat(n))
            self._frames = images.view(n, n, *images.shape[1:])
        return self._frames

    def _upscale(self) -> int:
        return max(1, round(self.size / self._first.shape[-1]))

    def html(self) -> str:
        """Self-contained HTML and JavaScript: an image and two ``<input type=range>`` sliders."""
        frames = self.frames()
        uris = ["data:image/png;base64," + base64.b64encode(_png(f)).decode() for f in frames.flatten(0, 1)]
        a_values, b_values = self.a.values(self.steps), self.b.values(self.steps)
        start_a = min(range(self.steps), key=lambda i: abs(a_values[i] - self.a.start))
        start_b = min(range(self.steps), key=lambda j: abs(b_values[j] - self.b.start))
        root = f"dislib-slider-{uuid.uuid4().hex[:12]}"
        height = round(self.size * frames.shape[-2] / frames.shape[-1])
        rows = "".join(
            f"<span>{escape(r.label)}</span>"
            f'<input type="range" min="0" max="{self.steps - 1}" step="1" value="{start}" aria-label="{escape(r.label)}">'
            f'<span class="dislib-value">{values[start]:.2f}</span>'
            for r, values, start in ((self.a, a_values, start_a), (self.b, b_values, start_b))
        )
        heading = f'<div style="font-weight:bold;margin-bottom:4px">{escape(self.title)}</div>' if self.title else ""
        script = (
            "(function(){"
            f'var root=document.getElementById("{root}");'
            f"var frames={json.dumps(uris, separators=(',', ':'))},av={json.dumps([round(v, 2) for v in a_values])},"
            f"bv={json.dumps([round(v, 2) for v in b_values])},n={self.steps};"
            'var img=root.getElementsByTagName("img")[0],inputs=root.getElementsByTagName("input"),'
            'spans=root.getElementsByClassName("dislib-value");'
            "function update(){var i=+inputs[0].value,j=+inputs[1].value;img.src=frames[i*n+j];"
            "spans[0].textContent=av[i].toFixed(2);spans[1].textContent=bv[j].toFixed(2);}"
            'inputs[0].addEventListener("input",update);inputs[1].addEventListener("input",update);'
            "})();"
        )
        return (
            f'<div id="{root}" style="display:inline-block;vertical-align:top;margin:0 16px 8px 0;'
            f'font-family:sans-serif;font-size:13px">{heading}'
            f'<img src="{uris[start_a * self.steps + start_b]}" width="{self.size}" height="{height}" alt="slider frame" '
            'style="image-rendering:crisp-edges;image-rendering:pixelated;display:block;border:1px solid #ccc">'
            '<div style="display:grid;grid-template-columns:auto auto 3em;gap:2px 6px;align-items:center;margin-top:4px">'
            f"{rows}</div><script>{script}</script></div>"
        )

    def _repr_html_(self) -> str:
        return self.html()

    def live(self) -> Any:
        """An ipywidgets ``VBox(Image, FloatSlider a, FloatSlider b)`` decoding on every change (needs a kernel)."""
        import ipywidgets as widgets

        style, layout = {"description_width": "initial"}, widgets.Layout(width=f"{max(self.size, 320)}px")
        sliders = [
            widgets.FloatSlider(value=r.start, min=r.low, max=r.high, step=(r.high - r.low) / 100, description=r.label,
                                continuous_update=True, readout_format=".2f", style=style, layout=layout)
            for r in (self.a, self.b)
        ]
        image = widgets.Image(value=_png(self._first, self._upscale()), format="png")

        def update(_change: Any) -> None:
            image.value = _png(self._render(sliders[0].value, sliders[1].value), self._upscale())

        for slider in sliders:
            slider.observe(update, names="value")
        children = [widgets.HTML(f"<b>{escape(self.title)}</b>")] if self.title else []
        return widgets.VBox([*children, image, *sliders])

    def show(self, live: bool = False) -> None:
        """Display the live widget (``live=True``, while a kernel runs) or the static HTML slider.

        A notebook can set ``LIVE = False`` in its parameter cell and call ``panel.show(LIVE)``:
        the committed outputs keep the static slider, readers running the notebook set ``True``.
        """
        from IPython.display import HTML, display

        display(self.live() if live else HTML(self.html()))


def side_by_side(panels: Sequence["SliderPanel"]) -> str:
    """The HTML of several :class:`SliderPanel` in a row (they wrap on a narrow page); display it with
    ``IPython.display.HTML``."""
    return "<div>" + "".join(panel.html() for panel in panels) + "</div>"


def every_label(generate: Callable[[Tensor, Tensor], Tensor], code: Tensor, num_classes: int) -> Tensor:
    """One code decoded with each of ``num_classes`` labels, the images tiled in one row ``[C, H, K * W]``.

    ``generate(codes [K, D], labels [K])`` is a conditional generator (``gan.generate``, or a
    conditional VAE's decoder given one-hot labels); ``code`` ``[D]`` is repeated for every label.
    A frame for :class:`SliderPanel`: one noise vector or style, every class.
    """
    if code.ndim != 1:
        raise ValueError(f"code must be one vector [D], got shape {tuple(code.shape)}")
    labels = torch.arange(num_classes, device=code.device)
    with torch.no_grad():
        images = generate(code.unsqueeze(0).repeat(num_classes, 1), labels).float().cpu()
    return torch.cat(list(images), dim=-1)


def code_slider(
    model: Disentangler,
    image_a: Tensor,
    image_b: Tensor,
    steps: int = 11,
    size: int = 192,
    title: str | None = None,
    labels: Tensor | None = None,
) -> SliderPanel:
    """Slide the specified code (``a``) and the unspecified code (``b``) from image a's to image b's.

    At ``(0, 0)`` the panel shows a's reconstruction, at ``(1, 1)`` b's, at ``(1, 0)`` a's
    unspecified code with b's specified code: the swap of :func:`swap_grid`.
    """
    pair = torch.cat([_check_image(image_a, "image_a").cpu(), _check_image(image_b, "image_b").cpu()])
    codes = _specified_codes(model, pair, "code_slider", labels)
    s, z = codes.specified, codes.unspecified

    def frames(a: Tensor, b: Tensor) -> Tensor:
        return decode_codes(model, _lerp(s[0], s[1], a), _lerp(z[0], z[1], b))

    return SliderPanel(
        frames, (f"specified code {model.specified_symbol}: a → b", 0.0, 1.0), ("unspecified code z: a → b", 0.0, 1.0),
        steps=steps, size=size, title=title, batched=True,
    )
