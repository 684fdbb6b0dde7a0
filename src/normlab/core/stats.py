"""Mergeable, exact-where-possible statistics over the ``(a, k, b)`` view of a batch.

Every stateful normalizer reduces its input to the view ``(a, k, b)`` (see :mod:`normlab.core.axes`): one
statistic per ``k`` entry, computed over axes ``a`` and ``b``. :class:`StatsAccumulator` consumes such
batches one at a time (``update``), combines with other accumulators (``merge``), and reports count, mean,
variance, std, min, max and quantiles per entry. Streaming, multiprocessing and Dask are the same code
path: build one accumulator per piece of data, then merge.

How each statistic is computed
------------------------------
* **Integer data** (bool, 8/16/32-bit ints, and 64-bit ints whose values all fit in 32 bits) is summed in
  integers: per chunk in int64 (chunks never overflow), totals as exact Python ints. The sum of squares is
  exact too (32-bit values are split as ``x = hi * 2**16 + lo`` so every partial product fits). With
  ``S1 = sum(x)``, ``S2 = sum(x**2)``, ``mean = S1 / n`` and ``var = (n * S2 - S1**2) / n**2`` are formed from
  exact integer numerators, so both are the correctly rounded float64 values of the true mean and
  variance, **bit-identical for any split** of the data into ``update``/``merge`` calls and for either
  engine. 64-bit integers with values outside the 32-bit range, and float16/32/64 data, take the float path.
* **Float data** is accumulated in float64 chunk by chunk (1 MB). A first pass gives each entry's min and
  max (and detects NaN/inf); a second pass sums ``e = x - shift`` and ``e**2`` around the chunk's midrange,
  giving ``mean = shift + sum(e) / n`` and ``m2 = sum(e**2) - sum(e)**2 / n`` (the corrected two-pass
  algorithm); if cancellation would cost more than 10 bits the chunk is redone around its refined mean.
  Chunks and accumulators are combined with the pairwise update of Chan, Golub & LeVeque, with means kept
  as a per-entry reference value plus a small deviation, so data far from 0 (``1e13 + N(0, 1)``) keeps
  full relative precision. Any split agrees to about 1e-15 relative; a given split gives bit-identical
  results with either engine and any number of threads.
* **Quantiles** (``quantiles=True``): 8-bit integer data keeps a 256-bin histogram per entry, 16-bit integer
  data a 65536-bin one (each while ``k * bins <= 2**22``); quantiles from histograms are exact and equal
  ``np.quantile(..., method="linear")``. Other data keeps its values exactly while at most ``2**22`` values
  are stored in total, then switches to a deterministic mergeable quantile sketch per entry (compactors
  in the style of Manku-Rajagopalan-Lindsay and KLL, with alternating, never random, offsets). The sketch
  tracks a rigorous bound on its rank error, :attr:`StatsAccumulator.quantile_rank_error`: every answer
  ``v`` for a quantile ``q`` satisfies ``#{x < v} <= q (n - 1) + eps n`` and ``#{x <= v} >= q (n - 1) - eps n``.
  With the default budget it is about 1e-4 for tens of millions of values per entry. The data are never
  silently subsampled.

Engines. With the optional numba package, compiled kernels (``normlab.core._numba``) do the passes;
otherwise NumPy does, spreading big integer updates over worker threads (NumPy releases the GIL). Float
chunks stay on one thread: their per-chunk Python work makes threads queue for the GIL, which measured
slower than one thread. Results are identical either way. ``NORMLAB_ENGINE=numpy`` forces NumPy;
``NORMLAB_THREADS=n`` sets the worker count.

Memory is O(k) for the moments, O(k * bins) for histograms, bounded (about 32 MB) for exact quantile
values and ``O(k * cap * log(n))`` for sketches; temporaries are O(chunk), never O(data).
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from normlab.errors import (
    DataTypeError,
    LayoutError,
    NonFiniteError,
    UsageError,
    nonfinite_message,
)

__all__ = ["NonFiniteError", "StatsAccumulator"]

#: Target size of one chunk of input, in bytes. Temporaries are O(chunk), never O(data).
_CHUNK_BYTES = 1 << 20
#: Chunk size of the float path (both engines: the chunking fixes the float rounding, so it is shared).
_FLOAT_CHUNK_BYTES = 1 << 20
#: Chunk size of the integer paths with numba (exact sums do not depend on it; views, no copies).
_NUMBA_CHUNK_BYTES = 1 << 28
#: With engine="auto", updates at least this big use the compiled kernels (when numba is installed).
_NUMBA_MIN_BYTES = 1 << 23
#: Updates at least this big use the worker threads (NumPy engine).
_PARALLEL_BYTES = 1 << 22
#: Length (in elements) that short rows are folded up to, so NumPy's inner loops run long.
_ROW_ELEMS = 1024
#: Flush the running int64 integer sums into exact Python ints before this many values per entry.
_FLUSH_VALUES = 1 << 30
#: Exact quantile values are kept while at most this many are stored in total.
_EXACT_QUANTILE_BUDGET = 1 << 22
#: Largest histogram, in bins over all entries (int64 each).
_HIST_BUDGET = 1 << 22

_NAN_POLICIES = ("raise", "ignore")
_ENGINES = ("auto", "numpy", "numba")
_KIND_ORDER = {"b": 0, "u": 1, "i": 2, "f": 3}


_UsageError = UsageError
# --------------------------------------------------------------------------------------------------------
# engine selection and the worker pool
# --------------------------------------------------------------------------------------------------------


def _resolve_engine(engine: str, nbytes: int | None = None) -> str:
    """``"numba"`` when compiled kernels are wanted and available, else ``"numpy"``.

    ``"auto"`` uses them for updates of at least ``_NUMBA_MIN_BYTES`` (results are identical, and small
    updates never wait for a first compilation). ``NORMLAB_ENGINE=numpy`` turns them off everywhere;
    ``NORMLAB_ENGINE=numba`` uses them whatever the size.
    """
    env = os.environ.get("NORMLAB_ENGINE", "").strip().lower()
    if env == "numpy" or engine == "numpy":
        return "numpy"
    forced = engine == "numba" or env == "numba"
    if not forced and nbytes is not None and nbytes < _NUMBA_MIN_BYTES:
        return "numpy"  # decided before importing numba at all
    from normlab.core import _numba

    return "numba" if _numba.available() else "numpy"


_POOL: dict[str, Any] = {}
_LOCAL = threading.local()


def _n_workers() -> int:
    env = os.environ.get("NORMLAB_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(os.cpu_count() or 1, 8))


def _pool():
    """A process-wide thread pool for the NumPy engine (NumPy releases the GIL in its loops)."""
    from concurrent.futures import ThreadPoolExecutor

    if _POOL.get("pid") != os.getpid():  # a forked child must not reuse its parent's threads
        _POOL.clear()
        _POOL["pid"] = os.getpid()
        _POOL["pool"] = ThreadPoolExecutor(
            max_workers=_n_workers(), thread_name_prefix="normlab-stats"
        )
    return _POOL["pool"]


def _pmap(fn, items, parallel: bool):
    """``fn(*item)`` for each item, results in order; at most ``2 * workers`` items in flight."""
    if not parallel:
        for item in items:
            yield fn(*item)
        return
    pool = _pool()
    window: deque = deque()
    limit = 2 * _n_workers()
    for item in items:
        window.append(pool.submit(fn, *item))
        if len(window) >= limit:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread reusable buffer (avoids mapping fresh pages for every chunk)."""
    buf = getattr(_LOCAL, name, None)
    need = math.prod(shape) * np.dtype(dtype).itemsize
    if buf is None or buf.nbytes < need:
        buf = np.empty(max(need, 1), np.uint8)
        setattr(_LOCAL, name, buf)
    return buf[:need].view(dtype).reshape(shape)


