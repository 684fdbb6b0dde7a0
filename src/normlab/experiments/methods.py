"""The normalization methods a comparison can run, and how each becomes data preprocessing + model flags.

A method is a ``+``-joined list of steps, e.g. ``"standardize"`` or ``"standardize+batchnorm-all"``.
Preprocessing steps are normlab normalizers fitted on the training split only and applied to every split;
``batchnorm-input`` and ``batchnorm-all`` are not preprocessing but layers the model builder adds.

==================  ================================================================================
step                what it does
==================  ================================================================================
``none``            the raw input (the baseline)
``scale``           ``Scale(by="dtype")``: divide by the dtype maximum (255 for uint8 images)
``max``             ``Scale(by="max")``: divide by the largest magnitude in the training split
``center``          ``Center()``: subtract the training mean (per channel / per feature)
``standardize``     ``Standardize()``: ``(x - mean_) / std_`` per channel for images, per feature for tables
``minmax-sample``   ``MinMax(per="sample")``: every image mapped from its own min and max onto [0, 1]
``robust``          ``Robust()``: ``(x - median_) / IQR`` per channel / per feature
``l2-axis1``        ``keras.utils.normalize(x, axis=1)``: ``x / ||x||_2`` along axis 1 (zeros stay 0)
``batchnorm-input`` raw input, ``BatchNorm`` without affine parameters as the model's first layer
``batchnorm-all``   ``BatchNorm`` after every hidden layer (before its activation)
==================  ================================================================================
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normlab.errors import NormlabError
from normlab.experiments._common import CompareError

__all__ = ["METHODS", "FittedMethod", "MethodSpec", "l2_axis1", "parse_method", "parse_methods"]

METHODS: dict[str, str] = {
    "none": "the raw input",
    "scale": "x / dtype maximum (255 for uint8)",
    "max": "x / training maximum",
    "center": "x - training mean",
    "standardize": "(x - mean) / std, per channel (images) or feature (tables)",
    "minmax-sample": "per-image min-max onto [0, 1]",
    "l2-axis1": "keras.utils.normalize(x, axis=1)",
    "robust": "(x - median) / IQR",
    "batchnorm-input": "BatchNorm (no affine) as the first layer, raw input",
    "batchnorm-all": "BatchNorm after every hidden layer",
}
_PREPROCESSING = ("scale", "max", "center", "standardize", "minmax-sample", "l2-axis1", "robust")
_LAYERS = ("batchnorm-input", "batchnorm-all")


MethodError = CompareError


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method: preprocessing steps (applied in order) and the BatchNorm layers to add.

    Attributes
    ----------
    name : str
        The name as given (``"standardize+batchnorm-all"``); identifies the method in results.
    steps : tuple of str
        Preprocessing steps, fitted and applied in this order.
    batchnorm_input, batchnorm_all : bool
        Layers the model builder adds.
    """

    name: str
    steps: tuple[str, ...] = ()
    batchnorm_input: bool = False
    batchnorm_all: bool = False

    def fit(self, x_train: np.ndarray) -> FittedMethod:
        """Fit every preprocessing step on the training split (each on the previous step's output)."""
        fitted: list[tuple[str, Any]] = []
        notes: list[str] = []
        x = x_train
        for step in self.steps:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                norm = _make_normalizer(step, x, self.name)
                if norm is not None:
                    try:
                        norm.fit(x)
                    except NormlabError as e:
                        raise MethodError(f"method {self.name!r}: {e}") from e
            notes.extend(f"{step}: {w.message}" for w in caught)
            fitted.append((step, norm))
            if step != self.steps[-1]:
                x = _apply(step, norm, x)
        return FittedMethod(self, tuple(fitted), tuple(notes))


@dataclass(frozen=True)
class FittedMethod:
    """A method whose statistics were fitted on the training split; picklable for worker processes."""

    spec: MethodSpec
    fitted: tuple[tuple[str, Any], ...] = ()
    notes: tuple[str, ...] = field(default=())

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply every step to ``x`` (any split); returns float32."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already recorded at fit time
            for step, norm in self.fitted:
                x = _apply(step, norm, x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def describe(self) -> str:
        """The fitted statistics in a few words, e.g. ``standardize (per channel): mean 33.32, std 78.57``."""
        parts = []
        for step, norm in self.fitted:
            if norm is None or step == "minmax-sample":
                parts.append(f"{step}: computed per sample, nothing fitted")
                continue
            stats = [
                f"{a.rstrip('_')} {_short(getattr(norm, a))}"
                for a in _SHOWN[step]
                if hasattr(norm, a)
            ]
            parts.append(f"{step} (per {norm.per_}): {', '.join(stats)}")
        return "; ".join(parts)


_SHOWN = {
    "scale": ("scale_",),
    "max": ("scale_",),
    "center": ("mean_",),
    "standardize": ("mean_", "std_"),
    "robust": ("median_", "scale_"),
}


def _short(value: Any) -> str:
    a = np.asarray(value, dtype=np.float64).ravel()
    if a.size == 1:
        return f"{a[0]:.4g}"
    if a.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in a) + "]"
    return f"[{a.size} values, {a.min():.4g} … {a.max():.4g}]"


