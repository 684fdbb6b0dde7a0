"""The base of every normalizer: fitting, the zero-spread rule, transforming, the sklearn protocol.

Every normalizer is the same affine map ``y = (x - center_) / scale_``; the concrete classes
(:mod:`normlab.core.normalizers`) differ only in their formula (a row of :mod:`normlab.core._formulas`).
For the stateful modes (``per="global" | "channel" | "feature"``) the statistics are fitted once, on
training data, by one streaming pass; for the per-sample modes (``"sample" | "sample-channel"``) the same
formula is applied to each sample's own statistics inside :meth:`Normalizer.transform`. There is no other
code path.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from math import prod
from typing import Any, ClassVar

import numpy as np

from normlab.core._configs import hf_config, timm_config, write_hf
from normlab.core._fitting import (
    StatsFeed,
    as_array,
    check_compatible,
    check_finite,
    is_batch_stream,
    is_one_array,
    iter_input,
    rereader,
)
from normlab.core._formulas import FORMULAS, NUMPY_OPS, FittedStats, FormulaSpec, SampleStats, apply
from normlab.core._hooks import collection_feeder, export
from normlab.core._kernels import affine_transform
from normlab.core._output import check_container, wrap_output
from normlab.core._quantiles import EXACT_QUANTILE_BUDGET
from normlab.core._weighted import WeightedMoments, check_weights
from normlab.core.axes import Layout, resolve_layout, resolve_per
from normlab.core.persist import save_normalizer
from normlab.errors import (
    DataError,
    LayoutError,
    NormlabError,
    NotFittedError,
    ParameterError,
    ZeroVarianceWarning,
)

__all__ = ["Normalizer", "WeightedFit", "check_is_fitted"]


def check_is_fitted(est: Any, method: str = "this method") -> None:
    """Raise :class:`~normlab.errors.NotFittedError`, naming the fix, unless ``est`` is fitted.

    "Fitted" is decided by the presence of the fitted attributes (``per_``), as in scikit-learn.

    >>> from normlab import Standardize
    >>> check_is_fitted(Standardize(), "transform()")
    Traceback (most recent call last):
    ...
    normlab.errors.NotFittedError: This Standardize instance is not fitted yet, so transform() has no statistics to use; expected fit() first. Call Standardize(...).fit(x_train) on the training split, or normlab.load(path) a saved normalizer.
    """
    if not hasattr(est, "per_"):
        name = type(est).__name__
        raise NotFittedError(
            f"This {name} instance is not fitted yet, so {method} has no statistics to use; "
            f"expected fit() first. Call {name}(...).fit(x_train) on the training split, "
            "or normlab.load(path) a saved normalizer."
        )


# --------------------------------------------------------------------------------------------------
# The base class: parameters, fitting, transforming, sklearn protocol.
# --------------------------------------------------------------------------------------------------


class Normalizer:
    """The shared machinery of every normalizer: ``y = (x - center_) / scale_``.

    A subclass names its formula (:meth:`formula_spec`, a row of the table in
    :mod:`normlab.core._formulas`) and, if it has any, sets its descriptive fitted attributes
    (:meth:`_fitted_attributes`). Everything else (fitting, the zero-spread rule, transforming, the
    sklearn protocol, building from known statistics) is here, once.

    The public protocol other modules use: :func:`check_is_fitted`, ``layout_`` (the fitted
    :class:`~normlab.core.axes.Layout`), ``fit_dtype_``, :meth:`formula_spec`, :meth:`affine_`,
    :meth:`from_stats` and :meth:`from_fitted`.
    """

    _needs_quantiles: ClassVar[bool] = False

    def __init__(
        self,
        *,
        per: str = "auto",
        channel_axis: int | None = None,
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

    def set_params(self, **params: Any) -> Normalizer:
        """Set constructor arguments; unknown names raise ``ValueError`` listing the valid ones."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise ParameterError(
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
            note = f"  # per='auto' resolved to per={per_!r} for {self.layout_.describe()}"
        elif per_ is not None and self.channel_axis is None and self.layout_.ndim > 2:
            note = f"  # layout {self.layout_.describe()}, by the input's convention"
        return f"{type(self).__name__}({', '.join(args)}){note}"

    def _who(self) -> str:
        per = getattr(self, "per_", None) or self.per
        return f"{type(self).__name__}(per={per!r})"

    # ---- validation -----------------------------------------------------------------------------

    def _validate_params(self) -> None:
        resolve_per(self.per, 2)  # raises on an unknown mode
        if self.channel_axis is not None and (
            isinstance(self.channel_axis, bool) or not isinstance(self.channel_axis, (int, np.integer))
        ):
            raise ParameterError(
                f"{type(self).__name__}(channel_axis={self.channel_axis!r}) must be an integer such as -1 "
                "(channels-last) or 1 (channels-first), or None to follow the input's convention."
            )
        if self.zero_std not in ("unit", "raise"):
            raise ParameterError(
                f"{type(self).__name__}(zero_std={self.zero_std!r}) is not a valid choice; expected 'unit' "
                "(divide constant entries by 1, with a warning) or 'raise'."
            )
        if self.nan not in ("raise", "ignore"):
            raise ParameterError(
                f"{type(self).__name__}(nan={self.nan!r}) is not a valid choice; expected 'raise' or 'ignore'."
            )
        if self.dtype is not None:
            dt = np.dtype(self.dtype)
            if dt.kind != "f":
                raise ParameterError(
                    f"{type(self).__name__}(dtype={self.dtype!r}) must be a float dtype such as 'float32' or "
                    "'float64', since normalized values are fractions."
                )

    # ---- fitting --------------------------------------------------------------------------------

    def _reset(self) -> None:
        for name in [n for n in vars(self) if n.endswith("_") and not n.startswith("__")]:
            delattr(self, name)
        for name in ("_feed", "_weights", "_pending_warning"):
            self.__dict__.pop(name, None)

    def fit(self, X: Any, y: Any = None) -> Normalizer:
        """Compute the statistics of ``X`` (an array, or an iterable of batches) from scratch.

        ``fit`` is ``partial_fit`` on a fresh estimator: both take the same code path.
        """
        return self._fit(X, None)

    def partial_fit(self, X: Any, y: Any = None) -> Normalizer:
        """Update the statistics with ``X`` (an array or an iterable of batches); call repeatedly to stream."""
        return self._partial_fit(X, None)

    def _fit(self, X: Any, sample_weight: Any) -> Normalizer:
        self._reset()
        self._partial_fit(X, sample_weight, exact=True)
        self._emit_pending_warning()
        return self

    def _quantile_targets(self) -> tuple[float, ...]:
        """The quantiles the fitted attributes read (selected exactly when fit() gets one array in memory)."""
        return ()

    def _partial_fit(self, X: Any, sample_weight: Any, exact: bool = False) -> Normalizer:
        self._validate_params()
        if sample_weight is not None or "_weights" in self.__dict__:
            return self._partial_fit_weighted(X, sample_weight)
        feed = self.__dict__.get("_feed")
        if feed is None:
            # an array too big for the exact store (2**22 values) is selected exactly instead of sketched;
            # a smaller one keeps its values, so a later partial_fit() can still add to them
            shape = getattr(X, "shape", None)
            sized = isinstance(shape, tuple) and all(isinstance(d, (int, np.integer)) for d in shape)
            big = exact and sized and is_one_array(X) and prod(shape) > EXACT_QUANTILE_BUDGET
            # a dataset that reads again at memory speed is selected in passes over it, not sketched
            again = rereader(X, self._who()) if exact and not big and self._quantile_targets() else None
            targets = self._quantile_targets() if big or again or (exact and collection_feeder(X) is not None) else ()
            feed = StatsFeed(self.per, self.channel_axis, self._who(), quantiles=self._needs_quantiles, nan=self.nan,
                             data=X, exact=targets, reread=again)
        names = _feature_names(X)
        if names is not None or hasattr(self, "feature_names_in_"):
            _check_feature_names(self, names, reset=not hasattr(self, "per_"))
        for batch in iter_input(X, self._who() if hasattr(self, "per_") else type(self).__name__):
            feed.update(batch)
        self._feed = feed
        self.__dict__.pop("_pending_warning", None)
        layout = feed.layout
        assert layout is not None  # iter_input yields at least one batch
        self._set_layout(layout, feed.dtype, feed.n_samples)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        if layout.stateful:
            self._set_center_scale(FittedStats(feed.statistics(), layout.stat_shape))
        else:
            self._check_sample_layout(layout)
        return self

    def _partial_fit_weighted(self, X: Any, sample_weight: Any) -> Normalizer:
        """``partial_fit`` with weights: one array per call; exact for integer data and weights."""
        who = self._who()
        if resolve_per(self.per, 2) in ("sample", "sample-channel"):
            raise ParameterError(
                f"{who} does not take sample_weight: per-sample statistics have no weights across samples; "
                "expected a stateful mode (per='channel', 'feature' or 'global')."
            )
        if "_feed" in self.__dict__:
            raise ParameterError(f"{who}: pass sample_weight from the first partial_fit() on, or to none of them.")
        if is_batch_stream(X):
            raise ParameterError(f"{who} takes sample_weight with an array X, not a stream of batches.")
        x = as_array(X, who)
        w = np.ones(x.shape[0]) if sample_weight is None else check_weights(sample_weight, x.shape[0], who)
        feed = StatsFeed(self.per, self.channel_axis, who, nan=self.nan, data=X)
        if "_weights" in self.__dict__:
            feed.channel_axis, feed.guessed = self.layout_.channel_axis, False
        layout = feed.update(x[:1])  # the layout checks of an ordinary fit
        if "_weights" in self.__dict__:
            check_compatible(self.layout_, layout, who, verb="partial_fit()")
        moments = self.__dict__.setdefault("_weights", WeightedMoments(max(1, prod(layout.stat_shape))))
        if self.nan == "raise":
            check_finite(x, who)
        moments.update(layout.as_3d(np.ascontiguousarray(x)), dataclasses.replace(layout, shape=x.shape), w)
        moments.check_any_weight(who)
        self._set_layout(layout, x.dtype, getattr(self, "n_samples_seen_", 0) + x.shape[0])
        self._set_center_scale(FittedStats(moments, layout.stat_shape))
        return self

    def _set_layout(self, layout: Layout, fit_dtype: Any, n_samples_seen: int) -> None:
        # the fitted layout describes one sample's axes: its sample axis is 1, whatever the batch size
        self.layout_ = dataclasses.replace(layout, shape=(1, *layout.shape[1:]))
        self.per_ = layout.per
        self.fit_dtype_ = np.dtype(fit_dtype)
        self.n_samples_seen_ = int(n_samples_seen)
        if layout.ndim == 2:
            self.n_features_in_ = layout.shape[1]

    def _set_center_scale(self, stats: Any) -> None:
        """The fitted ``center_``/``scale_`` (and descriptive attributes) from a statistics view."""
        self._fitted_attributes(stats)
        try:  # the range of the fitted data, for the input-scale guard of the exported layers
            lo, hi = float(np.min(stats.min)), float(np.max(stats.max))
        except AttributeError:  # statistics without extremes (a Keras Normalization layer)
            pass
        else:
            if np.isfinite(lo) and np.isfinite(hi):
                self.input_range_ = (lo, hi)
        center, scale, mask = apply(self.formula_spec(), stats, NUMPY_OPS)
        self._zero_spread(mask)
        self.center_ = np.asarray(center, np.float64)
        self.scale_ = np.asarray(scale, np.float64)

    def _check_sample_layout(self, layout: Layout) -> None:
        if not layout.reduce_axes:
            raise LayoutError(
                f"{self._who()} computes one statistic per sample and channel, but the input of shape "
                f"{layout.shape} (layout {layout.describe()}) has no other axis to compute it over; expected "
                "data with spatial axes such as (n, h, w, c). Use per='sample' for tables."
            )

    # ---- the formula ----------------------------------------------------------------------------

    def formula_spec(self) -> FormulaSpec:
        """This normalizer's row of the formula table, with its constants (what exported layers recompute)."""
        raise NotImplementedError  # abstract: every concrete normalizer names its formula

    def _fitted_attributes(self, s: Any) -> None:
        """Set the descriptive fitted attributes (``mean_``, ``std_``, ...) of a stateful fit."""

    def _zero_spread(self, mask: np.ndarray) -> None:
        """The zero-spread rule at fit time: entries in ``mask`` divide by 1 (with a warning), or raise."""
        formula = FORMULAS[self.formula_spec().name]
        if np.any(mask) and (formula.warns or self.zero_std == "raise"):
            if mask.ndim == 0:  # per="global": one statistic for everything
                idx: list = ["all"]
            else:
                idx = [tuple(int(i) for i in ix) if len(ix) > 1 else int(ix[0]) for ix in np.argwhere(mask)]
            shown = ", ".join(map(str, idx[:10])) + (", ..." if len(idx) > 10 else "")
            what = {"channel": "channels", "feature": "features", "global": "values"}.get(self.per_, "entries")
            msg = (
                f"{self._who()} found {len(idx)} {what} with zero {formula.zero_kind} (at {shown}) in "
                f"{self.n_samples_seen_} samples"
            )
            if self.zero_std == "raise":
                raise DataError(
                    msg + "; expected every entry to vary. Drop the constant entries, or pass zero_std='unit' "
                    "to divide them by 1 instead."
                )
            # emitted once: at the end of fit(), or by the first transform() after partial_fit()
            self._pending_warning = (
                msg + "; they are divided by 1 instead of a near-zero number. Drop them if they carry no "
                "information, or pass zero_std='raise' to make this an error."
            )

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
        check_is_fitted(self, f"{method}()")
        names = _feature_names(X)
        # inverse_transform takes normalized arrays back: like scikit-learn, it does not ask for names
        if method != "inverse_transform" and (names is not None or hasattr(self, "feature_names_in_")):
            _check_feature_names(self, names, reset=False)
        x = as_array(X, self._who())
        if self.nan == "raise":
            check_finite(x, f"{self._who()}.{method}()")
        layout = resolve_layout(self.per_, x.shape, self._fitted_channel_axis(x.ndim), owner=self._who())
        check_compatible(self.layout_, layout, self._who(), verb=f"{method}()")
        return x, layout

    def _fitted_channel_axis(self, ndim: int) -> int:
        """The channel axis fit used, for ``ndim``-D input (input of another rank is then refused by
        ``check_compatible`` with the message that says so)."""
        return self.layout_.channel_axis if self.layout_.ndim == ndim else -1

    def affine_(self, shape: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(shift, inv_scale)``, float64, shaped to broadcast against fitted-layout input.

        ``transform(x) == (x - shift) * inv_scale``. ``shape`` is an input shape to broadcast against
        (default: the fitted one). Only stateful modes have fitted statistics.
        """
        check_is_fitted(self, "affine_()")
        if not self.layout_.stateful:
            raise NormlabError(
                f"{self._who()} computes its statistics per sample at transform time, so it has no fitted "
                "shift and scale; expected a stateful mode (per='global', 'channel' or 'feature')."
            )
        lay = self.layout_ if shape is None else resolve_layout(self.per_, shape, self._fitted_channel_axis(len(shape)))
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
        y = affine_transform(x, shift, inv_scale, out=out, dtype=dtype, exact=exact)
        return y if out is not None else wrap_output(self, y, X)

    def _sample_affine(self, x: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        center, scale, _ = apply(self.formula_spec(), SampleStats(x, layout.reduce_axes, self.nan), NUMPY_OPS)
        return np.asarray(center, np.float64), 1.0 / np.asarray(scale, np.float64)

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(X).transform(X)`` for an array-like ``X`` (a stream can be read only once)."""
        if is_batch_stream(X):
            raise NormlabError(
                f"{type(self).__name__}.fit_transform() received a stream of batches, which can be read only "
                "once; expected an array. Call fit(stream) first, then transform() each batch."
            )
        return self.fit(X, y).transform(X)

    def inverse_transform(self, X: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Undo :meth:`transform`: ``x = y * scale_ + center_`` (stateful modes only)."""
        check_is_fitted(self, "inverse_transform()")
        if not self.layout_.stateful:
            raise NormlabError(
                f"{self._who()} cannot invert its transform: per-sample statistics are computed from each "
                "input and not kept. Keep the raw data, or fit a stateful mode (per='channel', 'feature' or "
                "'global') if you need inverse_transform()."
            )
        y, _ = self._input_layout(X, "inverse_transform")
        shift, inv_scale = self.affine_(y.shape)
        dtype = np.dtype(out.dtype) if out is not None else self._out_dtype(y)
        return affine_transform(y, -shift * inv_scale, 1.0 / inv_scale, out=out, dtype=dtype)

    def set_output(self, *, transform: str | None = None) -> Normalizer:
        """scikit-learn's output API: ``transform="pandas"`` (or ``"polars"``) returns DataFrames from
        ``transform``/``fit_transform`` (2-D data), ``"default"`` arrays; None leaves the choice unchanged."""
        if transform is not None:
            self._sklearn_output_config = {"transform": check_container(transform, type(self).__name__)}
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names (the input names: normalization keeps every feature)."""
        check_is_fitted(self, "get_feature_names_out()")
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

    @classmethod
    def from_fitted(
        cls, attributes: dict[str, Any], *, layout: Layout, fit_dtype: Any = np.float64, n_samples_seen: int = 0,
        **params: Any,
    ) -> Normalizer:
        """A fitted normalizer from known fitted values (``normlab.load``, ``from_sklearn``).

        ``attributes`` holds the fitted ``*_`` values: ``center_`` and ``scale_`` at least, for stateful
        modes, each of the statistic's shape ``layout.stat_shape``. ``params`` are constructor arguments.
        """
        est = cls(**params)
        est._set_layout(layout, fit_dtype, n_samples_seen)
        for name, value in attributes.items():
            if name in ("layout_", "per_", "fit_dtype_", "n_samples_seen_"):
                continue  # set from the arguments above
            setattr(est, name, value)
        if layout.stateful:
            for name in ("center_", "scale_"):
                if name not in attributes:
                    continue
                value = np.asarray(attributes[name], dtype=np.float64)
                if value.shape != layout.stat_shape:
                    raise LayoutError(
                        f"{est._who()}: {name} has shape {value.shape}, but per={layout.per!r} on "
                        f"{layout.describe()} needs shape {layout.stat_shape}."
                    )
                setattr(est, name, value)
        return est

    @classmethod
    def from_stats(
        cls, stats: Any, *, layout: Layout, fit_dtype: Any = np.float64, n_samples_seen: int = 0, **params: Any
    ) -> Normalizer:
        """A fitted normalizer from statistics already computed (``DatasetStats.to_normalizer``, ``from_keras``).

        ``stats`` has ``mean``, ``var``, ``min``, ``max``, ``count`` and ``quantile(q)`` (what the formula
        reads), each of (or reshapeable to) the statistic's shape ``layout.stat_shape``.
        """
        est = cls.from_fitted({}, layout=layout, fit_dtype=fit_dtype, n_samples_seen=n_samples_seen, **params)
        est._validate_params()
        est._set_center_scale(FittedStats(stats, layout.stat_shape))
        est._emit_pending_warning()
        return est

    # ---- persistence ----------------------------------------------------------------------------

    def save(self, path: Any) -> None:
        """Write the fitted normalizer as versioned JSON (atomically). Read it back with ``normlab.load``."""
        check_is_fitted(self, "save()")
        save_normalizer(self, path)

    def to_hf(self, path: Any = None) -> dict[str, Any]:
        """Hugging Face image-processor keys (``do_rescale``, ``rescale_factor``, ``do_normalize``,
        ``image_mean``, ``image_std``) that compute this transform; with ``path``, also write them into that
        ``preprocessor_config.json`` (or the one in that folder), keeping its other keys. Read one back with
        ``normlab.from_hf``."""
        check_is_fitted(self, "to_hf()")
        cfg = hf_config(self)
        if path is not None:
            write_hf(cfg, path)
        return cfg

    def to_timm(self) -> dict[str, Any]:
        """timm's data config: ``mean``/``std`` on the [0, 1] scale and ``input_size`` ``(c, h, w)``."""
        check_is_fitted(self, "to_timm()")
        return timm_config(self)

    def to_torch(self) -> Any:
        """This normalizer as a ``torch.nn.Module``, statistics as buffers (see ``normlab.torch``)."""
        return export("torch", self)

    def to_keras(self) -> Any:
        """This normalizer as a Keras 3 layer that ``model.save()`` carries (see ``normlab.keras``)."""
        return export("keras", self)


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


def _check_feature_names(est: Normalizer, names: list[str] | None, *, reset: bool) -> None:
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


class WeightedFit:
    """``sample_weight`` in ``fit``/``partial_fit``: for the moment-based normalizers (Standardize, Center).

    Each sample's values count ``sample_weight`` times (one finite weight >= 0 per sample of an array
    ``X``); the moments are exact for integer data with integer weights (:mod:`normlab.core._weighted`).
    """

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Compute the (weighted) statistics of ``X`` from scratch; see :meth:`Normalizer.fit`."""
        return self._fit(X, sample_weight)  # type: ignore[attr-defined]

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Update the (weighted) statistics with ``X``; see :meth:`Normalizer.partial_fit`."""
        return self._partial_fit(X, sample_weight)  # type: ignore[attr-defined]
