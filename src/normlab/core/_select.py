"""Exact quantiles of an array in memory: histogram refinement in an order-preserving integer key space.

Each value maps to a signed 64-bit key with the order of the values: a float's bits as sign and magnitude
(``+m`` or ``-m``, so ``-0.0`` and ``+0.0`` share key 0 and NaN, whose magnitude exceeds infinity's, is
left out), an integer itself (``uint64`` with its top bit flipped). The order statistics that
``np.quantile(method="linear")`` interpolates are then found in a few passes over the data, each a small
per-entry histogram of ``(key - lo) >> shift`` over the key window that still holds a wanted rank:

* the first window of an entry runs from the key of its minimum to that of its maximum;
* a window whose values fit the gather budget (``_GATHER`` in all) is gathered and sorted instead;
* every other wanted rank narrows its window to the bin that holds it, ``>= 256`` times smaller, so 64-bit
  keys need at most 8 histogram passes whatever the distribution (ties, one outlier at 1e300, subnormals).

Histograms and gathered keys are plain counts and keys per window: they add across row blocks, threads and
processes, and are identical for the NumPy kernel (``np.bincount``) and the compiled one. Extra memory is
O(bins + gather budget) per worker, never O(data). :func:`exact_quantiles` is the entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from normlab.core._engine import n_workers, pmap, resolve_engine, scratch
from normlab.core._quantiles import lerp_quantiles
from normlab.errors import DataError

#: Histogram bins over all windows of one pass (int64 each, per worker): small enough to stay in cache.
_BINS_BUDGET = 1 << 16
_MIN_BINS, _MAX_BINS = 1 << 8, 1 << 16
#: Keys gathered over all windows of one pass (int64 each, per worker).
_GATHER = 1 << 18
#: Rows per block of the NumPy kernel (about 1 MB of values), and the least bytes worth a thread.
_NP_BLOCK_BYTES = 1 << 20
_PARALLEL_MIN_BYTES = 1 << 22
_MIN64 = -(1 << 63)

_STATE: dict = {}


@dataclass(frozen=True)
class KeySpec:
    """How the values of one dtype become keys: ``mode`` 0 float bits, 1 integer, 2 uint64."""

    view: np.dtype
    mode: int
    absmask: int = 0
    inf: int = 0


def key_spec(dtype: np.dtype) -> KeySpec | None:
    """The key mapping of ``dtype``, or None when it has none (complex, object, ...)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        bits = 8 * dtype.itemsize
        inf = {2: 0x7C00, 4: 0x7F800000, 8: 0x7FF0000000000000}[dtype.itemsize]
        return KeySpec(np.dtype(f"i{dtype.itemsize}"), 0, (1 << (bits - 1)) - 1, inf)
    if dtype.kind == "u" and dtype.itemsize == 8:
        return KeySpec(np.dtype(np.int64), 2)
    if dtype.kind in "iu":
        return KeySpec(dtype, 1)
    if dtype.kind == "b":
        return KeySpec(np.dtype(np.uint8), 1)
    return None


def selects(dtype: np.dtype) -> bool:
    """Quantiles of ``dtype`` come from selection (float and 32/64-bit integer data; 8/16-bit integers
    keep their exact one-pass histograms)."""
    dtype = np.dtype(dtype)
    return key_spec(dtype) is not None and (dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize >= 4))


