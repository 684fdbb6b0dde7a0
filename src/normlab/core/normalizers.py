"""The normalizers: sklearn-compatible estimators that also understand N-D arrays and streams of batches.

Every normalizer is the same affine map ``y = (x - center_) / scale_``; the classes differ only in which
statistics become ``center_`` and ``scale_`` (:meth:`_Normalizer._center_scale`). For the stateful modes
(``per="global" | "channel" | "feature"``) those statistics are fitted once, on training data, by one
streaming pass; for the per-sample modes (``"sample" | "sample-channel"``) the same formula is applied to
each sample's own statistics inside :meth:`transform`. There is no other code path.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar

import numpy as np

from normlab.core._fitting import StatsFeed, check_compatible, iter_input
from normlab.core._kernels import affine_transform
from normlab.core.axes import Layout, resolve_layout, resolve_per
from normlab.errors import DataError, LayoutError, NormlabError, NotFittedError, ZeroVarianceWarning

__all__ = ["Center", "Identity", "LpNormalize", "MinMax", "Robust", "Scale", "Standardize"]

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------------
# Statistics as the formulas see them: fitted (one entry per kept position) or per sample (keepdims).
# --------------------------------------------------------------------------------------------------


class _FittedStats:
    """Accumulated statistics reshaped to the statistic's shape (e.g. ``(c,)``)."""

    def __init__(self, acc: Any, shape: tuple[int, ...]):
        self._acc, self._shape = acc, shape

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    def _r(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).reshape(self._shape)

    @property
    def count(self) -> np.ndarray:
        return np.asarray(self._acc.count).reshape(self._shape)

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

    def quantile(self, q: float) -> np.ndarray:
        return self._r(self._acc.quantile(q))


class _SampleStats:
    """The same statistics computed for each sample over ``axes`` (keepdims), in float64."""

    def __init__(self, x: np.ndarray, axes: tuple[int, ...], nan: str):
        self._x = x.astype(np.float64, copy=False)
        self._axes = axes
        self._nan = nan == "ignore"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(1 if a in self._axes else n for a, n in enumerate(self._x.shape))

    @property
    def count(self) -> np.ndarray:
        if self._nan:
            return np.sum(~np.isnan(self._x), axis=self._axes, keepdims=True)
        return np.full(self.shape, np.prod([self._x.shape[a] for a in self._axes]))

    def _f(self, name: str) -> Any:
        return getattr(np, "nan" + name if self._nan else name)

    @property
    def mean(self) -> np.ndarray:
        return self._f("mean")(self._x, axis=self._axes, keepdims=True)

    @property
    def var(self) -> np.ndarray:
        return self._f("var")(self._x, axis=self._axes, keepdims=True)

    @property
    def min(self) -> np.ndarray:
        return self._f("min")(self._x, axis=self._axes, keepdims=True)

    @property
    def max(self) -> np.ndarray:
        return self._f("max")(self._x, axis=self._axes, keepdims=True)

    def quantile(self, q: float) -> np.ndarray:
        return self._f("quantile")(self._x, q, axis=self._axes, keepdims=True)


# --------------------------------------------------------------------------------------------------
# The base class: parameters, fitting, transforming, sklearn protocol.
# --------------------------------------------------------------------------------------------------