# --------------------------------------------------------------------------------------------------------
# chunking: (a, k, b) -> pieces viewed as rows (R, L) with L = m * k * b
# --------------------------------------------------------------------------------------------------------


def _chunks(x3: np.ndarray, chunk_bytes: int = _CHUNK_BYTES, max_rows: int = 1 << 62):
    """Yield ``(X, m, b_c)``: ``X`` of shape ``(R, m * k * b_c)`` covering part of ``x3``, ``R <= max_rows``.

    Rows of ``m`` consecutive ``a``-slices are laid side by side so that short rows (e.g. ``k = 3``
    channels-last) become long ones. Pieces of a C-contiguous ``x3`` are views; otherwise each piece is
    copied (O(chunk) memory).
    """
    a, k, b = x3.shape
    budget = max(1, chunk_bytes // max(x3.dtype.itemsize, 1))  # elements per chunk
    row = k * b
    if row > budget:
        # One a-slice is bigger than a chunk: cut along b (the statistics reduce over b anyway).
        bs = max(1, budget // k)
        for i in range(a):
            for j in range(0, b, bs):
                piece = x3[i : i + 1, :, j : j + bs]
                yield np.ascontiguousarray(piece).reshape(1, -1), 1, piece.shape[2]
        return
    m = 1
    if (
        row < _ROW_ELEMS
    ):  # fold m rows into one; keep the length a multiple of 64 (vector loops, no tails)
        step_m = 64 // math.gcd(row, 64)
        m = step_m * -(-_ROW_ELEMS // (row * step_m))
    m = max(1, min(m, a))
    rows = max(1, min(budget // (row * m), max_rows))  # R
    step = rows * m
    start = 0
    full = (a // step) * step
    while start < full:
        yield _rows(x3[start : start + step], rows, m * row), m, b
        start += step
    rest = a - full
    if rest >= m and m > 1:
        r = rest // m
        yield _rows(x3[start : start + r * m], r, m * row), m, b
        start += r * m
    if start < a:
        yield _rows(x3[start:a], a - start, row), 1, b


def _rows(piece: np.ndarray, r: int, length: int) -> np.ndarray:
    if piece.flags.c_contiguous:
        return piece.reshape(r, length)
    return np.ascontiguousarray(piece).reshape(r, length)


def _fold_sum(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Sum a per-position vector of length ``m * k * b`` to ``(k,)`` in a fixed order (b, then m)."""
    if b > 1:
        v = np.add.reduce(v.reshape(m * k, b), axis=1)
    v = v.reshape(m, k)
    return np.add.reduce(v, axis=0) if m > 1 else v[0].copy()


def _fold_min(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    if b == 1:
        return np.minimum.reduce(v.reshape(m, k), axis=0)
    return v.reshape(m, k, b).min(axis=(0, 2))


def _fold_max(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    if b == 1:
        return np.maximum.reduce(v.reshape(m, k), axis=0)
    return v.reshape(m, k, b).max(axis=(0, 2))


@lru_cache(maxsize=64)
def _entry_row(m: int, k: int, b: int) -> np.ndarray:
    """Entry index (0..k-1) of each position of a row of length ``m * k * b``."""
    out = np.ascontiguousarray(
        np.broadcast_to(np.arange(k, dtype=np.intp).reshape(1, k, 1), (m, k, b)).ravel()
    )
    out.flags.writeable = False
    return out


def _expand(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Repeat a per-entry ``(k,)`` vector to a row of length ``m * k * b`` (positions of a chunk row)."""
    if b == 1:
        return np.tile(v, m)
    return np.repeat(np.tile(v, m), b)


# --------------------------------------------------------------------------------------------------------
# per-chunk kernels. NumPy versions here; _numba.py computes the same per-position quantities, and the
# folding to entries is shared, so both engines give identical results.
# --------------------------------------------------------------------------------------------------------

#: Rows per block for 8-bit data: 256 * 255**2 < 2**24, so float32 sums of values and squares are exact.
_ROWS_8BIT = 256


def _int_moments_np(X: np.ndarray, minmax: bool = True):
    """Exact per-position ``(s1, sq0, sq1, sq2, mn, mx)`` of an integer chunk ``(R, L)``.

    The sum of squares is ``sq0 + sq1 * 2**17 + sq2 * 2**32``. 8-bit data is summed in float32 blocks of
    256 rows (every partial sum of values or squares is an integer below 2**24, so exact in any order),
    with NumPy's own reductions rather than BLAS (whose threads would fight the worker threads); 16-bit
    data uses BLAS on a float64 copy (partial sums below 2**53); 32-bit data splits ``x = hi * 2**16 + lo``
    in int64. ``minmax=False`` skips the min/max passes (``mn``, ``mx`` are then None): the caller knows
    they cannot change any more.
    """
    R, L = X.shape
    mn = mx = None
    if minmax:
        mn = np.minimum.reduce(X, axis=0).astype(np.int64)
        mx = np.maximum.reduce(X, axis=0).astype(np.int64)
    if X.dtype.itemsize <= 2:
        if X.dtype.itemsize == 1:
            s = np.zeros(L, np.float64)
            q = np.zeros(L, np.float64)
            for r0 in range(0, R, _ROWS_8BIT):
                Xb = X[r0 : r0 + _ROWS_8BIT]
                F = _scratch("f32", Xb.shape, np.float32)
                np.copyto(F, Xb, casting="unsafe")
                s += np.add.reduce(F, axis=0)
                q += np.einsum("ij,ij->j", F, F)
            s, q = s.astype(np.int64), q.astype(np.int64)  # integers below 2**53: exact
        else:
            F = _scratch("f64", X.shape, np.float64)
            np.copyto(F, X, casting="unsafe")
            ones = np.ones(R, np.float64)
            s = (ones @ F).astype(np.int64)
            np.multiply(F, F, out=F)
            q = (ones @ F).astype(np.int64)
        zero = np.zeros(L, np.int64)
        return s, q, zero, zero, mn, mx
    Xi = X.astype(np.int64)
    s = np.add.reduce(Xi, axis=0)
    lo = Xi & 0xFFFF
    hi = Xi >> 16
    sq1 = np.add.reduce(hi * lo, axis=0)
    np.multiply(hi, hi, out=hi)
    sq2 = np.add.reduce(hi, axis=0)
    np.multiply(lo, lo, out=lo)
    sq0 = np.add.reduce(lo, axis=0)
    return s, sq0, sq1, sq2, mn, mx


def _hist_np(X: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Histogram of the bit patterns of an 8/16-bit chunk: ``(k, 256)`` or ``(k, 65536)`` int64.

    8-bit data is counted two bytes at a time (one ``bincount`` over 16-bit pairs, then the two marginals),
    which halves the slow part, whenever the pairs' entry pattern is short.
    """
    R, L = X.shape
    ent = _entry_row(m, k, b)
    if X.dtype.itemsize == 2:
        idx = _scratch("idx", X.shape, np.intp)
        np.copyto(idx, X.view(np.uint16), casting="unsafe")
        if k > 1:
            np.add(idx, ent * 65536, out=idx)
        return np.bincount(idx.ravel(), minlength=k * 65536).reshape(k, 65536)
    U = X.view(np.uint8)
    if L % 2 == 0:
        code = ent[0::2] * k + ent[1::2]
        combos, phase = np.unique(code, return_inverse=True)
        if combos.size <= 8:
            idx = _scratch("idx", (R, L // 2), np.intp)
            np.copyto(idx, U.view("<u2"), casting="unsafe")
            if combos.size > 1:
                np.add(idx, phase.reshape(-1) * 65536, out=idx)
            cnt = np.bincount(idx.ravel(), minlength=combos.size * 65536).reshape(
                combos.size, 256, 256
            )
            hist = np.zeros((k, 256), np.int64)
            for p, c in enumerate(combos):  # little endian: value = first + 256 * second
                hist[c // k] += cnt[p].sum(axis=0)
                hist[c % k] += cnt[p].sum(axis=1)
            return hist
    idx = _scratch("idx", X.shape, np.intp)
    np.copyto(idx, U, casting="unsafe")
    if k > 1:
        np.add(idx, ent * 256, out=idx)
    return np.bincount(idx.ravel(), minlength=k * 256).reshape(k, 256)


def _dev_sums_np(X: np.ndarray, row: np.ndarray):
    """Per-position ``sum(e)`` and ``sum(e * e)`` with ``e = X - row``, summed over rows in row order."""
    E = _scratch("dev", X.shape, np.float64)
    np.subtract(X, row, out=E)
    s1 = np.add.reduce(E, axis=0)
    np.multiply(E, E, out=E)
    s2 = np.add.reduce(E, axis=0)
    return s1, s2


def _minmax_np(X: np.ndarray):
    return np.minimum.reduce(X, axis=0), np.maximum.reduce(X, axis=0)


#: Redo a chunk around its refined mean when the shifted sums lose more than 10 bits to cancellation.
_REDO_RATIO = 1024.0


def _float_moments(X: np.ndarray, m: int, k: int, b: int, minmax, dev_sums):
    """Shifted two-pass moments of a float chunk ``(R, L)``; ``None`` if it holds NaN/inf.

    The shift is the midrange of each entry (from the min/max pass, which also detects NaN/inf); then
    ``e = x - shift``, ``s1 = sum(e)``, ``s2 = sum(e**2)`` and (corrected two-pass) ``mean = shift + s1 / n``,
    ``m2 = s2 - s1**2 / n``. If cancellation is large (``s2 > 1024 * m2``) the chunk is redone around the
    refined mean. Returns ``(shift, dmean, m2, mn, mx)`` of shape (k,).
    """
    mnp, mxp = minmax(X)
    mn = _fold_min(mnp, m, k, b).astype(np.float64)
    mx = _fold_max(mxp, m, k, b).astype(np.float64)
    if not (np.isfinite(mn).all() and np.isfinite(mx).all()):
        return None
    n = X.shape[0] * m * b
    shift = mn * 0.5 + mx * 0.5
    s1p, s2p = dev_sums(X, _expand(shift, m, k, b))
    s1, s2 = _fold_sum(s1p, m, k, b), _fold_sum(s2p, m, k, b)
    dmean = s1 / n
    m2 = s2 - s1 * dmean
    redo = s2 > _REDO_RATIO * m2
    if redo.any():
        shift = np.where(redo, shift + dmean, shift)
        s1p, s2p = dev_sums(X, _expand(shift, m, k, b))
        s1, s2 = _fold_sum(s1p, m, k, b), _fold_sum(s2p, m, k, b)
        dmean = s1 / n
        m2 = s2 - s1 * dmean
    return shift, dmean, np.maximum(m2, 0.0), mn, mx


def _float_moments_masked(X: np.ndarray, m: int, k: int, b: int):
    """:func:`_float_moments` for a chunk holding NaN (``nan="ignore"``, NumPy only); adds counts (k,)."""
    X = X.astype(np.float64, copy=False)
    valid = ~np.isnan(X)
    cnt = _fold_sum(np.add.reduce(valid, axis=0, dtype=np.int64), m, k, b)
    mn = _fold_min(np.fmin.reduce(np.where(valid, X, np.inf), axis=0), m, k, b)
    mx = _fold_max(np.fmax.reduce(np.where(valid, X, -np.inf), axis=0), m, k, b)
    with np.errstate(invalid="ignore"):
        shift = np.where(cnt > 0, mn * 0.5 + mx * 0.5, 0.0)
    dmean = np.zeros(k)
    m2 = np.zeros(k)
    for _ in range(2):
        E = np.where(valid, X - _expand(shift, m, k, b), 0.0)
        s1 = _fold_sum(np.add.reduce(E, axis=0), m, k, b)
        np.multiply(E, E, out=E)
        s2 = _fold_sum(np.add.reduce(E, axis=0), m, k, b)
        dmean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
        m2 = np.maximum(s2 - s1 * dmean, 0.0)
        redo = s2 > _REDO_RATIO * m2
        if not redo.any():
            break
        shift = np.where(redo, shift + dmean, shift)
    return cnt, shift, dmean, m2, mn, mx


# --------------------------------------------------------------------------------------------------------
# the quantile sketch
# --------------------------------------------------------------------------------------------------------


class _Sketch:
    """Deterministic mergeable quantile sketch of one entry (weighted compactors).

    ``levels[h]`` holds items of weight ``2**h``. When a level holds more than ``cap`` items it is sorted and
    every other item (offset alternating 0, 1, 0, ... per level) is promoted to level ``h + 1``. A sorted run
    can also enter directly at level ``j`` by keeping the middle item of every block of ``2**j``.

    Error accounting. For any threshold ``y``, the estimated rank ``R^(y) = sum of weights of items <= y``
    (or ``< y``) differs from the true rank ``R(y)`` by at most ``err``: compacting ``c`` sorted items of
    weight ``w`` with stride 2 changes it by at most ``w``; entering a sorted run with stride ``s`` changes
    it by at most ``s / 2``. ``err`` is the sum of these terms (merges add them), so it is a rigorous,
    data-dependent bound; :meth:`query` returns a stored value ``v`` with
    ``#{x < v} <= q * (n - 1) + err`` and ``#{x <= v} >= q * (n - 1) - err``.
    """

    __slots__ = ("cap", "err", "levels", "n", "parity")

    def __init__(self, cap: int):
        self.cap = int(cap)
        self.levels: list[np.ndarray] = []
        self.parity: list[int] = []
        self.err = 0
        self.n = 0

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for key, value in state.items():
            setattr(self, key, value)

    def _level(self, h: int) -> None:
        while len(self.levels) <= h:
            self.levels.append(np.empty(0, np.float64))
            self.parity.append(0)

    def add_sorted(self, v: np.ndarray, h: int = 0) -> None:
        """Add a sorted run ``v`` of items, each of weight ``2**h``."""
        if v.size == 0:
            return
        self.n += v.size << h
        j = 0
        while (v.size >> j) > self.cap // 2:
            j += 1
        if j > 0:
            s = 1 << j
            nb = v.size // s
            picks = v[(s - 1) // 2 : nb * s : s]
            rest = v[nb * s :]
            self.err += (s // 2) << h
            self._level(h + j)
            self.levels[h + j] = np.concatenate((self.levels[h + j], picks))
            if rest.size:
                self._level(h)
                self.levels[h] = np.concatenate((self.levels[h], rest))
        else:
            self._level(h)
            self.levels[h] = np.concatenate((self.levels[h], v))
        self._compact()

    def add_counts(self, values: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts[i]`` copies of ``values[i]`` (sorted ascending) without error (binary split)."""
        counts = np.asarray(counts, np.int64)
        h = 0
        while counts.any():
            sel = (counts & 1).astype(bool)
            if sel.any():
                self._level(h)
                self.levels[h] = np.concatenate((self.levels[h], values[sel]))
                self.n += int(sel.sum()) << h
            counts = counts >> 1
            h += 1
        self._compact()

    def _compact(self) -> None:
        h = 0
        while h < len(self.levels):
            lev = self.levels[h]
            if lev.size > self.cap:
                lev = np.sort(lev, kind="stable")
                even = lev.size - (lev.size & 1)
                o = self.parity[h]
                self.parity[h] ^= 1
                promoted = lev[o:even:2]
                self.levels[h] = lev[even:].copy()
                self.err += 1 << h
                self._level(h + 1)
                self.levels[h + 1] = np.concatenate((self.levels[h + 1], promoted))
            h += 1

    def merge(self, other: _Sketch) -> None:
        self._level(len(other.levels) - 1)
        for h, lev in enumerate(other.levels):
            if lev.size:
                self.levels[h] = np.concatenate((self.levels[h], lev))
        self.n += other.n
        self.err += other.err
        self._compact()

    def copy(self) -> _Sketch:
        new = _Sketch(self.cap)
        new.levels = [lev.copy() for lev in self.levels]
        new.parity = list(self.parity)
        new.err, new.n = self.err, self.n
        return new

    def query(self, qs: np.ndarray) -> np.ndarray:
        if self.n == 0:
            return np.full(qs.shape, np.nan)
        items = np.concatenate(self.levels)
        weights = np.concatenate(
            [np.full(lev.size, 1 << h, np.int64) for h, lev in enumerate(self.levels)]
        )
        order = np.argsort(items, kind="stable")
        items, cum = items[order], np.cumsum(weights[order])
        pos = (self.n - 1) * qs
        idx = np.searchsorted(cum, pos, side="right")
        return items[np.minimum(idx, items.size - 1)]


def _value_block(k: int) -> int:
    """Values per entry in one block of the quantile value stream (about 1 MB of float64 per block)."""
    return max(256, (1 << 17) // max(k, 1))


def _sketch_cap(k: int) -> int:
    """Items per level: about ``2**22 / (32 k)`` rounded down to a power of two, within [64, 32768]."""
    target = _EXACT_QUANTILE_BUDGET // (32 * max(k, 1))
    cap = 1 << max(0, target.bit_length() - 1)
    return int(min(max(cap, 64), 1 << 15))


def _lerp_quantiles(sorted_vals, n: int, qs: np.ndarray) -> np.ndarray:
    """``np.quantile(method="linear")`` from an accessor of sorted values, operation for operation.

    ``sorted_vals(idx)`` returns the float64 values of ranks ``idx`` (int array).
    """
    virtual = (n - 1) * qs
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above] = n - 1
    nxt[above] = n - 1
    below = virtual < 0
    prev[below] = 0
    nxt[below] = 0
    gamma = virtual - np.floor(virtual)
    a = sorted_vals(prev.astype(np.intp))
    b = sorted_vals(nxt.astype(np.intp))
    diff = b - a
    out = a + diff * gamma
    hi = gamma >= 0.5
    out[hi] = (b - diff * (1 - gamma))[hi]
    return out


# --------------------------------------------------------------------------------------------------------
# the accumulator
# --------------------------------------------------------------------------------------------------------


class StatsAccumulator:
    """Streaming, mergeable per-entry statistics of ``(a, k, b)`` batches.

    One statistic is computed for each of the ``k`` entries, over axes ``a`` and ``b`` of every batch
    (e.g. ``(n*h*w, c, 1)`` for per-channel statistics of channels-last images).

    Parameters
    ----------
    k : int
        Number of entries (statistics per quantity), ``>= 1``.
    quantiles : bool, default False
        Keep what is needed for :meth:`quantile`: histograms for 8/16-bit integers, else exact values up to
        ``2**22`` stored values in total, then a deterministic quantile sketch.
    histogram : {"auto", True, False}, default "auto"
        Integer histograms (256 bins per entry for 8-bit data, 65536 for 16-bit data while
        ``k * 65536 <= 2**22``). ``"auto"`` keeps them when ``quantiles=True``; ``True`` always keeps them
        (see :meth:`histogram`); ``False`` never (quantiles then come from values).
    nan : {"raise", "ignore"}, default "raise"
        ``"raise"``: :meth:`update` raises :class:`NonFiniteError` on NaN or inf. ``"ignore"``: NaN values are
        left out of every statistic (counts become per entry); inf still raises.
    engine : {"auto", "numpy", "numba"}, default "auto"
        ``"auto"``: compiled kernels (numba, optional) for updates of 8 MB or more when numba is installed,
        NumPy otherwise; results are identical either way. The environment variable
        ``NORMLAB_ENGINE=numpy`` forces NumPy everywhere (``=numba`` forces the compiled kernels).

    Attributes
    ----------
    k : int
    count : ndarray of int64, shape (k,)
        Values counted per entry.
    mean, var, std, min, max : ndarray of float64, shape (k,)
        ``var`` has ``ddof=0``; NaN for entries with no values.
    n_nan, n_inf : ndarray of int64, shape (k,)
    quantile_rank_error : float
    is_empty : bool
    input_kind : {"b", "u", "i", "f"} or None

    Notes
    -----
    For integer data with ``S1 = sum(x)``, ``S2 = sum(x**2)`` (exact integers),
    ``mean = S1 / n`` and ``var = (n * S2 - S1**2) / n**2`` are correctly rounded. For float data,
    chunks are combined with the update of Chan, Golub & LeVeque (1979)::

        updated_n    = old_n + new_n
        delta        = new_mean - old_mean
        updated_mean = old_mean + delta * new_n / updated_n
        updated_m2   = old_m2 + new_m2 + delta**2 * old_n * new_n / updated_n

    with means kept relative to a per-entry reference value. The accumulator is a plain object of
    NumPy arrays and Python ints, so it pickles (Dask, multiprocessing). A failed :meth:`update` (e.g.
    :class:`NonFiniteError`) leaves it unchanged.

    See Also
    --------
    normlab.core.axes.Layout.as_3d : the ``(a, k, b)`` view of a batch for a ``per=`` mode.
    normlab.core._kernels.affine_transform : applies ``(x - shift) * inv_scale`` with the fitted statistics.

    Examples
    --------
    Per-channel statistics of a stack of uint8 RGB images, fed in two batches:

    >>> import numpy as np
    >>> from normlab.core.stats import StatsAccumulator
    >>> x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)   # (n, h, w, c)
    >>> acc = StatsAccumulator(3, quantiles=True)
    >>> _ = acc.update(x[:1].reshape(-1, 3, 1)).update(x[1:].reshape(-1, 3, 1))  # (n*h*w, c, 1)
    >>> acc.count
    array([32, 32, 32])
    >>> acc.mean
    array([46.5, 47.5, 48.5])
    >>> bool(np.array_equal(acc.std, x.reshape(-1, 3).std(axis=0)))
    True
    >>> acc.quantile(0.5)
    array([46.5, 47.5, 48.5])

    Accumulators merge, so pieces can be summarized anywhere (threads, processes, Dask) and combined; for
    integer data the result is bit-identical to one pass over everything:

    >>> a = StatsAccumulator(3).update(x[:1].reshape(-1, 3, 1))
    >>> b = StatsAccumulator(3).update(x[1:].reshape(-1, 3, 1))
    >>> bool(np.array_equal(a.merge(b).var, acc.var))
    True
    """

    def __init__(
        self,
        k: int,
        *,
        quantiles: bool = False,
        histogram: bool | str = "auto",
        nan: str = "raise",
        engine: str = "auto",
    ):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise _UsageError(
                f"StatsAccumulator(k={k!r}) needs a positive integer number of entries; expected e.g. k=3 "
                "for three channels. Pass the size of the kept axis of the (a, k, b) view."
            )
        if histogram not in ("auto", True, False):
            raise _UsageError(
                f"StatsAccumulator(histogram={histogram!r}) is not valid; expected 'auto', True or False."
            )
        if nan not in _NAN_POLICIES:
            raise _UsageError(
                f"StatsAccumulator(nan={nan!r}) is not valid; expected 'raise' or 'ignore'."
            )
        if engine not in _ENGINES:
            raise _UsageError(
                f"StatsAccumulator(engine={engine!r}) is not valid; expected 'auto', 'numpy' or 'numba'."
            )
        if engine == "numba" and os.environ.get("NORMLAB_ENGINE", "").strip().lower() != "numpy":
            from normlab.core import _numba

            if not _numba.available():
                raise _UsageError(
                    "StatsAccumulator(engine='numba') needs the optional numba package, which is not "
                    "installed; expected engine='auto' or 'numpy'. Install it with pip install 'normlab[fast]'."
                )
        self.k = int(k)
        self.quantiles = bool(quantiles)
        self._histogram = histogram
        self.nan = nan
        self.engine = engine
        self._reset()

    # ---------------------------------------------------------------- state
    def _reset(self) -> None:
        k = self.k
        self._kind: str | None = None
        self._mode: str | None = None  # None, "int" (exact) or "float"
        self._count = np.zeros(k, np.int64)
        self._n_nan = np.zeros(k, np.int64)
        self._n_inf = np.zeros(k, np.int64)
        self._min = np.full(k, np.inf)
        self._max = np.full(k, -np.inf)
        # exact integer moments: running int64 parts + exact Python-int totals
        self._r_s1 = np.zeros(k, np.int64)
        self._r_sq0 = np.zeros(k, np.int64)
        self._r_sq1 = np.zeros(k, np.int64)
        self._r_sq2 = np.zeros(k, np.int64)
        self._r_n = 0  # values per entry in the running parts
        self._t_s1 = np.zeros(k, object)
        self._t_s2 = np.zeros(k, object)
        # float moments, relative to a per-entry reference value
        self._ref = np.zeros(k)
        self._dmean = np.zeros(k)
        self._m2 = np.zeros(k)
        # quantile data
        self._hist: np.ndarray | None = None  # (k, nbins) int64
        self._hist_lo = 0
        self._vals: list[np.ndarray] | None = None  # exact values: list of (n_c, k) float64
        self._n_vals = 0
        self._sketches: list[_Sketch] | None = None
        self._pending: list[
            np.ndarray
        ] = []  # values waiting to fill a block (inside one update only)
        self._n_pending = 0
        self._cache: dict[str, Any] = {}

    # ---------------------------------------------------------------- public properties
    @property
    def count(self) -> np.ndarray:
        return self._count.copy()

    @property
    def n_nan(self) -> np.ndarray:
        return self._n_nan.copy()

    @property
    def n_inf(self) -> np.ndarray:
        return self._n_inf.copy()

    @property
    def is_empty(self) -> bool:
        return self._kind is None

    @property
    def input_kind(self) -> str | None:
        return self._kind

    @property
    def min(self) -> np.ndarray:
        return np.where(self._count > 0, self._min, np.nan)

    @property
    def max(self) -> np.ndarray:
        return np.where(self._count > 0, self._max, np.nan)

    @property
    def mean(self) -> np.ndarray:
        return self._moments()[0].copy()

    @property
    def var(self) -> np.ndarray:
        return self._moments()[1].copy()

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._moments()[1])

    @property
    def quantile_rank_error(self) -> float:
        """Bound on the rank error of :meth:`quantile`, as a fraction of ``count`` (0.0 when exact)."""
        if self._sketches is None:
            return 0.0
        worst = 0.0
        for sk in self._sketches:
            if sk.n:
                worst = max(worst, sk.err / sk.n)
        return worst

    # ---------------------------------------------------------------- moments
    def _exact_totals(self) -> tuple[np.ndarray, np.ndarray]:
        s1 = self._t_s1 + self._r_s1.astype(object)
        s2 = (
            self._t_s2
            + self._r_sq0.astype(object)
            + self._r_sq1.astype(object) * (1 << 17)
            + self._r_sq2.astype(object) * (1 << 32)
        )
        return s1, s2

    def _flush(self) -> None:
        s1, s2 = self._exact_totals()
        self._t_s1, self._t_s2 = s1, s2
        for arr in (self._r_s1, self._r_sq0, self._r_sq1, self._r_sq2):
            arr[:] = 0
        self._r_n = 0

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get("moments")
        if cached is not None:
            return cached
        k = self.k
        mean = np.full(k, np.nan)
        var = np.full(k, np.nan)
        if self._mode == "int":
            s1, s2 = self._exact_totals()
            for i in range(k):
                n = int(self._count[i])
                if n:
                    mean[i] = int(s1[i]) / n  # int / int is correctly rounded
                    var[i] = (n * int(s2[i]) - int(s1[i]) ** 2) / (n * n)
        elif self._mode == "float":
            ok = self._count > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(ok, self._ref + self._dmean, np.nan)
                var = np.where(ok, self._m2 / np.maximum(self._count, 1), np.nan)
        self._cache["moments"] = (mean, var)
        return mean, var

    def _to_float_mode(self) -> None:
        """Convert exact integer moments into the float representation (correctly rounded)."""
        if self._mode == "float":
            return
        if self._mode == "int":
            s1, s2 = self._exact_totals()
            for i in range(self.k):
                n = int(self._count[i])
                if n:
                    mean = Fraction(int(s1[i]), n)
                    self._ref[i] = float(mean)
                    self._dmean[i] = float(mean - Fraction(self._ref[i]))
                    self._m2[i] = (n * int(s2[i]) - int(s1[i]) ** 2) / n
            self._t_s1 = np.zeros(self.k, object)
            self._t_s2 = np.zeros(self.k, object)
            for arr in (self._r_s1, self._r_sq0, self._r_sq1, self._r_sq2):
                arr[:] = 0
            self._r_n = 0
        self._mode = "float"

    def _add_float(self, n: np.ndarray, ref: np.ndarray, dmean: np.ndarray, m2: np.ndarray) -> None:
        """Merge per-entry float moments ``(n, ref + dmean, m2)`` into this accumulator (float mode)."""
        old_n = self._count.astype(np.float64)
        new_n = np.asarray(n, np.float64)
        first = (self._count == 0) & (new_n > 0)
        # entries seen for the first time adopt the new reference value
        self._ref = np.where(first, ref, self._ref)
        self._dmean = np.where(first, 0.0, self._dmean)
        updated_n = old_n + new_n
        # the new mean in this accumulator's frame: (ref - self._ref) is exact for nearby values
        new_mean = (ref - self._ref) + dmean
        old_mean = self._dmean
        with np.errstate(invalid="ignore", divide="ignore"):
            # Chan, Golub & LeVeque (1979), pairwise update of mean and sum of squared deviations
            delta = new_mean - old_mean
            frac = np.where(updated_n > 0, new_n / updated_n, 0.0)
            updated_mean = old_mean + delta * frac
            updated_m2 = self._m2 + m2 + delta * delta * old_n * frac
        use = new_n > 0
        dmean = np.where(use, updated_mean, self._dmean)
        self._m2 = np.where(use, updated_m2, self._m2)
        # re-center the reference on the current mean, so drifting data keeps small deviations
        new_ref = self._ref + dmean
        ok = np.isfinite(new_ref)
        self._dmean = np.where(ok, dmean - (new_ref - self._ref), dmean)
        self._ref = np.where(ok, new_ref, self._ref)

    # ---------------------------------------------------------------- update
    def update(self, x3: np.ndarray) -> StatsAccumulator:
        """Add a batch viewed as ``(a, k, b)``; statistics reduce over axes 0 and 2. Returns ``self``.

        On :class:`NonFiniteError` the accumulator is left unchanged.
        """
        x3 = np.asarray(x3)
        if x3.ndim != 3 or x3.shape[1] != self.k:
            raise LayoutError(
                f"StatsAccumulator(k={self.k}).update() received shape {x3.shape}; expected a 3-D (a, k, b) "
                f"view with k={self.k}. Reshape the batch with normlab.core.axes.Layout.as_3d()."
            )
        kind = x3.dtype.kind
        if kind not in "biuf":
            raise DataTypeError(
                f"StatsAccumulator.update() received dtype {x3.dtype}; expected bool, integer or real "
                "floating-point data. Convert the array with x.astype(np.float32) (or decode strings first)."
            )
        if x3.size == 0:
            return self
        batch = StatsAccumulator.__new__(StatsAccumulator)
        batch.__dict__.update(
            {key: getattr(self, key) for key in ("k", "quantiles", "_histogram", "nan", "engine")}
        )
        batch._reset()
        batch._consume(x3)
        self.merge(batch)
        return self

    def _hist_spec(self, dtype: np.dtype) -> tuple[int, int] | None:
        """``(lo, nbins)`` of the histogram kept for integer ``dtype``, or None."""
        want = self._histogram is True or (self._histogram == "auto" and self.quantiles)
        if not want or dtype.kind not in "biu" or dtype.itemsize > 2:
            return None
        if dtype.itemsize == 1:
            return (
                ((-128 if dtype.kind == "i" else 0), 256) if self.k * 256 <= _HIST_BUDGET else None
            )
        if self.k * 65536 > _HIST_BUDGET:
            return None
        return (-32768 if dtype.kind == "i" else 0), 65536

    def _consume(self, x3: np.ndarray) -> None:
        """Accumulate ``x3`` into this (fresh) accumulator."""
        kind = x3.dtype.kind
        if kind == "b":
            x3 = x3.view(np.uint8)
        engine = _resolve_engine(self.engine, x3.nbytes)
        exact_int = kind in "biu" and x3.dtype.itemsize <= 4
        if kind in "iu" and x3.dtype.itemsize == 8:
            exact_int = bool(x3.min() >= -(1 << 31)) and bool(x3.max() < (1 << 31))
            if exact_int:  # values fit in 32 bits: the exact path, on an int64 view
                x3 = x3.astype(np.int64, copy=False)
        self._kind = kind
        if exact_int:
            self._consume_int(x3, engine)
        else:
            self._consume_float(x3, engine)
        self._flush_pending()

    def _consume_int(self, x3: np.ndarray, engine: str) -> None:
        k = self.k
        self._mode = "int"
        hist_spec = self._hist_spec(x3.dtype)
        if hist_spec is not None:
            self._hist_lo, nbins = hist_spec
            self._hist = np.zeros((k, nbins), np.int64)
        elif self.quantiles:
            self._vals = []
        hist8 = hist_spec is not None and x3.dtype.itemsize == 1  # moments come from the histogram
        if engine == "numba":
            from normlab.core import _numba

            # exact integer sums do not depend on the chunking: contiguous input goes in big views
            chunks = _chunks(x3, _NUMBA_CHUNK_BYTES if x3.flags.c_contiguous else _CHUNK_BYTES * 8)
            moments, hist = _numba.int_moments, _numba.hist
            parallel = False
        else:
            if hist8:
                chunks = _chunks(x3, 1 << 21)
            elif x3.dtype.itemsize == 1:
                chunks = _chunks(x3, _CHUNK_BYTES, max_rows=_ROWS_8BIT * 4)
            else:
                chunks = _chunks(x3, _CHUNK_BYTES)
            moments, hist = _int_moments_np, _hist_np
            parallel = x3.nbytes >= _PARALLEL_BYTES and _n_workers() > 1

        signed = x3.dtype.kind == "i"

        def job(X, m, b):
            n = X.shape[0] * m * b
            h = None
            if hist_spec is not None:
                h = hist(X, m, k, b)
                if signed:  # bit patterns -> value order
                    h = np.roll(h, h.shape[1] // 2, axis=1)
            if hist8:
                assert h is not None
                values = np.arange(self._hist_lo, self._hist_lo + 256, dtype=np.int64)
                s1 = h @ values
                sq0 = h @ (values * values)
                nz = h > 0
                mn = values[np.argmax(nz, axis=1)]
                mx = values[255 - np.argmax(nz[:, ::-1], axis=1)]
                zero = np.zeros(k, np.int64)
                return n, s1, sq0, zero, zero, mn, mx, h, X, m, b
            if engine == "numba":
                s, q0, q1, q2, mnp, mxp = moments(X)  # min/max are fused into the one pass
            else:
                s, q0, q1, q2, mnp, mxp = moments(X, not saturated[0])
            return (
                n,
                _fold_sum(s, m, k, b),
                _fold_sum(q0, m, k, b),
                _fold_sum(q1, m, k, b),
                _fold_sum(q2, m, k, b),
                None if mnp is None else _fold_min(mnp, m, k, b),
                None if mxp is None else _fold_max(mxp, m, k, b),
                h,
                X,
                m,
                b,
            )

        # Once every entry has met both bounds of the dtype (0 and 255 for most images, usually within
        # the first chunk), no value can change min or max: the NumPy engine skips those two passes.
        lo, hi = (0, 1) if self._kind == "b" else (np.iinfo(x3.dtype).min, np.iinfo(x3.dtype).max)
        saturated = [False]

        for n, s1, sq0, sq1, sq2, mn, mx, h, X, m, b in _pmap(job, chunks, parallel):
            if self._r_n + n > _FLUSH_VALUES:
                self._flush()
            self._r_s1 += s1
            self._r_sq0 += sq0
            self._r_sq1 += sq1
            self._r_sq2 += sq2
            self._r_n += n
            self._count += n
            if mn is not None:
                np.minimum(self._min, mn, out=self._min)
                np.maximum(self._max, mx, out=self._max)
                saturated[0] = bool((self._min <= lo).all() and (self._max >= hi).all())
            if h is not None:
                self._hist += h
            elif self._vals is not None:
                self._add_values(X, m, k, b)

    def _consume_float(self, x3: np.ndarray, engine: str) -> None:
        k = self.k
        self._mode = "float"
        if self.quantiles:
            self._vals = []
        if x3.dtype not in (np.float32, np.float64):
            conv = np.float64
        else:
            conv = None
        if engine == "numba":
            from normlab.core import _numba

            minmax, dev_sums = _numba.minmax, _numba.dev_sums
        else:
            minmax, dev_sums = _minmax_np, _dev_sums_np
        # one thread: float chunks are small, and threads would queue for the GIL (measured slower)
        parallel = False

        def job(X, m, b):
            if conv is not None:
                X = X.astype(conv)
            elif engine == "numpy" and X.dtype != np.float64:
                X = X.astype(np.float64)
            return _float_moments(X, m, k, b, minmax, dev_sums), X, m, b

        for res, X, m, b in _pmap(job, _chunks(x3, _FLOAT_CHUNK_BYTES), parallel):
            if res is None:  # NaN or inf in this chunk
                self._nonfinite(x3, X, m, k, b)
                cnt, ref, dmean, m2, mn, mx = _float_moments_masked(X, m, k, b)
            else:
                ref, dmean, m2, mn, mx = res
                cnt = np.full(k, X.shape[0] * m * b, np.int64)
            self._add_float(cnt, ref, dmean, m2)
            self._count += cnt
            np.minimum(self._min, mn, out=self._min)
            np.maximum(self._max, mx, out=self._max)
            if self._vals is not None or self._sketches is not None:
                self._add_values(X, m, k, b)

    def _nonfinite(self, x3, X, m, k, b) -> tuple[np.ndarray, np.ndarray]:
        """Count NaN/inf of a chunk per entry; raise per the ``nan`` policy."""
        isnan = np.isnan(X)
        isinf = np.isinf(X)
        n_nan = _fold_sum(np.add.reduce(isnan, axis=0, dtype=np.int64), m, k, b)
        n_inf = _fold_sum(np.add.reduce(isinf, axis=0, dtype=np.int64), m, k, b)
        if n_inf.any() or (n_nan.any() and self.nan == "raise"):
            bad = ~np.isfinite(x3)
            first = np.unravel_index(int(np.argmax(bad)), x3.shape)
            tot_nan = int(np.isnan(x3).sum())
            tot_inf = int(bad.sum()) - tot_nan
            raise NonFiniteError(
                nonfinite_message(
                    f"StatsAccumulator(nan={self.nan!r}).update()", tot_nan, tot_inf,
                    f"a batch of shape {x3.shape}", first,
                ),
                n_nan=tot_nan,
                n_inf=tot_inf,
                first_index=first,
            )
        self._n_nan += n_nan
        return n_nan, n_inf

    # ---------------------------------------------------------------- quantile values
    def _add_values(self, X: np.ndarray, m: int, k: int, b: int) -> None:
        """Queue the values of a chunk (per entry, in stream order) for the quantile store.

        The stream is cut into blocks of a fixed number of values per entry, whatever the chunking, so the
        exact store and the sketches evolve identically with either engine.
        """
        vals = X.reshape(-1, m, k, b).transpose(2, 0, 1, 3).reshape(k, -1).astype(np.float64)
        self._pending.append(vals)
        self._n_pending += vals.shape[1]
        block = _value_block(k)
        if self._n_pending >= block:
            stream = np.concatenate(self._pending, axis=1)
            full = (stream.shape[1] // block) * block
            for start in range(0, full, block):
                self._store_block(stream[:, start : start + block])
            self._pending = [stream[:, full:]] if full < stream.shape[1] else []
            self._n_pending = stream.shape[1] - full

    def _flush_pending(self) -> None:
        if self._n_pending:
            self._store_block(np.concatenate(self._pending, axis=1))
        self._pending, self._n_pending = [], 0

    def _store_block(self, vals: np.ndarray) -> None:
        if self._sketches is None:
            assert self._vals is not None
            self._vals.append(vals)
            self._n_vals += vals.size
            if self._n_vals > _EXACT_QUANTILE_BUDGET:
                self._to_sketches()
        else:
            self._sketch_insert(vals)

    def _sketch_insert(self, vals: np.ndarray) -> None:
        assert self._sketches is not None
        vals = np.sort(vals, axis=1)
        for i, sk in enumerate(self._sketches):
            v = vals[i]
            if self.nan == "ignore":
                v = v[~np.isnan(v)]
            sk.add_sorted(v)

    def _to_sketches(self) -> None:
        cap = _sketch_cap(self.k)
        self._sketches = [_Sketch(cap) for _ in range(self.k)]
        if self._vals:
            self._sketch_insert(np.concatenate(self._vals, axis=1))
        self._vals = None
        self._n_vals = 0

    def _hist_to_values(self) -> None:
        """Replace the histogram by value storage (exact, or sketches without added error)."""
        assert self._hist is not None
        hist, lo = self._hist, self._hist_lo
        self._hist = None
        total = int(hist.sum())
        values = np.arange(lo, lo + hist.shape[1], dtype=np.float64)
        if total <= _EXACT_QUANTILE_BUDGET and self._sketches is None and self.nan == "raise":
            cols = [np.repeat(values, hist[i]) for i in range(self.k)]
            self._vals = (
                [np.stack(cols)] if cols and all(c.size == cols[0].size for c in cols) else []
            )
            self._n_vals = total
            if self._vals:
                return
        if self._sketches is None:
            self._to_sketches()
        assert self._sketches is not None
        for i, sk in enumerate(self._sketches):
            nz = hist[i] > 0
            sk.add_counts(values[nz], hist[i][nz])

    def _ensure_values(self) -> None:
        if self._hist is not None:
            self._hist_to_values()
        if self._vals is None and self._sketches is None:
            self._vals = []

    # ---------------------------------------------------------------- merge
    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Add the data summarized by ``other`` (same ``k``) to this accumulator, in place. Returns ``self``."""
        if not isinstance(other, StatsAccumulator):
            raise _UsageError(
                f"StatsAccumulator.merge() received {type(other).__name__}; expected another StatsAccumulator."
            )
        if other.k != self.k:
            raise LayoutError(
                f"StatsAccumulator(k={self.k}).merge() received an accumulator with k={other.k}; expected the "
                "same number of entries. Merge only accumulators fitted on the same layout."
            )
        if other.is_empty:
            return self
        if self.quantiles and not other.quantiles:
            raise _UsageError(
                "StatsAccumulator(quantiles=True).merge() received an accumulator built with quantiles=False; "
                "expected both to keep quantile data. Build every part with quantiles=True."
            )
        self._cache.clear()
        was_empty = self.is_empty
        kinds = [c for c in (self._kind, other._kind) if c is not None]
        self._kind = max(kinds, key=_KIND_ORDER.__getitem__)
        # moments
        if self._mode is None:
            self._mode = other._mode
            self._copy_moments(other)
        elif self._mode == "int" and other._mode == "int":
            o1, o2 = other._exact_totals()
            self._flush()
            self._t_s1 = self._t_s1 + o1
            self._t_s2 = self._t_s2 + o2
            self._count += other._count
        else:
            if other._mode == "int":
                other = other._float_copy()
            self._to_float_mode()
            self._add_float(other._count, other._ref, other._dmean, other._m2)
            self._count += other._count
        np.minimum(self._min, other._min, out=self._min)
        np.maximum(self._max, other._max, out=self._max)
        self._n_nan += other._n_nan
        self._n_inf += other._n_inf
        if self.quantiles:
            self._merge_quantile_data(other)
        elif self._histogram is True:
            self._merge_histogram_only(other, was_empty)
        return self

    def _merge_histogram_only(self, other: StatsAccumulator, was_empty: bool) -> None:
        """``histogram=True`` without quantiles: keep a histogram only while every batch had one."""
        if other._hist is None or (self._hist is None and not was_empty):
            self._hist = None
            return
        if self._hist is None:
            self._hist, self._hist_lo = other._hist.copy(), other._hist_lo
            return
        lo = min(self._hist_lo, other._hist_lo)
        hi = max(self._hist_lo + self._hist.shape[1], other._hist_lo + other._hist.shape[1])
        if hi - lo > 65536 or self.k * (hi - lo) > _HIST_BUDGET:
            self._hist = None
            return
        self._widen_hist(lo, hi)
        off = other._hist_lo - lo
        self._hist[:, off : off + other._hist.shape[1]] += other._hist

    def _widen_hist(self, lo: int, hi: int) -> None:
        assert self._hist is not None
        if (lo, hi - lo) != (self._hist_lo, self._hist.shape[1]):
            grown = np.zeros((self.k, hi - lo), np.int64)
            grown[:, self._hist_lo - lo : self._hist_lo - lo + self._hist.shape[1]] = self._hist
            self._hist, self._hist_lo = grown, lo

    def _copy_moments(self, other: StatsAccumulator) -> None:
        self._count = other._count.copy()
        for name in ("_r_s1", "_r_sq0", "_r_sq1", "_r_sq2", "_ref", "_dmean", "_m2"):
            setattr(self, name, getattr(other, name).copy())
        self._t_s1 = other._t_s1.copy()
        self._t_s2 = other._t_s2.copy()
        self._r_n = other._r_n

    def _float_copy(self) -> StatsAccumulator:
        new = StatsAccumulator.__new__(StatsAccumulator)
        new.__dict__.update(self.__dict__)
        new._count = self._count.copy()
        new._ref, new._dmean, new._m2 = self._ref.copy(), self._dmean.copy(), self._m2.copy()
        new._cache = {}
        new._to_float_mode()
        return new

    def _merge_quantile_data(self, other: StatsAccumulator) -> None:
        if self._hist is None and self._vals is None and self._sketches is None:
            # this accumulator held no quantile data yet: take a copy of other's
            if other._hist is not None:
                self._hist, self._hist_lo = other._hist.copy(), other._hist_lo
            elif other._sketches is not None:
                self._sketches = [sk.copy() for sk in other._sketches]
            elif other._vals is not None:
                self._vals, self._n_vals = list(other._vals), other._n_vals
            return
        if self._hist is not None and other._hist is not None:
            lo = min(self._hist_lo, other._hist_lo)
            hi = max(self._hist_lo + self._hist.shape[1], other._hist_lo + other._hist.shape[1])
            if hi - lo <= 65536 and self.k * (hi - lo) <= _HIST_BUDGET:
                self._widen_hist(lo, hi)
                off = other._hist_lo - lo
                self._hist[:, off : off + other._hist.shape[1]] += other._hist
                return
        self._ensure_values()
        if other._hist is not None:
            src = StatsAccumulator.__new__(StatsAccumulator)
            src.__dict__.update(other.__dict__)
            src._hist = other._hist.copy()
            src._vals, src._sketches, src._n_vals = None, None, 0
            src._hist_to_values()
            other = src
        if other._sketches is not None:
            if self._sketches is None:
                self._to_sketches()
            assert self._sketches is not None
            for mine, theirs in zip(self._sketches, other._sketches, strict=True):
                mine.merge(theirs)
        elif other._vals:
            if self._sketches is None:
                assert self._vals is not None
                self._vals.extend(other._vals)
                self._n_vals += other._n_vals
                if self._n_vals > _EXACT_QUANTILE_BUDGET:
                    self._to_sketches()
            else:
                for vals in other._vals:
                    self._sketch_insert(vals)

    # ---------------------------------------------------------------- quantiles
    def quantile(self, q) -> np.ndarray:
        """Quantiles per entry, with the definition of ``np.quantile(method="linear")``.

        Parameters
        ----------
        q : float or sequence of float in [0, 1]

        Returns
        -------
        ndarray of float64, shape (k,) for scalar ``q``, ``(len(q), k)`` for a sequence.
        Exact for histograms and stored values; within :attr:`quantile_rank_error` once sketched.
        """
        if not self.quantiles:
            raise _UsageError(
                "StatsAccumulator.quantile() needs quantile data, but the accumulator was built with "
                "quantiles=False; expected StatsAccumulator(k, quantiles=True). Rebuild it with quantiles=True."
            )
        qs = np.asarray(q, dtype=np.float64)
        scalar = qs.ndim == 0
        qs = np.atleast_1d(qs).ravel()
        if not np.all((qs >= 0) & (qs <= 1)):
            raise _UsageError(
                f"StatsAccumulator.quantile() received q={q!r}; expected values in [0, 1]."
            )
        out = np.full((qs.size, self.k), np.nan)
        if self._hist is not None:
            values = np.arange(self._hist_lo, self._hist_lo + self._hist.shape[1], dtype=np.float64)
            for i in range(self.k):
                n = int(self._count[i])
                if n:
                    cum = np.cumsum(self._hist[i])
                    out[:, i] = _lerp_quantiles(
                        lambda idx, c=cum: values[np.searchsorted(c, idx, side="right")], n, qs
                    )
        elif self._sketches is not None:
            for i, sk in enumerate(self._sketches):
                out[:, i] = sk.query(qs)
        elif self._vals:
            allv = np.concatenate(self._vals, axis=1)
            for i in range(self.k):
                col = allv[i]
                if self.nan == "ignore":
                    col = col[~np.isnan(col)]
                if col.size:
                    col = np.sort(col)
                    out[:, i] = _lerp_quantiles(lambda idx, c=col: c[idx], col.size, qs)
        return out[0] if scalar else out

    def histogram(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return ``(values, counts)`` of the integer histogram: values ``(nbins,)``, counts ``(k, nbins)``.

        None when no histogram is kept (float data, wide integers, or ``histogram=False``).
        """
        if self._hist is None:
            return None
        values = np.arange(self._hist_lo, self._hist_lo + self._hist.shape[1], dtype=np.int64)
        return values, self._hist.copy()

    def __repr__(self) -> str:
        state = "empty" if self.is_empty else f"kind={self._kind!r}, count={int(self._count.max())}"
        return (
            f"StatsAccumulator(k={self.k}, quantiles={self.quantiles}, nan={self.nan!r}; {state})"
        )

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state
