"""The transform kernel: ``y = (x - shift) * inv_scale``, fast and without temporaries.

Every stateful normalizer applies itself through :func:`affine_transform`. Parameters vary only along the
kept axes (1 on reduced axes), so a C-contiguous ``x`` is viewed as ``(rows, row_len)`` with one fixed row
of parameters: the parameter block is tiled until a row holds a few thousand elements (broadcasting a
length-3 vector over the innermost axis would run NumPy's inner loop 3 elements at a time), and the work
proceeds in cache-sized blocks of rows, writing straight into ``out``.
"""

from __future__ import annotations

from itertools import pairwise
from math import prod

import numpy as np

from normlab.core._engine import n_workers, pool, resolve_engine
from normlab.errors import DataTypeError, LayoutError

__all__ = ["affine_transform"]

#: Rows are made at least this long (elements) by tiling the parameter block.
_ROW_TARGET = 2048
#: Elements processed per block (fits the L2 cache with its float64 scratch).
_BLOCK = 1 << 16
#: Slab size (bytes of float64 work) for non-contiguous input and per-sample parameters.
_SLAB_BYTES = 1 << 22
#: Outputs at least this big use the worker threads on the NumPy path.
_PARALLEL_BYTES = 1 << 23


def _use_numba(nbytes: int) -> bool:
    """Compiled kernels for outputs of at least ``_engine.NUMBA_MIN_BYTES`` when numba is installed (same
    results; small calls never wait for a first compilation).

    ``NORMLAB_ENGINE=numpy`` turns them off, ``NORMLAB_ENGINE=numba`` uses them whatever the size.
    """
    return resolve_engine("auto", nbytes) == "numba"


def affine_transform(x, shift, inv_scale, *, out=None, dtype=np.float32, exact=False):
    """Return ``(x - shift) * inv_scale`` as ``dtype``, written into ``out`` when given.

    Parameters
    ----------
    x : ndarray, shape (n, ...)
        Bool, integer or float data. Never modified.
    shift, inv_scale : array_like of float64
        Broadcastable to ``x.shape`` (1 on reduced axes, e.g. ``(1, 1, 1, c)`` for per-channel statistics of
        ``(n, h, w, c)`` data).
    out : ndarray, optional
        Output of shape ``x.shape`` and a floating dtype; its dtype wins over ``dtype``. Reusing one ``out``
        buffer across batches avoids all allocation.
    dtype : floating dtype, default float32
    exact : bool, default False
        For 8/16-bit integer input and float32/float16 output, the fast path computes
        ``x * inv_scale + (-shift * inv_scale)`` in float32 (error a few float32 ulps). ``exact=True``
        computes ``(x - shift) * inv_scale`` in float64 and rounds once to ``dtype`` (for 8-bit input via a
        256-entry lookup table per parameter pair, built in float64). Float and wider integer input always
        takes the accurate path: subtract first, in float64.

    Returns
    -------
    ndarray of ``dtype``, shape ``x.shape``

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[0, 128, 255]]], dtype=np.uint8)          # (n, w, c)
    >>> affine_transform(x, np.array([0.0, 0.0, 255.0]), np.array([1 / 255, 1 / 255, 1.0]))
    array([[[0.       , 0.5019608, 0.       ]]], dtype=float32)
    """
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataTypeError(
            f"affine_transform() received dtype {x.dtype}; expected bool, integer or real floating-point data. "
            "Convert the array with x.astype(np.float32) first."
        )
    if x.dtype.kind == "b":
        x = x.view(np.uint8)
    shift = np.asarray(shift, dtype=np.float64)
    inv_scale = np.asarray(inv_scale, dtype=np.float64)
    try:
        bshape = np.broadcast_shapes(x.shape, shift.shape, inv_scale.shape)
    except ValueError:
        bshape = None
    if bshape != x.shape:
        raise LayoutError(
            f"affine_transform() received x of shape {x.shape} with shift {shift.shape} and inv_scale "
            f"{inv_scale.shape}; expected parameters broadcastable to x (1 on reduced axes). Use the "
            "normalizer's affine_() shapes, e.g. (1, 1, 1, c) for per-channel statistics."
        )
    if out is None:
        out_dtype = np.dtype(dtype)
        if out_dtype.kind != "f":
            raise DataTypeError(
                f"affine_transform(dtype={out_dtype}) must be a floating dtype, e.g. np.float32."
            )
        out = np.empty(x.shape, out_dtype)
    else:
        if not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype.kind != "f":
            raise LayoutError(
                f"affine_transform() received out of shape {getattr(out, 'shape', None)} and dtype "
                f"{getattr(out, 'dtype', None)}; expected a floating array of shape {x.shape}. Allocate it "
                "with np.empty(x.shape, np.float32)."
            )
        if np.may_share_memory(x, out) and not (
            out.__array_interface__["data"][0] == x.__array_interface__["data"][0]
            and out.strides == x.strides
        ):
            raise LayoutError(
                "affine_transform() received an out buffer that partly overlaps x; expected separate memory "
                "(or exactly x itself). Pass a fresh buffer."
            )
    if x.size == 0:
        return out

    nd = x.ndim
    sp = shift.reshape((1,) * (nd - shift.ndim) + shift.shape)
    ip = inv_scale.reshape((1,) * (nd - inv_scale.ndim) + inv_scale.shape)
    per_sample = sp.shape[0] > 1 or ip.shape[0] > 1
    nb = out.dtype in (np.float32, np.float64) and _use_numba(out.nbytes)
    if per_sample or not (x.flags.c_contiguous and out.flags.c_contiguous):
        _affine_slabs(x, sp, ip, out, exact, per_sample, nb)
    else:
        _affine_contiguous(x, sp, ip, out, exact, nb)
    return out


