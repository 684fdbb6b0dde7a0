"""Chunking of an ``(a, k, b)`` batch into rows, and folding per-position results back to entries.

The statistics kernels never see a whole batch: :func:`chunks` cuts the ``(a, k, b)`` view into pieces of
about a megabyte, each laid out as rows ``(R, L)`` with ``L = m * k * b`` (``m`` consecutive ``a``-slices side
by side, so that short rows such as ``k = 3`` channels-last become long ones). A kernel reduces a piece over
its rows to per-position vectors of length ``L``; :func:`fold_sum`, :func:`fold_min` and :func:`fold_max`
then reduce those to the ``k`` entries in a fixed order, which is shared by both engines, so their results
are identical. :func:`expand` goes the other way (a per-entry vector to a row) and :func:`entry_row` names
the entry of every position.

Temporaries are O(chunk), never O(data).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

#: Target size of one chunk of input, in bytes.
CHUNK_BYTES = 1 << 20
#: Length (in elements) that short rows are folded up to, so NumPy's inner loops run long.
_ROW_ELEMS = 1024


def chunks(x3: np.ndarray, chunk_bytes: int = CHUNK_BYTES, max_rows: int = 1 << 62):
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
    m, rows = _fold(a, row, budget, max_rows)
    step = rows * m
    start = 0
    full = (a // step) * step
    while start < full:
        yield _rows(x3[start : start + step], rows, m * row), m, b
        start += step
    yield from _rest(x3, start, m, row, b)


def _fold(a: int, row: int, budget: int, max_rows: int) -> tuple[int, int]:
    """``(m, R)``: a-slices side by side per chunk row, and rows per chunk."""
    m = 1
    if row < _ROW_ELEMS:  # fold m rows into one; keep the length a multiple of 64 (vector loops, no tails)
        step_m = 64 // math.gcd(row, 64)
        m = step_m * -(-_ROW_ELEMS // (row * step_m))
    m = max(1, min(m, a))
    return m, max(1, min(budget // (row * m), max_rows))


def _rest(x3: np.ndarray, start: int, m: int, row: int, b: int):
    """The chunks of ``x3[start:]``, fewer than one full chunk's a-slices."""
    a = x3.shape[0]
    rest = a - start
    if rest >= m and m > 1:
        r = rest // m
        yield _rows(x3[start : start + r * m], r, m * row), m, b
        start += r * m
    if start < a:
        yield _rows(x3[start:a], a - start, row), 1, b


def blocks(x3: np.ndarray, chunk_bytes: int = CHUNK_BYTES, group: int = 32):
    """Yield ``(X3, m, b_c)``: ``X3`` of shape ``(C, R, m * k * b_c)``, ``C <= group`` chunks of :func:`chunks`.

    The chunks are those of :func:`chunks` (the same cut, so the same per-chunk results), handed over
    ``group`` at a time as one view where ``x3`` is C-contiguous, so a kernel can run over many chunks per
    call (and over its threads); other chunks come one at a time (``C = 1``).
    """
    a, k, b = x3.shape
    budget = max(1, chunk_bytes // max(x3.dtype.itemsize, 1))
    row = k * b
    if row > budget or not x3.flags.c_contiguous:
        for X, m, bc in chunks(x3, chunk_bytes):
            yield X[None], m, bc
        return
    m, rows = _fold(a, row, budget, 1 << 62)
    step = rows * m
    full = (a // step) * step
    for start in range(0, full, step * group):
        stop = min(full, start + step * group)
        yield x3[start:stop].reshape((stop - start) // step, rows, m * row), m, b
    for X, mc, bc in _rest(x3, full, m, row, b):
        yield X[None], mc, bc


def _rows(piece: np.ndarray, r: int, length: int) -> np.ndarray:
    if piece.flags.c_contiguous:
        return piece.reshape(r, length)
    return np.ascontiguousarray(piece).reshape(r, length)


def fold_sum(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Sum a per-position vector of length ``m * k * b`` to ``(k,)`` in a fixed order (b, then m)."""
    if b > 1:
        v = np.add.reduce(v.reshape(m * k, b), axis=1)
    v = v.reshape(m, k)
    return np.add.reduce(v, axis=0) if m > 1 else v[0].copy()


def fold_min(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Minimum of a per-position vector of length ``m * k * b`` per entry, shape ``(k,)``."""
    if b == 1:
        return np.minimum.reduce(v.reshape(m, k), axis=0)
    return v.reshape(m, k, b).min(axis=(0, 2))


def fold_max(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Maximum of a per-position vector of length ``m * k * b`` per entry, shape ``(k,)``."""
    if b == 1:
        return np.maximum.reduce(v.reshape(m, k), axis=0)
    return v.reshape(m, k, b).max(axis=(0, 2))


@lru_cache(maxsize=64)
def entry_row(m: int, k: int, b: int) -> np.ndarray:
    """Entry index (0..k-1) of each position of a row of length ``m * k * b`` (read-only)."""
    out = np.ascontiguousarray(
        np.broadcast_to(np.arange(k, dtype=np.intp).reshape(1, k, 1), (m, k, b)).ravel()
    )
    out.flags.writeable = False
    return out


def expand(v: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Repeat a per-entry ``(k,)`` vector to a row of length ``m * k * b`` (positions of a chunk row)."""
    if b == 1:
        return np.tile(v, m)
    return np.repeat(np.tile(v, m), b)


def entry_values(X: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """The values of a chunk as float64 ``(k, R * m * b)``, each entry's values in stream order."""
    return X.reshape(-1, m, k, b).transpose(2, 0, 1, 3).reshape(k, -1).astype(np.float64)
