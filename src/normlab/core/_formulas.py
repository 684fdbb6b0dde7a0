"""The formula table: how each normalizer turns statistics into ``(center, scale)``, and when a scale is zero.

Every normalizer is ``y = (x - center) / scale``. What differs is the *formula*: which statistics become
``center`` and ``scale``, and which scales count as zero (those divide by 1 instead). Each formula is
written once, here, against two small interfaces, so that NumPy (fitted and per-sample statistics), the
Keras layer and the torch module cannot drift apart:

- a **statistics view** ``s`` with ``count``, ``mean``, ``var``, ``min``, ``max``, ``quantile(q)``,
  ``sumsq`` (sum of squares), ``abssum`` (sum of magnitudes) and ``ones`` (ones of the statistic's shape),
  all float64 arrays of the statistic's shape (views compute lazily: a formula pays only for what it reads),
  and ``rel_resolution``, the relative rounding error of its variance (see :func:`_zero_variance`);
- an **array-ops namespace** ``ops`` with ``sqrt``, ``abs``, ``maximum``, ``where``, ``logical_or``,
  ``zeros_like`` and ``ones_like`` (einops' backend idea: :data:`NUMPY_OPS` here, ``keras.ops`` in the Keras
  adapter).

The torch module keeps a TorchScript copy (TorchScript cannot call through a namespace); a parametrized test
pins it to this table formula by formula.

>>> import numpy as np
>>> s = SampleStats(np.array([[1.0, 2.0, 3.0]]), (1,), nan="raise")
>>> center, scale, mask = apply(FormulaSpec("minmax", lo=0.0, hi=1.0), s, NUMPY_OPS)
>>> center.ravel().tolist(), scale.ravel().tolist(), mask.ravel().tolist()
([1.0], [2.0], [False])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from normlab.errors import UsageError

__all__ = ["FORMULAS", "FORMULA_NAMES", "NUMPY_OPS", "FittedStats", "Formula", "FormulaSpec", "SampleStats", "apply"]

#: float64 machine epsilon: the unit of every "zero up to rounding" rule below.
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class FormulaSpec:
    """One normalizer's formula and its constants: what an exported layer needs to recompute it.

    Attributes
    ----------
    name : str
        A key of :data:`FORMULAS`.
    divisor : float
        The constant of ``"scale"``.
    lo, hi : float
        ``feature_range`` for ``"minmax"``; the quantiles (fractions) for ``"robust"``.
    """

    name: str
    divisor: float = 1.0
    lo: float = 0.0
    hi: float = 1.0

    def kwargs(self) -> dict[str, Any]:
        """As keyword arguments of the exported ``SampleNormalize`` layers: ``formula=``, ``divisor=``, ..."""
        d = asdict(self)
        d["formula"] = d.pop("name")
        return d


@dataclass(frozen=True)
class Formula:
    """An entry of the table.

    Attributes
    ----------
    center_scale : callable ``(s, ops, spec) -> (center, scale)``
        The formula itself, on a statistics view.
    zero : callable ``(center, scale, s, ops) -> mask``
        Which entries have zero spread (those divide by 1).
    zero_kind : str
        What a zero scale is called in messages ("variance", "range", ...).
    presafe : bool
        The formula already mapped zero spreads onto a safe scale (``"minmax"`` maps them onto ``lo``).
    warns : bool
        Whether fitting warns about zero spreads (zero norms of all-zero rows are routine: no warning).
    """

    center_scale: Callable[[Any, Any, FormulaSpec], tuple[Any, Any]]
    zero: Callable[[Any, Any, Any, Any], Any]
    zero_kind: str
    presafe: bool = False
    warns: bool = True


# ---- the zero rules ----------------------------------------------------------------------------


def _zero_relative(center: Any, scale: Any, s: Any, ops: Any) -> Any:
    """A scale below 10 ulp of the centre's magnitude (at least 1) is zero up to rounding."""
    return ops.abs(scale) < 10 * EPS * ops.maximum(ops.abs(center), s.ones)


