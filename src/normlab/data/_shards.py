"""Shards: independent, picklable pieces of one split that another machine (a Dask worker) reads alone.

A :class:`~normlab.data._base.Source` cuts itself into shards with ``Source.shards(selection, n_shards)``.
The default cuts the selected samples into runs of rows (:func:`row_shards`), optionally snapped to the
file's natural boundaries; a reader whose file has better cut points (Parquet row groups, CSV byte ranges,
groups of image files) overrides it next to its reader. Whatever the cut, the shards of a split hold every
selected sample exactly once, in file order, so statistics merged over them equal a single local pass.

This module knows no file format.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from normlab.data._selection import Batch, sub_selection
from normlab.errors import DatasetError, NormlabWarning

__all__ = ["SHARD_BYTES", "Shard", "check_n_shards", "cut_points", "row_shards", "skipped_message"]

#: Default size of a dataset shard (decoded samples). A shard is one Dask task, read in batches of about
#: 8 MiB, so its size bounds no memory; it must dwarf a task's scheduling cost: on the 2-core reference
#: machine a 1 GiB .npy read by 2 workers ran at 52-71 % of one process in 32 shards of 32 MiB and at
#: 89-97 % in 4 of 256 MiB. ``dataset_shards`` still makes at least two per worker thread.
SHARD_BYTES = 256 * 2**20


class Shard:
    """A piece of one split of a file-based dataset that a worker reads on its own.

    Iterating yields ``(x, y)`` batches of about ``rows`` samples, in file order. A shard holds only what
    it needs to read its piece (a path and a range, a list of image files), so it pickles small. The base
    class reads ``source.pieces(sel, rows)``; a format whose cut is not a selection of samples (a byte
    range, row groups) subclasses it next to its reader and overrides :meth:`_read`.

    Attributes
    ----------
    n : int or None
        Samples in the shard (None where only reading tells, e.g. a byte range of a CSV file).
    skipped : list of (str, str)
        Image files left out while reading it (``on_error="skip"``), and why.
    count_hint : str
        Shards with ``n=None``: why the samples read might not add up, and what to do then; the client
        appends it to its message when the total differs from the split's known size.
    """

    count_hint = ""

    def __init__(self, source: Any, sel: Any, rows: int, n: int | None, label: str) -> None:
        self.source = source
        self.sel = sel
        self.rows = int(rows)
        self.n = n
        self.label = label
        self.skipped: list = []

    def __iter__(self) -> Iterator[Batch]:
        with warnings.catch_warnings():
            # Readers warn about skipped files; the client reports them once for all shards.
            warnings.simplefilter("ignore", NormlabWarning)
            yield from self._read()

    def _read(self) -> Iterator[Batch]:
        return self.source.pieces(self.sel, self.rows)

    def __repr__(self) -> str:
        n = "?" if self.n is None else self.n
        return f"Shard({self.label}, {n} samples)"


def cut_points(n: int, k: int, bounds: Sequence[int] | None = None) -> list[int]:
    """``k + 1`` increasing cut points of ``[0, n]``, snapped to ``bounds`` (natural file boundaries) if given.

    >>> cut_points(10, 3)
    [0, 3, 7, 10]
    >>> cut_points(10, 3, bounds=[0, 4, 8, 10])
    [0, 4, 8, 10]
    """
    k = max(1, min(k, n))
    cuts = [round(i * n / k) for i in range(k + 1)]
    if bounds is not None:
        b = np.asarray(bounds)
        cuts = sorted({int(b[np.abs(b - c).argmin()]) for c in cuts} | {0, n})
    return sorted(set(cuts))


def row_shards(
    source: Any,
    sel: Any,
    n_shards: int,
    *,
    rows: int,
    label: str,
    bounds: Sequence[int] | None = None,
) -> list[Shard]:
    """Cut the selected samples of ``source`` into about ``n_shards`` runs, made by ``source.shard``.

    The default of ``Source.shards``. ``bounds`` (sample indices, with ``None`` selection only) are cut
    points that a shard should not cross, e.g. the ends of CIFAR-10's batch files.
    """
    n = source.n if sel is None else len(sel)
    return [
        source.shard(sub_selection(sel, a, b), rows, b - a, f"{label} samples {a}-{b - 1}")
        for a, b in itertools.pairwise(cut_points(n, int(n_shards), bounds))
    ]


def check_n_shards(n_shards: Any, who: str) -> int:
    """``n_shards`` as an int if it is a positive integer (not a bool); else a :class:`DatasetError`."""
    if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)) or n_shards < 1:
        raise DatasetError(
            f"{who}(n_shards={n_shards!r}) is not a positive integer; expected e.g. 8."
        )
    return int(n_shards)


def skipped_message(
    label: str, skipped: Sequence[tuple[str, str]], first: str | None = None
) -> str:
    """The warning about unreadable files left out (``first``: how to name the first one, default its path)."""
    path, why = skipped[0]
    return (
        f"{label}: skipped {len(skipped)} unreadable image file(s) (first: {first or path}: {why}); the list "
        "is in dataset.skipped."
    )