def _affine_contiguous(x, sp, ip, out, exact, nb) -> None:
    """C-contiguous ``x`` and ``out``; parameters constant along axis 0.

    With ``j`` the first axis along which a parameter varies, ``x`` is ``(R, T)`` with ``T = prod(shape[j:])``
    and one parameter row of length ``T`` (at most one sample's worth).
    """
    nd = x.ndim
    j = nd
    for ax in range(nd):
        if sp.shape[ax] > 1 or ip.shape[ax] > 1:
            j = ax
            break
    tail = x.shape[j:]
    T = prod(tail)
    R = prod(x.shape[:j])
    sh_row = np.broadcast_to(sp.reshape(sp.shape[j:]), tail).ravel()
    inv_row = np.broadcast_to(ip.reshape(ip.shape[j:]), tail).ravel()
    x2 = x.reshape(R, T)
    o2 = out.reshape(R, T)
    m = 1 if T >= _ROW_TARGET else min(R, -(-_ROW_TARGET // T))
    main = (R // m) * m
    if main:
        _affine_split(
            x2[:main].reshape(main // m, m * T),
            np.tile(sh_row, m),
            np.tile(inv_row, m),
            o2[:main].reshape(main // m, m * T),
            exact,
            T,
            nb,
        )
    if main < R:
        _affine_rows(x2[main:], sh_row, inv_row, o2[main:], exact, T, nb)


def _affine_slabs(x, sp, ip, out, exact, per_sample, nb) -> None:
    """Non-contiguous arrays or per-sample parameters: work through slabs of samples (O(slab) memory).

    Slabs of a non-contiguous ``x`` are copied and take the contiguous path; parameters that vary along
    axis 0 are applied by broadcasting per slab with the same arithmetic. Either way the result equals what
    the contiguous path gives for the same values and parameters.
    """
    n = x.shape[0]
    per_row = max(1, (x.size // max(n, 1)) * 8)
    rows = max(1, _SLAB_BYTES // per_row)
    for i0 in range(0, n, rows):
        i1 = min(n, i0 + rows)
        xs = x[i0:i1]
        os_ = out[i0:i1]
        if per_sample:
            ps = sp[i0:i1] if sp.shape[0] > 1 else sp
            qs = ip[i0:i1] if ip.shape[0] > 1 else ip
            _affine_broadcast(xs, ps, qs, os_, exact)
            continue
        xs = np.ascontiguousarray(xs)
        if os_.flags.c_contiguous:
            _affine_contiguous(xs, sp, ip, os_, exact, nb)
        else:
            tmp = np.empty(xs.shape, out.dtype)
            _affine_contiguous(xs, sp, ip, tmp, exact, nb)
            np.copyto(os_, tmp)


def _affine_broadcast(xs, ps, qs, os_, exact) -> None:
    """Plain broadcasting with the same arithmetic as :func:`_affine_rows` (so results never depend on the
    path): float32 ``x * a + b`` for the fast small-integer mode, else float64 and one rounding."""
    if xs.dtype.kind in "iu" and xs.dtype.itemsize <= 2 and not exact and os_.dtype != np.float64:
        tmp = xs.astype(np.float32)
        np.multiply(tmp, qs.astype(np.float32), out=tmp)
        np.add(tmp, (-ps * qs).astype(np.float32), out=tmp)
    else:
        tmp = np.subtract(xs, ps, dtype=np.float64)
        np.multiply(tmp, qs, out=tmp)
    np.copyto(os_, tmp, casting="same_kind")


def _lut_index(sh_row: np.ndarray, inv_row: np.ndarray, period: int):
    """Unique (shift, inv_scale) pairs of a row and each position's pair index (within one period)."""
    pairs = np.stack([sh_row[:period], inv_row[:period]], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    return uniq, inverse.reshape(-1)


def _affine_split(x2, sh_row, inv_row, o2, exact, period, nb) -> None:
    """Run :func:`_affine_rows` on row ranges in the worker threads when the NumPy path has a big job.

    The transform is elementwise, so splitting rows never changes a result; NumPy releases the GIL inside
    its loops, so the threads run in parallel.
    """
    workers = n_workers()
    R = x2.shape[0]
    if workers < 2 or o2.nbytes < _PARALLEL_BYTES or R < 2 * workers or nb:
        _affine_rows(x2, sh_row, inv_row, o2, exact, period, nb)
        return
    bounds = [R * i // workers for i in range(workers + 1)]
    futures = [
        pool().submit(_affine_rows, x2[lo:hi], sh_row, inv_row, o2[lo:hi], exact, period, nb)
        for lo, hi in pairwise(bounds)
    ]
    for f in futures:
        f.result()


def _affine_rows(x2, sh_row, inv_row, o2, exact, period, nb) -> None:
    """Transform ``x2 (R, L)`` into ``o2 (R, L)`` with per-position parameters ``(L,)``.

    The NumPy paths work on blocks of rows that fit the cache, with the parameters pre-expanded to a full
    block: NumPy's in-place SIMD loops then run at full speed, and the only allocations are O(block).
    """
    R, L = x2.shape
    odt = o2.dtype
    small_int = x2.dtype.kind in "iu" and x2.dtype.itemsize <= 2
    numba_ok = nb
    rb = max(1, min(R, _BLOCK // L))
    if small_int and exact and x2.dtype.itemsize == 1 and odt != np.float64 and numba_ok:
        # float64-built lookup table per (shift, inv_scale) pair
        from normlab.core import _numba

        uniq, inverse = _lut_index(sh_row, inv_row, period)
        values = np.arange(256, dtype=np.float64) - (128 if x2.dtype.kind == "i" else 0)
        lut = ((values[None, :] - uniq[:, :1]) * uniq[:, 1:]).astype(odt)  # (P, 256)
        base = np.tile(inverse * 256 + (128 if x2.dtype.kind == "i" else 0), L // period).astype(
            np.intp
        )
        _numba.affine_lut(x2, base, lut.ravel(), o2)
        return
    if small_int and odt != np.float64 and not exact:
        # fast: x * a + b in float32 (the integer converts exactly; then two roundings)
        a = inv_row.astype(np.float32)
        b = (-sh_row * inv_row).astype(np.float32)
        if numba_ok:
            from normlab.core import _numba

            _numba.affine_fma32(x2, a, b, o2)
            return
        A = np.tile(a, (rb, 1))
        B = np.tile(b, (rb, 1))
        tmp = None if odt == np.float32 else np.empty((rb, L), np.float32)
        for r0 in range(0, R, rb):
            xb = x2[r0 : r0 + rb]
            n = xb.shape[0]
            tb = o2[r0 : r0 + rb] if tmp is None else tmp[:n]
            np.copyto(tb, xb, casting="unsafe")
            np.multiply(tb, A[:n], out=tb)
            np.add(tb, B[:n], out=tb)
            if tmp is not None:
                np.copyto(o2[r0 : r0 + rb], tb, casting="same_kind")
        return
    # accurate: (x - shift) * inv_scale in float64, one rounding to the output dtype
    if numba_ok:
        from normlab.core import _numba

        _numba.affine_f64(x2, sh_row, inv_row, o2)
        return
    SH = np.tile(sh_row, (rb, 1))
    INV = np.tile(inv_row, (rb, 1))
    tmp = None if odt == np.float64 else np.empty((rb, L), np.float64)
    for r0 in range(0, R, rb):
        xb = x2[r0 : r0 + rb]
        n = xb.shape[0]
        tb = o2[r0 : r0 + rb] if tmp is None else tmp[:n]
        np.copyto(tb, xb, casting="unsafe")
        np.subtract(tb, SH[:n], out=tb)
        np.multiply(tb, INV[:n], out=tb)
        if tmp is not None:
            np.copyto(o2[r0 : r0 + rb], tb, casting="same_kind")
