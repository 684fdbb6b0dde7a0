"""Keras 3 layers that carry a fitted normalizer inside the model.

``normalizer.to_keras()`` returns the simplest layer that applies exactly ``normalizer.transform``:

- :class:`Rescaling` (Keras' ``Rescaling(scale=1 / s)``) when the transform is one constant divisor
  (``Identity``, ``Scale(by=255 | "dtype")``);
- :class:`Normalization` (Keras' ``Normalization(axis=...)``) holding ``mean = center_`` and
  ``variance = scale_ ** 2`` (as ``adapt`` would leave it) for the other stateful normalizers: Keras computes
  ``(x - mean) / max(sqrt(variance), 1e-7)``, the same map whenever ``scale_ >= 1e-6``;
- :class:`Normalize` (``y = x * inv_scale + offset``) when a scale is too small or too large for that;
- :class:`SampleNormalize` for ``per="sample" | "sample-channel"``: each sample's statistics computed in
  ``call`` (in float64) with the normalizer's own formula and zero rule.

:class:`Normalization` and :class:`Rescaling` are Keras' own layers (same ``call``, same numbers) plus the
input-scale guard that :class:`Normalize` has too: they record the range and dtype of the data the
normalizer was fitted on (``fit_range``, ``fit_dtype``, in ``get_config()``), and the first concrete input
is checked against them once with :func:`normlab.core._ranges.scale_mismatch`, the rule the torch module
and ``normlab check`` follow (an ``InputScaleWarning``, e.g. for ``[0, 1]`` floats into a layer fitted on
0-255 pixels). After that first call the check costs one attribute read; symbolic calls (building a
functional model, Keras' shape inference) and traced or compiled calls are never read. The check runs on
the torch and NumPy backends, where calls are eager; other backends skip it.

Each is serializable: a model saved as ``.keras`` loads back with the same outputs and the same guard
(models saved before the guard existed load too, without it). normlab's layers are registered as
``normlab>Normalization``, ``normlab>Rescaling``, ``normlab>Normalize`` and ``normlab>SampleNormalize``;
import ``normlab.keras`` before ``keras.saving.load_model`` so Keras can find them. Written with ``keras.ops``, so any backend works
(normlab tests the torch backend, ``KERAS_BACKEND=torch``). Keras' type promotion turns float64 into
float32 in ``ops.maximum``, ``ops.minimum`` and ``ops.floor``, so the float64 statistics avoid them.
"""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from keras import ops

from normlab.core._estimator import check_is_fitted
from normlab.core._formulas import FORMULA_NAMES, TWO_PASS, FormulaSpec, apply
from normlab.core._ranges import scale_mismatch
from normlab.core.axes import describe_layout, resolve_layout
from normlab.errors import InputScaleWarning, LayoutError, NormlabError, ParameterError

try:  # Keras' shape inference runs call() on placeholder tensors inside this scope: never read those
    from keras.src.backend.common.symbolic_scope import in_symbolic_scope as _in_symbolic_scope
except ImportError:  # pragma: no cover - a Keras without it: the meta-device test below still applies
    def _in_symbolic_scope() -> bool:
        return False

__all__ = ["Normalization", "Normalize", "Rescaling", "SampleNormalize", "to_keras"]

#: keras.layers.Normalization divides by max(sqrt(variance), 1e-7) in float32: exact above this scale.
_KERAS_MIN_SCALE, _KERAS_MAX_SCALE = 1e-6, 1e18
_SMALL_INTS = ("uint8", "int8", "int16", "uint16", "bool")


# ---- the input-scale guard ----------------------------------------------------------------------


