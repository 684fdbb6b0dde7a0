"""The normalization methods a comparison can run, and how each becomes data preprocessing + model flags.

A method is a ``+``-joined list of steps, e.g. ``"standardize"`` or ``"standardize+batchnorm-all"``.
Preprocessing steps are normlab normalizers fitted on the training split only and applied to every split;
``batchnorm-input`` and ``batchnorm-all`` are not preprocessing but layers the model builder adds.

Every step is one :class:`Step` entry of ``STEPS``, the registry that ``normlab compare --list`` and
``--help`` are generated from: adding a step means adding its entry (and, for a new kind of layer, the
layer to :mod:`normlab.experiments.models`). ``METHODS`` maps each step to its one-line description.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normlab.core.normalizers import Center, MinMax, Robust, Scale, Standardize
from normlab.errors import NormlabError
from normlab.experiments._common import CompareError

__all__ = [
    "METHODS",
    "STEPS",
    "FittedMethod",
    "MethodSpec",
    "Step",
    "l2_axis1",
    "parse_method",
    "parse_methods",
]

MethodError = CompareError


@dataclass(frozen=True)
class Step:
    """One step a method combines: what it does, and how it is fitted, applied or added to the model.

    Attributes
    ----------
    name, description : str
        The name in ``--methods`` and one line for ``--list``.
    make : callable ``(x_train, method) -> normalizer``, optional
        A preprocessing step fitted on the training split: builds the (unfitted) normalizer.
    function : callable ``x -> x``, optional
        A preprocessing step with nothing to fit (applied to each split as it is).
    shown : tuple of str
        The fitted attributes the report shows (none: "computed per sample, nothing fitted").
    layer : {"", "batchnorm_input", "batchnorm_all"}
        A layer the model builder adds instead (the :class:`MethodSpec` flag it sets).
    adds : str
        For a layer: what the report says the model gets.
    """

    name: str
    description: str
    make: Callable[[np.ndarray, str], Any] | None = None
    function: Callable[[np.ndarray], np.ndarray] | None = None
    shown: tuple[str, ...] = ()
    layer: str = ""
    adds: str = ""

    @property
    def preprocessing(self) -> bool:
        return self.make is not None or self.function is not None


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


def _scale_by_dtype(x: np.ndarray, method: str) -> Scale:
    if x.dtype.kind not in "uib":
        raise MethodError(
            f"method {method!r}: 'scale' divides by the dtype maximum, but the data is {x.dtype}, which "
            "has none; expected integer data such as uint8 images. Use 'max' (divide by the training "
            "maximum) for float data."
        )
    return Scale(by="dtype", dtype=np.float32)


#: The registry of steps, in the order ``--list`` shows them.
STEPS: dict[str, Step] = {
    s.name: s
    for s in (
        Step("none", "the raw input"),
        Step("scale", "x / dtype maximum (255 for uint8)", make=_scale_by_dtype, shown=("scale_",)),
        Step("max", "x / training maximum", shown=("scale_",),
             make=lambda x, m: Scale(by="max", dtype=np.float32)),
        Step("center", "x - training mean", shown=("mean_",),
             make=lambda x, m: Center(dtype=np.float32)),
        Step("standardize", "(x - mean) / std, per channel (images) or feature (tables)",
             shown=("mean_", "std_"), make=lambda x, m: Standardize(dtype=np.float32)),
        Step("minmax-sample", "per-image min-max onto [0, 1]",
             make=lambda x, m: MinMax(per="sample", dtype=np.float32)),
        Step("l2-axis1", "keras.utils.normalize(x, axis=1)",
             function=lambda x: l2_axis1(x).astype(np.float32)),
        Step("robust", "(x - median) / IQR", shown=("median_", "scale_"),
             make=lambda x, m: Robust(dtype=np.float32)),
        Step("batchnorm-input", "BatchNorm (no affine) as the first layer, raw input",
             layer="batchnorm_input", adds="BatchNorm (no affine) as the first layer"),
        Step("batchnorm-all", "BatchNorm after every hidden layer",
             layer="batchnorm_all", adds="BatchNorm after every hidden layer"),
    )
}  # fmt: skip

#: Each step's one-line description (what ``normlab compare --list`` prints).
METHODS: dict[str, str] = {name: s.description for name, s in STEPS.items()}


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
            make = STEPS[step].make
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                norm = None if make is None else make(x, self.name)
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

    def layers(self) -> list[str]:
        """What the layers of this method add to the model, in words."""
        return [s.adds for s in STEPS.values() if s.layer and getattr(self, s.layer)]


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
            shown = STEPS[step].shown
            if norm is None or not shown:
                parts.append(f"{step}: computed per sample, nothing fitted")
                continue
            stats = [f"{a.rstrip('_')} {_short(getattr(norm, a))}" for a in shown if hasattr(norm, a)]
            parts.append(f"{step} (per {norm.per_}): {', '.join(stats)}")
        return "; ".join(parts)

    def feeds(self) -> str:
        """What the model is fed: the fitted statistics (or the raw input), then the layers it gets."""
        return "; ".join([self.describe() or "raw input", *self.spec.layers()])


def _short(value: Any) -> str:
    a = np.asarray(value, dtype=np.float64).ravel()
    if a.size == 1:
        return f"{a[0]:.4g}"
    if a.size <= 4:
        return "[" + ", ".join(f"{v:.4g}" for v in a) + "]"
    return f"[{a.size} values, {a.min():.4g} … {a.max():.4g}]"


def _apply(step: str, norm: Any, x: np.ndarray) -> np.ndarray:
    function = STEPS[step].function
    return function(x) if function is not None else norm.transform(x)


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
        if p not in STEPS:
            raise _unknown(p, full)
    if len(set(parts)) != len(parts):
        raise MethodError(f"method {full!r} repeats a step; expected each step at most once.")
    if "none" in parts and len(parts) > 1:
        raise MethodError(
            f"method {full!r} combines 'none' with other steps; expected 'none' alone (the raw input). "
            f"Write {'+'.join(p for p in parts if p != 'none')!r} instead."
        )
    layers = {STEPS[p].layer for p in parts}
    return MethodSpec(
        name=full,
        steps=tuple(p for p in parts if STEPS[p].preprocessing),
        batchnorm_input="batchnorm_input" in layers,
        batchnorm_all="batchnorm_all" in layers,
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
