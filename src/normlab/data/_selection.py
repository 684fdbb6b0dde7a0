"""Selections of samples and the cutting of pieces into batches (NumPy only).

A selection of samples is ``None`` (all ``n`` of them), a ``range`` (contiguous, so memory-mapped files can
return a view) or a sorted ``int64`` array. Samples always keep their file order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

__all__ = [
    "Batch",
    "Selection",
    "as_index",
    "as_key",
    "count",
    "rebatch",
    "select_rows",
    "sub_selection",
    "windows",
]

Selection = range | np.ndarray | None
Batch = tuple[np.ndarray, np.ndarray | None]


def count(sel: Selection, n: int) -> int:
    return n if sel is None else len(sel)


def as_key(sel: range | np.ndarray) -> slice | np.ndarray:
    """A selection as an index into an array of all samples: a ``slice`` for a range (so a view)."""
    return slice(sel.start, sel.stop) if isinstance(sel, range) else sel


def sub_selection(sel: Selection, a: int, b: int) -> range | np.ndarray:
    """Samples ``a:b`` of the selection ``sel``, as a selection of the source's samples."""
    if sel is None:
        return range(a, b)
    if isinstance(sel, range):
        return range(sel.start + a, sel.start + b)
    return sel[a:b]


def as_index(sel: Selection, n: int) -> np.ndarray:
    if sel is None:
        return np.arange(n, dtype=np.int64)
    if isinstance(sel, range):
        return np.arange(sel.start, sel.stop, dtype=np.int64)
    return sel


def windows(n: int, sel: Selection, rows: int) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """Cut ``[0, n)`` into windows of ``rows`` samples that hold selected samples.

    Yields ``(start, stop, local)``: ``local`` is ``None`` when the whole window is selected, else the
    offsets of the selected samples inside it. Windows without a selected sample are left out, so a
    seekable reader skips them.
    """
    rows = max(1, int(rows))
    if sel is None:
        sel = range(0, n)
    if isinstance(sel, range):
        for start in range(sel.start, sel.stop, rows):
            yield start, min(start + rows, sel.stop), None
        return
    if len(sel) == 0:
        return
    bounds = np.searchsorted(sel, np.arange(0, n + rows, rows))
    for w in range(len(bounds) - 1):
        lo, hi = bounds[w], bounds[w + 1]
        if lo == hi:
            continue
        start, stop = w * rows, min((w + 1) * rows, n)
        local = sel[lo:hi] - start
        if len(local) == stop - start:
            yield start, stop, None
        else:
            yield start, stop, local


def select_rows(chunks: Iterable[Batch], sel: Selection) -> Iterator[Batch]:
    """Keep the selected samples of sequential chunks that together cover ``[0, n)`` in order."""
    offset = 0
    for x, y in chunks:
        k = len(x)
        if sel is None:
            yield x, y
        elif isinstance(sel, range):
            lo, hi = max(sel.start - offset, 0), min(sel.stop - offset, k)
            if hi > lo:
                yield x[lo:hi], None if y is None else y[lo:hi]
            if offset + k >= sel.stop:
                return
        else:
            lo, hi = np.searchsorted(sel, (offset, offset + k))
            if hi > lo:
                local = sel[lo:hi] - offset
                yield x[local], None if y is None else y[local]
            if hi == len(sel):
                return
        offset += k


def rebatch(pieces: Iterable[Batch], batch_size: int) -> Iterator[Batch]:
    """Re-cut pieces of any size into batches of exactly ``batch_size`` samples (the last may be short).

    Samples of different shapes (an image folder of mixed sizes) never share a batch: a batch ends early
    where the sample shape changes.
    """
    xs: list[np.ndarray] = []
    ys: list[np.ndarray | None] = []
    have = 0
    for x, y in pieces:
        k = len(x)
        if k == 0:
            continue
        if have and x.shape[1:] != xs[0].shape[1:]:
            yield _join(xs, ys)
            xs, ys, have = [], [], 0
        if have == 0 and k == batch_size:
            yield x, y
            continue
        start = 0
        while start < k:
            take = min(batch_size - have, k - start)
            xs.append(x[start : start + take])
            ys.append(None if y is None else y[start : start + take])
            have += take
            start += take
            if have == batch_size:
                yield _join(xs, ys)
                xs, ys, have = [], [], 0
    if have:
        yield _join(xs, ys)


def _join(xs: list[np.ndarray], ys: list[np.ndarray | None]) -> Batch:
    if len(xs) == 1:
        return xs[0], ys[0]
    y = None if ys[0] is None else np.concatenate(ys)  # type: ignore[arg-type]
    return np.concatenate(xs), y
