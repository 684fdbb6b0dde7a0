"""The normalizers: sklearn-compatible estimators that also understand N-D arrays and streams of batches.

Each class is :class:`~normlab.core._estimator.Normalizer` plus its parameters, its formula (a row of
:mod:`normlab.core._formulas`) and its descriptive fitted attributes. To add a normalizer, add a class
here (and a row to the formula table if its arithmetic is new), and list it in ``normlab/__init__.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normlab.core._estimator import Normalizer, WeightedFit, check_is_fitted
from normlab.core._formulas import FORMULAS, NUMPY_OPS, FormulaSpec
from normlab.core.axes import resolve_per
from normlab.errors import DataError, ParameterError

__all__ = ["Center", "Identity", "LpNormalize", "MinMax", "Normalizer", "Robust", "Scale", "Standardize",
           "check_is_fitted"]

# --------------------------------------------------------------------------------------------------
# The normalizers
# --------------------------------------------------------------------------------------------------

_COMMON_PARAMS = """
    per : {"auto", "global", "channel", "feature", "sample", "sample-channel"}, default "auto"
        What one statistic is computed for. ``"auto"`` is ``"feature"`` for 2-D input ``(n, f)`` and
        ``"channel"`` for images ``(n, h, w, c)``; the resolved choice is ``per_``.
    channel_axis : int, optional
        Where channels are: ``-1`` for channels-last ``(n, h, w, c)``, ``1`` for ``(n, c, h, w)``. Unset, the
        input's convention decides (PyTorch tensors, Datasets and DataLoaders channels-first, everything
        else channels-last), and data that looks laid out the other way raises a ``LayoutError``.
    dtype : float dtype, optional
        Output dtype; default float32, or float64 for float64 input.
    zero_std : {"unit", "raise"}, default "unit"
        Entries with zero spread are divided by 1 (with a warning naming them), or raise ``DataError``.
    nan : {"raise", "ignore"}, default "raise"
        ``"ignore"`` leaves NaN out of the statistics and passes them through ``transform``."""


def _doc(cls: type) -> type:
    cls.__doc__ = (cls.__doc__ or "").replace("    {common}", _COMMON_PARAMS.strip("\n"))
    return cls


@_doc
class Identity(Normalizer):
    """Pass values through unchanged (cast to float): the baseline of every comparison.

    ``y = x``

    Parameters
    ----------
    {common}

    Examples
    --------
    >>> import numpy as np, normlab
    >>> normlab.Identity().fit_transform(np.array([[0, 255]], dtype=np.uint8))
    array([[  0., 255.]], dtype=float32)
    """

    def formula_spec(self) -> FormulaSpec:
        return FormulaSpec("identity")


@_doc
class Scale(Normalizer):
    """Divide by a constant: 255 for 8-bit images, the dtype's maximum, or the data's maximum magnitude.

    ``y = x / scale_``, where ``scale_`` is ``by`` (a number), the maximum of the fitted integer dtype
    (``by="dtype"``: 255 for uint8, 65535 for uint16, 1 for bool) or the largest ``|x|`` seen in fit
    (``by="max"``, one per ``per=`` entry).

    Parameters
    ----------
    by : float, "dtype" or "max", default 255
    {common}

    Attributes
    ----------
    scale_ : ndarray of the statistic's shape
        The divisor. ``center_`` is all zeros.

    Examples
    --------
    >>> import numpy as np, normlab
    >>> x = np.array([[[[0], [51]], [[102], [255]]]], dtype=np.uint8)  # (n, h, w, c)
    >>> normlab.Scale(by="dtype").fit(x).transform(x, exact=True).ravel()  # exact: correctly rounded
    array([0. , 0.2, 0.4, 1. ], dtype=float32)
    """

    def __init__(self, by: Any = 255, *, per: str = "auto", channel_axis: int | None = None, dtype: Any = None,
                 zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.by = by

    def _validate_params(self) -> None:
        super()._validate_params()
        if isinstance(self.by, str):
            if self.by not in ("dtype", "max"):
                raise ParameterError(f"Scale(by={self.by!r}) is not valid; expected a number, 'dtype' or 'max'.")
        elif not (isinstance(self.by, (int, float, np.number)) and np.isfinite(self.by) and self.by > 0):
            raise ParameterError(f"Scale(by={self.by!r}) must be a positive finite number, 'dtype' or 'max'.")

    def _divisor(self) -> float:
        if self.by == "dtype":
            dt = np.dtype(getattr(self, "fit_dtype_", np.float64))
            if dt.kind == "b":
                return 1.0
            if dt.kind in "ui":
                return float(np.iinfo(dt).max)
            raise DataError(
                f"Scale(by='dtype') was fitted on {dt} data, which has no natural maximum; expected integer "
                "data such as uint8 images. Use Scale(by='max') or Scale(by=<number>) for float data."
            )
        return float(self.by)

    def formula_spec(self) -> FormulaSpec:
        if self.by == "max":
            return FormulaSpec("scale-max")
        return FormulaSpec("scale", divisor=self._divisor())

    def _fitted_attributes(self, s: Any) -> None:
        if self.by == "max":
            self.max_abs_ = np.maximum(np.abs(s.min), np.abs(s.max))


@_doc
class Center(WeightedFit, Normalizer):
    """Subtract the mean: ``y = x - mean_``.

    Parameters
    ----------
    {common}

    Attributes
    ----------
    mean_ : ndarray of the statistic's shape, e.g. ``(c,)``
    n_samples_seen_ : int

    Examples
    --------
    >>> import numpy as np, normlab
    >>> normlab.Center().fit_transform(np.array([[1.0, 10.0], [3.0, 30.0]]))
    array([[ -1., -10.],
           [  1.,  10.]])
    """

    def formula_spec(self) -> FormulaSpec:
        return FormulaSpec("center")

    def _fitted_attributes(self, s: Any) -> None:
        self.mean_ = s.mean


@_doc
class Standardize(WeightedFit, Normalizer):
    """Zero mean, unit variance: ``z = (x - mean_) / std_``.

    The usual choice for images (``per="channel"``) and tables (``per="feature"``). Fit on the training
    split only, then transform train, validation, test and production data with the same statistics.

    Parameters
    ----------
    {common}

    Attributes
    ----------
    mean_, var_, std_ : ndarray of the statistic's shape, e.g. ``(c,)``
        ``var_`` has ddof=0. ``center_`` and ``scale_`` are what ``transform`` uses (``scale_`` is
        ``std_`` with zero entries replaced by 1).
    per_ : str
        The resolved mode.
    layout_ : Layout
        The fitted axes (``layout_.describe()`` names them, e.g. ``"(n, h, w, c)"``; ``layout_.stat_shape`` is
        the statistics' shape). ``fit_dtype_`` is the dtype of the first batch.
    n_samples_seen_ : int

    Notes
    -----
    Integer input is summed in integers, so ``mean_`` and ``var_`` are the exact values correctly rounded
    to float64, the same for any split into batches. Float input is accumulated in float64 with a
    per-chunk two-pass and Chan's parallel merge. A feature is constant when its variance is within
    scikit-learn's rounding bound of zero.

    See Also
    --------
    Center, MinMax, Robust

    Examples
    --------
    >>> import numpy as np, normlab
    >>> x = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)   # (n, h, w, c)
    >>> s = normlab.Standardize().fit(x)
    >>> s.per_, s.mean_.shape
    ('channel', (3,))
    >>> s.transform(x).mean(axis=(0, 1, 2)).round(6) + 0
    array([0., 0., 0.], dtype=float32)
    """

    def formula_spec(self) -> FormulaSpec:
        return FormulaSpec("standardize")

    def _fitted_attributes(self, s: Any) -> None:
        self.mean_ = s.mean
        self.var_ = s.var
        self.std_ = np.sqrt(self.var_)


@_doc
class MinMax(Normalizer):
    """Map the fitted minimum and maximum onto ``feature_range``.

    ``y = (x - min_) / (max_ - min_) * (hi - lo) + lo``. With ``per="sample"`` each sample is mapped from
    its own minimum and maximum (per-image min-max).

    Parameters
    ----------
    feature_range : tuple (lo, hi), default (0, 1)
    {common}

    Attributes
    ----------
    min_, max_ : ndarray of the statistic's shape
        The data's minimum and maximum (not sklearn's ``MinMaxScaler.min_`` offset).

    Examples
    --------
    >>> import numpy as np, normlab
    >>> normlab.MinMax().fit_transform(np.array([[2.0], [4.0], [6.0]])).ravel()
    array([0. , 0.5, 1. ])
    """

    def __init__(self, feature_range: tuple[float, float] = (0, 1), *, per: str = "auto", channel_axis: int | None = None,
                 dtype: Any = None, zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.feature_range = feature_range

    def _validate_params(self) -> None:
        super()._validate_params()
        lo, hi = self.feature_range
        if not lo < hi:
            raise ParameterError(
                f"MinMax(feature_range={tuple(self.feature_range)!r}) must be (lo, hi) with lo < hi, e.g. (0, 1)."
            )

    def formula_spec(self) -> FormulaSpec:
        lo, hi = (float(v) for v in self.feature_range)
        return FormulaSpec("minmax", lo=lo, hi=hi)  # a zero range maps onto lo, as MinMaxScaler does

    def _fitted_attributes(self, s: Any) -> None:
        self.min_ = s.min
        self.max_ = s.max


@_doc
class Robust(Normalizer):
    """Center on the median and divide by the interquartile range: robust to outliers.

    ``y = (x - median_) / (q_hi - q_lo)`` with quantiles ``quantile_range`` (percent) as
    ``numpy.quantile(method="linear")``, the same definition as scikit-learn's ``RobustScaler``.

    Parameters
    ----------
    quantile_range : tuple (lo, hi) in percent, default (25, 75)
    {common}

    Attributes
    ----------
    median_ : ndarray of the statistic's shape
        ``center_`` equals it; ``scale_`` is the interquartile range (1 where it is zero).
    quantile_rank_error_ : float
        0.0 when the quantiles are exact: integer data, float data small enough to keep, and any array given
        whole to ``fit(X)`` (its quantiles are selected exactly in a few passes over ``X``; an ``X`` of more
        than ``2**22`` values then takes no further ``partial_fit``). Otherwise, for a stream of batches,
        the bound on their rank error as a fraction of the count (the streaming sketch's guarantee).

    Examples
    --------
    >>> import numpy as np, normlab
    >>> normlab.Robust().fit_transform(np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])).ravel()
    array([-1. , -0.5,  0. ,  0.5, 48.5])
    """

    _needs_quantiles = True

    def __init__(self, quantile_range: tuple[float, float] = (25, 75), *, per: str = "auto",
                 channel_axis: int | None = None, dtype: Any = None, zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.quantile_range = quantile_range

    def _validate_params(self) -> None:
        super()._validate_params()
        lo, hi = self.quantile_range
        if not 0 <= lo < hi <= 100:
            raise ParameterError(
                f"Robust(quantile_range={tuple(self.quantile_range)!r}) must be percentages with "
                "0 <= lo < hi <= 100, e.g. (25, 75)."
            )

    def formula_spec(self) -> FormulaSpec:
        lo, hi = (float(v) / 100 for v in self.quantile_range)
        return FormulaSpec("robust", lo=lo, hi=hi)

    def _quantile_targets(self) -> tuple[float, ...]:
        spec = self.formula_spec()
        return (0.5, spec.lo, spec.hi)

    def _fitted_attributes(self, s: Any) -> None:
        self.median_ = s.quantile(0.5)
        self.quantile_rank_error_ = float(getattr(s, "quantile_rank_error", 0.0))


@_doc
class LpNormalize(Normalizer):
    """Divide by the Lp norm: ``y = x / ||x||_p`` over the reduced axes.

    With the default ``per="sample"`` each sample gets unit norm (scikit-learn's ``Normalizer``,
    ``keras.utils.normalize(x, axis=-1)`` on 2-D data). A stateful mode divides by the norm over the
    training data: ``per="feature"`` on 2-D data is ``keras.utils.normalize(x, axis=0)``. Zero norms are
    left as 1.

    Parameters
    ----------
    order : {1, 2, inf}, default 2
        ``p``. Stateful modes support 2 and inf.
    {common}

    Attributes
    ----------
    norm_ : ndarray of the statistic's shape (stateful modes)

    Examples
    --------
    >>> import numpy as np, normlab
    >>> normlab.LpNormalize().fit_transform(np.array([[3.0, 4.0], [0.0, 0.0]]))
    array([[0.6, 0.8],
           [0. , 0. ]])
    """

    def __init__(self, order: float = 2, *, per: str = "sample", channel_axis: int | None = None, dtype: Any = None,
                 zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.order = order

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.order not in (1, 2, np.inf):
            raise ParameterError(f"LpNormalize(order={self.order!r}) is not supported; expected 1, 2 or np.inf.")

    def partial_fit(self, X: Any, y: Any = None) -> Normalizer:
        if self.order == 1 and resolve_per(self.per, 2) not in ("sample", "sample-channel"):
            raise ParameterError(
                f"LpNormalize(order=1, per={self.per!r}): the L1 norm over a whole dataset is not among the "
                "streamed statistics; expected order=2 or np.inf for a stateful mode, or per='sample'."
            )
        return super().partial_fit(X, y)

    def formula_spec(self) -> FormulaSpec:
        return FormulaSpec({1: "l1", 2: "l2"}.get(self.order, "linf"))

    def _fitted_attributes(self, s: Any) -> None:
        spec = self.formula_spec()
        self.norm_ = FORMULAS[spec.name].center_scale(s, NUMPY_OPS, spec)[1]  # before zero norms become 1