#: Relative resolution of the std of exact statistics (integer data summed in integers): any spread shows.
EXACT = 0.0
#: ... of normlab's float accumulator: each block's deviations are taken from a reference inside the block
#: (exact by Sterbenz's lemma when the spread is small against the mean) and blocks merge with Chan's
#: formula, so a spread of even one unit in the last place of the mean is resolved (measured: std error
#: below 2e-14 eps |mean| at means 1e13, 1e15, 2**53 for n up to 1e6). Below one ulp of the mean, the
#: values themselves cannot carry a spread.
ACCUMULATED = EPS
#: ... of a plain two-pass float64 reduction (per-sample statistics in NumPy, torch and Keras): the mean's
#: own rounding leaves constant data a std of up to ~log2(n) eps |mean| (measured: 4.3 eps |mean|).
TWO_PASS = 32 * EPS


def _zero_variance(center: Any, scale: Any, s: Any, ops: Any) -> Any:
    """A std is zero when it is exactly zero (every value equal) or below what the statistics resolve.

    ``s.rel_resolution * |mean|`` is the smallest std the view's arithmetic can tell from zero
    (:data:`EXACT`, :data:`ACCUMULATED`, :data:`TWO_PASS`). Not scikit-learn's bound (``n eps var +
    (n mean eps)**2``), which grows with n**2 and calls a column at 1e13 with std 100 constant.
    """
    return ops.logical_or(scale == 0, scale < s.rel_resolution * ops.abs(center))


def _zero_range(center: Any, scale: Any, s: Any, ops: Any) -> Any:
    data_min = s.min
    return (s.max - data_min) < 10 * EPS * ops.maximum(ops.abs(data_min), s.ones)


def _zero_exact(center: Any, scale: Any, s: Any, ops: Any) -> Any:
    """Only an exactly zero scale: for constant scales (1, 255) and norms, which need no rounding bound."""
    return scale == 0


# ---- the formulas ------------------------------------------------------------------------------


