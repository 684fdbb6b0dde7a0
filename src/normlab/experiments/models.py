"""The models a comparison trains: built-in architectures and a user's own ``file.py:build``.

Every model takes float32 input in the layout :func:`input_layout` gives for the data: images as
``(n, c, h, w)`` (channels-first, converted once from the datasets' ``(n, h, w, c)``), tables as
``(n, f)``, sequences as ``(n, t, f)``. Recurrent models read an image's rows as time steps, with
``w * c`` features per step. Built-in models are initialized the Keras way (Glorot-uniform kernels, zero
biases; orthogonal recurrent kernels and a forget-gate bias of 1 for LSTMs), so results line up with the
published Keras comparisons; ``BatchNorm`` layers use PyTorch's defaults.

``batchnorm-input`` puts ``BatchNorm`` without affine parameters in front of any model (per channel for
images, per feature for tables and sequences); ``batchnorm-all`` adds ``BatchNorm`` after every hidden
layer, before its activation (as in Ioffe & Szegedy, 2015).

Every built-in model is one :class:`Architecture` entry of ``ARCHITECTURES`` (at the end of this module,
after the builders), the registry that ``normlab compare --list`` and ``--help`` are generated from:
adding a model means writing its builder and adding its entry. ``MODELS`` maps each name to its line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normlab.experiments._common import CompareError

__all__ = [
    "ARCHITECTURES",
    "MODELS",
    "Architecture",
    "ModelSpec",
    "build_model",
    "input_layout",
    "parse_model",
    "to_model_input",
]



@dataclass(frozen=True)
class Architecture:
    """A built-in model: its name, one line for ``--list``, and its builder.

    ``build(name, kind, in_shape, n_classes, bn)`` returns the ``torch.nn.Module`` for inputs of layout
    ``kind`` (see :func:`input_layout`) and per-sample shape ``in_shape`` (channels-first for images),
    with ``BatchNorm`` after every hidden layer when ``bn``; it refuses a layout it cannot read.
    """

    name: str
    description: str
    build: Callable[[str, str, tuple[int, ...], int, bool], Any]


class ModelSpec:
    """A parsed ``--model`` value: a built-in name or ``path/to/file.py:build``.

    Attributes
    ----------
    name : str
        What results call it: the built-in name, or ``file.py:build``.
    path, function : str or None
        The user's file (absolute) and the name of its builder function.
    fingerprint : str
        The built-in name, or a hash of the user's file content: part of a run's identity.
    """

    def __init__(self, name: str, path: str | None = None, function: str | None = None) -> None:
        self.name = name
        self.path = path
        self.function = function
        if path is None:
            self.fingerprint = name
        else:
            digest = hashlib.blake2b(Path(path).read_bytes(), digest_size=8).hexdigest()
            self.fingerprint = f"{Path(path).name}:{function}@{digest}"

    def __repr__(self) -> str:
        return f"ModelSpec({self.name!r})"

    def __reduce__(self) -> tuple:
        return (ModelSpec, (self.name, self.path, self.function))

    @property
    def builtin(self) -> bool:
        return self.path is None

    def load_builder(self) -> Callable[..., Any]:
        """Import the user's file and return its builder function."""
        assert self.path is not None and self.function is not None
        mod_name = (
            "normlab_user_model_" + hashlib.blake2b(self.path.encode(), digest_size=6).hexdigest()
        )
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, self.path)
            if spec is None or spec.loader is None:
                raise CompareError(
                    f"--model {self.name!r}: cannot import {self.path}; expected a Python file."
                )
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as e:
                del sys.modules[mod_name]
                raise CompareError(
                    f"--model {self.name!r}: importing {self.path} failed with {type(e).__name__}: {e}. "
                    "Fix the file so that `python FILE` runs."
                ) from e
        fn = getattr(module, self.function, None)
        if not callable(fn):
            found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
            raise CompareError(
                f"--model {self.name!r}: {self.path} has no function {self.function!r}; expected "
                f"build(input_shape, n_classes) returning a torch.nn.Module. Functions found: "
                f"{', '.join(found) or 'none'}."
            )
        return fn


def parse_model(model: str) -> ModelSpec:
    """Parse ``--model``: a built-in name, or ``path/to/file.py:build`` (``:build`` may be omitted)."""
    model = model.strip()
    if model in ARCHITECTURES:
        return ModelSpec(model)
    path, sep, function = model.rpartition(":")
    if not sep or not path.endswith(".py"):
        path, function = model, "build"
    if path.endswith(".py"):
        p = Path(path).expanduser()
        if not p.is_file():
            raise CompareError(
                f"--model {model!r}: file {str(p)!r} not found; expected path/to/file.py:build where "
                "build(input_shape, n_classes) returns a torch.nn.Module."
            )
        return ModelSpec(f"{p.name}:{function}", str(p.resolve()), function)
    raise CompareError(
        f"unknown model {model!r}; expected one of {', '.join(MODELS)}, or your own as path/to/file.py:build "
        "where build(input_shape, n_classes) returns a torch.nn.Module."
    )


