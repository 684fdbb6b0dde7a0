"""Explaining normalized data in terms of the raw data: which statistics, computed along which axes.

Every normalization in use (``/ 255``, standardization per channel, per feature or per sample,
min-max, ``keras.utils.normalize``, scikit-learn's ``Normalizer``) is an affine map ``z = a * x + b``
whose coefficients are constant over some *groups* of values: the whole dataset (``per="global"``),
each channel, each pixel position, each sample, or, for ``keras.utils.normalize(x, axis=1)`` on an
``(n, h, w)`` stack, each image column. :func:`explain` fits ``z = a * x + b`` by least squares inside the
groups of every candidate set of kept axes, on a subsample of samples, and returns the smallest set
whose fit is exact to rounding. That set names the axes the user actually normalized along; ``a`` and
``b`` give back the statistics that were used (``center = -b / a``, ``scale = 1 / a``).

It also measures whether the order of intensities inside each image (and channel) survived, and looks
for modular wrap-around (``(x - k) mod 256``), the signature of arithmetic done in ``uint8``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import prod
from typing import Any

import numpy as np

from normlab.core.axes import distinct_keep_axes

__all__ = ["Explanation", "Wrap", "channels_last", "explain", "find_wrap"]

#: A fit is exact when its residual is below this fraction of the spread of z: float32 output rounds at
#: about 6e-8 relative, so 1e-4 leaves three orders of magnitude for accumulated rounding, while any
#: real mismatch of the model (a wrong axis) leaves residuals of order 1e-2 and more.
_FIT_TOL = 1e-4
#: Candidates whose fast (one-pass) residual is below this are re-fitted with two passes before judging:
#: with values far from the global mean the one-pass sums lose digits (breast-cancer's features range
#: from 1e-3 to 4e3), while a wrong candidate's residual is far above it.
_CONFIRM = 0.05
#: Group-wise properties (unit norm, zero mean, unit std) are judged to this absolute tolerance.
_PROP_TOL = 1e-3


@dataclass
class Explanation:
    """How ``Z`` follows from ``X`` (see the module docstring)."""

    keep: tuple[int, ...] | None  # internal axes with one coefficient each (size-1 axes left out)
    mode: str | None  # the per= mode those axes are, or None
    residual: float  # relative residual of that fit (or of the best candidate when nothing fits)
    a: np.ndarray | None  # coefficients, keepdims-shaped over the subsample
    b: np.ndarray | None
    nature: str  # "unit-l2", "unit-l1", "standardized", "minmax", "unit-max" or "affine"
    index: np.ndarray  # the samples analysed
    rank_checked: int = 0  # (sample, channel) rows whose intensity order was checked
    rank_broken: int = 0  # ... and in how many of them it was not preserved
    example: dict[str, Any] | None = None
    channels_reversed: bool = False  # z follows from x[..., ::-1] (RGB <-> BGR)

    @property
    def stateful(self) -> bool:
        return self.mode in ("global", "channel", "feature")

    def center_scale(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The statistics that were used (``z = (x - center) / scale``), raveled as the mode's entries."""
        if not self.stateful or self.a is None or self.b is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.ravel(self.a)
            b = np.ravel(np.broadcast_to(self.b, self.a.shape))
            ok = np.isfinite(a) & (a != 0)
            scale = np.where(ok, 1.0 / np.where(ok, a, 1.0), np.nan)
            center = np.where(ok, -b / np.where(ok, a, 1.0), np.nan)
        return center, scale


class _Moments:
    """x, z and their products, computed once and reduced over each candidate's groups.

    Both are centered on their global means first, so the one-pass sums below keep their precision.
    """

    def __init__(self, x: np.ndarray, z: np.ndarray, ok: np.ndarray) -> None:
        full = bool(ok.all())
        self.ok = None if full else ok
        if full:
            self.xm, self.zm = float(x.mean()), float(z.mean())
            self.x, self.z = x - self.xm, z - self.zm
        else:
            n = max(int(ok.sum()), 1)
            x, z = np.where(ok, x, 0.0), np.where(ok, z, 0.0)
            self.xm, self.zm = float(x.sum()) / n, float(z.sum()) / n
            self.x = np.where(ok, x - self.xm, 0.0)
            self.z = np.where(ok, z - self.zm, 0.0)
        self.xx, self.xz, self.zz = self.x * self.x, self.x * self.z, self.z * self.z
        self.total = float(self.zz.sum())


