"""How far a trained Keras model's input BatchNormalization is from the exact statistics it stands for.

``BatchNormalization(center=False, scale=False)`` as a model's first layer normalizes with the batch's own
mean and variance while training, and at inference with its moving averages, updated once per training
step as ``moving = momentum * moving + (1 - momentum) * batch`` from ``moving_mean = 0``,
``moving_variance = 1``. :func:`moving_stats_error` compares those moving averages with the exact statistics
of the training split (``normlab.stats``) and measures what replacing them changes at inference.

The mean's error is measured in units of the exact std, ``|moving_mean - mean| / std``: the shift of the
normalized input ``(x - mean) / std`` it causes (a relative error ``|moving_mean - mean| / |mean|`` is
undefined for a feature of mean zero). The std's error is relative, ``|sqrt(moving_variance) - std| /
std``. Both are per statistic of the layer (one per channel for ``(h, w, c)`` images with Keras' default
``axis=-1``, one per feature for tables or after ``Flatten``); constant features (exact ``std == 0``:
nothing to normalize, no scale to compare with) are left out of both and counted in ``n_constant``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from normlab.experiments._common import CompareError

__all__ = ["MovingStatsError", "first_batchnorm", "moving_stats_error"]


@dataclass(frozen=True)
class MovingStatsError:
    """The moving averages of an input BatchNormalization against the exact statistics.

    Attributes
    ----------
    mean_shift_max, mean_shift_median : float
        ``|moving_mean - mean| / std`` over the non-constant statistics: the largest and the median.
    std_rel_max, std_rel_median : float
        ``|sqrt(moving_variance) - std| / std``, the same way.
    n_stats, n_constant : int
        Statistics the layer holds, and how many of them were left out (exact ``std == 0``).
    acc_moving, acc_exact : float
        Accuracy on the evaluation samples with the layer's moving averages (as trained) and with the exact
        ``mean``/``std**2`` in their place; NaN when no evaluation samples were given.
    """

    mean_shift_max: float
    mean_shift_median: float
    std_rel_max: float
    std_rel_median: float
    n_stats: int
    n_constant: int
    acc_moving: float = float("nan")
    acc_exact: float = float("nan")

    @property
    def acc_delta(self) -> float:
        """``acc_exact - acc_moving``: what the exact statistics would have changed at inference."""
        return self.acc_exact - self.acc_moving


def first_batchnorm(model: Any) -> Any:
    """The model's first ``BatchNormalization`` layer, looking inside nested models; a CompareError if none."""
    from normlab.experiments.keras_models import import_keras

    keras = import_keras()
    stack = list(model.layers)
    while stack:
        layer = stack.pop(0)
        if isinstance(layer, keras.layers.BatchNormalization):
            return layer
        if isinstance(layer, keras.Model):
            stack[:0] = list(layer.layers)
    raise CompareError(
        f"model {model.name!r} has no BatchNormalization layer; expected one as its first layer, e.g. "
        "the model of method 'batchnorm-input'."
    )


def _accuracy(model: Any, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    return float((out.argmax(1) == np.asarray(y)).mean())


def moving_stats_error(
    model: Any,
    mean: Any,
    std: Any,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    batch_size: int = 1024,
) -> MovingStatsError:
    """Compare the first BatchNormalization's moving averages of ``model`` with the exact ``mean``/``std``.

    Parameters
    ----------
    model : keras.Model
        Trained, with a ``BatchNormalization`` before anything that changes its input's statistics.
    mean, std : array-like of the layer's statistic shape, e.g. ``(c,)``
        The exact statistics of the training split it was trained on, on the scale the layer saw
        (``normlab.stats(x_train, per="channel")`` for images, ``per="feature"`` for tables), ``ddof=0``.
    x, y : ndarray, optional
        Evaluation samples and integer labels: the accuracy with the moving averages and with the exact
        statistics in their place (``moving_variance = std**2``, the layer still adding its ``epsilon``;
        a constant feature gets ``1 - epsilon``, so it divides by 1 as normlab's zero-spread rule does,
        not by ``sqrt(epsilon)``). The layer's moving averages are restored afterwards.

    Examples
    --------
    >>> import keras, numpy as np
    >>> bn = keras.layers.BatchNormalization(center=False, scale=False)
    >>> model = keras.Sequential([keras.Input((2,)), bn])
    >>> _ = bn.moving_mean.assign([1.1, 0.0]), bn.moving_variance.assign([4.0, 1.0])
    >>> e = moving_stats_error(model, mean=[1.0, 0.0], std=[2.0, 0.0])
    >>> round(e.mean_shift_max, 6), e.std_rel_max, e.n_constant
    (0.05, 0.0, 1)
    """
    layer = first_batchnorm(model)
    moving_mean = np.asarray(layer.moving_mean.numpy(), dtype=np.float64)
    moving_var = np.asarray(layer.moving_variance.numpy(), dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.shape != moving_mean.shape or std.shape != moving_mean.shape:
        raise CompareError(
            f"moving_stats_error(): the layer {layer.name!r} holds statistics of shape {moving_mean.shape}, but "
            f"mean has shape {mean.shape} and std {std.shape}; expected that shape. For images and Keras' "
            "default axis=-1 that is one per channel: normlab.stats(x_train, per='channel')."
        )
    varying = std > 0
    if not varying.any():
        raise CompareError(
            "moving_stats_error(): every exact std is 0 (constant data); expected at least one varying feature."
        )
    shift = np.abs(moving_mean - mean)[varying] / std[varying]
    std_rel = np.abs(np.sqrt(moving_var) - std)[varying] / std[varying]
    acc_moving = acc_exact = float("nan")
    if x is not None and y is not None:
        acc_moving = _accuracy(model, x, y, batch_size)
        try:
            layer.moving_mean.assign(mean.astype(np.float32))
            # a constant feature divides by 1 (normlab's zero-spread rule), not by sqrt(epsilon)
            exact_var = np.where(varying, std**2, 1.0 - layer.epsilon)
            layer.moving_variance.assign(exact_var.astype(np.float32))
            acc_exact = _accuracy(model, x, y, batch_size)
        finally:
            layer.moving_mean.assign(moving_mean.astype(np.float32))
            layer.moving_variance.assign(moving_var.astype(np.float32))
    return MovingStatsError(
        mean_shift_max=float(shift.max()), mean_shift_median=float(np.median(shift)),
        std_rel_max=float(std_rel.max()), std_rel_median=float(np.median(std_rel)),
        n_stats=int(moving_mean.size), n_constant=int((~varying).sum()),
        acc_moving=acc_moving, acc_exact=acc_exact,
    )  # fmt: skip
