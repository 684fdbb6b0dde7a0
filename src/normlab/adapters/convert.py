"""Fitted statistics from other libraries as normlab normalizers, ready for ``to_torch()`` / ``to_keras()``.

``from_sklearn(scaler)`` reads a fitted scikit-learn ``StandardScaler``, ``MinMaxScaler`` or
``RobustScaler``; ``from_keras(layer)`` reads an adapted (or mean/variance-built) Keras ``Normalization``
layer. Neither imports its library: the objects are recognized by their class and read through their
public fitted attributes, and the result transforms exactly as the source did.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from normlab.core import normalizers as nz
from normlab.core._formulas import NUMPY_OPS, FittedStats, apply
from normlab.core.axes import resolve_layout
from normlab.errors import LayoutError, NormlabError, NotFittedError

__all__ = ["from_keras", "from_sklearn"]

_FLOAT32_TWO_PASS = 32 * float(np.finfo(np.float32).eps)


def _library(obj: Any) -> str:
    return (type(obj).__module__ or "").split(".")[0]


class _Stats:
    """Known statistics in the interface the normalizer formulas read (mean/var/min/max/count)."""

    def __init__(self, **values: Any):
        self.__dict__.update(values)


def from_sklearn(scaler: Any) -> Any:
    """A fitted normlab normalizer equal to a fitted scikit-learn scaler (``per="feature"``, layout ``(n, f)``).

    ============================================  =========================================
    scikit-learn                                  normlab
    ============================================  =========================================
    ``StandardScaler()``                          ``Standardize(per="feature")``
    ``StandardScaler(with_std=False)``            ``Center(per="feature")``
    ``MinMaxScaler(feature_range=r)``             ``MinMax(feature_range=r, per="feature")``
    ``RobustScaler(quantile_range=q)``            ``Robust(quantile_range=q, per="feature")``
    ============================================  =========================================

    ``center_`` and ``scale_`` are taken from the scaler, so ``transform`` gives the same values (to
    float rounding), and so do ``to_torch()`` and ``to_keras()``. Feature names carry over.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import StandardScaler
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> norm = from_sklearn(StandardScaler().fit(x))
    >>> norm, norm.mean_
    (Standardize(per='feature'), array([ 2., 20.]))
    >>> norm.transform(x)
    array([[-1., -1.],
           [ 1.,  1.]])
    """
    name = type(scaler).__name__
    if _library(scaler) != "sklearn" or name not in _SCALERS:
        raise NormlabError(
            f"from_sklearn() received a {type(scaler).__module__}.{name}; expected a scikit-learn "
            "StandardScaler, MinMaxScaler or RobustScaler. Fit one of those, or fit a normlab normalizer directly."
        )
    if not hasattr(scaler, "n_features_in_"):
        raise NotFittedError(
            f"from_sklearn() received an unfitted {name}; expected a fitted scaler. Call scaler.fit(x_train) first."
        )
    nf = int(scaler.n_features_in_)
    est, attrs = _SCALERS[name](scaler, nf)
    if hasattr(scaler, "feature_names_in_"):
        attrs["feature_names_in_"] = np.asarray(scaler.feature_names_in_, dtype=object)
    seen = int(np.max(getattr(scaler, "n_samples_seen_", 0)))
    return type(est).from_fitted(attrs, layout=resolve_layout("feature", (1, nf)), fit_dtype=np.float64,
                                 n_samples_seen=seen, **est.get_params())


def _standard_scaler(scaler: Any, nf: int) -> tuple[Any, dict[str, Any]]:
    if not scaler.with_mean:
        raise NormlabError(
            "from_sklearn(StandardScaler(with_mean=False)): normlab has no normalizer that divides by the std "
            "without centering; expected with_mean=True. Refit with StandardScaler(), or use "
            "normlab.Standardize(per='feature') on the data."
        )
    mean = np.asarray(scaler.mean_, np.float64)
    if not scaler.with_std:
        return nz.Center(per="feature"), {"mean_": mean, "center_": mean, "scale_": np.ones(nf)}
    var = np.asarray(scaler.var_, np.float64)
    return nz.Standardize(per="feature"), {"mean_": mean, "var_": var, "std_": np.sqrt(var), "center_": mean,
                                           "scale_": np.asarray(scaler.scale_, np.float64)}


def _minmax_scaler(scaler: Any, nf: int) -> tuple[Any, dict[str, Any]]:
    if scaler.clip:
        raise NormlabError(
            "from_sklearn(MinMaxScaler(clip=True)): normlab's MinMax does not clip; expected clip=False. Refit "
            "with clip=False, or clip the normalized values yourself (e.g. torch.clamp after the module)."
        )
    est = nz.MinMax(feature_range=tuple(float(v) for v in scaler.feature_range), per="feature")
    dmin, dmax = np.asarray(scaler.data_min_, np.float64), np.asarray(scaler.data_max_, np.float64)
    center, scale, _ = apply(est.formula_spec(), FittedStats(_Stats(min=dmin, max=dmax), (nf,)), NUMPY_OPS)
    return est, {"min_": dmin, "max_": dmax, "center_": center, "scale_": scale}


def _robust_scaler(scaler: Any, nf: int) -> tuple[Any, dict[str, Any]]:
    if not (scaler.with_centering and scaler.with_scaling) or scaler.unit_variance:
        raise NormlabError(
            "from_sklearn(RobustScaler(...)): normlab's Robust centers on the median and divides by the "
            "interquartile range; expected with_centering=True, with_scaling=True, unit_variance=False. "
            "Refit with RobustScaler(quantile_range=...) and those defaults."
        )
    est = nz.Robust(quantile_range=tuple(float(v) for v in scaler.quantile_range), per="feature")
    center = np.asarray(scaler.center_, np.float64)
    return est, {"median_": center, "quantile_rank_error_": 0.0, "center_": center,
                 "scale_": np.asarray(scaler.scale_, np.float64)}


#: scikit-learn scaler class name -> its reader: (an unfitted normlab normalizer, its fitted attributes).
_SCALERS = {"StandardScaler": _standard_scaler, "MinMaxScaler": _minmax_scaler, "RobustScaler": _robust_scaler}


def from_keras(layer: Any) -> Any:
    """A fitted ``normlab.Standardize`` equal to a built Keras ``Normalization`` layer.

    The layer must be adapted (``layer.adapt(data)``) or built with ``mean=`` and ``variance=``, and not
    ``invert=True``. Its kept axes become ``per=``: none is ``"global"``, the channel axis of image data is
    ``"channel"`` (``axis=-1`` channels-last, ``axis=1`` channels-first), all non-sample axes are
    ``"feature"``. Keras keeps its statistics in float32, so they carry float32 precision; Keras divides a
    zero variance by 1e-7 where normlab divides by 1 (only inputs equal to that constant map to 0 in both).

    Examples
    --------
    >>> import numpy as np, keras
    >>> layer = keras.layers.Normalization(axis=-1)
    >>> layer.adapt(np.array([[1.0, 10.0], [3.0, 30.0]], dtype=np.float32))
    >>> norm = from_keras(layer)
    >>> norm.per_, norm.mean_.tolist(), norm.std_.tolist()
    ('feature', [2.0, 20.0], [1.0, 10.0])
    """
    name = type(layer).__name__
    keras_mod = sys.modules.get("keras")
    if keras_mod is None or not isinstance(layer, keras_mod.layers.Normalization):  # Keras' own or normlab's
        raise NormlabError(
            f"from_keras() received a {type(layer).__module__}.{name}; expected a keras.layers.Normalization "
            "layer. Other layers hold no statistics normlab can read."
        )
    if getattr(layer, "invert", False):
        raise NormlabError(
            "from_keras() received Normalization(invert=True), which de-normalizes; expected invert=False. "
            "Use the forward layer's statistics, then normalizer.inverse_transform()."
        )
    shape = getattr(layer, "_build_input_shape", None)
    if not getattr(layer, "built", False) or shape is None or getattr(layer, "mean", None) is None:
        raise NotFittedError(
            "from_keras() received a Normalization layer that is not adapted or built; expected statistics. Call "
            "layer.adapt(x_train), or build a layer created with mean= and variance=."
        )
    import keras

    ndim = len(shape)
    keep = tuple(layer._keep_axis)
    if keep == ():
        per, channel_axis = "global", -1
    elif keep == tuple(range(1, ndim)):
        per, channel_axis = "feature", -1
    elif len(keep) == 1 and ndim >= 3:
        per, channel_axis = "channel", keep[0]
    else:
        raise LayoutError(
            f"from_keras() received Normalization(axis={layer.axis}) on inputs of shape {tuple(shape)}; normlab "
            "expresses axis=None (per='global'), the channel axis (per='channel') or every non-sample axis "
            "(per='feature'). Adapt a layer with one of those axes."
        )
    probe = tuple(1 if (i == 0 or n is None) else int(n) for i, n in enumerate(shape))
    layout = resolve_layout(per, probe, channel_axis)
    mean = np.asarray(keras.ops.convert_to_numpy(layer.mean), np.float64).reshape(layout.stat_shape)
    var = np.asarray(keras.ops.convert_to_numpy(layer.variance), np.float64).reshape(layout.stat_shape)
    # Keras adapts in float32: its variance resolves spreads down to float32's two-pass rounding
    stats = _Stats(mean=mean, var=var, count=np.ones(layout.stat_shape), rel_resolution=_FLOAT32_TWO_PASS)
    norm = nz.Standardize.from_stats(stats, layout=layout, fit_dtype=np.float32, n_samples_seen=0, per=per,
                                     channel_axis=channel_axis)
    if getattr(layer, "fit_range", None) is not None:  # normlab's layer: the input-scale guard carries over
        norm.input_range_ = tuple(float(v) for v in layer.fit_range)
        norm.fit_dtype_ = np.dtype(layer.fit_dtype or np.float32)
    return norm
