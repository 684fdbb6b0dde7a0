"""Weighted moments for ``fit(X, sample_weight=w)``: exact for integer data with integer weights.

scikit-learn's scalers take ``sample_weight``; so do normlab's moment-based normalizers (``Standardize``,
``Center``). Each sample's values count ``w`` times: the weighted mean is ``sum(w x) / sum(w)`` and the
weighted variance (ddof=0) ``sum(w (x - mean)**2) / sum(w)``, per entry of ``per=``.

- Integer data with integer weights is summed in Python integers (``sum(w)``, ``sum(w x)``,
  ``sum(w x**2)`` per entry), so mean and variance are the exact fractions, correctly rounded to float64:
  the same as fitting the data with each sample repeated ``w`` times.
- Otherwise each batch is shifted by its first sample and summed in float64, and batches merge with the
  weighted form of Chan's formula (Chan, Golub & LeVeque, 1979): exact to rounding at any magnitude.
"""

from __future__ import annotations

from fractions import Fraction
from math import prod
from typing import Any

import numpy as np

from normlab.core._formulas import ACCUMULATED, EXACT
from normlab.core.axes import Layout
from normlab.errors import DataError, LayoutError

__all__ = ["WeightedMoments", "check_weights"]


def check_weights(w: Any, n: int, who: str) -> np.ndarray:
    """``sample_weight`` as a validated 1-D array of ``n`` finite, non-negative numbers (not all zero)."""
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf" or arr.ndim != 1 or arr.shape[0] != n:
        raise LayoutError(
            f"{who} received sample_weight of shape {arr.shape} and dtype {arr.dtype} for {n} samples; expected "
            f"one number per sample, shape ({n},)."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError(f"{who}: sample_weight holds negative or non-finite values; expected weights >= 0.")
    return arr


def _rows_weights(layout: Layout, w: np.ndarray) -> np.ndarray:
    """One weight per row of the ``(a, k, b)`` view: a sample's weight repeats over its rows of ``a``."""
    shape = layout.shape
    if layout.per == "global":
        return np.repeat(w, prod(shape[1:]))
    if layout.per == "feature":
        return w
    return np.repeat(w, prod(shape[1 : layout.channel_axis]))  # per="channel"


class WeightedMoments:
    """Weighted count, mean, variance, min and max per entry, in the statistics-view interface."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.exact = True  # integer data, integer weights: Python-int sums
        self.s0 = [0] * k
        self.s1 = [0] * k
        self.s2 = [0] * k
        self.w = np.zeros(k)  # float path: weight, mean, M2 per entry
        self.m = np.zeros(k)
        self.m2 = np.zeros(k)
        self.min = np.full(k, np.inf)
        self.max = np.full(k, -np.inf)
        self.input_kind = "i"

    def update(self, x3: np.ndarray, layout: Layout, w: np.ndarray) -> None:
        rw = _rows_weights(layout, w)
        used = rw > 0
        if np.any(used):  # extremes of the samples that carry weight
            xs = x3[used]
            self.min = np.minimum(self.min, xs.min(axis=(0, 2)))
            self.max = np.maximum(self.max, xs.max(axis=(0, 2)))
        if self.exact and x3.dtype.kind in "biu" and rw.dtype.kind in "biu":
            self._update_int(x3, rw)
        else:
            self._to_float()
            self._update_float(x3, rw)

    def _update_int(self, x3: np.ndarray, rw: np.ndarray) -> None:
        big = max(abs(int(x3.min())), abs(int(x3.max())))
        bound = max(int(rw.max()), 1) * max(big, 1) ** 2 * x3.shape[0] * x3.shape[2]
        # int64 sums when no partial sum can reach 2**62, Python integers (slow, rare) otherwise
        dtype = np.int64 if bound < 2**62 else object
        xi, wi = x3.astype(dtype), rw.astype(dtype)[:, None, None]
        s0 = sum(int(v) for v in rw.tolist()) * x3.shape[2]  # the same total weight for every entry
        s1 = (wi * xi).sum(axis=(0, 2))
        s2 = (wi * xi * xi).sum(axis=(0, 2))
        for j in range(self.k):
            self.s0[j] += s0
            self.s1[j] += int(s1[j])
            self.s2[j] += int(s2[j])

    def _to_float(self) -> None:
        if not self.exact:
            return
        self.exact = False
        self.input_kind = "f"
        for j in range(self.k):
            if self.s0[j]:
                mean = Fraction(self.s1[j], self.s0[j])
                self.w[j], self.m[j] = float(self.s0[j]), float(mean)
                self.m2[j] = float(Fraction(self.s2[j]) - mean * self.s1[j])

    def _update_float(self, x3: np.ndarray, rw: np.ndarray) -> None:
        shift = x3[0].astype(np.float64).mean(axis=1)  # a reference inside the batch, per entry
        d = x3.astype(np.float64) - shift[None, :, None]
        wf = rw.astype(np.float64)[:, None, None]
        new_w = (wf * np.ones_like(d)).sum(axis=(0, 2))
        s1 = (wf * d).sum(axis=(0, 2))
        s2 = (wf * d * d).sum(axis=(0, 2))
        ok = new_w > 0
        new_m = np.where(ok, shift + np.divide(s1, new_w, out=np.zeros_like(s1), where=ok), 0.0)
        new_m2 = np.where(ok, s2 - np.divide(s1 * s1, new_w, out=np.zeros_like(s1), where=ok), 0.0)
        # Chan, Golub & LeVeque's pairwise update, with weights for counts
        old_w, old_m, old_m2 = self.w, self.m, self.m2
        updated_w = old_w + new_w
        delta = new_m - old_m
        frac = np.divide(new_w, updated_w, out=np.zeros_like(new_w), where=updated_w > 0)
        self.m = np.where(old_w > 0, old_m + delta * frac, new_m)
        self.m2 = old_m2 + new_m2 + delta * delta * old_w * frac
        self.w = updated_w

    # ---- the statistics view the formulas read ---------------------------------------------------

    @property
    def rel_resolution(self) -> float:
        return EXACT if self.exact else ACCUMULATED

    @property
    def count(self) -> np.ndarray:
        return np.asarray([float(v) for v in self.s0]) if self.exact else self.w

    @property
    def mean(self) -> np.ndarray:
        if self.exact:
            return np.asarray([float(Fraction(s1, s0)) if s0 else np.nan for s0, s1 in zip(self.s0, self.s1, strict=True)])
        return np.where(self.w > 0, self.m, np.nan)

    @property
    def var(self) -> np.ndarray:
        if self.exact:
            out = []
            for s0, s1, s2 in zip(self.s0, self.s1, self.s2, strict=True):
                out.append(float(Fraction(s2 * s0 - s1 * s1, s0 * s0)) if s0 else np.nan)
            return np.asarray(out)
        return np.where(self.w > 0, np.maximum(self.m2, 0.0) / np.where(self.w > 0, self.w, 1.0), np.nan)

    def check_any_weight(self, who: str) -> None:
        if not np.all(self.count > 0):
            raise DataError(f"{who}: the sample weights are all zero; expected at least one positive weight.")
