"""One pass over an ``(a, k, b)`` batch: chunk it, run the engine's kernels, yield per-entry partial results.

:func:`int_parts` and :func:`float_parts` are what :meth:`StatsAccumulator.update
<normlab.core.stats.StatsAccumulator.update>` iterates over: each chunk of the batch (see
:mod:`normlab.core._chunks`) reduced by the kernels of the chosen engine (:mod:`normlab.core._np_kernels` or
:mod:`normlab.core._numba`, same names and results) and folded to the ``k`` entries. The accumulator adds the
parts into its moments and quantile store; this module owns how a batch is cut for each engine and dtype,
when the NumPy engine uses its worker threads, and what happens on NaN/inf.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from normlab.core import _np_kernels
from normlab.core._chunks import CHUNK_BYTES, blocks, chunks, fold_max, fold_min, fold_sum
from normlab.core._engine import n_workers, pmap
from normlab.errors import NonFiniteError, nonfinite_message

#: Chunk size of the float path (both engines: the chunking fixes the float rounding, so it is shared).
_FLOAT_CHUNK_BYTES = 1 << 20
#: Chunk size of the integer paths with numba (exact sums do not depend on it; views, no copies).
_NUMBA_CHUNK_BYTES = 1 << 28
#: Updates at least this big use the worker threads (NumPy engine).
_PARALLEL_BYTES = 1 << 22


class IntPart(NamedTuple):
    """Exact per-entry sums of one integer chunk (``sum(x**2) = sq0 + sq1 * 2**17 + sq2 * 2**32``)."""

    n: int  #: values per entry in the chunk
    s1: np.ndarray
    sq0: np.ndarray
    sq1: np.ndarray | None  #: None for wide parts: s1 and sq0 are then exact Python ints (object arrays)
    sq2: np.ndarray | None
    mn: np.ndarray | None  #: None where min/max were skipped (they could not change any more)
    mx: np.ndarray | None
    hist: np.ndarray | None  #: (k, nbins) counts in value order, when a histogram is kept
    X: np.ndarray  #: the chunk (R, m * k * b), for the quantile values
    m: int
    b: int


class FloatPart(NamedTuple):
    """Per-entry float64 moments of one float chunk: ``mean = ref + dmean``, ``m2`` the squared deviations."""

    count: np.ndarray
    ref: np.ndarray
    dmean: np.ndarray
    m2: np.ndarray
    mn: np.ndarray
    mx: np.ndarray
    n_nan: np.ndarray | None  #: NaN per entry (``nan="ignore"``), None when the chunk had none
    X: np.ndarray  #: the chunk as converted for the kernels, for the quantile values
    m: int
    b: int


def _kernels(engine: str):
    """The kernel module of ``engine`` (numba is imported only when it is used)."""
    if engine == "numba":
        from normlab.core import _numba

        return _numba
    return _np_kernels


def int_parts(x3: np.ndarray, k: int, engine: str, hist_spec, bounds: tuple[int, int]):
    """Yield an :class:`IntPart` per chunk of integer ``x3`` (values fitting in 32 bits).

    ``hist_spec`` is ``(lo, nbins)`` when a histogram is kept (8-bit moments then come from it), ``bounds``
    the smallest and largest value of the dtype: once every entry has met both (0 and 255 for most images,
    usually within the first chunk), no value can change min or max and the NumPy engine skips those passes.
    """
    hist8 = hist_spec is not None and x3.dtype.itemsize == 1  # moments come from the histogram
    kern = _kernels(engine)
    if engine == "numba":
        # exact integer sums do not depend on the chunking: contiguous input goes in big views
        pieces = chunks(x3, _NUMBA_CHUNK_BYTES if x3.flags.c_contiguous else CHUNK_BYTES * 8)
        parallel = False
    else:
        if hist8:
            pieces = chunks(x3, 1 << 21)
        elif x3.dtype.itemsize == 1:
            pieces = chunks(x3, CHUNK_BYTES, max_rows=_np_kernels.ROWS_8BIT * 4)
        else:
            pieces = chunks(x3, CHUNK_BYTES)
        parallel = x3.nbytes >= _PARALLEL_BYTES and n_workers() > 1
    signed = x3.dtype.kind == "i"
    saturated = [False]

    def job(X, m, b):
        n = X.shape[0] * m * b
        h = None
        if hist_spec is not None:
            h = kern.hist(X, m, k, b)
            if signed:  # bit patterns -> value order
                h = np.roll(h, h.shape[1] // 2, axis=1)
        if hist8:
            return _hist8_part(n, h, hist_spec[0], k, X, m, b)
        s, q0, q1, q2, mnp, mxp = kern.int_moments(X, not saturated[0])
        return IntPart(
            n,
            fold_sum(s, m, k, b),
            fold_sum(q0, m, k, b),
            fold_sum(q1, m, k, b),
            fold_sum(q2, m, k, b),
            None if mnp is None else fold_min(mnp, m, k, b),
            None if mxp is None else fold_max(mxp, m, k, b),
            h,
            X,
            m,
            b,
        )

    lo, hi = bounds
    run_min, run_max = np.full(k, np.inf), np.full(k, -np.inf)
    for part in pmap(job, pieces, parallel):
        if part.mn is not None:
            np.minimum(run_min, part.mn, out=run_min)
            np.maximum(run_max, part.mx, out=run_max)
            saturated[0] = bool((run_min <= lo).all() and (run_max >= hi).all())
        yield part


def wide_int_parts(x3: np.ndarray, k: int):
    """Yield an :class:`IntPart` per chunk of a 64-bit integer ``x3`` whose values need more than 32 bits.

    Both engines use :func:`normlab.core._np_kernels.wide_int_sums` (the rare wide case): its limb sums are
    turned into exact Python-int totals per entry, carried in ``s1`` (``sum(x)``) and ``sq0`` (``sum(x**2)``)
    as object arrays, with ``sq1 = sq2 = None``.
    """
    off = (1 << 63) if x3.dtype.kind == "i" else 0
    for X, m, b in chunks(x3, CHUNK_BYTES):
        n = X.shape[0] * m * b
        ls, cs, mnp, mxp = _np_kernels.wide_int_sums(X)
        s1 = np.zeros(k, object)
        s2 = np.zeros(k, object)
        for i, v in enumerate(ls):
            s1 += fold_sum(v, m, k, b).astype(object) << (16 * i)
        for i, v in enumerate(cs):
            s2 += fold_sum(v, m, k, b).astype(object) << (16 * i)
        # back from d = x + off: sum(x) = sum(d) - n off, sum(x**2) = sum(d**2) - 2 off sum(d) + n off**2
        s2 = s2 - 2 * off * s1 + n * off * off
        s1 = s1 - n * off
        mn, mx = fold_min(mnp, m, k, b), fold_max(mxp, m, k, b)
        yield IntPart(n, s1, s2, None, None, mn, mx, None, X, m, b)


def _hist8_part(n: int, h: np.ndarray, lo: int, k: int, X: np.ndarray, m: int, b: int) -> IntPart:
    """The exact sums, min and max of an 8-bit chunk, from its (value-ordered) histogram ``h``."""
    values = np.arange(lo, lo + 256, dtype=np.int64)
    nz = h > 0
    mn = values[np.argmax(nz, axis=1)]
    mx = values[255 - np.argmax(nz[:, ::-1], axis=1)]
    zero = np.zeros(k, np.int64)
    return IntPart(n, h @ values, h @ (values * values), zero, zero, mn, mx, h, X, m, b)


def float_parts(x3: np.ndarray, k: int, engine: str, nan: str):
    """Yield a :class:`FloatPart` per group of chunks of float ``x3`` (:func:`~normlab.core._chunks.blocks`).

    Each group is one call of the engine's one-pass kernel (over its threads when big), merged by
    :func:`normlab.core._np_kernels.block_moments`. A group holding NaN/inf goes chunk by chunk: such chunks
    raise :class:`NonFiniteError` (inf always, NaN with ``nan="raise"``), else go through the masked NumPy
    kernel.
    """
    conv = None if x3.dtype in (np.float32, np.float64) else np.float64
    kern = _kernels(engine)
    for X3, m, b in blocks(x3, _FLOAT_CHUNK_BYTES):
        if conv is not None:
            X3 = X3.astype(conv)
        res = _np_kernels.block_moments(X3, m, k, b, kern)
        if res is not None:
            n, ref, dmean, m2, mn, mx = res
            X = X3.reshape(-1, X3.shape[2])
            yield FloatPart(np.full(k, n, np.int64), ref, dmean, m2, mn, mx, None, X, m, b)
        else:  # NaN or inf somewhere in these chunks: chunk by chunk
            for X in X3:
                yield _float_chunk(x3, X, k, m, b, kern, nan)


def _float_chunk(x3, X, k: int, m: int, b: int, kern, nan: str) -> FloatPart:
    """The :class:`FloatPart` of one chunk that may hold NaN/inf (raises per the ``nan`` policy)."""
    res = kern.float_moments(X, m, k, b)
    if res is None:  # NaN or inf in this chunk
        n_nan = _count_nonfinite(x3, X, m, k, b, nan)
        cnt, ref, dmean, m2, mn, mx = _np_kernels.float_moments_masked(X, m, k, b)
    else:
        ref, dmean, m2, mn, mx = res
        cnt = np.full(k, X.shape[0] * m * b, np.int64)
        n_nan = None
    return FloatPart(cnt, ref, dmean, m2, mn, mx, n_nan, X, m, b)


def _count_nonfinite(x3, X, m: int, k: int, b: int, nan: str) -> np.ndarray:
    """NaN per entry of a chunk; raise :class:`NonFiniteError` per the ``nan`` policy."""
    isnan = np.isnan(X)
    isinf = np.isinf(X)
    n_nan = fold_sum(np.add.reduce(isnan, axis=0, dtype=np.int64), m, k, b)
    n_inf = fold_sum(np.add.reduce(isinf, axis=0, dtype=np.int64), m, k, b)
    if n_inf.any() or (n_nan.any() and nan == "raise"):
        bad = ~np.isfinite(x3)
        first = np.unravel_index(int(np.argmax(bad)), x3.shape)
        tot_nan = int(np.isnan(x3).sum())
        tot_inf = int(bad.sum()) - tot_nan
        raise NonFiniteError(
            nonfinite_message(
                f"StatsAccumulator(nan={nan!r}).update()", tot_nan, tot_inf,
                f"a batch of shape {x3.shape}", first,
            ),
            n_nan=tot_nan,
            n_inf=tot_inf,
            first_index=first,
        )
    return n_nan
