"""The NumPy statistics kernels: exact integer moments, bit-pattern histograms, float moments of a chunk.

Each kernel works on one chunk ``X`` of shape ``(R, L)`` from :func:`normlab.core._chunks.chunks` and is the
twin of the function of the same name and signature in :mod:`normlab.core._numba`, with the same results:

* :func:`int_moments` -- exact per-position sums of values and squares of an integer chunk;
* :func:`wide_int_sums` -- the same for 64-bit chunks whose values need more than 32 bits (both engines);
* :func:`hist` -- per-entry histogram of an 8/16-bit chunk;
* :func:`minmax`, :func:`dev_sums` -- the two passes of the float moments;
* :func:`float_blocks` -- the one-pass float kernel: shifted sums, sums of squares, min and max of many
  chunks (:func:`block_moments` merges them, for both engines);
* :func:`float_moments` -- shifted two-pass moments of a float chunk, folded to entries (one function per
  engine: the float algorithm lives in :func:`shifted_moments`, which both engines run with their passes).

:func:`float_moments_masked` is the NumPy-only variant for chunks holding NaN (``nan="ignore"``).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from normlab.core._chunks import entry_row, expand, fold_max, fold_min, fold_sum
from normlab.core._engine import n_workers, pool, scratch

#: Rows per block for 8-bit data: 256 * 255**2 < 2**24, so float32 sums of values and squares are exact.
ROWS_8BIT = 256
#: Float chunks at least this big (bytes per call) use the worker threads.
PARALLEL_FLOAT_BYTES = 1 << 23
#: Redo a chunk around its refined mean when the shifted sums lose more than 10 bits to cancellation.
_REDO_RATIO = 1024.0


def int_moments(X: np.ndarray, minmax: bool = True):
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
            for r0 in range(0, R, ROWS_8BIT):
                Xb = X[r0 : r0 + ROWS_8BIT]
                F = scratch("f32", Xb.shape, np.float32)
                np.copyto(F, Xb, casting="unsafe")
                s += np.add.reduce(F, axis=0)
                q += np.einsum("ij,ij->j", F, F)
            s, q = s.astype(np.int64), q.astype(np.int64)  # integers below 2**53: exact
        else:
            F = scratch("f64", X.shape, np.float64)
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


#: Bits per limb of a 64-bit value in :func:`wide_int_sums` (four limbs; limb products stay below 2**32).
_LIMB = 16


def wide_int_sums(X: np.ndarray):
    """Exact per-position limb sums of a 64-bit integer chunk ``(R, L)`` with ``R * L <= 2**24``.

    Each value is offset to ``d = x + 2**63`` (int64) or ``d = x`` (uint64), so ``0 <= d < 2**64``, and cut
    into four 16-bit limbs ``d = sum_i l_i 2**(16 i)``. Returns ``(ls, cs, mn, mx)``: ``ls`` the per-position
    sums of the limbs ``(4, L)`` and ``cs`` those of ``c_s = sum_{i+j=s} l_i l_j`` ``(7, L)`` (so
    ``d**2 = sum_s c_s 2**(16 s)``), all uint64 (each ``c_s < 2**34``: no sum of at most ``2**24`` values
    overflows once folded), and the native min/max per position.
    """
    U = X.view(np.uint64)
    if X.dtype.kind == "i":
        U = U ^ np.uint64(1 << 63)
    mask = np.uint64((1 << _LIMB) - 1)
    limbs = [(U >> np.uint64(_LIMB * i)) & mask for i in range(4)]
    ls = np.stack([np.add.reduce(v, axis=0) for v in limbs])
    cs = np.zeros((7, X.shape[1]), np.uint64)
    prod = np.empty_like(limbs[0])
    for i in range(4):
        for j in range(i, 4):
            np.multiply(limbs[i], limbs[j], out=prod)
            cs[i + j] += np.add.reduce(prod, axis=0) * np.uint64(1 if i == j else 2)
    return ls, cs, np.minimum.reduce(X, axis=0), np.maximum.reduce(X, axis=0)


def hist(X: np.ndarray, m: int, k: int, b: int) -> np.ndarray:
    """Histogram of the bit patterns of an 8/16-bit chunk: ``(k, 256)`` or ``(k, 65536)`` int64.

    8-bit data is counted two bytes at a time (one ``bincount`` over 16-bit pairs, then the two marginals),
    which halves the slow part, whenever the pairs' entry pattern is short.
    """
    R, L = X.shape
    ent = entry_row(m, k, b)
    if X.dtype.itemsize == 2:
        idx = scratch("idx", X.shape, np.intp)
        np.copyto(idx, X.view(np.uint16), casting="unsafe")
        if k > 1:
            np.add(idx, ent * 65536, out=idx)
        return np.bincount(idx.ravel(), minlength=k * 65536).reshape(k, 65536)
    U = X.view(np.uint8)
    if L % 2 == 0:
        code = ent[0::2] * k + ent[1::2]
        combos, phase = np.unique(code, return_inverse=True)
        if combos.size <= 8:
            idx = scratch("idx", (R, L // 2), np.intp)
            np.copyto(idx, U.view("<u2"), casting="unsafe")
            if combos.size > 1:
                np.add(idx, phase.reshape(-1) * 65536, out=idx)
            cnt = np.bincount(idx.ravel(), minlength=combos.size * 65536).reshape(
                combos.size, 256, 256
            )
            out = np.zeros((k, 256), np.int64)
            for p, c in enumerate(combos):  # little endian: value = first + 256 * second
                out[c // k] += cnt[p].sum(axis=0)
                out[c % k] += cnt[p].sum(axis=1)
            return out
    idx = scratch("idx", X.shape, np.intp)
    np.copyto(idx, U, casting="unsafe")
    if k > 1:
        np.add(idx, ent * 256, out=idx)
    return np.bincount(idx.ravel(), minlength=k * 256).reshape(k, 256)


def dev_sums(X: np.ndarray, row: np.ndarray):
    """Per-position ``sum(e)`` and ``sum(e * e)`` with ``e = X - row``, summed over rows in row order."""
    E = scratch("dev", X.shape, np.float64)
    np.subtract(X, row, out=E)
    s1 = np.add.reduce(E, axis=0)
    np.multiply(E, E, out=E)
    s2 = np.add.reduce(E, axis=0)
    return s1, s2


def minmax(X: np.ndarray):
    """Per-position min and max over the rows of a chunk."""
    return np.minimum.reduce(X, axis=0), np.maximum.reduce(X, axis=0)


def float_blocks(X3: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:
    """Per chunk and position of float chunks ``X3 (C, R, L)``: ``out[0] = sum(e)``, ``out[1] = sum(e * e)``
    with ``e = x - ref`` (float64, ``ref (C, L)``), rows in order; ``out[2]``, ``out[3]`` the min and max.

    The numba twin adds in the same order, so both engines give the same bits. ``out`` is ``(4, C, L)``
    float64. Big calls split the chunks over the worker threads (:func:`split_chunks`).
    """
    split_chunks(_float_range, X3, ref, out)


def split_chunks(kernel, X3: np.ndarray, ref: np.ndarray, out: np.ndarray) -> None:
    """Run ``kernel(X3, ref, out, c0, c1)`` over contiguous ranges of the chunks of ``X3``, one per worker
    thread when the call is big, else at once. Each chunk's result does not depend on which thread makes
    it or on the split, so the results do not depend on the number of threads."""
    C = X3.shape[0]
    workers = n_workers()
    if workers > 1 and C >= 2 * workers and X3.nbytes >= PARALLEL_FLOAT_BYTES:
        bounds = [C * i // workers for i in range(workers + 1)]
        jobs = [pool().submit(kernel, X3, ref, out, lo, hi) for lo, hi in pairwise(bounds[1:])]
        kernel(X3, ref, out, bounds[0], bounds[1])  # the calling thread takes the first range
        for j in jobs:
            j.result()
    else:
        kernel(X3, ref, out, 0, C)


def _float_range(X3: np.ndarray, ref: np.ndarray, out: np.ndarray, c0: int, c1: int) -> None:
    E = scratch("dev", X3.shape[1:], np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are detected from the sums
        _float_chunks(X3, ref, out, c0, c1, E)


def _float_chunks(X3, ref, out, c0: int, c1: int, E) -> None:
    wide = X3.dtype == np.float64
    for c in range(c0, c1):
        Xc = X3[c]
        if wide:
            np.subtract(Xc, ref[c], out=E)
        else:  # mixed-type loops are slow: widen first (exact), then subtract in float64
            np.copyto(E, Xc)
            np.subtract(E, ref[c], out=E)
        np.add.reduce(E, axis=0, out=out[0, c])
        np.multiply(E, E, out=E)
        np.add.reduce(E, axis=0, out=out[1, c])
        out[2, c] = np.minimum.reduce(Xc, axis=0)  # in the input's dtype (exact), then stored
        out[3, c] = np.maximum.reduce(Xc, axis=0)


def block_moments(X3: np.ndarray, m: int, k: int, b: int, kern):
    """Per-entry ``(n, ref, dmean, m2, mn, mx)`` of float chunks ``X3 (C, R, L)`` in one pass; None on NaN/inf.

    Each chunk's deviations are taken from a reference inside it (the entry's first value in the chunk, so
    ``x - ref`` is exact by Sterbenz's lemma wherever the spread is small against the values), summed with
    their squares in float64 by ``kern.float_blocks`` (min and max in the same pass), and giving
    ``m2 = sum(e**2) - sum(e)**2 / n`` per chunk (the corrected two-pass formula). A chunk that loses more
    than 10 bits to cancellation is redone by :func:`shifted_moments`. The chunks then merge at once with
    Chan's formula in the frame of the first chunk's reference: ``d_c = (ref_c - ref_0) + dmean_c``,
    ``mean = ref_0 + sum(n d_c) / N``, ``m2 = sum(m2_c) + n sum((d_c - dmean)**2)``.
    """
    C, R, L = X3.shape
    first = X3[:, 0, :].reshape(C, m, k, b)[:, 0, :, 0].astype(np.float64)  # (C, k)
    ref_pos = np.broadcast_to(first[:, None, :, None], (C, m, k, b)).reshape(C, L)
    out = np.empty((4, C, L))
    kern.float_blocks(X3, np.ascontiguousarray(ref_pos), out)
    per = out.reshape(4, C, m, k, b)
    with np.errstate(invalid="ignore", over="ignore"):  # over b (skipped when b == 1: the same bits), then m
        s1, s2 = (np.add.reduce(p[..., 0] if b == 1 else np.add.reduce(p, axis=3), axis=1) for p in per[:2])
    if not (np.isfinite(s1).all() and np.isfinite(s2).all()):
        return None
    n = R * m * b
    dmean = s1 / n
    m2 = s2 - s1 * dmean
    # min and max over the chunks first (long contiguous rows), then to entries: exact in any order
    mn = fold_min(np.minimum.reduce(out[2], axis=0), m, k, b)
    mx = fold_max(np.maximum.reduce(out[3], axis=0), m, k, b)
    for c in np.flatnonzero((s2 > _REDO_RATIO * m2).any(axis=1)):
        first[c], dmean[c], m2[c], _, _ = shifted_moments(X3[c], m, k, b, kern.minmax, kern.dev_sums)
    d = (first - first[0]) + dmean
    dm = np.add.reduce(d, axis=0) / C
    m2 = np.add.reduce(np.maximum(m2, 0.0), axis=0) + n * np.add.reduce((d - dm) ** 2, axis=0)
    return C * n, first[0], dm, m2, mn, mx


def float_moments(X: np.ndarray, m: int, k: int, b: int):
    """Per-entry ``(shift, dmean, m2, mn, mx)`` of a float64 chunk, or None if it holds NaN/inf."""
    return shifted_moments(X, m, k, b, minmax, dev_sums)


def shifted_moments(X: np.ndarray, m: int, k: int, b: int, minmax, dev_sums):
    """Shifted two-pass moments of a float chunk ``(R, L)`` from an engine's passes; None on NaN/inf.

    The shift is the midrange of each entry (from the ``minmax`` pass, which also detects NaN/inf); then
    ``e = x - shift``, ``s1 = sum(e)``, ``s2 = sum(e**2)`` (the ``dev_sums`` pass) and (corrected two-pass)
    ``mean = shift + s1 / n``, ``m2 = s2 - s1**2 / n``. If cancellation is large (``s2 > 1024 * m2``) the
    chunk is redone around the refined mean. Returns ``(shift, dmean, m2, mn, mx)`` of shape (k,).
    """
    mnp, mxp = minmax(X)
    mn = fold_min(mnp, m, k, b).astype(np.float64)
    mx = fold_max(mxp, m, k, b).astype(np.float64)
    if not (np.isfinite(mn).all() and np.isfinite(mx).all()):
        return None
    n = X.shape[0] * m * b
    shift = mn * 0.5 + mx * 0.5
    s1p, s2p = dev_sums(X, expand(shift, m, k, b))
    s1, s2 = fold_sum(s1p, m, k, b), fold_sum(s2p, m, k, b)
    dmean = s1 / n
    m2 = s2 - s1 * dmean
    redo = s2 > _REDO_RATIO * m2
    if redo.any():
        shift = np.where(redo, shift + dmean, shift)
        s1p, s2p = dev_sums(X, expand(shift, m, k, b))
        s1, s2 = fold_sum(s1p, m, k, b), fold_sum(s2p, m, k, b)
        dmean = s1 / n
        m2 = s2 - s1 * dmean
    return shift, dmean, np.maximum(m2, 0.0), mn, mx


def float_moments_masked(X: np.ndarray, m: int, k: int, b: int):
    """:func:`float_moments` for a chunk holding NaN (``nan="ignore"``); adds the counts ``(k,)`` first."""
    X = X.astype(np.float64, copy=False)
    valid = ~np.isnan(X)
    cnt = fold_sum(np.add.reduce(valid, axis=0, dtype=np.int64), m, k, b)
    mn = fold_min(np.fmin.reduce(np.where(valid, X, np.inf), axis=0), m, k, b)
    mx = fold_max(np.fmax.reduce(np.where(valid, X, -np.inf), axis=0), m, k, b)
    with np.errstate(invalid="ignore"):
        shift = np.where(cnt > 0, mn * 0.5 + mx * 0.5, 0.0)
    dmean = np.zeros(k)
    m2 = np.zeros(k)
    for _ in range(2):
        E = np.where(valid, X - expand(shift, m, k, b), 0.0)
        s1 = fold_sum(np.add.reduce(E, axis=0), m, k, b)
        np.multiply(E, E, out=E)
        s2 = fold_sum(np.add.reduce(E, axis=0), m, k, b)
        dmean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
        m2 = np.maximum(s2 - s1 * dmean, 0.0)
        redo = s2 > _REDO_RATIO * m2
        if not redo.any():
            break
        shift = np.where(redo, shift + dmean, shift)
    return cnt, shift, dmean, m2, mn, mx