def _make_normalizer(step: str, x: np.ndarray, method: str) -> Any:
    import normlab

    if step == "l2-axis1":
        return None
    if step == "scale":
        if x.dtype.kind not in "uib":
            raise MethodError(
                f"method {method!r}: 'scale' divides by the dtype maximum, but the data is {x.dtype}, which "
                "has none; expected integer data such as uint8 images. Use 'max' (divide by the training "
                "maximum) for float data."
            )
        return normlab.Scale(by="dtype", dtype=np.float32)
    if step == "max":
        return normlab.Scale(by="max", dtype=np.float32)
    if step == "center":
        return normlab.Center(dtype=np.float32)
    if step == "standardize":
        return normlab.Standardize(dtype=np.float32)
    if step == "minmax-sample":
        return normlab.MinMax(per="sample", dtype=np.float32)
    if step == "robust":
        return normlab.Robust(dtype=np.float32)
    raise MethodError(
        f"unknown preprocessing step {step!r}"
    )  # pragma: no cover - parse_method guards


def l2_axis1(x: np.ndarray) -> np.ndarray:
    """``keras.utils.normalize(x, axis=1, order=2)`` in NumPy: ``x / ||x||_2`` along axis 1, zeros left 0.

    On images ``(n, h, w, c)`` axis 1 is the row axis, so every image *column* gets unit norm.

    >>> l2_axis1(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    x = np.asarray(x, dtype=np.float64)
    norm = np.atleast_1d(np.linalg.norm(x, 2, axis=1))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, 1)


def _apply(step: str, norm: Any, x: np.ndarray) -> np.ndarray:
    if step == "l2-axis1":
        return l2_axis1(x).astype(np.float32)
    return norm.transform(x)


def _unknown(name: str, full: str) -> MethodError:
    return MethodError(
        f"unknown normalization method {name!r} in {full!r}; expected one of {', '.join(METHODS)}, or a "
        "combination joined by '+', e.g. 'standardize+batchnorm-all'. Run `normlab compare --list` to see "
        "what each does."
    )


def parse_method(name: str) -> MethodSpec:
    """Parse one method name such as ``"standardize+batchnorm-all"``.

    >>> parse_method("standardize+batchnorm-all")
    MethodSpec(name='standardize+batchnorm-all', steps=('standardize',), batchnorm_input=False, batchnorm_all=True)
    """
    full = name.strip()
    parts = [p.strip() for p in full.split("+")]
    if not full or any(not p for p in parts):
        raise MethodError(
            f"method {name!r} is empty or has an empty part; expected names such as 'standardize' or "
            "'standardize+batchnorm-all'."
        )
    for p in parts:
        if p not in METHODS:
            raise _unknown(p, full)
    if len(set(parts)) != len(parts):
        raise MethodError(f"method {full!r} repeats a step; expected each step at most once.")
    if "none" in parts and len(parts) > 1:
        raise MethodError(
            f"method {full!r} combines 'none' with other steps; expected 'none' alone (the raw input). "
            f"Write {'+'.join(p for p in parts if p != 'none')!r} instead."
        )
    return MethodSpec(
        name=full,
        steps=tuple(p for p in parts if p in _PREPROCESSING),
        batchnorm_input="batchnorm-input" in parts,
        batchnorm_all="batchnorm-all" in parts,
    )


def parse_methods(methods: str | list[str] | tuple[str, ...]) -> list[MethodSpec]:
    """Parse a comma-separated string or a list of method names; order is kept, duplicates refused."""
    names = [m for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise MethodError(
            f"no normalization method given; expected a comma-separated list such as 'none,scale,standardize' "
            f"(choose from {', '.join(METHODS)})."
        )
    specs = [parse_method(n) for n in names]
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise MethodError(f"method {s.name!r} is listed twice; expected each method once.")
        seen.add(s.name)
    return specs
