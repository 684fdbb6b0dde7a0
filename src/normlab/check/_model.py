"""The normalization a model applies to its own input, as a plain description that the checks compose.

A model may normalize its input itself: Keras' ``Rescaling(1/255)`` or ``Normalization`` layers, normlab's
``Normalize`` layer or module, a torchvision-style ``Normalize`` module, the leading ``Sub``/``Div`` nodes of
an ONNX graph. Each is an affine map ``y = x * scale + offset`` with constants per channel (or per value),
described here by :class:`InputStep`; :class:`ModelInput` is the chain of them up to the first layer with
weights. Reading a model needs its framework, so this package only describes: the readers live in
:mod:`normlab.adapters.models`, which :mod:`normlab.adapters` registers through
:func:`normlab.core._hooks.register_model_reader` when ``normlab`` is imported.

>>> m = ModelInput("my model", (InputStep("rescaling", "Rescaling", np.array(1 / 255), np.array(0.0)),))
>>> m.describe()
"my model: Rescaling 'rescaling' (x * 0.003922)"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

from normlab._format import fmt_seq
from normlab.core._hooks import model_readers
from normlab.errors import DataError, LayoutError

__all__ = ["InputStep", "ModelInput", "compose", "per_sample", "read_model"]


@dataclass(frozen=True)
class InputStep:
    """One affine map at a model's input: ``y = x * scale + offset``.

    ``scale`` and ``offset`` broadcast against one sample in the model's layout, without the batch axis:
    a scalar, ``(c,)``, ``(1, 1, c)``, ``(c, 1, 1)`` or the full sample shape. ``fit_range`` and
    ``fit_dtype`` are the range and dtype of the data the layer was fitted on, where it records them
    (normlab's exported layers and modules), else None and ``""``.
    """

    name: str
    kind: str
    scale: np.ndarray
    offset: np.ndarray
    fit_range: tuple[float, float] | None = None
    fit_dtype: str = ""

    def formula(self) -> str:
        a, b = np.ravel(self.scale), np.ravel(self.offset)
        text = f"x * {fmt_seq(a)}"
        if np.any(b != 0):
            text += f" + {fmt_seq(b)}"
        return text

    def describe(self) -> str:
        return f"{self.kind} {self.name!r} ({self.formula()})"


@dataclass(frozen=True)
class ModelInput:
    """What a model does to its input before its first layer with weights.

    ``steps`` are applied in order. ``first_layer`` names the layer that receives their result (None when
    unknown). ``stopped`` says why reading stopped before a weight layer (a layer that is not an affine
    map, e.g. per-sample normalization or custom code, which is never executed), or is None.
    """

    source: str
    steps: tuple[InputStep, ...] = ()
    first_layer: str | None = None
    stopped: str | None = None
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        body = " then ".join(s.describe() for s in self.steps) or "no normalization at its input"
        return f"{self.source}: {body}"

    @property
    def names(self) -> str:
        return ", ".join(f"{s.kind} {s.name!r}" for s in self.steps)


def read_model(model: Any) -> ModelInput:
    """The input normalization of ``model``: a :class:`ModelInput` as it is, a path or a framework model
    through the registered readers."""
    if isinstance(model, ModelInput):
        return model
    for fn in model_readers():
        found = fn(model)
        if found is not None:
            return found
    raise DataError(
        f"normlab.check(model=...) received a {type(model).__name__}; expected a keras.Model, a torch.nn.Module, "
        "or the path of a .keras, .pt or .onnx file. Import normlab (which registers its model readers) and "
        "install the model's framework."
    )


def per_sample(arr: np.ndarray, shape: tuple[int, ...], channel_axis: int, n_channels: int, what: str) -> np.ndarray:
    """``arr`` laid out to broadcast against one sample of ``shape`` (the checks' internal shape)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.size == 1:
        return arr.reshape((1,) * len(shape))
    if arr.size == prod(shape):
        return arr.reshape(shape)
    big = [s for s in arr.shape if s != 1]
    if len(big) == 1 and big[0] == n_channels and len(shape) >= 2:
        full = [1] * (len(shape) + 1)  # channel_axis counts the samples axis
        full[channel_axis] = n_channels
        return arr.reshape(full[1:])
    raise LayoutError(
        f"normlab.check(model=...): {what} has constants of shape {arr.shape}, but the data has samples of shape "
        f"{shape} with {n_channels} channel(s); expected one constant per channel or per value. Pass the data "
        "in the layout the model takes (channels-first data needs --channel-axis 1)."
    )


def compose(model: ModelInput, shape: tuple[int, ...], channel_axis: int,
            n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """One affine map ``y = x * a + b`` for the whole chain, laid out against one sample of ``shape``."""
    a = np.ones((1,) * len(shape))
    b = np.zeros((1,) * len(shape))
    for step in model.steps:
        sa = per_sample(step.scale, shape, channel_axis, n_channels, step.describe())
        sb = per_sample(step.offset, shape, channel_axis, n_channels, step.describe())
        a, b = a * sa, b * sa + sb
    return a, b