def _input_range(x: Any) -> tuple[float, float, bool] | None:
    """``(min, max, is_float)`` of a concrete input; None for symbolic, traced, compiled or empty ones."""
    if _in_symbolic_scope() or isinstance(x, keras.KerasTensor):
        return None
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        if (not isinstance(x, torch.Tensor) or x.device.type == "meta" or x.numel() == 0
                or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            return None
        lo, hi = torch.aminmax(x.detach().flatten().to(torch.float64))
        return float(lo), float(hi), bool(x.is_floating_point())
    if backend == "numpy" and isinstance(x, np.ndarray) and x.size:
        return float(np.min(x)), float(np.max(x)), x.dtype.kind == "f"
    return None


class _ScaleGuard:
    """Mixin: remember the fitted data's range, check the first concrete input against it once."""

    fit_range: tuple[float, float] | None
    fit_dtype: str
    name: str

    def _init_guard(self, fit_range: Any, fit_dtype: Any) -> None:
        self.fit_range = None if fit_range is None else (float(fit_range[0]), float(fit_range[1]))
        self.fit_dtype = str(fit_dtype or "")
        self._scale_checked = self.fit_range is None

    def _guard_config(self) -> dict[str, Any]:
        return {"fit_range": None if self.fit_range is None else list(self.fit_range), "fit_dtype": self.fit_dtype}

    def _check_input_scale(self, inputs: Any) -> None:
        seen = _input_range(inputs)
        if seen is None:
            return  # a symbolic or traced call: the first eager one is checked
        self._scale_checked = True
        assert self.fit_range is not None
        msg = scale_mismatch(self.fit_range, self.fit_dtype, *seen,
                             who=f"This normlab.keras.{type(self).__name__} layer {self.name!r}")
        if msg:
            warnings.warn(msg, InputScaleWarning, stacklevel=3)


class _GuardedKerasLayer(_ScaleGuard):
    """Mixin for Keras' own layers: their ``call`` and config, with the input-scale guard in front."""

    def call(self, inputs: Any) -> Any:
        if not self._scale_checked:
            self._check_input_scale(inputs)
        return super().call(inputs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._guard_config()}


@keras.saving.register_keras_serializable(package="normlab")
class Normalization(_GuardedKerasLayer, keras.layers.Normalization):
    """Keras' ``Normalization`` layer (the same ``call`` and numbers) with normlab's input-scale guard.

    Made by ``normalizer.to_keras()``. ``fit_range`` (``[min, max]`` of the fitted data, or None: no
    check) and ``fit_dtype`` are saved in ``get_config()``; the first concrete input is checked against
    them once (see the module's notes) and an ``InputScaleWarning`` says what to change.

    Examples
    --------
    >>> import numpy as np, warnings
    >>> layer = Normalization(axis=None, mean=127.5, variance=127.5**2, fit_range=(0, 255), fit_dtype="uint8")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     y = layer(np.full((2, 3), 0.5, dtype=np.float32))      # [0, 1] floats into a 0-255 layer
    >>> [type(w.message).__name__ for w in caught]
    ['InputScaleWarning']
    """

    def __init__(self, *args: Any, fit_range: Any = None, fit_dtype: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard(fit_range, fit_dtype)


@keras.saving.register_keras_serializable(package="normlab")
class Rescaling(_GuardedKerasLayer, keras.layers.Rescaling):
    """Keras' ``Rescaling`` layer (the same ``call`` and numbers) with normlab's input-scale guard.

    Made by ``normalizer.to_keras()`` for a constant divisor; ``fit_range``/``fit_dtype`` as for
    :class:`Normalization`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Rescaling(1 / 255, fit_range=(0, 255), fit_dtype="uint8")
    >>> np.asarray(layer(np.array([[0, 51, 255]], dtype=np.uint8))).round(3)
    array([[0. , 0.2, 1. ]], dtype=float32)
    """

    def __init__(self, scale: Any, offset: Any = 0.0, *, fit_range: Any = None, fit_dtype: str = "",
                 **kwargs: Any) -> None:
        super().__init__(scale, offset, **kwargs)
        self._init_guard(fit_range, fit_dtype)


# ---- normlab's own layers ------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="normlab")
class Normalize(_ScaleGuard, keras.layers.Layer):
    """``y = (x - center) / scale`` with fitted statistics: ``x * inv_scale + offset`` in float32.

    Usually made by ``normalizer.to_keras()`` (which prefers Keras' own ``Normalization`` layer when that
    is exact). Parameters as for ``normlab.torch.Normalize``; ``inv_scale`` and ``offset`` are
    non-trainable weights, saved with the model's weights.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Normalize([0.5, 1.0], [2.0, 4.0], per="channel", ndim=3)      # (n, l, c)
    >>> np.asarray(layer(np.array([[[1, 9], [3, 5]]], dtype=np.uint8)))
    array([[[0.25, 2.  ],
            [1.25, 1.  ]]], dtype=float32)
    """

    def __init__(self, center: Any = None, scale: Any = None, *, per: str = "channel", channel_axis: int = -1,
                 ndim: int = 4, stat_shape: Any = None, fit_range: Any = None, fit_dtype: str = "",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_guard(fit_range, fit_dtype)
        if center is None:  # from a saved config: the weights are loaded afterwards
            center = np.zeros(tuple(stat_shape or ()))
            scale = np.ones_like(center)
        center = np.asarray(center, dtype=np.float64)
        scale = np.asarray(scale, dtype=np.float64)
        if center.shape != scale.shape or not np.all(np.isfinite(scale) & (scale != 0)) \
                or not np.all(np.isfinite(center)):
            raise NormlabError(
                f"Normalize(per={per!r}) received center {center.shape} and scale {scale.shape}; expected "
                "finite statistics of one shape with a nonzero scale."
            )
        probe = [1] * ndim
        if per == "feature":
            probe = [1, *center.shape]
        elif per == "channel":
            cax = resolve_layout("channel", tuple(probe), channel_axis).channel_axis
            probe[cax] = int(center.size)
        lay = resolve_layout(per, tuple(probe), channel_axis, owner=f"Normalize(per={per!r})")
        if not lay.stateful or lay.stat_shape != center.shape:
            raise LayoutError(
                f"Normalize(per={per!r}, ndim={ndim}) received statistics of shape {center.shape}; expected "
                f"a stateful mode and statistics of shape {lay.stat_shape}."
            )
        self.per, self.channel_axis, self.ndim = lay.per, lay.channel_axis, int(ndim)
        self.stat_shape = tuple(center.shape)
        self._layout = describe_layout(ndim, lay.channel_axis)
        bshape = lay.broadcast_shape[1:]
        inv = 1.0 / scale
        self.inv_scale = self.add_weight(shape=bshape, initializer=keras.initializers.Constant(
            inv.reshape(bshape).astype(np.float32)), trainable=False, name="inv_scale")
        self.offset = self.add_weight(shape=bshape, initializer=keras.initializers.Constant(
            (-center * inv).reshape(bshape).astype(np.float32)), trainable=False, name="offset")
        self.built = True

    def call(self, inputs: Any) -> Any:
        if not self._scale_checked:
            self._check_input_scale(inputs)
        _check_rank(self, inputs)
        x = ops.cast(inputs, self.compute_dtype)
        shape = ops.shape(x)
        sample = tuple(shape[1:])
        size = math.prod(sample)
        # one row of parameters as long as a sample: the arithmetic runs along long contiguous rows
        a = ops.reshape(ops.broadcast_to(ops.cast(self.inv_scale, self.compute_dtype), sample), (1, size))
        b = ops.reshape(ops.broadcast_to(ops.cast(self.offset, self.compute_dtype), sample), (1, size))
        y = ops.reshape(x, (-1, size)) * a + b
        return ops.reshape(y, (-1, *sample))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"per": self.per, "channel_axis": self.channel_axis, "ndim": self.ndim,
                       "stat_shape": list(self.stat_shape), **self._guard_config()})
        return config


@keras.saving.register_keras_serializable(package="normlab")
class SampleNormalize(keras.layers.Layer):
    """Normalize each sample with its own statistics (``per="sample"`` or ``"sample-channel"``).

    Usually made by ``normalizer.to_keras()``; parameters as for ``normlab.torch.SampleNormalize``.

    Examples
    --------
    >>> import numpy as np
    >>> layer = SampleNormalize("minmax", per="sample", ndim=2)
    >>> np.asarray(layer(np.array([[0, 5, 10], [2, 2, 4]], dtype=np.uint8)))
    array([[0. , 0.5, 1. ],
           [0. , 0. , 1. ]], dtype=float32)
    """

    FORMULAS = FORMULA_NAMES

    def __init__(self, formula: str, *, per: str = "sample", channel_axis: int = -1, ndim: int = 4,
                 n_channels: int = -1, divisor: float = 1.0, lo: float = 0.0, hi: float = 1.0, nan: str = "raise",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if formula not in self.FORMULAS:
            raise ParameterError(f"SampleNormalize(formula={formula!r}) is not known; expected one of {self.FORMULAS}.")
        lay = resolve_layout(per, (1,) * ndim, channel_axis, owner=f"SampleNormalize(per={per!r})")
        if lay.stateful or not lay.reduce_axes:
            raise LayoutError(
                f"SampleNormalize(per={per!r}) on {ndim}-D data: expected per='sample' or 'sample-channel' and "
                "data with an axis to compute each statistic over."
            )
        self.formula, self.per, self.channel_axis, self.ndim = formula, lay.per, lay.channel_axis, int(ndim)
        self.n_channels = int(n_channels) if lay.per == "sample-channel" else -1
        self.divisor, self.lo, self.hi, self.nan = float(divisor), float(lo), float(hi), nan
        self._perm = (*lay.keep_axes, *lay.reduce_axes)
        self._keep = lay.keep_axes
        self._layout = describe_layout(ndim, lay.channel_axis)

    def call(self, inputs: Any) -> Any:
        _check_rank(self, inputs)
        xd = ops.cast(inputs, "float64")
        shape = tuple(ops.shape(xd))
        xt = ops.transpose(xd, self._perm)
        kept = [shape[a] for a in self._keep[1:]]
        n_values = math.prod(shape[a] for a in range(self.ndim) if a not in self._keep)
        xk = ops.reshape(xt, (-1, *kept, n_values))
        spec = FormulaSpec(self.formula, divisor=self.divisor, lo=self.lo, hi=self.hi)
        center, scale, _ = apply(spec, _SampleStats(xk, n_values, self.nan == "ignore"), _OPS)
        bshape = tuple(-1 if a == 0 else (shape[a] if a in self._keep else 1) for a in range(self.ndim))
        center, inv = ops.reshape(center, bshape), ops.reshape(1.0 / scale, bshape)
        if keras.backend.standardize_dtype(inputs.dtype) in _SMALL_INTS and self.compute_dtype != "float64":
            # 8/16-bit integers: x * a + b in float32, exactly as normlab's NumPy transform computes them
            a, b = ops.cast(inv, "float32"), ops.cast(-center * inv, "float32")
            return ops.cast(ops.cast(inputs, "float32") * a + b, self.compute_dtype)
        return ops.cast((xd - center) * inv, self.compute_dtype)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"formula": self.formula, "per": self.per, "channel_axis": self.channel_axis,
                       "ndim": self.ndim, "n_channels": self.n_channels, "divisor": self.divisor, "lo": self.lo,
                       "hi": self.hi, "nan": self.nan})
        return config


