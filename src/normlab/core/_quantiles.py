"""Quantile data of a :class:`~normlab.core.stats.StatsAccumulator`: histograms, exact values, sketches.

A :class:`QuantileStore` keeps, per entry, what :meth:`StatsAccumulator.quantile` needs, in the cheapest form
that is still exact where it can be:

* 8-bit integer data a 256-bin histogram per entry, 16-bit integer data a 65536-bin one (each while
  ``k * bins <= 2**22``, see :func:`hist_spec`); quantiles from histograms are exact;
* other data its values, exactly, while at most ``2**22`` values are stored in total;
* beyond that a deterministic mergeable :class:`Sketch` per entry, with a rigorous bound on its rank error.

Values reach the store in blocks of a fixed number of values per entry (:func:`value_block`), whatever the
chunking, so the exact store and the sketches evolve identically with either engine. Stores merge (the
histograms add, the values concatenate, the sketches merge), which is what makes quantiles work across
``update``/``merge`` calls, processes and Dask workers. :func:`lerp_quantiles` gives the definition of
``np.quantile(method="linear")`` operation for operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from normlab.core._chunks import entry_values

#: Exact quantile values are kept while at most this many are stored in total.
_EXACT_QUANTILE_BUDGET = 1 << 22
EXACT_QUANTILE_BUDGET = _EXACT_QUANTILE_BUDGET
#: Largest histogram, in bins over all entries (int64 each).
_HIST_BUDGET = 1 << 22


class Sketch:
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

    def merge(self, other: Sketch) -> None:
        self._level(len(other.levels) - 1)
        for h, lev in enumerate(other.levels):
            if lev.size:
                self.levels[h] = np.concatenate((self.levels[h], lev))
        self.n += other.n
        self.err += other.err
        self._compact()

    def copy(self) -> Sketch:
        new = Sketch(self.cap)
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


def value_block(k: int) -> int:
    """Values per entry in one block of the quantile value stream (about 1 MB of float64 per block)."""
    return max(256, (1 << 17) // max(k, 1))


def sketch_cap(k: int) -> int:
    """Items per level: about ``2**22 / (16 k)`` rounded down to a power of two, within [64, 32768] (a bound
    of about 5e-4 at k=20 and a million values per entry; 1e-3 was just missed with half that cap)."""
    target = _EXACT_QUANTILE_BUDGET // (16 * max(k, 1))
    cap = 1 << max(0, target.bit_length() - 1)
    return int(min(max(cap, 64), 1 << 15))


def lerp_ranks(n: int, qs: np.ndarray) -> np.ndarray:
    """The ranks (sorted, unique) that :func:`lerp_quantiles` reads for ``qs`` of ``n`` values: what a
    partial sort (``np.partition``) must put in place."""
    virtual = np.clip((n - 1) * qs, 0, n - 1)
    return np.unique(np.concatenate([np.floor(virtual), np.minimum(np.floor(virtual) + 1, n - 1)]).astype(np.intp))


def lerp_quantiles(sorted_vals, n: int, qs: np.ndarray) -> np.ndarray:
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


def hist_spec(dtype: np.dtype, k: int, want: bool) -> tuple[int, int] | None:
    """``(lo, nbins)`` of the histogram kept for ``k`` entries of integer ``dtype``, or None."""
    if not want or dtype.kind not in "biu" or dtype.itemsize > 2:
        return None
    if dtype.itemsize == 1:
        return ((-128 if dtype.kind == "i" else 0), 256) if k * 256 <= _HIST_BUDGET else None
    if k * 65536 > _HIST_BUDGET:
        return None
    return (-32768 if dtype.kind == "i" else 0), 65536


@dataclass(eq=False)
class QuantileStore:
    """Per-entry quantile data of ``k`` entries: a histogram, exact values or sketches (at most one kind).

    Parameters
    ----------
    k : int
        Number of entries.
    ignore_nan : bool
        Leave NaN values out of the quantiles (``nan="ignore"``).

    Attributes
    ----------
    hist : ndarray of int64, shape (k, nbins), or None
        Counts of the values ``hist_lo .. hist_lo + nbins - 1``.
    vals : list of ndarray of float64, shapes (k, n_c), or None
        The exact values, per entry in stream order; ``n_vals`` of them in total.
    sketches : list of Sketch, length k, or None
    pending, n_pending
        Values waiting to fill a block (inside one ``update`` only).
    """

    k: int
    ignore_nan: bool
    hist: np.ndarray | None = None
    hist_lo: int = 0
    vals: list[np.ndarray] | None = None
    n_vals: int = 0
    sketches: list[Sketch] | None = None
    pending: list[np.ndarray] = field(default_factory=list)
    n_pending: int = 0

    def start(self, spec: tuple[int, int] | None, keep_values: bool) -> None:
        """Begin storing a fresh batch: a histogram ``spec = (lo, nbins)``, else values if asked for."""
        if spec is not None:
            self.hist_lo, nbins = spec
            self.hist = np.zeros((self.k, nbins), np.int64)
        elif keep_values:
            self.vals = []

    @property
    def keeps_values(self) -> bool:
        """True when values (exact or sketched) rather than a histogram feed the quantiles."""
        return self.vals is not None or self.sketches is not None

    @property
    def is_empty(self) -> bool:
        return self.hist is None and self.vals is None and self.sketches is None

    @property
    def rank_error(self) -> float:
        """Bound on the rank error of :meth:`quantile`, as a fraction of the count (0.0 when exact)."""
        if self.sketches is None:
            return 0.0
        worst = 0.0
        for sk in self.sketches:
            if sk.n:
                worst = max(worst, sk.err / sk.n)
        return worst

    # ---------------------------------------------------------------- values
    def add_values(self, X: np.ndarray, m: int, b: int) -> None:
        """Queue the values of a chunk (per entry, in stream order); store every full block.

        The stream is cut into blocks of a fixed number of values per entry, whatever the chunking, so the
        exact store and the sketches evolve identically with either engine.
        """
        vals = entry_values(X, m, self.k, b)
        self.pending.append(vals)
        self.n_pending += vals.shape[1]
        block = value_block(self.k)
        if self.n_pending >= block:
            stream = np.concatenate(self.pending, axis=1)
            full = (stream.shape[1] // block) * block
            for start in range(0, full, block):
                self._store_block(stream[:, start : start + block])
            self.pending = [stream[:, full:]] if full < stream.shape[1] else []
            self.n_pending = stream.shape[1] - full

    def flush_pending(self) -> None:
        """Store the values still waiting for a full block (at the end of an update)."""
        if self.n_pending:
            self._store_block(np.concatenate(self.pending, axis=1))
        self.pending, self.n_pending = [], 0

    def _store_block(self, vals: np.ndarray) -> None:
        if self.sketches is None:
            assert self.vals is not None
            self.vals.append(vals)
            self.n_vals += vals.size
            if self.n_vals > _EXACT_QUANTILE_BUDGET:
                self._to_sketches()
        else:
            self._sketch_insert(vals)

    def _sketch_insert(self, vals: np.ndarray) -> None:
        assert self.sketches is not None
        vals = np.sort(vals, axis=1)
        for i, sk in enumerate(self.sketches):
            v = vals[i]
            if self.ignore_nan:
                v = v[~np.isnan(v)]
            sk.add_sorted(v)

    def _to_sketches(self) -> None:
        cap = sketch_cap(self.k)
        self.sketches = [Sketch(cap) for _ in range(self.k)]
        if self.vals:
            self._sketch_insert(np.concatenate(self.vals, axis=1))
        self.vals = None
        self.n_vals = 0

    def _hist_to_values(self) -> None:
        """Replace the histogram by value storage (exact, or sketches without added error)."""
        assert self.hist is not None
        hist, lo = self.hist, self.hist_lo
        self.hist = None
        total = int(hist.sum())
        values = np.arange(lo, lo + hist.shape[1], dtype=np.float64)
        if total <= _EXACT_QUANTILE_BUDGET and self.sketches is None and not self.ignore_nan:
            cols = [np.repeat(values, hist[i]) for i in range(self.k)]
            self.vals = (
                [np.stack(cols)] if cols and all(c.size == cols[0].size for c in cols) else []
            )
            self.n_vals = total
            if self.vals:
                return
        if self.sketches is None:
            self._to_sketches()
        assert self.sketches is not None
        for i, sk in enumerate(self.sketches):
            nz = hist[i] > 0
            sk.add_counts(values[nz], hist[i][nz])

    def _ensure_values(self) -> None:
        if self.hist is not None:
            self._hist_to_values()
        if self.vals is None and self.sketches is None:
            self.vals = []

    # ---------------------------------------------------------------- merge
    def merge(self, other: QuantileStore) -> None:
        """Add ``other``'s quantile data (same ``k``) to this store, in place; ``other`` is unchanged."""
        if self.is_empty:
            # this store held no quantile data yet: take a copy of other's
            if other.hist is not None:
                self.hist, self.hist_lo = other.hist.copy(), other.hist_lo
            elif other.sketches is not None:
                self.sketches = [sk.copy() for sk in other.sketches]
            elif other.vals is not None:
                self.vals, self.n_vals = list(other.vals), other.n_vals
            return
        if self._add_hist(other):
            return
        self._ensure_values()
        if other.hist is not None:
            other = replace(other, hist=other.hist.copy(), vals=None, sketches=None, n_vals=0)
            other._hist_to_values()
        if other.sketches is not None:
            if self.sketches is None:
                self._to_sketches()
            assert self.sketches is not None
            for mine, theirs in zip(self.sketches, other.sketches, strict=True):
                mine.merge(theirs)
        elif other.vals:
            if self.sketches is None:
                assert self.vals is not None
                self.vals.extend(other.vals)
                self.n_vals += other.n_vals
                if self.n_vals > _EXACT_QUANTILE_BUDGET:
                    self._to_sketches()
            else:
                for vals in other.vals:
                    self._sketch_insert(vals)

    def merge_histogram_only(self, other: QuantileStore, was_empty: bool) -> None:
        """``histogram=True`` without quantiles: keep a histogram only while every batch had one."""
        if other.hist is None or (self.hist is None and not was_empty):
            self.hist = None
            return
        if self.hist is None:
            self.hist, self.hist_lo = other.hist.copy(), other.hist_lo
            return
        if not self._add_hist(other):
            self.hist = None

    def _add_hist(self, other: QuantileStore) -> bool:
        """Add ``other``'s histogram to this one, widened to cover both; False if either has none or the
        union would exceed 65536 bins or the histogram budget."""
        if self.hist is None or other.hist is None:
            return False
        lo = min(self.hist_lo, other.hist_lo)
        hi = max(self.hist_lo + self.hist.shape[1], other.hist_lo + other.hist.shape[1])
        if hi - lo > 65536 or self.k * (hi - lo) > _HIST_BUDGET:
            return False
        if (lo, hi - lo) != (self.hist_lo, self.hist.shape[1]):
            grown = np.zeros((self.k, hi - lo), np.int64)
            grown[:, self.hist_lo - lo : self.hist_lo - lo + self.hist.shape[1]] = self.hist
            self.hist, self.hist_lo = grown, lo
        off = other.hist_lo - lo
        self.hist[:, off : off + other.hist.shape[1]] += other.hist
        return True

    # ---------------------------------------------------------------- queries
    def quantile(self, qs: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Quantiles ``qs`` (1-D, in [0, 1]) per entry, shape ``(qs.size, k)``; ``count`` values per entry."""
        out = np.full((qs.size, self.k), np.nan)
        if self.hist is not None:
            values = np.arange(self.hist_lo, self.hist_lo + self.hist.shape[1], dtype=np.float64)
            for i in range(self.k):
                n = int(count[i])
                if n:
                    cum = np.cumsum(self.hist[i])
                    out[:, i] = lerp_quantiles(
                        lambda idx, c=cum: values[np.searchsorted(c, idx, side="right")], n, qs
                    )
        elif self.sketches is not None:
            for i, sk in enumerate(self.sketches):
                out[:, i] = sk.query(qs)
        elif self.vals:
            allv = np.concatenate(self.vals, axis=1)
            for i in range(self.k):
                col = allv[i]
                if self.ignore_nan:
                    col = col[~np.isnan(col)]
                if col.size:  # only the ranks read need to be in place: a partial sort, not a sort
                    col = np.partition(col, lerp_ranks(col.size, qs))
                    out[:, i] = lerp_quantiles(lambda idx, c=col: c[idx], col.size, qs)
        return out

    def histogram(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(values, counts)`` of the integer histogram (a copy), or None when none is kept."""
        if self.hist is None:
            return None
        values = np.arange(self.hist_lo, self.hist_lo + self.hist.shape[1], dtype=np.int64)
        return values, self.hist.copy()