# --------------------------------------------------------------------------------------------------
# Input layout: what a model sees
# --------------------------------------------------------------------------------------------------


def input_layout(sample_shape: tuple[int, ...]) -> str:
    """``"image"`` for ``(h, w, c)``, ``"table"`` for ``(f,)``, ``"sequence"`` for ``(t, f)``."""
    if len(sample_shape) == 1:
        return "table"
    if len(sample_shape) == 2:
        return "sequence"
    if len(sample_shape) == 3:
        return "image"
    raise CompareError(
        f"samples of shape {sample_shape} are not supported; expected images (h, w, c), sequences (t, f) "
        "or table rows (f,)."
    )


def to_model_input(x: np.ndarray) -> np.ndarray:
    """Convert a split from the datasets' layout to the models': images ``(n, h, w, c) -> (n, c, h, w)``."""
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return np.ascontiguousarray(x)


def model_input_shape(sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-sample shape a model receives (channels-first for images)."""
    if len(sample_shape) == 3:
        h, w, c = sample_shape
        return (c, h, w)
    return tuple(sample_shape)


# --------------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------------


def build_model(
    spec: ModelSpec,
    sample_shape: tuple[int, ...],
    n_classes: int,
    *,
    batchnorm_input: bool = False,
    batchnorm_all: bool = False,
) -> Any:
    """Build the model for samples of ``sample_shape`` (the datasets' layout, e.g. ``(h, w, c)``).

    Call under ``torch.manual_seed(init_seed)``: ``BatchNorm`` layers draw no random numbers, so a method
    with them gets the same initial weights in every other layer as one without (paired design).
    """
    from torch import nn

    kind = input_layout(sample_shape)
    in_shape = model_input_shape(sample_shape)
    if spec.builtin:
        core = _build_builtin(spec.name, kind, in_shape, n_classes, batchnorm_all)
    else:
        builder = spec.load_builder()
        kwargs = {}
        if batchnorm_all:
            params = inspect.signature(builder).parameters
            if "batchnorm" not in params:
                raise CompareError(
                    f"method 'batchnorm-all' needs the model to add its own BatchNorm layers, but "
                    f"{spec.name}'s {spec.function}() has no `batchnorm` parameter; expected "
                    f"{spec.function}(input_shape, n_classes, batchnorm=False). Add the parameter, or drop "
                    "batchnorm-all from --methods."
                )
            kwargs["batchnorm"] = True
        core = builder(in_shape, n_classes, **kwargs)
        if not isinstance(core, nn.Module) or type(core).__module__.startswith("keras"):
            raise CompareError(
                f"--model {spec.name}: {spec.function}() returned {type(core).__name__}; expected a "
                "torch.nn.Module whose forward maps (n, *input_shape) to (n, n_classes) logits."
            )
    if not batchnorm_input:
        return core
    return nn.Sequential(_input_batchnorm(kind, in_shape), core)


def _input_batchnorm(kind: str, in_shape: tuple[int, ...]) -> Any:
    from torch import nn

    if kind == "image":
        return nn.BatchNorm2d(in_shape[0], affine=False)
    if kind == "table":
        return nn.BatchNorm1d(in_shape[0], affine=False)
    return _FeatureBatchNorm(in_shape[1])


def _FeatureBatchNorm(f: int) -> Any:
    from torch import nn

    class FeatureBatchNorm(nn.Module):
        """BatchNorm over (n, t) for every feature of a ``(n, t, f)`` sequence."""

        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm1d(f, affine=False)

        def forward(self, x: Any) -> Any:
            return self.bn(x.transpose(1, 2)).transpose(1, 2)

    return FeatureBatchNorm()


def _dense_block(nn: Any, n_in: int, n_out: int, bn: bool) -> list[Any]:
    layers = [nn.Linear(n_in, n_out)]
    if bn:
        layers.append(nn.BatchNorm1d(n_out))
    layers.append(nn.ReLU())
    return layers


def _conv_block(nn: Any, c_in: int, c_out: int, k: int, bn: bool, padding: int | str) -> list[Any]:
    layers = [nn.Conv2d(c_in, c_out, k, padding=padding)]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU())
    return layers


def _build_builtin(
    name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool
) -> Any:
    model = ARCHITECTURES[name].build(name, kind, in_shape, n_classes, bn)
    _keras_init(model)
    return model


def _image_shape(name: str, kind: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """``(c, h, w)`` of image samples; a convolutional model refuses any other layout."""
    if kind != "image":
        raise CompareError(
            f"model {name!r} is a convolutional network for images (h, w, c), but the samples have shape "
            f"{in_shape}; expected image data. Use 'mlp' or 'logreg' for tables."
        )
    c, h, w = in_shape
    return c, h, w


def _logreg(name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), n_classes))


def _mlp(name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Flatten(), *_dense_block(nn, math.prod(in_shape), 128, bn), nn.Linear(128, n_classes)
    )


def _lenet(name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    from torch import nn

    c, h, w = _image_shape(name, kind, in_shape)
    if min(h, w) < 4:
        raise CompareError(
            f"model 'lenet' pools twice by 2; images of {h}×{w} are too small (need ≥ 4×4)."
        )
    return nn.Sequential(
        *_conv_block(nn, c, 20, 5, bn, "same"), nn.MaxPool2d(2),
        *_conv_block(nn, 20, 50, 5, bn, "same"), nn.MaxPool2d(2),
        nn.Flatten(), *_dense_block(nn, 50 * (h // 2 // 2) * (w // 2 // 2), 500, bn),
        nn.Linear(500, n_classes),
    )  # fmt: skip


def _cnn(name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    from torch import nn

    c, h, w = _image_shape(name, kind, in_shape)
    if min(h, w) < 6:
        raise CompareError(
            f"model 'cnn' needs images of at least 6×6 (two 3×3 convs, a 2×2 pool); got {h}×{w}."
        )
    return nn.Sequential(
        *_conv_block(nn, c, 32, 3, bn, 0),
        *_conv_block(nn, 32, 64, 3, bn, 0), nn.MaxPool2d(2),
        nn.Flatten(), *_dense_block(nn, 64 * ((h - 4) // 2) * ((w - 4) // 2), 128, bn),
        *_dense_block(nn, 128, 128, bn), nn.Linear(128, n_classes),
    )  # fmt: skip


def _recurrent(name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    if kind == "table":
        raise CompareError(
            f"model {name!r} reads image rows (or sequence steps) as time steps, but the samples are table "
            f"rows of shape {in_shape}; expected images (h, w, c) or sequences (t, f). Use 'mlp' or 'logreg'."
        )
    return _Recurrent(name, kind, in_shape, n_classes, bn)


def _Recurrent(name: str, kind: str, in_shape: tuple[int, ...], n_classes: int, bn: bool) -> Any:
    from torch import nn

    if kind == "image":
        c, h, w = in_shape
        n_steps, n_in = h, w * c
    else:
        n_steps, n_in = in_shape
    hidden = 128
    rnn_cls = nn.LSTM if name == "lstm" else nn.GRU

    class RecurrentClassifier(nn.Module):
        """A recurrent layer over time steps; its last hidden state feeds a softmax layer."""

        def __init__(self) -> None:
            super().__init__()
            self.rnn = rnn_cls(n_in, hidden, batch_first=True)
            self.bn = nn.BatchNorm1d(hidden) if bn else nn.Identity()
            self.out = nn.Linear(hidden, n_classes)

        def forward(self, x: Any) -> Any:
            if x.dim() == 4:  # (n, c, h, w) -> (n, h, w * c): rows are time steps
                x = x.permute(0, 2, 3, 1).reshape(x.shape[0], n_steps, n_in)
            seq, _ = self.rnn(x)
            return self.out(self.bn(seq[:, -1]))

    return RecurrentClassifier()


def _keras_init(model: Any) -> None:
    """Glorot-uniform kernels and zero biases; orthogonal recurrent kernels; LSTM forget-gate bias 1."""
    import torch
    from torch import nn

    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LSTM, nn.GRU)):
            n_gates = 4 if isinstance(m, nn.LSTM) else 3
            h = m.hidden_size
            nn.init.xavier_uniform_(m.weight_ih_l0)
            nn.init.orthogonal_(m.weight_hh_l0)
            nn.init.zeros_(m.bias_ih_l0)
            nn.init.zeros_(m.bias_hh_l0)
            if n_gates == 4:  # torch gate order: input, forget, cell, output
                with torch.no_grad():
                    m.bias_ih_l0[h : 2 * h].fill_(1.0)


#: The registry of built-in models, in the order ``--list`` shows them.
ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("logreg", "flatten → dense (softmax regression)", _logreg),
        Architecture("mlp", "flatten → dense 128 → softmax", _mlp),
        Architecture("lenet", "conv 20@5×5 → pool → conv 50@5×5 → pool → dense 500 → softmax", _lenet),
        Architecture("cnn", "conv 32@3×3 → conv 64@3×3 → pool → dense 128 → dense 128 → softmax", _cnn),
        Architecture("lstm", "LSTM 128 over image rows → softmax", _recurrent),
        Architecture("gru", "GRU 128 over image rows → softmax", _recurrent),
    )
}

#: Each built-in model's one-line description (what ``normlab compare --list`` prints).
MODELS: dict[str, str] = {name: a.description for name, a in ARCHITECTURES.items()}