class _Normalizer:
    """Shared machinery; subclasses define :meth:`_center_scale` and, if needed, :meth:`_fitted_attributes`."""

    _needs_quantiles: ClassVar[bool] = False
    _default_per: ClassVar[str] = "auto"
    _zero_kind: ClassVar[str] = "spread"  # what a zero scale is called in messages

    def __init__(
        self,
        *,
        per: str = "auto",
        channel_axis: int = -1,
        dtype: Any = None,
        zero_std: str = "unit",
        nan: str = "raise",
    ) -> None:
        self.per = per
        self.channel_axis = channel_axis
        self.dtype = dtype
        self.zero_std = zero_std
        self.nan = nan

    # ---- sklearn's parameter protocol -----------------------------------------------------------

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, as sklearn's ``BaseEstimator.get_params``."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> _Normalizer:
        """Set constructor arguments; unknown names raise ``ValueError`` listing the valid ones."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {key!r}; expected one of {', '.join(valid)}."
                )
            setattr(self, key, value)
        return self

    def __sklearn_tags__(self) -> Any:  # only sklearn calls this, so sklearn is already imported
        from sklearn.utils import Tags, TargetTags, TransformerTags

        tags = Tags(estimator_type=None, target_tags=TargetTags(required=False), transformer_tags=TransformerTags())
        tags.input_tags.allow_nan = self.nan == "ignore"
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        args = [f"{k}={v!r}" for k, v in self.get_params().items() if not _same(v, defaults.get(k))]
        per_ = getattr(self, "per_", None)
        note = ""
        if per_ is not None and self.per == "auto":
            note = f"  # per='auto' resolved to per={per_!r} for {self.layout_}"
        return f"{type(self).__name__}({', '.join(args)}){note}"

    def _who(self) -> str:
        per = getattr(self, "per_", None) or self.per
        return f"{type(self).__name__}(per={per!r})"

    # ---- validation -----------------------------------------------------------------------------

    def _validate_params(self) -> None:
        resolve_per(self.per, 2)  # raises on an unknown mode
        if self.zero_std not in ("unit", "raise"):
            raise ValueError(
                f"{type(self).__name__}(zero_std={self.zero_std!r}) is not a valid choice; expected 'unit' "
                "(divide constant entries by 1, with a warning) or 'raise'."
            )
        if self.nan not in ("raise", "ignore"):
            raise ValueError(
                f"{type(self).__name__}(nan={self.nan!r}) is not a valid choice; expected 'raise' or 'ignore'."
            )
        if self.dtype is not None:
            dt = np.dtype(self.dtype)
            if dt.kind != "f":
                raise ValueError(
                    f"{type(self).__name__}(dtype={self.dtype!r}) must be a float dtype such as 'float32' or "
                    "'float64', since normalized values are fractions."
                )

    def _check_is_fitted(self, method: str) -> None:
        if not hasattr(self, "per_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet, so {method} has no statistics to use; "
                f"expected fit() first. Call {type(self).__name__}(...).fit(x_train) on the training split, "
                "or normlab.load(path) a saved normalizer."
            )

    # ---- fitting --------------------------------------------------------------------------------

    def _reset(self) -> None:
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)
        for name in ("_feed", "_fit_layout", "_pending_warning"):
            self.__dict__.pop(name, None)

    def fit(self, X: Any, y: Any = None) -> _Normalizer:
        """Compute the statistics of ``X`` (an array, or an iterable of batches) from scratch.

        ``fit`` is ``partial_fit`` on a fresh estimator: both take the same code path.
        """
        self._reset()
        self.partial_fit(X, y)
        self._emit_pending_warning()
        return self

    def partial_fit(self, X: Any, y: Any = None) -> _Normalizer:
        """Update the statistics with ``X`` (an array or an iterable of batches); call repeatedly to stream."""
        self._validate_params()
        feed = self.__dict__.get("_feed")
        if feed is None:
            feed = StatsFeed(self.per, self.channel_axis, self._who(), quantiles=self._needs_quantiles, nan=self.nan)
        names = _feature_names(X)
        if names is not None or hasattr(self, "feature_names_in_"):
            _check_feature_names(self, names, reset=not hasattr(self, "per_"))
        for batch in iter_input(X, self._who() if hasattr(self, "per_") else type(self).__name__):
            feed.update(batch)
        self._feed = feed
        self.__dict__.pop("_pending_warning", None)
        layout = feed.layout
        assert layout is not None  # iter_input yields at least one batch
        self._fit_layout = layout
        self.per_ = layout.per
        self.layout_ = layout.describe()
        self.n_samples_seen_ = feed.n_samples
        if layout.ndim == 2:
            self.n_features_in_ = layout.shape[1]
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self._fit_dtype = feed.dtype
        if layout.stateful:
            stats = _FittedStats(feed.acc, layout.stat_shape)
            center, scale = self._center_scale(stats)
            self._fitted_attributes(stats)
            self.center_, self.scale_ = self._guard_scale(np.asarray(center, np.float64),
                                                          np.asarray(scale, np.float64), stats)
        else:
            self._check_sample_layout(layout)
        return self

    def _check_sample_layout(self, layout: Layout) -> None:
        if not layout.reduce_axes:
            raise LayoutError(
                f"{self._who()} computes one statistic per sample and channel, but the input of shape "
                f"{layout.shape} (layout {layout.describe()}) has no other axis to compute it over; expected "
                "data with spatial axes such as (n, h, w, c). Use per='sample' for tables."
            )

    # ---- the formula ----------------------------------------------------------------------------

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError  # every concrete normalizer defines it

    def _fitted_attributes(self, s: _FittedStats) -> None:
        """Set the descriptive fitted attributes (``mean_``, ``std_``, ...) of a stateful fit."""

    def _constant_mask(self, center: np.ndarray, scale: np.ndarray, s: Any) -> np.ndarray:
        return np.abs(scale) < 10 * _EPS * np.maximum(1.0, np.abs(center))

    def _zero_safe(self, center: np.ndarray, scale: np.ndarray, s: Any) -> tuple:
        """Return ``(center, scale, mask)`` with entries of zero spread (``mask``) made safe to divide by."""
        mask = self._constant_mask(center, scale, s)
        return center, np.where(mask, 1.0, scale), mask

    def _guard_scale(self, center: np.ndarray, scale: np.ndarray, s: Any, *, warn: bool = True) -> tuple:
        """The zero-variance rule at fit time: a zero scale becomes 1 (with a warning), or raises."""
        center, scale, mask = self._zero_safe(center, scale, s)
        if np.any(mask):
            if mask.ndim == 0:  # per="global": one statistic for everything
                idx: list = ["all"]
            else:
                idx = [tuple(int(i) for i in ix) if len(ix) > 1 else int(ix[0]) for ix in np.argwhere(mask)]
            shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
            what = {"channel": "channels", "feature": "features", "global": "values"}.get(self.per_, "entries")
            msg = (
                f"{self._who()} found {len(idx)} {what} with zero {self._zero_kind} (at {shown}) in "
                f"{self.n_samples_seen_} samples"
            )
            if self.zero_std == "raise":
                raise DataError(
                    msg + "; expected every entry to vary. Drop the constant entries, or pass zero_std='unit' "
                    "to divide them by 1 instead."
                )
            if warn:  # emitted once: at the end of fit(), or by the first transform() after partial_fit()
                self._pending_warning = (
                    msg + "; they are divided by 1 instead of a near-zero number. Drop them if they carry no "
                    "information, or pass zero_std='raise' to make this an error."
                )
        return center, scale

    def _emit_pending_warning(self) -> None:
        msg = self.__dict__.pop("_pending_warning", None)
        if msg:
            warnings.warn(msg, ZeroVarianceWarning, stacklevel=3)

    # ---- transforming ---------------------------------------------------------------------------

    def _out_dtype(self, x: np.ndarray) -> np.dtype:
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)

    def _input_layout(self, X: Any, method: str) -> tuple[np.ndarray, Layout]:
        from normlab.core._fitting import as_array, check_finite

        self._check_is_fitted(f"{method}()")
        names = _feature_names(X)
        if names is not None or hasattr(self, "feature_names_in_"):
            _check_feature_names(self, names, reset=False)
        x = as_array(X, self._who())
        if self.nan == "raise":
            check_finite(x, f"{self._who()}.{method}()")
        layout = resolve_layout(self.per_, x.shape, self.channel_axis, owner=self._who())
        check_compatible(self._fit_layout, layout, self._who(), verb=f"{method}()")
        return x, layout

    def affine_(self, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(shift, inv_scale)``, float64, shaped to broadcast against fitted-layout input.

        ``transform(x) == (x - shift) * inv_scale``. ``shape`` is an input shape to broadcast against
        (default: the fitted one). Only stateful modes have fitted statistics.
        """
        self._check_is_fitted("affine_()")
        if not self._fit_layout.stateful:
            raise NormlabError(
                f"{self._who()} computes its statistics per sample at transform time, so it has no fitted "
                "shift and scale; expected a stateful mode (per='global', 'channel' or 'feature')."
            )
        lay = self._fit_layout if shape is None else resolve_layout(self.per_, shape, self.channel_axis)
        bshape = lay.broadcast_shape
        return self.center_.reshape(bshape), (1.0 / self.scale_).reshape(bshape)

    def transform(self, X: Any, out: np.ndarray | None = None, *, exact: bool = False) -> np.ndarray:
        """Normalize ``X``: ``(x - center_) / scale_``.

        Parameters
        ----------
        X : array-like of the fitted layout, e.g. ``(n, h, w, c)``
        out : ndarray, optional
            A buffer of ``X``'s shape to write into (reuse it across batches to avoid allocations).
        exact : bool
            For 8-bit integer input, map through a float64-built lookup table so every output is the
            correctly rounded value of the exact formula (slightly slower).

        Returns
        -------
        ndarray of ``X``'s shape; float32 for integer/float16/float32 input, float64 for float64 input.
        """
        x, layout = self._input_layout(X, "transform")
        self._emit_pending_warning()
        dtype = np.dtype(out.dtype) if out is not None else self._out_dtype(x)
        if out is not None and out.shape != x.shape:
            raise LayoutError(
                f"{self._who()}.transform() got out= of shape {out.shape} for input of shape {x.shape}; "
                "expected the same shape. Allocate it with np.empty(x.shape, np.float32)."
            )
        if x.dtype == np.float16:  # computed in float32, as every half-precision op is
            x = x.astype(np.float32)
        if layout.stateful:
            shift, inv_scale = self.affine_(x.shape)
        else:
            shift, inv_scale = self._sample_affine(x, layout)
        return affine_transform(x, shift, inv_scale, out=out, dtype=dtype, exact=exact)

    def _sample_affine(self, x: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        stats = _SampleStats(x, layout.reduce_axes, self.nan)
        center, scale = self._center_scale(stats)
        center, scale, _ = self._zero_safe(np.asarray(center, np.float64), np.asarray(scale, np.float64), stats)
        return center, 1.0 / scale

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X).transform(X)`` for an array-like ``X`` (a stream can be read only once)."""
        from normlab.core._fitting import is_batch_stream

        if is_batch_stream(X):
            raise NormlabError(
                f"{type(self).__name__}.fit_transform() received a stream of batches, which can be read only "
                "once; expected an array. Call fit(stream) first, then transform() each batch."
            )
        return self.fit(X, y).transform(X)

    def inverse_transform(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Undo :meth:`transform`: ``x = y * scale_ + center_`` (stateful modes only)."""
        self._check_is_fitted("inverse_transform()")
        if not self._fit_layout.stateful:
            raise NormlabError(
                f"{self._who()} cannot invert its transform: per-sample statistics are computed from each "
                "input and not kept. Keep the raw data, or fit a stateful mode (per='channel', 'feature' or "
                "'global') if you need inverse_transform()."
            )
        y, _ = self._input_layout(X, "inverse_transform")
        shift, inv_scale = self.affine_(y.shape)
        dtype = np.dtype(out.dtype) if out is not None else self._out_dtype(y)
        return affine_transform(y, -shift * inv_scale, 1.0 / inv_scale, out=out, dtype=dtype)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names (the input names: normalization keeps every feature)."""
        self._check_is_fitted("get_feature_names_out()")
        n = getattr(self, "n_features_in_", None)
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            if n is not None and len(input_features) != n:
                raise ValueError(
                    f"input_features should have length equal to number of features ({n}), got "
                    f"{len(input_features)}"
                )
            return input_features
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.asarray([f"x{i}" for i in range(n or 0)], dtype=object)

    # ---- building from known statistics ---------------------------------------------------------

    def _restore(self, layout: Layout, fit_dtype: Any, n_samples_seen: int, attributes: dict[str, Any]) -> _Normalizer:
        """Make this (unfitted) normalizer fitted from known values: used by ``load``, ``from_sklearn``,
        ``from_keras`` and ``DatasetStats.to_normalizer``. ``attributes`` holds the fitted ``*_`` values
        (``center_`` and ``scale_`` at least, for stateful modes)."""
        self._reset()
        self._fit_layout = layout
        self._fit_dtype = np.dtype(fit_dtype)
        self.per_ = layout.per
        self.layout_ = layout.describe()
        self.n_samples_seen_ = int(n_samples_seen)
        if layout.ndim == 2:
            self.n_features_in_ = layout.shape[1]
        for name, value in attributes.items():
            setattr(self, name, value)
        if layout.stateful:
            for name in ("center_", "scale_"):
                if name not in attributes:
                    continue
                value = np.asarray(attributes[name], dtype=np.float64)
                if value.shape != layout.stat_shape:
                    raise LayoutError(
                        f"{self._who()}: {name} has shape {value.shape}, but per={layout.per!r} on "
                        f"{layout.describe()} needs shape {layout.stat_shape}."
                    )
                setattr(self, name, value)
        return self

    def _fit_from_stats(self, stats: Any, layout: Layout, fit_dtype: Any, n_samples_seen: int) -> _Normalizer:
        """Fit from statistics already computed (anything with mean/var/min/max/count/quantile)."""
        self._restore(layout, fit_dtype, n_samples_seen, {})
        center, scale = self._center_scale(stats)
        self._fitted_attributes(stats)
        self.center_, self.scale_ = self._guard_scale(np.asarray(center, np.float64), np.asarray(scale, np.float64),
                                                      stats)
        self._emit_pending_warning()
        return self

    # ---- persistence ----------------------------------------------------------------------------

    def save(self, path: Any) -> None:
        """Write the fitted normalizer as versioned JSON (atomically). Read it back with ``normlab.load``."""
        from normlab.core.persist import save_normalizer

        save_normalizer(self, path)

    def to_torch(self) -> Any:
        """This normalizer as a ``torch.nn.Module``, statistics as buffers (see ``normlab.torch``)."""
        from normlab.adapters.torch import to_torch

        return to_torch(self)

    def to_keras(self) -> Any:
        """This normalizer as a Keras 3 layer that ``model.save()`` carries (see ``normlab.keras``)."""
        from normlab.adapters.keras import to_keras

        return to_keras(self)


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(type(value) is type(default) and value == default) or value is default
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------
# Feature names (sklearn's protocol for DataFrames)
# --------------------------------------------------------------------------------------------------


def _feature_names(X: Any) -> list[str] | None:
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "dtypes"):
        return None
    names = list(cols)
    return names if names and all(isinstance(c, str) for c in names) else None


def _check_feature_names(est: _Normalizer, names: list[str] | None, *, reset: bool) -> None:
    if reset:
        return
    fitted = getattr(est, "feature_names_in_", None)
    if fitted is None and names is None:
        return
    cls = type(est).__name__
    if fitted is not None and names is None:
        warnings.warn(f"X does not have valid feature names, but {cls} was fitted with feature names",
                      UserWarning, stacklevel=4)
        return
    if fitted is None:
        warnings.warn(f"X has feature names, but {cls} was fitted without feature names", UserWarning,
                      stacklevel=4)
        return
    fitted_list = list(fitted)
    if names == fitted_list:
        return
    message = "The feature names should match those that were passed during fit.\n"
    unexpected = sorted(set(names) - set(fitted_list))
    missing = sorted(set(fitted_list) - set(names))

    def listing(items: list[str]) -> str:
        shown = "".join(f"- {n}\n" for n in items[:5])
        return shown + ("- ...\n" if len(items) > 5 else "")

    if unexpected:
        message += "Feature names unseen at fit time:\n" + listing(unexpected)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listing(missing)
    if not unexpected and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise LayoutError(message)


# --------------------------------------------------------------------------------------------------
# The normalizers
# --------------------------------------------------------------------------------------------------

_COMMON_PARAMS = """
    per : {"auto", "global", "channel", "feature", "sample", "sample-channel"}, default "auto"
        What one statistic is computed for. ``"auto"`` is ``"feature"`` for 2-D input ``(n, f)`` and
        ``"channel"`` for images ``(n, h, w, c)``; the resolved choice is ``per_``.
    channel_axis : int, default -1
        Where channels are: ``-1`` for channels-last ``(n, h, w, c)``, ``1`` for ``(n, c, h, w)``.
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
class Identity(_Normalizer):
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

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(s.shape), np.ones(s.shape)