def _identity(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    return s.ones * 0.0, s.ones


def _scale(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    return s.ones * 0.0, s.ones * spec.divisor


def _absmax(s: Any, ops: Any) -> Any:
    return ops.maximum(ops.abs(s.min), ops.abs(s.max))


def _scale_max(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    absmax = _absmax(s, ops)
    return ops.zeros_like(absmax), absmax


def _center(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    mean = s.mean
    return mean, ops.ones_like(mean)


def _standardize(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    return s.mean, ops.sqrt(s.var)


def _minmax(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    data_min, ones = s.min, s.ones
    data_range = s.max - data_min
    data_range = ops.where(data_range < 10 * EPS * ops.maximum(ops.abs(data_min), ones), ones, data_range)
    scale = data_range / (spec.hi - spec.lo)
    return data_min - spec.lo * scale, scale


def _robust(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    return s.quantile(0.5), s.quantile(spec.hi) - s.quantile(spec.lo)


def _l1(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    norm = s.abssum
    return ops.zeros_like(norm), norm


def _l2(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    norm = ops.sqrt(s.sumsq)
    return ops.zeros_like(norm), norm


def _linf(s: Any, ops: Any, spec: FormulaSpec) -> tuple[Any, Any]:
    norm = _absmax(s, ops)
    return ops.zeros_like(norm), norm


#: Every formula normlab knows, by name: the one place where a normalizer's arithmetic is written.
FORMULAS: dict[str, Formula] = {
    "identity": Formula(_identity, _zero_exact, "spread"),
    "scale": Formula(_scale, _zero_exact, "magnitude"),
    "scale-max": Formula(_scale_max, _zero_relative, "magnitude"),
    "center": Formula(_center, _zero_exact, "spread"),
    "standardize": Formula(_standardize, _zero_variance, "variance"),
    "minmax": Formula(_minmax, _zero_range, "range", presafe=True),
    "robust": Formula(_robust, _zero_relative, "interquartile range"),
    "l1": Formula(_l1, _zero_exact, "norm", warns=False),
    "l2": Formula(_l2, _zero_exact, "norm", warns=False),
    "linf": Formula(_linf, _zero_exact, "norm", warns=False),
}
FORMULA_NAMES: tuple[str, ...] = tuple(FORMULAS)


def apply(spec: FormulaSpec, s: Any, ops: Any) -> tuple[Any, Any, Any]:
    """``(center, safe_scale, zero_mask)`` of ``spec`` on the statistics view ``s``: the whole rule.

    ``safe_scale`` is the scale with every zero entry (``zero_mask``) replaced by 1.
    """
    formula = FORMULAS[spec.name]
    center, scale = formula.center_scale(s, ops, spec)
    mask = formula.zero(center, scale, s, ops)
    if not formula.presafe:
        scale = ops.where(mask, s.ones, scale)
    return center, scale, mask


#: The NumPy backend of the array-ops namespace.
NUMPY_OPS = SimpleNamespace(
    sqrt=np.sqrt,
    abs=np.abs,
    maximum=np.maximum,
    where=np.where,
    logical_or=np.logical_or,
    zeros_like=np.zeros_like,
    ones_like=np.ones_like,
)


# ---- NumPy statistics views --------------------------------------------------------------------


class FittedStats:
    """Accumulated statistics (a :class:`~normlab.core.stats.StatsAccumulator` or anything with its
    properties) reshaped to the statistic's shape, e.g. ``(c,)``.

    ``rel_resolution`` defaults to :data:`EXACT` for integer input (``acc.input_kind`` in ``"biu"``) and to
    :data:`ACCUMULATED` otherwise; statistics from elsewhere (float32 Keras layers) pass their own.
    """

    def __init__(self, acc: Any, shape: tuple[int, ...], *, rel_resolution: float | None = None):
        self._acc, self.shape = acc, tuple(shape)
        if rel_resolution is None:
            rel_resolution = getattr(acc, "rel_resolution", None)
        if rel_resolution is None:
            exact = getattr(acc, "input_kind", None) in ("b", "u", "i")
            rel_resolution = EXACT if exact else ACCUMULATED
        self.rel_resolution = rel_resolution

    def _r(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).reshape(self.shape)

    @property
    def ones(self) -> np.ndarray:
        return np.ones(self.shape)

    @property
    def count(self) -> np.ndarray:
        return self._r(self._acc.count)

    @property
    def mean(self) -> np.ndarray:
        return self._r(self._acc.mean)

    @property
    def var(self) -> np.ndarray:
        return self._r(self._acc.var)

    @property
    def min(self) -> np.ndarray:
        return self._r(self._acc.min)

    @property
    def max(self) -> np.ndarray:
        return self._r(self._acc.max)

    @property
    def sumsq(self) -> np.ndarray:
        return self.count * (self.var + self.mean**2)

    @property
    def abssum(self) -> np.ndarray:
        raise UsageError(
            "The sum of magnitudes over a dataset is not among the streamed statistics; expected the L1 norm "
            "only per sample. Use LpNormalize(order=1, per='sample')."
        )

    @property
    def quantile_rank_error(self) -> float:
        return float(getattr(self._acc, "quantile_rank_error", 0.0))

    def quantile(self, q: float) -> np.ndarray:
        return self._r(self._acc.quantile(q))


class SampleStats:
    """The same statistics computed for each sample over ``axes`` (keepdims), in float64."""

    rel_resolution = TWO_PASS

    def __init__(self, x: np.ndarray, axes: tuple[int, ...], nan: str):
        self._x = x.astype(np.float64, copy=False)
        self._axes = axes
        self._nan = nan == "ignore"
        self.shape = tuple(1 if a in axes else n for a, n in enumerate(x.shape))

    def _f(self, name: str) -> Any:
        return getattr(np, "nan" + name if self._nan else name)

    def _reduce(self, name: str, x: np.ndarray | None = None) -> np.ndarray:
        return self._f(name)(self._x if x is None else x, axis=self._axes, keepdims=True)

    @property
    def ones(self) -> np.ndarray:
        return np.ones(self.shape)

    @property
    def count(self) -> np.ndarray:
        if self._nan:
            return np.sum(~np.isnan(self._x), axis=self._axes, keepdims=True).astype(np.float64)
        return np.full(self.shape, float(np.prod([self._x.shape[a] for a in self._axes])))

    @property
    def mean(self) -> np.ndarray:
        return self._reduce("mean")

    @property
    def var(self) -> np.ndarray:
        return self._reduce("var")

    @property
    def min(self) -> np.ndarray:
        return self._reduce("min")

    @property
    def max(self) -> np.ndarray:
        return self._reduce("max")

    @property
    def sumsq(self) -> np.ndarray:
        return self._reduce("sum", self._x * self._x)

    @property
    def abssum(self) -> np.ndarray:
        return self._reduce("sum", np.abs(self._x))

    def quantile(self, q: float) -> np.ndarray:
        return self._f("quantile")(self._x, q, axis=self._axes, keepdims=True)