def _group_fit(m: _Moments, keep: tuple[int, ...], *, exact: bool = False) -> tuple:
    """Least squares ``z = a x + b`` inside each group of values sharing the ``keep`` indices.

    The fast form reduces the precomputed products in one pass; ``exact=True`` subtracts each group's
    means first (two passes), which keeps full precision when groups sit far from the global mean.
    """
    red = tuple(a for a in range(m.x.ndim) if a not in keep)
    if m.ok is None:
        cnt: Any = float(prod(m.x.shape[a] for a in red))
        good: Any = True
    else:
        cnt = np.maximum(m.ok.sum(axis=red, keepdims=True, dtype=np.float64), 1.0)
        good = m.ok.all(axis=red, keepdims=True)
    sx = m.x.sum(axis=red, keepdims=True)
    sz = m.z.sum(axis=red, keepdims=True)
    if exact:
        dx, dz = m.x - sx / cnt, m.z - sz / cnt
        if m.ok is not None:
            dx, dz = np.where(m.ok, dx, 0.0), np.where(m.ok, dz, 0.0)
        sxx = (dx * dx).sum(axis=red, keepdims=True)
        sxz = (dx * dz).sum(axis=red, keepdims=True)
        szz = (dz * dz).sum(axis=red, keepdims=True)
    else:
        sxx = m.xx.sum(axis=red, keepdims=True) - sx * sx / cnt
        sxz = m.xz.sum(axis=red, keepdims=True) - sx * sz / cnt
        szz = m.zz.sum(axis=red, keepdims=True) - sz * sz / cnt
    spread = sxx > 1e-12 * np.maximum(m.xx.sum(axis=red, keepdims=True), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(spread, sxz / np.where(spread, sxx, 1.0), np.nan)
        rss = np.where(spread, szz - sxz * np.where(spread, a, 0.0), szz)
    mx, mz = sx / cnt + m.xm, sz / cnt + m.zm  # group means in the original coordinates
    b = np.where(spread, mz - np.nan_to_num(a) * mx, mz)
    rss = np.where(good, np.maximum(rss, 0.0), 0.0)
    return a, b, float(rss.sum()), np.broadcast_to(good, a.shape)


def explain(x: np.ndarray, z: np.ndarray, *, channel_axis: int, has_channel: bool, is_image: bool,
            z_dtype: np.dtype, index: np.ndarray) -> Explanation:
    """Find the smallest set of kept axes with an exact per-group affine fit of ``z`` on ``x``.

    ``x`` and ``z`` are float64 subsamples (samples first) in the common internal shape.
    """
    shape = x.shape
    ok = np.isfinite(x) & np.isfinite(z)
    z0 = np.where(ok, z, 0.0)
    m = _Moments(x, z, ok)
    total = m.total
    tol = max(_FIT_TOL, 8 * float(np.finfo(z_dtype).eps) if np.dtype(z_dtype).kind == "f" else _FIT_TOL)
    big = [a for a in range(len(shape)) if shape[a] > 1]
    candidates = []
    for r in range(len(big) + 1):
        for keep in combinations(big, r):
            group = prod(shape[a] for a in range(len(shape)) if a not in keep)
            if group < 3:  # an affine map through 1 or 2 points always fits: no evidence
                continue
            candidates.append((prod(shape[a] for a in keep), len(keep), keep))
    candidates.sort()
    modes = distinct_keep_axes(shape, channel_axis, channels=has_channel)
    best: tuple | None = None
    found: tuple | None = None
    for _, _, keep in candidates:
        a, b, rss, good = _group_fit(m, keep)
        rel = float(np.sqrt(rss / total)) if total > 0 else 0.0
        if _FIT_TOL < rel <= _CONFIRM:  # close: the one-pass sums may have lost the last digits
            a, b, rss, good = _group_fit(m, keep, exact=True)
            rel = float(np.sqrt(rss / total)) if total > 0 else 0.0
        if best is None or rel < best[0]:
            best = (rel, keep, a, b, good)
        if rel <= tol:
            found = (rel, keep, a, b, good)
            break
    rank_checked, rank_broken, example = (_rank_order(x, z, ok, channel_axis, has_channel, index)
                                          if is_image else (0, 0, None))
    if found is None:
        rel = best[0] if best is not None else float("nan")
        return Explanation(None, None, rel, None, None, "affine", index, rank_checked, rank_broken, example)
    rel, keep, a, b, good = found
    mode = next((m for m, k in modes.items() if k == keep), None)
    nature = _nature(z0, ok, keep, a, good)
    return Explanation(keep, mode, rel, a, b, nature, index, rank_checked, rank_broken, example)


def _nature(z: np.ndarray, ok: np.ndarray, keep: tuple[int, ...], a: np.ndarray, good: np.ndarray) -> str:
    """What every (non-constant) group of z looks like: unit L2 norm, standardized, [0, 1], unit max."""
    red = tuple(i for i in range(z.ndim) if i not in keep)
    live = (good & np.isfinite(a) & (a != 0)).ravel()
    if not live.any():
        return "affine"
    cnt = np.maximum(ok.sum(axis=red, keepdims=True), 1)
    sel = lambda v: np.ravel(v)[live]  # noqa: E731
    norm = sel(np.sqrt((z * z).sum(axis=red, keepdims=True)))
    mean = z.sum(axis=red, keepdims=True) / cnt
    std = np.sqrt(np.maximum((z * z).sum(axis=red, keepdims=True) / cnt - mean * mean, 0.0))
    big = np.where(ok, z, -np.inf).max(axis=red, keepdims=True)
    small = np.where(ok, z, np.inf).min(axis=red, keepdims=True)
    absmax = sel(np.maximum(np.abs(big), np.abs(small)))
    if np.all(np.abs(norm - 1) < _PROP_TOL):
        return "unit-l2"
    if np.all(np.abs(sel(np.abs(z).sum(axis=red, keepdims=True)) - 1) < _PROP_TOL):
        return "unit-l1"
    if np.all(np.abs(sel(mean)) < _PROP_TOL) and np.all(np.abs(sel(std) - 1) < _PROP_TOL):
        return "standardized"
    if np.all(np.abs(sel(small)) < _PROP_TOL) and np.all(np.abs(sel(big) - 1) < _PROP_TOL):
        return "minmax"
    if np.all(np.abs(absmax - 1) < _PROP_TOL):
        return "unit-max"
    return "affine"


def _rows(v: np.ndarray, channel_axis: int, has_channel: bool) -> np.ndarray:
    """(samples * channels, values) rows: one per image and channel."""
    if has_channel:
        v = np.moveaxis(v, channel_axis, 1)
        return v.reshape(v.shape[0] * v.shape[1], -1)
    return v.reshape(v.shape[0], -1)


def _rank_order(x: np.ndarray, z: np.ndarray, ok: np.ndarray, channel_axis: int, has_channel: bool,
                index: np.ndarray) -> tuple[int, int, dict[str, Any] | None]:
    """In how many (image, channel) rows is the order of intensities not preserved by the normalization?

    Sorting each row by (x, z) makes z non-decreasing exactly when every brighter raw value stays at
    least as bright; a drop of more than 1e-6 of the row's z-range (rounding) counts as broken.
    """
    xr, zr, okr = (_rows(v, channel_axis, has_channel) for v in (x, z, ok))
    rows_ok = okr.all(axis=1)
    xr, zr = xr[rows_ok], zr[rows_ok]
    if xr.shape[0] == 0:
        return 0, 0, None
    order = np.lexsort((zr, xr), axis=-1)
    zs = np.take_along_axis(zr, order, axis=-1)
    span = zr.max(axis=1, keepdims=True) - zr.min(axis=1, keepdims=True)
    broken = (np.diff(zs, axis=1) < -(1e-6 * span + 1e-12)).any(axis=1)
    n_broken = int(broken.sum())
    example = None
    if n_broken:
        row = int(np.flatnonzero(broken)[0])
        xv, zv = xr[row], zr[row]
        hi = int(np.flatnonzero(xv == xv.max())[np.argmin(zv[xv == xv.max()])])  # brightest raw, dimmest after
        lo = int(np.argmax(zv))  # brightest after
        if not (xv[lo] < xv[hi] and zv[lo] > zv[hi]):
            pos = int(np.flatnonzero(np.diff(zs[row]) < -(1e-6 * span[row, 0] + 1e-12))[0])
            lo, hi = int(order[row, pos + 1]), int(order[row, pos])
            lo, hi = (lo, hi) if xv[lo] < xv[hi] else (hi, lo)
        n_ch = (x.shape[channel_axis] if has_channel else 1)
        flat_rows = np.flatnonzero(rows_ok)
        sample_row = int(flat_rows[row])
        example = {
            "sample": int(index[sample_row // n_ch]),
            "channel": int(sample_row % n_ch) if has_channel and n_ch > 1 else None,
            "x_bright": float(xv[hi]), "z_bright": float(zv[hi]),
            "x_dim": float(xv[lo]), "z_dim": float(zv[lo]),
        }
    return int(xr.shape[0]), n_broken, example


# --------------------------------------------------------------------------------------------------
# Modular wrap-around
# --------------------------------------------------------------------------------------------------


@dataclass
class Wrap:
    """``z = a * ((x - shift) mod modulus) + b`` per channel: arithmetic done in an unsigned dtype."""

    shift: np.ndarray  # one per channel (or one for all values): the subtracted amount
    a: np.ndarray
    b: np.ndarray
    modulus: int


def channels_last(v: np.ndarray, channel_axis: int, has_channel: bool) -> np.ndarray:
    """``v`` with its channel axis last; data without one gets a last axis of size 1."""
    return np.moveaxis(v, channel_axis, -1) if has_channel else v[..., None]


def find_wrap(x: np.ndarray, z: np.ndarray, raw_dtype: np.dtype, *, channel_axis: int,
              has_channel: bool) -> Wrap | None:
    """Detect ``z = a * ((x - k) mod M) + b`` with one ``k`` per channel and ``M = 2**bits`` of ``raw_dtype``.

    A map of that form is increasing in x except for exactly one drop, at ``x = k``; the check demands
    that z be a function of x in every channel, that there be exactly one drop, and that the modular
    model fit to rounding.
    """
    if raw_dtype.kind not in "ui" or raw_dtype.itemsize > 2:
        return None
    modulus = 1 << (8 * raw_dtype.itemsize)
    xs, zs = channels_last(x, channel_axis, has_channel), channels_last(z, channel_axis, has_channel)
    shifts, slopes, offsets = [], [], []
    for c in range(xs.shape[-1]):
        xv = xs[..., c].ravel().astype(np.int64)
        zv = zs[..., c].ravel()
        keep = np.isfinite(zv)
        xv, zv = xv[keep], zv[keep]
        if xv.size < 3:
            return None
        order = np.argsort(xv, kind="stable")
        xv, zv = xv[order], zv[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(xv)) + 1))
        vals = xv[starts]
        if vals.size < 3:
            return None
        zmin = np.minimum.reduceat(zv, starts)
        zmax = np.maximum.reduceat(zv, starts)
        span = float(zmax.max() - zmin.min())
        if span <= 0 or np.any(zmax - zmin > 1e-6 * span):  # not a function of x in this channel
            return None
        drops = np.flatnonzero(np.diff(zmin) < -1e-6 * span)
        if drops.size != 1:
            return None
        k = int(vals[drops[0] + 1])
        w = ((vals - k) % modulus).astype(np.float64)
        a, b = np.polyfit(w, zmin, 1)
        if not a > 0 or np.max(np.abs(a * w + b - zmin)) > 1e-4 * span:
            return None
        shifts.append(k)
        slopes.append(a)
        offsets.append(b)
    return Wrap(np.asarray(shifts), np.asarray(slopes), np.asarray(offsets), modulus)