def _check_rank(layer: Any, x: Any) -> None:
    shape = tuple(ops.shape(x))
    if len(shape) != layer.ndim:
        raise LayoutError(
            f"{type(layer).__name__}(per={layer.per!r}) was fitted on {layer.ndim}-D data laid out as "
            f"{layer._layout} but received shape {shape}; expected {layer.ndim}-D input. Reshape the input to "
            "the layout used in fit."
        )
    n_channels = getattr(layer, "n_channels", -1)
    if layer.per == "channel":
        n_channels = math.prod(layer.stat_shape)
    if n_channels >= 0 and shape[layer.channel_axis] not in (None, n_channels):
        raise LayoutError(
            f"{type(layer).__name__}(per={layer.per!r}) was fitted on {n_channels} channels (layout "
            f"{layer._layout}) but received shape {shape}, whose channel axis ({layer.channel_axis - layer.ndim}) "
            f"has {shape[layer.channel_axis]} entries. Pass data in the fitted layout (channels-first/last)."
        )
    if layer.per == "feature" and tuple(shape[1:]) != tuple(layer.stat_shape):
        raise LayoutError(
            f"Normalize(per='feature') was fitted on samples of shape {tuple(layer.stat_shape)} (layout "
            f"{layer._layout}) but received samples of shape {tuple(shape[1:])}; expected the same shape per "
            "sample. Resize the input, or fit per='channel'."
        )


