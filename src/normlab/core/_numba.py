"""Optional compiled kernels (numba), imported lazily; each has a NumPy twin with the same results.

numba is an optional dependency (``pip install 'normlab[fast]'``). Nothing here is imported until a
kernel is first used, compiled kernels are cached on disk (``cache=True``), and the environment
variable ``NORMLAB_ENGINE=numpy`` turns the whole module off. Integer kernels and the transforms give
results identical to their NumPy twins (no ``fastmath``, parallel only across independent outputs), and so
does the one-pass float moments kernel ``float_blocks``: it adds the shifted values row after row as NumPy's
reduce does, so float statistics are bitwise the same on both engines.

The statistics kernels (``int_moments``, ``hist``, ``float_blocks``, ``minmax``, ``dev_sums``,
``float_moments``) have the
names and signatures of their twins in :mod:`normlab.core._np_kernels`; the transform kernels
(``affine_*``) serve :mod:`normlab.core._kernels`. Whether numba is installed, and which engine a job
uses, is decided in :mod:`normlab.core._engine`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normlab.core._chunks import entry_row
from normlab.core._np_kernels import shifted_moments, split_chunks

_STATE: dict[str, Any] = {}
#: Chunks smaller than this run on one thread (a parallel region costs tens of microseconds).
_PARALLEL_MIN_BYTES = 1 << 24


def _k() -> Any:
    """Build (once) and return the namespace of compiled kernels."""
    ns = _STATE.get("kernels")
    if ns is None:
        ns = _build()
        _STATE["kernels"] = ns
    return ns


def _build() -> Any:
    """Compile every kernel (serial and parallel variants) into one namespace."""
    import types

    import numba as nb

    compiled: dict[str, Any] = {}

    def pjit(fn):
        # two compilations of each kernel: serial (no thread wake-ups, for small chunks) and parallel
        compiled[fn.__name__] = nb.njit(cache=True, nogil=True)(fn)
        compiled[fn.__name__ + "_par"] = nb.njit(cache=True, nogil=True, parallel=True)(_twin(fn, "_par"))
        return fn

    for group in (_affine_kernels, _int_kernels, _float_kernels):
        group(pjit, nb.prange)
    return types.SimpleNamespace(**compiled)


def _twin(fn, suffix: str):
    """``fn`` under another qualified name, so that numba caches its compilation apart.

    numba names a cache entry after the function's qualified name and line, not its options: the serial
    and the parallel compilation of one function shared one entry, and whichever a process compiled first
    was loaded for both. A parallel kernel could so run the serial code (measured: the histogram kernel at
    1.5 GB/s where its parallel code reads 2.9, depending on which variant had been called first ever).
    """
    import types

    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + suffix
    twin.__module__ = fn.__module__
    return twin


def _affine_kernels(pjit, prange) -> None:
    """The transform kernels: ``out = f(x)`` per row position."""

    @pjit
    def affine_fma32(x, a, b, out):
        R, L = x.shape
        for i in prange(R):
            for j in range(L):
                out[i, j] = np.float32(x[i, j]) * a[j] + b[j]

    @pjit
    def affine_f64(x, sh, inv, out):
        R, L = x.shape
        for i in prange(R):
            for j in range(L):
                out[i, j] = (np.float64(x[i, j]) - sh[j]) * inv[j]

    @pjit
    def affine_lut(x, base, lut, out):
        R, L = x.shape
        for i in prange(R):
            for j in range(L):
                out[i, j] = lut[base[j] + np.intp(x[i, j])]


def _int_kernels(pjit, prange) -> None:
    """Exact integer moments and bit-pattern histograms, one private partial per thread."""

    @pjit
    def int8_moments(X, T):
        # one fused pass; int32 accumulators (255**2 * 32768 < 2**31) flushed into int64 per position
        R, L = X.shape
        S = np.zeros((T, L), np.int64)
        Q = np.zeros((T, L), np.int64)
        MN = np.empty((T, L), X.dtype)
        MX = np.empty((T, L), X.dtype)
        for t in prange(T):
            r0 = t * R // T
            r1 = (t + 1) * R // T
            s = np.zeros(L, np.int32)
            q = np.zeros(L, np.int32)
            mn = X[min(r0, R - 1)].copy()
            mx = mn.copy()
            c = 0
            for r in range(r0, r1):
                row = X[r]
                for j in range(L):  # two loops over the same row: each vectorizes at its own width
                    w = np.int32(row[j])
                    s[j] += w
                    q[j] += w * w
                for j in range(L):
                    v = row[j]
                    mn[j] = min(mn[j], v)
                    mx[j] = max(mx[j], v)
                c += 1
                if c == 32768:
                    for j in range(L):
                        S[t, j] += s[j]
                        Q[t, j] += q[j]
                        s[j] = 0
                        q[j] = 0
                    c = 0
            for j in range(L):
                S[t, j] += s[j]
                Q[t, j] += q[j]
            MN[t] = mn
            MX[t] = mx
        return S, Q, MN, MX

    @pjit
    def int16_moments(X, T):
        R, L = X.shape
        S = np.zeros((T, L), np.int64)
        Q = np.zeros((T, L), np.int64)
        MN = np.empty((T, L), X.dtype)
        MX = np.empty((T, L), X.dtype)
        for t in prange(T):
            r0 = t * R // T
            r1 = (t + 1) * R // T
            s = np.zeros(L, np.int64)
            q = np.zeros(L, np.int64)
            mn = X[min(r0, R - 1)].copy()
            mx = mn.copy()
            for r in range(r0, r1):
                row = X[r]
                for j in range(L):
                    w = np.int64(row[j])
                    s[j] += w
                    q[j] += w * w
                for j in range(L):
                    v = row[j]
                    mn[j] = min(mn[j], v)
                    mx[j] = max(mx[j], v)
            S[t] = s
            Q[t] = q
            MN[t] = mn
            MX[t] = mx
        return S, Q, MN, MX

    @pjit
    def int32_moments(X, T):
        # x = hi * 2**16 + lo, x**2 = lo**2 + 2**17 * hi * lo + 2**32 * hi**2, every term < 2**32
        R, L = X.shape
        S = np.zeros((T, L), np.int64)
        Q0 = np.zeros((T, L), np.int64)
        Q1 = np.zeros((T, L), np.int64)
        Q2 = np.zeros((T, L), np.int64)
        MN = np.empty((T, L), X.dtype)
        MX = np.empty((T, L), X.dtype)
        for t in prange(T):
            r0 = t * R // T
            r1 = (t + 1) * R // T
            mn = X[min(r0, R - 1)].copy()
            mx = mn.copy()
            for r in range(r0, r1):
                row = X[r]
                for j in range(L):
                    v = row[j]
                    w = np.int64(v)
                    lo = w & 0xFFFF
                    hi = w >> 16
                    S[t, j] += w
                    Q0[t, j] += lo * lo
                    Q1[t, j] += hi * lo
                    Q2[t, j] += hi * hi
                    mn[j] = min(mn[j], v)
                    mx[j] = max(mx[j], v)
            MN[t] = mn
            MX[t] = mx
        return S, Q0, Q1, Q2, MN, MX

    @pjit
    def hist_bits(U, ent, k, nbins, T):
        # U: uint8 or uint16 bit patterns (R, L); ent: entry of each position
        R, L = U.shape
        H = np.zeros((T, k * nbins), np.int64)
        for t in prange(T):
            r0 = t * R // T
            r1 = (t + 1) * R // T
            for r in range(r0, r1):
                row = U[r]
                for j in range(L):
                    H[t, ent[j] * nbins + np.intp(row[j])] += 1
        return H


def _float_kernels(pjit, prange) -> None:
    """The float moments kernels, each adding in the same order as its NumPy twin."""

    @pjit
    def minmax_f(X, T):
        # per position, rows in order; a NaN/inf anywhere makes that position's min NaN
        R, L = X.shape
        mn = np.empty(L, np.float64)
        mx = np.empty(L, np.float64)
        for t in prange(T):
            c0 = t * L // T
            c1 = (t + 1) * L // T
            n = c1 - c0
            lo = np.empty(n, np.float64)
            hi = np.empty(n, np.float64)
            chk = np.zeros(n, np.float64)
            for j in range(n):
                lo[j] = np.float64(X[0, c0 + j])
                hi[j] = lo[j]
            for r in range(R):
                row = X[r, c0:c1]
                for j in range(n):
                    v = np.float64(row[j])
                    chk[j] += v - v
                    lo[j] = min(lo[j], v)
                    hi[j] = max(hi[j], v)
            for j in range(n):
                mn[c0 + j] = lo[j] if chk[j] == 0.0 else np.nan
                mx[c0 + j] = hi[j]
        return mn, mx

    @pjit
    def dev_sums(X, row, T):
        # s1[j] = sum_r (x[r, j] - row[j]), s2[j] = sum_r (x[r, j] - row[j])**2, r ascending
        R, L = X.shape
        s1 = np.empty(L, np.float64)
        s2 = np.empty(L, np.float64)
        for t in prange(T):
            c0 = t * L // T
            c1 = (t + 1) * L // T
            n = c1 - c0
            a = np.empty(n, np.float64)
            q = np.empty(n, np.float64)
            sh = row[c0:c1]
            for j in range(n):
                e = np.float64(X[0, c0 + j]) - sh[j]
                a[j] = e
                q[j] = e * e
            for r in range(1, R):
                xr = X[r, c0:c1]
                for j in range(n):
                    e = np.float64(xr[j]) - sh[j]
                    a[j] += e
                    q[j] += e * e
            s1[c0:c1] = a
            s2[c0:c1] = q
        return s1, s2

    @pjit
    def float_blocks(X3, ref, out):
        # per chunk, one pass: shifted sums and squares added row after row in NumPy's order (so the sums
        # are bitwise those of the NumPy twin), min and max fused in. Four rows per step keep s1[j], s2[j]
        # in registers between rows; min/max are written as compare-and-select (the form of vminpd/vmaxpd),
        # which vectorizes where min()/max() (NaN-propagating branches) does not. A NaN never enters mn/mx
        # this way, but it (or an inf) makes the sums non-finite, which is how the caller detects them.
        # Serial over the chunks: callers split big calls over threads (a prange here does not vectorize
        # the inner loops).
        C, R, L = X3.shape
        R4 = 1 + (R - 1) // 4 * 4
        for c in range(C):
            rc = ref[c].copy()  # private copies: the loops then vectorize
            s1 = np.empty(L, np.float64)
            s2 = np.empty(L, np.float64)
            mn = X3[c, 0].copy()
            mx = mn.copy()
            x0 = X3[c, 0]
            for j in range(L):
                e = np.float64(x0[j]) - rc[j]
                s1[j] = e
                s2[j] = e * e
            for r in range(1, R4, 4):
                x0, x1, x2, x3 = X3[c, r], X3[c, r + 1], X3[c, r + 2], X3[c, r + 3]
                for j in range(L):
                    y0, y1, y2, y3 = x0[j], x1[j], x2[j], x3[j]
                    q = rc[j]
                    e0, e1 = np.float64(y0) - q, np.float64(y1) - q
                    e2, e3 = np.float64(y2) - q, np.float64(y3) - q
                    s1[j] = (((s1[j] + e0) + e1) + e2) + e3
                    s2[j] = (((s2[j] + e0 * e0) + e1 * e1) + e2 * e2) + e3 * e3
                    a, b = (y0 if y0 < y1 else y1), (y2 if y2 < y3 else y3)
                    lo = a if a < b else b
                    a, b = (y0 if y0 > y1 else y1), (y2 if y2 > y3 else y3)
                    hi = a if a > b else b
                    a, b = mn[j], mx[j]
                    mn[j] = lo if lo < a else a
                    mx[j] = hi if hi > b else b
            for r in range(R4, R):
                row = X3[c, r]
                for j in range(L):
                    y = row[j]
                    e = np.float64(y) - rc[j]
                    s1[j] += e
                    s2[j] += e * e
                    a, b = mn[j], mx[j]
                    mn[j] = y if y < a else a
                    mx[j] = y if y > b else b
            out[0, c] = s1
            out[1, c] = s2
            out[2, c] = mn
            out[3, c] = mx


def affine_fma32(x, a, b, out) -> None:
    """``out = float32(x) * a + b`` per row position (float32 arithmetic, no contraction)."""
    _k().affine_fma32(x, a, b, out)


def affine_f64(x, sh, inv, out) -> None:
    """``out = (float64(x) - sh) * inv`` per row position, rounded once to ``out.dtype``."""
    _k().affine_f64(x, sh, inv, out)


def affine_lut(x, base, lut, out) -> None:
    """``out = lut[base + x]`` per row position (8-bit input)."""
    _k().affine_lut(x, base, lut, out)


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def int_moments(X, minmax: bool = True):
    """Exact per-position ``(s1, sq0, sq1, sq2, mn, mx)`` of an integer chunk, like ``_np_kernels.int_moments``.

    Min and max are fused into the one pass, so they are always computed (``minmax`` is accepted for the
    twin's signature).
    """
    T = _row_threads(X)
    if X.dtype.itemsize <= 2:
        S, Q, MN, MX = _get("int8_moments" if X.dtype.itemsize == 1 else "int16_moments", T)(X, T)
        zero = np.zeros(X.shape[1], np.int64)
        return (
            S.sum(0),
            Q.sum(0),
            zero,
            zero,
            MN.min(0).astype(np.int64),
            MX.max(0).astype(np.int64),
        )
    S, Q0, Q1, Q2, MN, MX = _get("int32_moments", T)(X, T)
    return (
        S.sum(0),
        Q0.sum(0),
        Q1.sum(0),
        Q2.sum(0),
        MN.min(0).astype(np.int64),
        MX.max(0).astype(np.int64),
    )


def hist(X, m, k, b):
    """Per-entry histogram of the bit patterns of an 8/16-bit chunk, like ``_np_kernels.hist``."""
    nbins = 256 if X.dtype.itemsize == 1 else 65536
    U = X.view(np.uint8 if nbins == 256 else np.uint16)
    T = _row_threads(X) if k * nbins <= (1 << 20) else 1  # one private histogram per thread
    H = _get("hist_bits", T)(U, entry_row(m, k, b), k, nbins, T)
    return H.sum(0).reshape(k, nbins)


def _row_threads(X) -> int:
    """Threads for a row-split kernel: one unless the chunk amortizes waking the others (a busy machine can
    delay a parallel region by a scheduler tick)."""
    if X.nbytes < _PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(_threads(), X.shape[0]))


def _get(name: str, T: int):
    ns = _k()
    return getattr(ns, name + "_par") if T > 1 else getattr(ns, name)


def minmax(X):
    """Per-position min and max (float64); min is NaN where the column holds NaN or inf."""
    # serial: float chunks are small (their size is shared with NumPy, since it fixes the rounding), so a
    # parallel region per chunk would cost more than it saves
    return _k().minmax_f(X, 1)


def dev_sums(X, row):
    """Per-position ``sum(x - row)`` and ``sum((x - row)**2)``, rows in order (same as NumPy's reduce)."""
    return _k().dev_sums(X, row, 1)


def float_blocks(X3, ref, out) -> None:
    """Shifted sums, sums of squares, min and max of float chunks, like ``_np_kernels.float_blocks`` (the
    same bits); big calls run on the worker threads, one range of chunks each (the kernel releases the GIL)."""
    split_chunks(_float_range, X3, ref, out)


def _float_range(X3, ref, out, c0: int, c1: int) -> None:
    _k().float_blocks(X3[c0:c1], ref[c0:c1], out[:, c0:c1])


def float_moments(X, m: int, k: int, b: int):
    """Per-entry ``(shift, dmean, m2, mn, mx)`` of a float chunk, or None on NaN/inf, like
    ``_np_kernels.float_moments`` (the same algorithm, run with the compiled passes)."""
    return shifted_moments(X, m, k, b, minmax, dev_sums)
