"""Summaries several checks share: the explanation of normalized data, and what the model is fed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from normlab.check._context import Context
from normlab.check._data import Data, exact_stats
from normlab.check._explain import Explanation, explain
from normlab.check._given import Given

__all__ = ["Fed", "constant_mask", "explanation", "fed", "stats_used"]

_EPS = np.finfo(np.float64).eps


def constant_mask(count: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """scikit-learn's test for a variance that is zero up to rounding (``_is_constant_feature``).

    ``var <= n * eps * var + (n * mean * eps) ** 2``: the error bound of the variance computed in
    float64 from ``n`` values. normlab's ``Standardize`` uses the same bound.
    """
    n = np.asarray(count, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    bound = n * _EPS * var + (n * np.asarray(mean, dtype=np.float64) * _EPS) ** 2
    return (var <= bound) | (var == 0)


def explanation(ctx: Context, raw_role: str, norm_role: str) -> Explanation | None:
    """How the ``norm_role`` array follows from ``raw_role`` (cached; None unless both are given)."""
    raw, norm = ctx.get(raw_role), ctx.get(norm_role)
    if raw is None or norm is None:
        return None

    def compute() -> Explanation:
        idx = ctx.sample_index(raw.n)
        kw = dict(channel_axis=ctx.channel_axis, has_channel=ctx.has_channel, is_image=ctx.is_image,
                  z_dtype=norm.x.dtype, index=idx)
        e = explain(raw.subsample(idx), norm.subsample(idx), **kw)
        if e.keep is None and ctx.is_image and ctx.n_channels == 3:  # RGB <-> BGR (Caffe's preprocess_input)
            swapped = explain(np.flip(raw.subsample(idx), axis=ctx.channel_axis), norm.subsample(idx), **kw)
            if swapped.keep is not None:
                swapped.channels_reversed = True
                return swapped
        return e

    return ctx.cached(("explain", raw_role, norm_role), compute)


@dataclass
class Fed:
    """Per-entry statistics of what the model is fed (entries of ``mode``: channels, features, or one)."""

    role: str  # the finding's subject
    label: str  # how messages name it
    how: str  # "normalized": given as such; "derived": training data after the given statistics;
    #           "as-given": the training data, assumed to be fed as it is
    mode: str
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray
    dtype: np.dtype
    names: list[str]

    @property
    def rms(self) -> np.ndarray:
        return np.sqrt(self.mean**2 + self.std**2)


def fed(ctx: Context) -> Fed | None:
    """Statistics of the data the model sees: the normalized data, or the training data after the given
    statistics, or else the training data itself (assumed to be fed as it is)."""

    def compute() -> Fed | None:
        mode = ctx.mode
        names = ctx.entry_names(mode, ctx.names_for("train"))
        z = ctx.Z
        if z is not None:
            s = z.stats(mode, ctx.channel_axis)
            return Fed("normalized", z.label, "normalized", mode, *_ravel(s), z.x.dtype, names)
        x, g = ctx.X, ctx.given
        if x is None:
            return None
        if g is not None and g.size > 0:
            s = x.stats(mode, ctx.channel_axis)
            k = ctx.data_scale(g)
            c, sc = g.center, np.where(g.scale == 0, 1.0, g.scale)
            lo, hi = (np.ravel(s.min) / k - c) / sc, (np.ravel(s.max) / k - c) / sc
            return Fed("stats", "the training data after the given statistics", "derived", mode,
                       (np.ravel(s.mean) / k - c) / sc, np.ravel(np.sqrt(s.var)) / k / np.abs(sc),
                       np.minimum(lo, hi), np.maximum(lo, hi), np.ravel(s.count), np.dtype(np.float64), names)
        if g is not None and g.normalizer is not None:  # a per-sample normalizer: transform a subsample
            idx = ctx.sample_index(x.n)
            out = g.normalizer.transform(x.x[idx].reshape(len(idx), *x.user_shape[1:]))
            s = exact_stats([out.reshape(len(idx), *ctx.internal_shape)], mode, ctx.channel_axis)
            return Fed("stats", "the training data after the given normalizer", "derived", mode, *_ravel(s),
                       out.dtype, names)
        s = x.stats(mode, ctx.channel_axis)
        return Fed("train", x.label, "as-given", mode, *_ravel(s), x.x.dtype, names)

    return ctx.cached("fed", compute)


def _ravel(s: object) -> tuple[np.ndarray, ...]:
    return (np.ravel(s.mean), np.ravel(np.sqrt(s.var)), np.ravel(s.min), np.ravel(s.max),  # type: ignore[attr-defined]
            np.ravel(s.count))  # type: ignore[attr-defined]


def stats_used(ctx: Context) -> Given | None:
    """The statistics the data is normalized with: the given ones, or else those read back from the
    normalized data (``center = -b / a``, ``scale = 1 / a`` of its exact affine fit per global, channel or
    feature entry), on the [0, 1] scale when the raw data are integer pixels."""
    if ctx.given is not None:
        return ctx.given

    def compute() -> Given | None:
        e = explanation(ctx, "train", "normalized")
        cs = None if e is None else e.center_scale()
        if cs is None or not np.all(np.isfinite(cs[0]) & np.isfinite(cs[1]) & (cs[1] > 0)):
            return None
        center, scale = cs
        if e is not None and e.channels_reversed:  # in the raw data's channel order
            center, scale = center[::-1], scale[::-1]
        center = np.where(np.abs(center) < 1e-9 * scale, 0.0, center)  # rounding of a pure scaling
        x = ctx.X
        assert x is not None and e is not None
        exact = True
        family = _recovered_family(x, e.mode, ctx.channel_axis, center, scale)
        if x.x.dtype.kind in "ui" and float(np.max(x.stats("global", -1).max)) > 1 \
                and np.all(np.abs(center) <= 255):
            center, scale, exact = center / 255, scale / 255, False  # what a tutorial writes: x / 255 first
        if e.mode == "global" and ctx.mode != "global":
            center = np.full(1, center[0]) if center.size else center
        fields = {"standardize": {"mean": center, "std": scale}, "center": {"mean": center}}.get(family, {})
        return Given(family, center, scale, fields, "read back from the normalized data", per=e.mode,
                     channel_axis=ctx.channel_axis, exact=exact, label="the recovered")

    return ctx.cached("stats_used", compute)


def _recovered_family(x: Data, mode: str, channel_axis: int, center: np.ndarray, scale: np.ndarray) -> str:
    """What recovered statistics are: mean subtraction only, min-max, median/IQR, or else mean and std."""
    if np.all(np.abs(scale - 1) < 1e-6):
        return "center"
    s = x.stats(mode, channel_axis)
    lo, hi = np.ravel(s.min), np.ravel(s.max)
    close = lambda a, b: bool(np.allclose(a, b, rtol=1e-4, atol=1e-6 * float(np.max(np.abs(hi)) or 1)))  # noqa: E731
    if lo.size == center.size and close(center, lo) and close(center + scale, hi):
        return "minmax"
    if x.x.ndim == 2:  # tables: scikit-learn's RobustScaler (quantiles interpolate, so 1% apart)
        q = x.stats(mode, channel_axis, quantiles=True).quantiles
        med, iqr = np.ravel(q[0.5]), np.ravel(q[0.75]) - np.ravel(q[0.25])
        if med.size == center.size and np.allclose(center, med, rtol=1e-2, atol=1e-2 * np.abs(iqr).max()) and \
                np.allclose(scale, iqr, rtol=1e-2):
            return "robust"
    return "standardize"