def _larger(a: Any, b: Any) -> Any:
    """Elementwise maximum that keeps float64 (``keras.ops.maximum`` promotes float64 to float32)."""
    return ops.where(a > b, a, b)


#: The Keras backend of the formula table's array-ops namespace (:mod:`normlab.core._formulas`).
_OPS = SimpleNamespace(
    sqrt=ops.sqrt,
    abs=ops.abs,
    maximum=_larger,
    where=ops.where,
    logical_or=ops.logical_or,
    zeros_like=ops.zeros_like,
    ones_like=ops.ones_like,
)


class _SampleStats:
    """Each row's statistics over the last axis of ``xk`` (keepdims, float64): the formula table's view."""

    rel_resolution = TWO_PASS

    def __init__(self, xk: Any, n_values: int, nan_ignore: bool):
        self._xk = xk
        if nan_ignore:
            self._valid = ops.logical_not(ops.isnan(xk))
            self.count = ops.sum(ops.cast(self._valid, "float64"), axis=-1, keepdims=True)
            self._x0 = ops.where(self._valid, xk, 0.0)
        else:
            self._valid = None
            self.count = ops.full_like(xk[..., :1], float(n_values))
            self._x0 = xk
        self.ones = ops.ones_like(self.count)
        self._sorted = None

    def _valid_or(self, fill: float) -> Any:
        return self._xk if self._valid is None else ops.where(self._valid, self._xk, fill)

    @property
    def mean(self) -> Any:
        return ops.sum(self._x0, axis=-1, keepdims=True) / self.count

    @property
    def var(self) -> Any:
        dev = self._xk - self.mean
        dev = dev if self._valid is None else ops.where(self._valid, dev, 0.0)
        return ops.sum(dev * dev, axis=-1, keepdims=True) / self.count

    @property
    def min(self) -> Any:
        return ops.min(self._valid_or(math.inf), axis=-1, keepdims=True)

    @property
    def max(self) -> Any:
        return ops.max(self._valid_or(-math.inf), axis=-1, keepdims=True)

    @property
    def sumsq(self) -> Any:
        return ops.sum(self._x0 * self._x0, axis=-1, keepdims=True)

    @property
    def abssum(self) -> Any:
        return ops.sum(ops.abs(self._x0), axis=-1, keepdims=True)

    def quantile(self, q: float) -> Any:
        """``numpy.quantile(method="linear")`` along the last axis (invalid values sorted last)."""
        if self._sorted is None:
            self._sorted = ops.sort(self._valid_or(math.inf), axis=-1)
        s, last = self._sorted, _larger(self.count - 1.0, ops.zeros_like(self.count))
        pos = last * q
        i0 = ops.cast(pos, "int64")  # floor: pos >= 0
        t = pos - ops.cast(i0, "float64")
        i1 = ops.where(i0 + 1 < ops.cast(last, "int64"), i0 + 1, ops.cast(last, "int64"))
        a = ops.take_along_axis(s, i0, axis=-1)
        b = ops.take_along_axis(s, i1, axis=-1)
        d = b - a
        return ops.where(t >= 0.5, b - d * (1.0 - t), a + d * t)  # numpy's two-sided interpolation