@_doc
class Scale(_Normalizer):
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

    _zero_kind = "magnitude"

    def __init__(self, by: Any = 255, *, per: str = "auto", channel_axis: int = -1, dtype: Any = None,
                 zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.by = by

    def _validate_params(self) -> None:
        super()._validate_params()
        if isinstance(self.by, str):
            if self.by not in ("dtype", "max"):
                raise ValueError(f"Scale(by={self.by!r}) is not valid; expected a number, 'dtype' or 'max'.")
        elif not (isinstance(self.by, (int, float, np.number)) and np.isfinite(self.by) and self.by > 0):
            raise ValueError(f"Scale(by={self.by!r}) must be a positive finite number, 'dtype' or 'max'.")

    def _divisor(self) -> float:
        if self.by == "dtype":
            dt = np.dtype(self._fit_dtype if hasattr(self, "_fit_dtype") else np.float64)
            if dt.kind == "b":
                return 1.0
            if dt.kind in "ui":
                return float(np.iinfo(dt).max)
            raise DataError(
                f"Scale(by='dtype') was fitted on {dt} data, which has no natural maximum; expected integer "
                "data such as uint8 images. Use Scale(by='max') or Scale(by=<number>) for float data."
            )
        return float(self.by)

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.by == "max":
            absmax = np.maximum(np.abs(s.min), np.abs(s.max))
            return np.zeros_like(absmax), absmax
        return np.zeros(s.shape), np.full(s.shape, self._divisor())

    def _fitted_attributes(self, s: _FittedStats) -> None:
        if self.by == "max":
            self.max_abs_ = np.maximum(np.abs(s.min), np.abs(s.max))


@_doc
class Center(_Normalizer):
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

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        mean = s.mean
        return mean, np.ones_like(mean)

    def _fitted_attributes(self, s: _FittedStats) -> None:
        self.mean_ = s.mean


@_doc
class Standardize(_Normalizer):
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
        The resolved mode. ``layout_`` names the axes, e.g. ``"(n, h, w, c)"``.
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

    _zero_kind = "variance"

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        return s.mean, np.sqrt(s.var)

    def _fitted_attributes(self, s: _FittedStats) -> None:
        self.mean_ = s.mean
        self.var_ = s.var
        self.std_ = np.sqrt(self.var_)

    def _constant_mask(self, center: np.ndarray, scale: np.ndarray, s: Any) -> np.ndarray:
        # scikit-learn's bound for a variance that is zero up to rounding (sklearn.preprocessing._data)
        n = np.asarray(s.count, dtype=np.float64)
        var, mean = scale**2, np.asarray(center, np.float64)
        bound = n * _EPS * var + (n * mean * _EPS) ** 2
        return (var <= bound) | (scale == 0)


@_doc
class MinMax(_Normalizer):
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

    _zero_kind = "range"

    def __init__(self, feature_range: tuple[float, float] = (0, 1), *, per: str = "auto", channel_axis: int = -1,
                 dtype: Any = None, zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.feature_range = feature_range

    def _validate_params(self) -> None:
        super()._validate_params()
        lo, hi = self.feature_range
        if not lo < hi:
            raise ValueError(
                f"MinMax(feature_range={tuple(self.feature_range)!r}) must be (lo, hi) with lo < hi, e.g. (0, 1)."
            )

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (float(v) for v in self.feature_range)
        data_min, data_range = s.min, s.max - s.min
        data_range = np.where(data_range < 10 * _EPS * np.maximum(1.0, np.abs(data_min)), 1.0, data_range)
        scale = data_range / (hi - lo)
        return data_min - lo * scale, scale

    def _constant_mask(self, center: np.ndarray, scale: np.ndarray, s: Any) -> np.ndarray:
        rng = np.asarray(s.max, np.float64) - np.asarray(s.min, np.float64)
        return rng < 10 * _EPS * np.maximum(1.0, np.abs(np.asarray(s.min, np.float64)))

    def _zero_safe(self, center: np.ndarray, scale: np.ndarray, s: Any) -> tuple:
        # _center_scale already maps a zero range onto lo (as MinMaxScaler does)
        return center, scale, self._constant_mask(center, scale, s)

    def _fitted_attributes(self, s: _FittedStats) -> None:
        self.min_ = s.min
        self.max_ = s.max


@_doc
class Robust(_Normalizer):
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
        0.0 when the quantiles are exact (integer data, or float data small enough to keep), otherwise the
        bound on their rank error as a fraction of the count (the streaming sketch's guarantee).

    Examples
    --------
    >>> import numpy as np, normlab
    >>> normlab.Robust().fit_transform(np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])).ravel()
    array([-1. , -0.5,  0. ,  0.5, 48.5])
    """

    _needs_quantiles = True
    _zero_kind = "interquartile range"

    def __init__(self, quantile_range: tuple[float, float] = (25, 75), *, per: str = "auto",
                 channel_axis: int = -1, dtype: Any = None, zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.quantile_range = quantile_range

    def _validate_params(self) -> None:
        super()._validate_params()
        lo, hi = self.quantile_range
        if not 0 <= lo < hi <= 100:
            raise ValueError(
                f"Robust(quantile_range={tuple(self.quantile_range)!r}) must be percentages with "
                "0 <= lo < hi <= 100, e.g. (25, 75)."
            )

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (float(v) / 100 for v in self.quantile_range)
        return s.quantile(0.5), s.quantile(hi) - s.quantile(lo)

    def _fitted_attributes(self, s: _FittedStats) -> None:
        self.median_ = s.quantile(0.5)
        self.quantile_rank_error_ = float(s._acc.quantile_rank_error)


@_doc
class LpNormalize(_Normalizer):
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

    _zero_kind = "norm"

    def __init__(self, order: float = 2, *, per: str = "sample", channel_axis: int = -1, dtype: Any = None,
                 zero_std: str = "unit", nan: str = "raise") -> None:
        super().__init__(per=per, channel_axis=channel_axis, dtype=dtype, zero_std=zero_std, nan=nan)
        self.order = order

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.order not in (1, 2, np.inf):
            raise ValueError(f"LpNormalize(order={self.order!r}) is not supported; expected 1, 2 or np.inf.")

    def partial_fit(self, X: Any, y: Any = None) -> _Normalizer:
        if self.order == 1 and resolve_per(self.per, 2) not in ("sample", "sample-channel"):
            raise ValueError(
                f"LpNormalize(order=1, per={self.per!r}): the L1 norm over a whole dataset is not among the "
                "streamed statistics; expected order=2 or np.inf for a stateful mode, or per='sample'."
            )
        return super().partial_fit(X, y)

    def _center_scale(self, s: Any) -> tuple[np.ndarray, np.ndarray]:
        if isinstance(s, _SampleStats):
            x = s._x
            f = np.nansum if s._nan else np.sum
            if self.order == 1:
                norm = f(np.abs(x), axis=s._axes, keepdims=True)
            elif self.order == 2:
                norm = np.sqrt(f(x * x, axis=s._axes, keepdims=True))
            else:
                norm = (np.nanmax if s._nan else np.max)(np.abs(x), axis=s._axes, keepdims=True)
        elif self.order == 2:
            n = np.asarray(s.count, np.float64)
            norm = np.sqrt(n * (s.var + s.mean**2))
        else:
            norm = np.maximum(np.abs(s.min), np.abs(s.max))
        return np.zeros_like(norm), norm

    def _constant_mask(self, center: np.ndarray, scale: np.ndarray, s: Any) -> np.ndarray:
        return scale == 0

    def _guard_scale(self, center: np.ndarray, scale: np.ndarray, s: Any, *, warn: bool = True) -> tuple:
        return super()._guard_scale(center, scale, s, warn=False)  # zero norms are routine (all-zero rows)

    def _fitted_attributes(self, s: _FittedStats) -> None:
        self.norm_ = self._center_scale(s)[1]