def keys_of(values: np.ndarray, spec: KeySpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Keys (int64) of integer-view ``values`` and the mask of valid (non-NaN) ones (None: all valid)."""
    v = values.astype(np.int64)
    if spec.mode == 1:
        return v, None
    if spec.mode == 2:
        return v ^ _MIN64, None
    mag = v & spec.absmask
    ok = mag <= spec.inf
    return _signed(mag, v), ok


def _signed(mag: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``mag`` with the sign of ``v`` (``-mag`` where ``v < 0``), in place: ``(mag ^ s) - s`` with ``s`` the
    sign mask ``v >> 63`` (np.where is ten times slower on int64 here)."""
    sign = np.right_shift(v, 63)
    np.bitwise_xor(mag, sign, out=mag)
    return np.subtract(mag, sign, out=mag)


def decode(keys: np.ndarray, dtype: np.dtype, spec: KeySpec) -> np.ndarray:
    """float64 values of ``keys`` (int64) in ``dtype``."""
    keys = np.asarray(keys, np.int64)
    if spec.mode == 1:
        return keys.astype(dtype).astype(np.float64)
    if spec.mode == 2:
        return (keys ^ _MIN64).view(np.uint64).astype(np.float64)
    sign = spec.absmask + 1
    sign = _MIN64 if sign == 1 << 63 else sign  # the sign bit, as an int64
    bits = np.where(keys >= 0, keys, (-keys) | sign)
    return bits.astype(spec.view).view(dtype).astype(np.float64)


# --------------------------------------------------------------------------------------------------------
# one pass: histograms and gathers per window
# --------------------------------------------------------------------------------------------------------


@dataclass
class _Windows:
    """The key windows of one pass, grouped by entry (``start[j]:start[j + 1]``), disjoint within an entry."""

    start: np.ndarray  # (k + 1,) int64
    lo: np.ndarray  # (w,) int64
    hi: np.ndarray
    shift: np.ndarray
    mask: np.ndarray  # keeps the logical bits of an arithmetic shift
    gather: np.ndarray  # (w,) bool
    off: np.ndarray  # offset of each window's bins (histogram) or slots (gather)
    nbins: int
    nslots: int
    full: bool = False  # one histogram window per entry holding all its values: no range test needed
    cap: np.ndarray | None = None  # (w,) slots of each gathered window: the values it held last pass

    def __post_init__(self) -> None:
        if self.cap is None:
            self.cap = np.zeros(self.lo.size, np.int64)


def _np_pass(X: np.ndarray, spec: KeySpec, win: _Windows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The NumPy kernel: histograms, gathered keys and their counts of the rows of ``X`` (a, k, b)."""
    hist = np.zeros(win.nbins, np.int64)
    gbuf = np.zeros(win.nslots, np.int64)
    gcnt = np.zeros(win.lo.size, np.int64)
    for j in range(X.shape[1]):
        w0, w1 = int(win.start[j]), int(win.start[j + 1])
        if w0 == w1:
            continue
        keys, ok = keys_of(X[:, j, :].ravel(), spec)
        if ok is not None and not ok.all():
            keys = keys[ok]
        for w in range(w0, w1):
            sel = keys[(keys >= win.lo[w]) & (keys <= win.hi[w])]
            if win.gather[w]:
                room = max(0, int(win.cap[w] - gcnt[w]))  # more values than last pass: the data changed
                gbuf[win.off[w] + gcnt[w] : win.off[w] + gcnt[w] + min(room, sel.size)] = sel[:room]
                gcnt[w] += sel.size
            else:
                idx = ((sel - win.lo[w]) >> win.shift[w]) & win.mask[w]
                nb = _bins_of(win, w)
                hist[win.off[w] : win.off[w] + nb] += np.bincount(idx, minlength=nb)
    return hist, gbuf, gcnt


def _bins_of(win: _Windows, w: int) -> int:
    return int(((int(win.hi[w]) - int(win.lo[w])) >> int(win.shift[w])) + 1)


def _numba_kernel():
    fn = _STATE.get("numba")
    if fn is None:
        import numba as nb

        @nb.njit(cache=True, nogil=True)
        def select_pass(X, cw0, cw1, mode, absmask, inf, lo, hi, shift, mask, gather, off, cap, hist, gbuf, gcnt):
            # X is (rows, k * b): 2-D indexing keeps the loop tight; column c's windows are cw0[c]:cw1[c]
            a, c = X.shape
            flip = np.int64(-9223372036854775808)
            for i in range(a):
                for col in range(c):
                    w0, w1 = cw0[col], cw1[col]
                    if w0 == w1:
                        continue
                    v = np.int64(X[i, col])
                    if mode == 0:
                        mag = v & absmask
                        if mag > inf:
                            continue
                        s = mag if v >= 0 else -mag
                    elif mode == 1:
                        s = v
                    else:
                        s = v ^ flip
                    for w in range(w0, w1):
                        d = s - lo[w]  # wraps like uint64: one well-predicted unsigned test, lo <= s <= hi
                        if (d ^ flip) <= ((hi[w] - lo[w]) ^ flip):
                            if gather[w]:
                                if gcnt[w] < cap[w]:  # never past the window's slots, even if the data changed
                                    gbuf[off[w] + gcnt[w]] = s
                                gcnt[w] += 1
                            else:
                                hist[off[w] + ((d >> shift[w]) & mask[w])] += 1
                            break

        @nb.njit(cache=True, nogil=True)
        def full_hist(X, mode, absmask, inf, lo, span, shift, mask, off, hist):
            # every value of an active column lands in its one window: branch-free; the last bin takes
            # NaN, the columns of finished entries (off < 0) and values outside [lo, lo + span] (none,
            # unless the data changed since its min and max were taken: then the counts disagree)
            a, c = X.shape
            flip = np.int64(-9223372036854775808)
            dummy = hist.size - 1
            for i in range(a):
                for col in range(c):
                    v = np.int64(X[i, col])
                    mag = v & absmask
                    if mode == 0:
                        s = mag if v >= 0 else -mag
                    elif mode == 1:
                        s = v
                    else:
                        s = v ^ flip
                    d = s - lo[col]
                    idx = off[col] + ((d >> shift[col]) & mask[col])
                    skip = off[col] < 0 or (mode == 0 and mag > inf) or ((d ^ flip) > (span[col] ^ flip))
                    hist[dummy if skip else idx] += 1

        _STATE["numba_full"] = full_hist
        fn = _STATE["numba"] = select_pass
    return fn


def _np_full_block(X2: np.ndarray, spec: KeySpec, lo, span, shift, mask, off, hist: np.ndarray) -> None:
    """The NumPy twin of the compiled ``full_hist``: the whole ``(rows, columns)`` block at once, one
    ``np.bincount`` for all columns (each column's bins start at ``off``; the last bin takes NaN, the
    columns of finished entries and values outside ``[lo, lo + span]``). Temporaries live in per-thread
    scratch buffers: fresh pages for every block cost more than the arithmetic."""
    shape = X2.shape
    if X2.dtype == np.int64:
        v = X2
    else:
        v = scratch("select_v", shape, np.int64)
        np.copyto(v, X2)
    s = scratch("select_s", shape, np.int64)
    skip = scratch("select_skip", shape, np.bool_)
    np.copyto(skip, off < 0)
    if spec.mode == 0:
        np.bitwise_and(v, spec.absmask, out=s)
        bad = scratch("select_bad", shape, np.bool_)
        np.greater(s, spec.inf, out=bad)
        np.logical_or(bad, skip, out=skip)
        sign = scratch("select_sign", shape, np.int64)
        np.right_shift(v, 63, out=sign)
        np.bitwise_xor(s, sign, out=s)
        np.subtract(s, sign, out=s)
    elif spec.mode == 1:
        np.copyto(s, v)
    else:
        np.bitwise_xor(v, _MIN64, out=s)
    np.subtract(s, lo, out=s)  # wraps like uint64, as in the compiled kernel
    outside = scratch("select_bad", shape, np.bool_)
    np.greater(s.view(np.uint64), span.view(np.uint64), out=outside)
    np.logical_or(outside, skip, out=skip)
    np.right_shift(s, shift, out=s)
    np.bitwise_and(s, mask, out=s)
    np.add(s, off, out=s)
    np.copyto(s, hist.size - 1, where=skip)
    hist += np.bincount(s.ravel(), minlength=hist.size)


def _full_pass(X: np.ndarray, spec: KeySpec, win: _Windows, parallel: bool, engine: str = "numba"):
    """A first pass of the branch-free kernel (compiled, or its NumPy twin): one window per column, holding
    all its values."""
    rows, b = X.shape[0], X.shape[2]
    X2 = X.reshape(rows, -1)
    per = lambda a, fill: np.repeat(np.where(win.start[1:] > win.start[:-1],  # noqa: E731
                                             a[np.minimum(win.start[:-1], a.size - 1)] if a.size else 0, fill), b)
    lo, shift, mask = per(win.lo, 0), per(win.shift, 0), per(win.mask, 0)
    span = per(win.hi - win.lo, 0)
    off = per(win.off, -1)
    if engine == "numba":
        kern = _STATE["numba_full"]
        nblocks = n_workers() if parallel else 1
    else:
        nblocks = max(1, -(-X.nbytes // _NP_BLOCK_BYTES))
        kern = lambda X2, _m, _a, _i, lo, span, shift, mask, off, hist: _np_full_block(  # noqa: E731
            X2, spec, lo, span, shift, mask, off, hist)
    edges = np.linspace(0, rows, nblocks + 1).astype(np.int64)

    def job(r0, r1):
        hist = np.zeros(win.nbins + 1, np.int64)
        if r1 > r0:
            kern(X2[r0:r1], spec.mode, spec.absmask, spec.inf, lo, span, shift, mask, off, hist)
        return hist

    hist = np.zeros(win.nbins + 1, np.int64)
    for h in pmap(job, [(int(edges[t]), int(edges[t + 1])) for t in range(nblocks)], parallel):
        hist += h
    return hist[:-1], [np.zeros(0, np.int64) for _ in range(win.lo.size)]


def _run_pass(X: np.ndarray, spec: KeySpec, win: _Windows, engine: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Histogram counts (flat) and the gathered keys of each window, over all rows of ``X``."""
    rows = X.shape[0]
    parallel = X.nbytes >= _PARALLEL_MIN_BYTES and n_workers() > 1
    if engine == "numba":
        kern = _numba_kernel()
        X2 = X.reshape(rows, -1)
        cw0 = np.repeat(win.start[:-1], X.shape[2])
        cw1 = np.repeat(win.start[1:], X.shape[2])
        nblocks = n_workers() if parallel else 1

        if win.full:
            return _full_pass(X, spec, win, parallel)

        def job(r0, r1):
            hist = np.zeros(win.nbins, np.int64)
            gbuf = np.zeros(max(win.nslots, 1), np.int64)
            gcnt = np.zeros(win.lo.size, np.int64)
            kern(X2[r0:r1], cw0, cw1, spec.mode, spec.absmask, spec.inf, win.lo, win.hi, win.shift, win.mask,
                 win.gather, win.off, win.cap, hist, gbuf, gcnt)
            return hist, gbuf, gcnt
    else:
        if win.full:
            return _full_pass(X, spec, win, parallel, engine="numpy")
        nblocks = max(1, -(-X.nbytes // _NP_BLOCK_BYTES))

        def job(r0, r1):
            return _np_pass(X[r0:r1], spec, win)

    edges = np.linspace(0, rows, nblocks + 1).astype(np.int64)
    pieces = [(int(edges[t]), int(edges[t + 1])) for t in range(nblocks) if edges[t + 1] > edges[t]]
    hist = np.zeros(win.nbins, np.int64)
    gathered: list[list[np.ndarray]] = [[] for _ in range(win.lo.size)]
    for h, gbuf, gcnt in pmap(job, pieces, parallel):
        hist += h
        for w in np.flatnonzero(win.gather):
            if gcnt[w] > win.cap[w]:
                raise _changed(-1, int(win.cap[w]), int(gcnt[w]))
            gathered[w].append(gbuf[win.off[w] : win.off[w] + gcnt[w]].copy())  # frees the block's buffer
    return hist, [np.concatenate(g) if g else np.zeros(0, np.int64) for g in gathered]


# --------------------------------------------------------------------------------------------------------
# the refinement
# --------------------------------------------------------------------------------------------------------


def _layout(open_w: list[list[list[int]]], count: np.ndarray) -> _Windows:
    """The pass's windows from ``open_w[j] = [[lo, hi, below, count], ...]`` (sorted, disjoint); ``count``
    is each entry's number of values."""
    flat = [w for ws in open_w for w in ws]
    order = sorted(range(len(flat)), key=lambda i: flat[i][3])
    gather = np.zeros(len(flat), bool)
    room = _GATHER
    for i in order:  # smallest windows are gathered while the budget lasts
        if flat[i][3] <= room:
            gather[i] = True
            room -= flat[i][3]
    n_hist = int((~gather).sum())
    bins = _MAX_BINS
    while bins > _MIN_BINS and n_hist * bins > _BINS_BUDGET:
        bins //= 2
    shift = np.zeros(len(flat), np.int64)
    mask = np.full(len(flat), -1, np.int64)
    off = np.zeros(len(flat), np.int64)
    nbins = nslots = 0
    for i, (lo, hi, _below, cnt) in enumerate(flat):
        if gather[i]:
            off[i], nslots = nslots, nslots + cnt
            continue
        sh = 0
        while ((hi - lo) >> sh) >= bins:
            sh += 1
        shift[i] = sh
        mask[i] = (1 << (64 - sh)) - 1 if sh else -1
        off[i], nbins = nbins, nbins + ((hi - lo) >> sh) + 1
    start = np.cumsum([0] + [len(ws) for ws in open_w]).astype(np.int64)
    arr = lambda c: np.array([w[c] for w in flat], np.int64)  # noqa: E731
    full = not gather.any() and all(
        not ws or (len(ws) == 1 and ws[0][2] == 0 and ws[0][3] == int(count[j])) for j, ws in enumerate(open_w))
    cap = np.array([w[3] if gather[i] else 0 for i, w in enumerate(flat)], np.int64)
    return _Windows(start, arr(0), arr(1), shift, mask, gather, off, nbins, nslots, full, cap)


def _refine(hist, gathered, win: _Windows, open_w, wanted, found) -> list[list[list[int]]]:
    """Resolve or narrow each wanted rank from one pass's results; the next pass's windows."""
    nxt: list[list[list[int]]] = [[] for _ in open_w]
    w = 0
    for j, ws in enumerate(open_w):
        for lo, hi, below, _cnt in ws:
            ranks = [r for r in wanted[j] if r not in found[j] and below <= r < below + _cnt]
            if win.gather[w]:
                keys = np.sort(gathered[w])
                for r in ranks:
                    found[j][r] = int(keys[r - below])
            else:
                sh = int(win.shift[w])
                h = hist[win.off[w] : win.off[w] + _bins_of(win, w)]
                cum = np.cumsum(h)
                children: dict[int, list[int]] = {}
                for r in ranks:
                    b = int(np.searchsorted(cum, r - below, side="right"))
                    clo = lo + (b << sh)
                    chi = min(clo + (1 << sh) - 1, hi)
                    cbelow = below + (int(cum[b - 1]) if b else 0)
                    if clo == chi:
                        found[j][r] = clo
                    else:
                        children.setdefault(clo, [clo, chi, cbelow, int(h[b])])
                nxt[j].extend(children[c] for c in sorted(children))
            w += 1
    return nxt


def exact_quantiles(x3: np.ndarray, qs: np.ndarray, count: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    engine: str = "auto") -> np.ndarray:
    """``np.quantile(x3[:, j, :], qs, method="linear")`` for every entry ``j``, shape ``(qs.size, k)``.

    ``count``, ``lo`` and ``hi`` are each entry's number of non-NaN values, minimum and maximum (from the
    moments pass); NaN values are left out (the ``nan="ignore"`` rule: with ``nan="raise"`` there are none).
    The result is exact: the order statistics are found, then interpolated by :func:`lerp_quantiles`.
    """
    return select_quantiles(piece_passes(lambda: (x3,), engine, x3.nbytes), x3.dtype, qs, count, lo, hi)


#: One pass of the refinement: ``run_pass(spec, windows) -> (histogram, gathered keys per window)`` over
#: all the data, wherever it lives (one array, a re-read stream, the chunks of a Dask collection).
PassRunner = Callable[[KeySpec, "_Windows"], tuple[np.ndarray, list[np.ndarray]]]


def piece_passes(pieces: Callable[[], Iterable[np.ndarray]], engine: str = "auto",
                 nbytes: int | None = None) -> PassRunner:
    """A :data:`PassRunner` reading ``pieces()`` afresh in every pass: ``(a, k, b)`` arrays of one dtype
    whose rows together are the data (one array, or the batches of a source that can be read again)."""
    eng = resolve_engine(engine, nbytes)

    def run(spec: KeySpec, win: _Windows) -> tuple[np.ndarray, list[np.ndarray]]:
        # merged piece by piece: a pass holds one piece's histogram at a time, whatever the number of pieces
        return merge_passes((pass_counts(x3, spec, win, eng) for x3 in pieces()), win)

    return run


def pass_counts(x3: np.ndarray, spec: KeySpec, win: _Windows, engine: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """One pass's histogram and gathered keys over the rows of ``x3`` (an ``(a, k, b)`` array), mergeable
    with those of the other rows by :func:`merge_passes`."""
    if x3.shape[0] == 0:
        return np.zeros(win.nbins, np.int64), [np.zeros(0, np.int64) for _ in range(win.lo.size)]
    return _run_pass(np.ascontiguousarray(x3).view(spec.view), spec, win, engine)


def merge_passes(results: Iterable[tuple[np.ndarray, list[np.ndarray]]], win: _Windows
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The histogram and gathered keys of all the data from those of its parts (counts add, keys join)."""
    hist = np.zeros(win.nbins, np.int64)
    gathered: list[list[np.ndarray]] = [[] for _ in range(win.lo.size)]
    for h, g in results:
        hist += h
        for w, keys in enumerate(g):
            if keys.size:
                gathered[w].append(keys)
    return hist, [np.concatenate(g) if g else np.zeros(0, np.int64) for g in gathered]


def select_quantiles(run_pass: PassRunner, dtype: np.dtype, qs: np.ndarray, count: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray) -> np.ndarray:
    """The exact quantiles ``qs`` of each entry, shape ``(qs.size, k)``, found by ``run_pass`` passes.

    ``dtype`` is the data's; ``count``, ``lo`` and ``hi`` each entry's number of non-NaN values, minimum and
    maximum (from the moments pass). See :func:`exact_quantiles`.
    """
    dtype = np.dtype(dtype)
    spec = key_spec(dtype)
    if spec is None:
        raise TypeError(f"no order-preserving key for dtype {dtype}")
    k = len(count)
    qs = np.asarray(qs, np.float64)
    wanted: list[set[int]] = []
    for j in range(k):
        need: set[int] = set()
        if count[j]:
            lerp_quantiles(lambda idx, s=need: (s.update(int(i) for i in idx), np.zeros(idx.size))[1],
                           int(count[j]), qs)
        wanted.append(need)
    found: list[dict[int, int]] = [{} for _ in range(k)]
    has = np.asarray(count) > 0
    bounds = _key_bounds(dtype, spec, np.where(has, lo, 0.0), np.where(has, hi, 0.0))
    open_w = [[[bounds[0][j], bounds[1][j], 0, int(count[j])]] if wanted[j] else [] for j in range(k)]
    while any(open_w):
        win = _layout(open_w, count)
        hist, gathered = run_pass(spec, win)
        _check_counts(hist, gathered, win, open_w)
        open_w = _refine(hist, gathered, win, open_w, wanted, found)
    out = np.full((qs.size, k), np.nan)
    for j in range(k):
        if wanted[j]:
            table = found[j]
            out[:, j] = lerp_quantiles(
                lambda idx, t=table: decode(np.array([t[int(i)] for i in idx], np.int64), dtype, spec),
                int(count[j]), qs)
    return out


def _changed(entry: int, expected: int, got: int) -> DataError:
    where = f"entry {entry}" if entry >= 0 else "an entry"
    return DataError(
        f"the data changed while its quantiles were selected: {where} had {expected:,} values in a range of "
        f"keys on the previous read and {got:,} on this one; expected the same values on every read. Do not "
        "write to the data while its statistics are computed (persist a lazy Dask array first), or skip the "
        "quantiles (quantiles=(), --quantiles none)."
    )


def _check_counts(hist: np.ndarray, gathered: list[np.ndarray], win: _Windows, open_w: list) -> None:
    """Every window of a pass holds the values the previous pass counted in it; otherwise the data read
    again is not the data first read (a file written meanwhile, a lazy Dask array that is not
    deterministic), and no rank can be trusted: a :class:`DataError`, never a wrong quantile."""
    flat = [(j, w) for j, ws in enumerate(open_w) for w in ws]
    for i, (j, (_lo, _hi, _below, expected)) in enumerate(flat):
        got = gathered[i].size if win.gather[i] else int(hist[win.off[i] : win.off[i] + _bins_of(win, i)].sum())
        if got != expected:
            raise _changed(j, expected, got)


def _key_bounds(dtype: np.dtype, spec: KeySpec, lo: np.ndarray, hi: np.ndarray) -> tuple[list[int], list[int]]:
    """Keys at or below each entry's minimum and at or above its maximum (float64 ``lo``/``hi``)."""
    if spec.mode == 0:
        kl, _ = keys_of(np.asarray(lo).astype(dtype).view(spec.view), spec)
        kh, _ = keys_of(np.asarray(hi).astype(dtype).view(spec.view), spec)
        return [int(v) for v in kl], [int(v) for v in kh]
    info = np.iinfo(dtype)
    flip = (1 << 63) if spec.mode == 2 else 0
    # float64 extremes of wide integers are within one ulp (at most 2**11) of the true ones
    lows = [max(int(info.min), int(np.floor(v)) - 4096) - flip for v in lo]
    highs = [min(int(info.max), int(np.ceil(v)) + 4096) - flip for v in hi]
    return lows, highs