def to_keras(normalizer: Any) -> keras.layers.Layer:
    """The Keras layer that applies a fitted normalizer (what ``normalizer.to_keras()`` returns).

    Examples
    --------
    >>> import numpy as np, keras, normlab
    >>> x = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)           # (n, h, w, c)
    >>> layer = normlab.Standardize(per="channel").fit(x).to_keras()
    >>> isinstance(layer, keras.layers.Normalization), layer.axis, layer.fit_range    # Keras' own, guarded
    (True, (3,), (0.0, 23.0))
    >>> model = keras.Sequential([keras.Input((2, 2, 3), dtype="uint8"), layer])
    >>> model(x).shape
    torch.Size([2, 2, 2, 3])
    """
    check_is_fitted(normalizer, "to_keras()")
    lay = normalizer.layout_
    if not lay.stateful:
        n_channels = lay.shape[lay.channel_axis] if lay.per == "sample-channel" else -1
        return SampleNormalize(per=lay.per, channel_axis=lay.channel_axis, ndim=lay.ndim, n_channels=n_channels,
                               nan=normalizer.nan, **normalizer.formula_spec().kwargs())
    center = np.asarray(normalizer.center_, np.float64)
    scale = np.asarray(normalizer.scale_, np.float64)
    guard = {"fit_range": getattr(normalizer, "input_range_", None), "fit_dtype": str(normalizer.fit_dtype_)}
    if not np.any(center) and np.all(scale == scale.flat[0]):
        return Rescaling(scale=float(1.0 / scale.flat[0]), **guard)
    if _KERAS_MIN_SCALE <= np.min(np.abs(scale)) and np.max(np.abs(scale)) <= _KERAS_MAX_SCALE and np.all(scale > 0):
        # Keras' own layer, built and given its statistics as weights (as adapt() leaves it): they are saved
        # with the model's weights, not as long lists in its JSON config
        axis = {"global": None, "channel": lay.channel_axis}.get(lay.per, tuple(range(1, lay.ndim)))
        layer = Normalization(axis=axis, **guard)
        layer.build(tuple(lay.shape[a] if a in lay.keep_axes and a > 0 else None for a in range(lay.ndim)))
        layer.adapt_mean.assign(center.reshape(layer.adapt_mean.shape))
        layer.adapt_variance.assign((scale**2).reshape(layer.adapt_variance.shape))
        layer.finalize_state()
        return layer
    return Normalize(center, scale, per=lay.per, channel_axis=lay.channel_axis, ndim=lay.ndim, **guard)
