"""Mergeable, exact-where-possible statistics over the ``(a, k, b)`` view of a batch.

Every stateful normalizer reduces its input to the view ``(a, k, b)`` (see :mod:`normlab.core.axes`): one
statistic per ``k`` entry, computed over axes ``a`` and ``b``. :class:`StatsAccumulator` consumes such
batches one at a time (``update``), combines with other accumulators (``merge``), and reports count, mean,
variance, std, min, max and quantiles per entry. Streaming, multiprocessing and Dask are the same code
path: build one accumulator per piece of data, then merge.

How each statistic is computed
------------------------------
* **Integer data** (bool and every integer dtype up to int64/uint64) is summed in integers: per chunk in
  int64 (chunks never overflow), totals as exact Python ints. The sum of squares is exact too (32-bit
  values are split as ``x = hi * 2**16 + lo`` so every partial product fits; 64-bit values that need more
  than 32 bits are cut into four 16-bit limbs, the rare wide case). With
  ``S1 = sum(x)``, ``S2 = sum(x**2)``, ``mean = S1 / n`` and ``var = (n * S2 - S1**2) / n**2`` are formed from
  exact integer numerators, so both are the correctly rounded float64 values of the true mean and
  variance, **bit-identical for any split** of the data into ``update``/``merge`` calls and for either
  engine. float16/32/64 data takes the float path.
* **Float data** (float16/32/64) is accumulated in float64 in one pass over memory, in chunks of 1 MB
  handed to the kernel many at a time: per chunk, deviations ``e = x - ref`` from a reference inside the
  chunk (the entry's first value there) are summed with their squares (a non-finite sum flags NaN/inf), and
  min and max come from the same visit, giving ``mean = ref + sum(e) / n`` and ``m2 = sum(e**2) - sum(e)**2 / n``
  (the corrected two-pass algorithm); a chunk that would lose more than 10 bits to cancellation is redone
  around its refined mean. Chunks and accumulators are combined with the pairwise update of Chan, Golub &
  LeVeque, with means kept as a per-entry reference value plus a small deviation, so data far from 0
  (``1e13 + N(0, 1)``) keeps full relative precision (std relative error about 1e-14 at means up to
  ``2**53``). Any split agrees to about 1e-15 relative; a given split gives the same bits on either
  engine and with any number of threads. Extra memory is O(block), never O(data).
* **Quantiles** (``quantiles=True``): 8-bit integer data keeps a 256-bin histogram per entry, 16-bit integer
  data a 65536-bin one (each while ``k * bins <= 2**22``); quantiles from histograms are exact and equal
  ``np.quantile(..., method="linear")``. Other data keeps its values exactly while at most ``2**22`` values
  are stored in total, then switches to a deterministic mergeable quantile sketch per entry (compactors
  in the style of Manku-Rajagopalan-Lindsay and KLL, with alternating, never random, offsets). The sketch
  tracks a rigorous bound on its rank error, :attr:`StatsAccumulator.quantile_rank_error`: every answer
  ``v`` for a quantile ``q`` satisfies ``#{x < v} <= q (n - 1) + eps n`` and ``#{x <= v} >= q (n - 1) - eps n``.
  With the default budget it is about 1e-4 for tens of millions of values per entry. (The accumulator
  streams; for one array already in memory, ``normlab.stats`` and ``Robust.fit`` select the quantiles
  exactly instead, see :mod:`normlab.core._select`.) The data are never
  silently subsampled.

Engines. With the optional numba package, compiled kernels (:mod:`normlab.core._numba`) do the passes;
otherwise NumPy does, spreading big updates over worker threads (NumPy releases the GIL). Integer
results are identical either way, float results equal to rounding. ``NORMLAB_ENGINE=numpy`` forces NumPy;
``NORMLAB_THREADS=n`` sets the worker count.

Memory is O(k) for the moments, O(k * bins) for histograms, bounded (about 32 MB) for exact quantile
values and ``O(k * cap * log(n))`` for sketches; temporaries are O(chunk), never O(data).

Where the parts live. This module holds the accumulator: its moments (exact integer sums, float64 moments
and Chan's merge), the public properties and ``merge``. Below it, each imported only by the ones above:

* :mod:`normlab.core._engine` -- engine choice, numba availability, the worker threads, scratch buffers;
* :mod:`normlab.core._chunks` -- cutting ``(a, k, b)`` into rows and folding per-position results to entries;
* :mod:`normlab.core._np_kernels` / :mod:`normlab.core._numba` -- the per-chunk kernels, twins by name;
* :mod:`normlab.core._scan` -- one pass over a batch: chunks through one engine's kernels, per-entry parts;
* :mod:`normlab.core._quantiles` -- histograms, exact values and the sketch, as a mergeable store.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

import numpy as np

from normlab.core import _scan
from normlab.core._engine import ENGINES, env_engine, numba_available, resolve_engine
from normlab.core._quantiles import QuantileStore, hist_spec
from normlab.errors import DataTypeError, LayoutError, NonFiniteError, UsageError

__all__ = ["NonFiniteError", "StatsAccumulator"]

#: Flush the running int64 integer sums into exact Python ints before this many values per entry.
_FLUSH_VALUES = 1 << 30

_NAN_POLICIES = ("raise", "ignore")
_KIND_ORDER = {"b": 0, "u": 1, "i": 2, "f": 3}


# --------------------------------------------------------------------------------------------------------
# the moments
# --------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Moments:
    """Per-entry count, extremes and moments of the data summarized so far, all of shape (k,).

    ``mode`` says which representation holds the moments: None (no data yet), ``"int"`` (exact integer
    sums: running int64 parts ``r_*`` over ``r_n`` values per entry plus exact Python-int totals ``t_s1``,
    ``t_s2``; the sum of squares is ``sq0 + sq1 * 2**17 + sq2 * 2**32``) or ``"float"`` (the mean as a
    reference value plus a small deviation, ``ref + dmean``, and ``m2`` the sum of squared deviations).
    Only moments of the same mode add exactly; mixed modes meet in float mode.
    """

    mode: str | None
    count: np.ndarray
    n_nan: np.ndarray
    n_inf: np.ndarray
    min: np.ndarray
    max: np.ndarray
    r_s1: np.ndarray
    r_sq0: np.ndarray
    r_sq1: np.ndarray
    r_sq2: np.ndarray
    r_n: int
    t_s1: np.ndarray
    t_s2: np.ndarray
    ref: np.ndarray
    dmean: np.ndarray
    m2: np.ndarray

    @classmethod
    def empty(cls, k: int) -> _Moments:
        ints = [np.zeros(k, np.int64) for _ in range(7)]
        return cls(
            None, *ints[:3], np.full(k, np.inf), np.full(k, -np.inf), *ints[3:], 0,
            np.zeros(k, object), np.zeros(k, object), np.zeros(k), np.zeros(k), np.zeros(k),
        )  # fmt: skip

    def copy(self) -> _Moments:
        """An independent copy (every array copied)."""
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        return _Moments(**{n: v.copy() if isinstance(v, np.ndarray) else v for n, v in parts.items()})

    def add_int(self, part: _scan.IntPart) -> None:
        """Add the exact sums, count and extremes of an integer chunk (int mode)."""
        if part.sq1 is None:  # a wide part: exact Python-int totals
            self.t_s1 = self.t_s1 + part.s1
            self.t_s2 = self.t_s2 + part.sq0
        else:
            if self.r_n + part.n > _FLUSH_VALUES:
                self.flush()
            self._add_running(part)
        self.count += part.n
        if part.mn is not None:
            self._add_extremes(part.mn, part.mx)

    def _add_running(self, part: _scan.IntPart) -> None:
        self.r_s1 += part.s1
        self.r_sq0 += part.sq0
        self.r_sq1 += part.sq1
        self.r_sq2 += part.sq2
        self.r_n += part.n

    def add_float_part(self, part: _scan.FloatPart) -> None:
        """Add the moments, count, NaN count and extremes of a float chunk (float mode)."""
        if part.n_nan is not None:
            self.n_nan += part.n_nan
        self.add_float(part.count, part.ref, part.dmean, part.m2)
        self.count += part.count
        self._add_extremes(part.mn, part.mx)

    def _add_extremes(self, mn: np.ndarray, mx: np.ndarray) -> None:
        np.minimum(self.min, mn, out=self.min)
        np.maximum(self.max, mx, out=self.max)

    def exact_totals(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``(sum(x), sum(x**2))`` per entry as Python ints (object arrays), int mode."""
        s1 = self.t_s1 + self.r_s1.astype(object)
        s2 = (
            self.t_s2
            + self.r_sq0.astype(object)
            + self.r_sq1.astype(object) * (1 << 17)
            + self.r_sq2.astype(object) * (1 << 32)
        )
        return s1, s2

    def flush(self) -> None:
        """Move the running int64 parts into the exact totals."""
        self.t_s1, self.t_s2 = self.exact_totals()
        self._clear_running()

    def _clear_running(self) -> None:
        for arr in (self.r_s1, self.r_sq0, self.r_sq1, self.r_sq2):
            arr[:] = 0
        self.r_n = 0

    def mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-entry mean and variance (ddof=0), NaN where no value was counted."""
        k = self.count.size
        mean = np.full(k, np.nan)
        var = np.full(k, np.nan)
        if self.mode == "int":
            s1, s2 = self.exact_totals()
            for i in range(k):
                n = int(self.count[i])
                if n:
                    mean[i] = int(s1[i]) / n  # int / int is correctly rounded
                    var[i] = (n * int(s2[i]) - int(s1[i]) ** 2) / (n * n)
        elif self.mode == "float":
            ok = self.count > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(ok, self.ref + self.dmean, np.nan)
                var = np.where(ok, self.m2 / np.maximum(self.count, 1), np.nan)
        return mean, var

    def to_float(self) -> None:
        """Convert exact integer moments into the float representation (correctly rounded)."""
        if self.mode == "float":
            return
        if self.mode == "int":
            s1, s2 = self.exact_totals()
            for i in range(self.count.size):
                n = int(self.count[i])
                if n:
                    mean = Fraction(int(s1[i]), n)
                    self.ref[i] = float(mean)
                    self.dmean[i] = float(mean - Fraction(self.ref[i]))
                    self.m2[i] = (n * int(s2[i]) - int(s1[i]) ** 2) / n
            self.t_s1 = np.zeros(self.count.size, object)
            self.t_s2 = np.zeros(self.count.size, object)
            self._clear_running()
        self.mode = "float"

    def add_float(self, n: np.ndarray, ref: np.ndarray, dmean: np.ndarray, m2: np.ndarray) -> None:
        """Merge per-entry float moments ``(n, ref + dmean, m2)`` into these (float mode); not the count."""
        old_n = self.count.astype(np.float64)
        new_n = np.asarray(n, np.float64)
        first = (self.count == 0) & (new_n > 0)
        # entries seen for the first time adopt the new reference value
        self.ref = np.where(first, ref, self.ref)
        self.dmean = np.where(first, 0.0, self.dmean)
        updated_n = old_n + new_n
        # the new mean in this accumulator's frame: (ref - self.ref) is exact for nearby values
        new_mean = (ref - self.ref) + dmean
        old_mean = self.dmean
        with np.errstate(invalid="ignore", divide="ignore"):
            # Chan, Golub & LeVeque (1979), pairwise update of mean and sum of squared deviations
            delta = new_mean - old_mean
            frac = np.where(updated_n > 0, new_n / updated_n, 0.0)
            updated_mean = old_mean + delta * frac
            updated_m2 = self.m2 + m2 + delta * delta * old_n * frac
        use = new_n > 0
        dmean = np.where(use, updated_mean, self.dmean)
        self.m2 = np.where(use, updated_m2, self.m2)
        # re-center the reference on the current mean, so drifting data keeps small deviations
        new_ref = self.ref + dmean
        ok = np.isfinite(new_ref)
        self.dmean = np.where(ok, dmean - (new_ref - self.ref), dmean)
        self.ref = np.where(ok, new_ref, self.ref)

    def merge(self, other: _Moments) -> None:
        """Add ``other`` (not empty, ``other`` unchanged) to these non-empty moments, in place."""
        if self.mode == "int" and other.mode == "int":
            o1, o2 = other.exact_totals()
            self.flush()
            self.t_s1 = self.t_s1 + o1
            self.t_s2 = self.t_s2 + o2
        else:
            if other.mode == "int":
                other = other.copy()
                other.to_float()
            self.to_float()
            self.add_float(other.count, other.ref, other.dmean, other.m2)
        self.count += other.count
        self._add_extremes(other.min, other.max)
        self.n_nan += other.n_nan
        self.n_inf += other.n_inf


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
        ``"auto"``: compiled kernels (numba, optional) when numba is installed and the job is 8 MiB or more:
        the updates so far, or ``job_bytes``, so that many small updates of one big dataset run compiled
        too; NumPy otherwise. Results are identical either way. The environment variable
        ``NORMLAB_ENGINE=numpy`` forces NumPy everywhere (``=numba`` forces the compiled kernels).
    job_bytes : int, default 0
        The size in bytes of all the data this accumulator is one part of, when known (each chunk's
        accumulator of a Dask array gets the array's size), for ``engine="auto"``.

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
        job_bytes: int = 0,
    ):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise UsageError(
                f"StatsAccumulator(k={k!r}) needs a positive integer number of entries; expected e.g. k=3 "
                "for three channels. Pass the size of the kept axis of the (a, k, b) view."
            )
        if histogram not in ("auto", True, False):
            raise UsageError(
                f"StatsAccumulator(histogram={histogram!r}) is not valid; expected 'auto', True or False."
            )
        if nan not in _NAN_POLICIES:
            raise UsageError(
                f"StatsAccumulator(nan={nan!r}) is not valid; expected 'raise' or 'ignore'."
            )
        if engine not in ENGINES:
            raise UsageError(
                f"StatsAccumulator(engine={engine!r}) is not valid; expected 'auto', 'numpy' or 'numba'."
            )
        if engine == "numba" and env_engine() != "numpy" and not numba_available():
            raise UsageError(
                "StatsAccumulator(engine='numba') needs the optional numba package, which is not "
                "installed; expected engine='auto' or 'numpy'. Install it with pip install 'normlab[fast]'."
            )
        if isinstance(job_bytes, bool) or not isinstance(job_bytes, (int, np.integer)) or job_bytes < 0:
            raise UsageError(
                f"StatsAccumulator(job_bytes={job_bytes!r}) is not valid; expected the size in bytes of all the "
                "data this accumulator is part of (0 when unknown)."
            )
        self.k = int(k)
        self.quantiles = bool(quantiles)
        self._histogram = histogram
        self.nan = nan
        self.engine = engine
        self.job_bytes = int(job_bytes)
        self._seen = 0
        self._reset()

    # ---------------------------------------------------------------- state
    def _reset(self) -> None:
        self._kind: str | None = None
        self._moments = _Moments.empty(self.k)
        self._store = QuantileStore(self.k, ignore_nan=self.nan == "ignore")
        self._cache: dict[str, Any] = {}

    def _empty_like(self) -> StatsAccumulator:
        """A fresh accumulator with this one's settings (no validation: they are valid)."""
        new = StatsAccumulator.__new__(StatsAccumulator)
        new.k, new.quantiles, new._histogram = self.k, self.quantiles, self._histogram
        new.nan, new.engine = self.nan, self.engine
        new.job_bytes, new._seen = self.job_bytes, 0
        new._reset()
        return new

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __setstate__(self, state):
        self.job_bytes, self._seen = 0, 0  # pickled before the job's size was kept
        self.__dict__.update(state)

    # ---------------------------------------------------------------- public properties
    @property
    def count(self) -> np.ndarray:
        return self._moments.count.copy()

    @property
    def n_nan(self) -> np.ndarray:
        return self._moments.n_nan.copy()

    @property
    def n_inf(self) -> np.ndarray:
        return self._moments.n_inf.copy()

    @property
    def is_empty(self) -> bool:
        return self._kind is None

    @property
    def input_kind(self) -> str | None:
        return self._kind

    @property
    def min(self) -> np.ndarray:
        return np.where(self._moments.count > 0, self._moments.min, np.nan)

    @property
    def max(self) -> np.ndarray:
        return np.where(self._moments.count > 0, self._moments.max, np.nan)

    @property
    def mean(self) -> np.ndarray:
        return self._mean_var()[0].copy()

    @property
    def var(self) -> np.ndarray:
        return self._mean_var()[1].copy()

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._mean_var()[1])

    @property
    def quantile_rank_error(self) -> float:
        """Bound on the rank error of :meth:`quantile`, as a fraction of ``count`` (0.0 when exact)."""
        return self._store.rank_error

    def _mean_var(self) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get("moments")
        if cached is None:
            cached = self._cache["moments"] = self._moments.mean_var()
        return cached

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
        batch = self._empty_like()
        # the engine is chosen for the job (the updates so far, or job_bytes), not for this batch alone
        batch._consume(x3, max(self.job_bytes, self._seen + x3.nbytes))
        self._seen += x3.nbytes
        self.merge(batch)
        return self

    def _consume(self, x3: np.ndarray, job_bytes: int) -> None:
        """Accumulate ``x3`` into this (fresh) accumulator, the engine chosen for ``job_bytes``."""
        kind = x3.dtype.kind
        if kind == "b":
            x3 = x3.view(np.uint8)
        engine = resolve_engine(self.engine, job_bytes)
        wide = False
        if kind in "iu" and x3.dtype.itemsize == 8:
            wide = not (bool(x3.min() >= -(1 << 31)) and bool(x3.max() < (1 << 31)))
            if not wide:  # values fit in 32 bits: the fast exact path, on an int64 view
                x3 = x3.astype(np.int64, copy=False)
        self._kind = kind
        mom, store = self._moments, self._store
        if wide:
            mom.mode = "int"
            store.start(None, self.quantiles)
            for part in _scan.wide_int_parts(x3, self.k):
                mom.add_int(part)
                if store.keeps_values:
                    store.add_values(part.X, part.m, part.b)
        elif kind in "biu":
            mom.mode = "int"
            want_hist = self._histogram is True or (self._histogram == "auto" and self.quantiles)
            spec = hist_spec(x3.dtype, self.k, want_hist)
            store.start(spec, self.quantiles)
            bounds = (0, 1) if kind == "b" else (np.iinfo(x3.dtype).min, np.iinfo(x3.dtype).max)
            for part in _scan.int_parts(x3, self.k, engine, spec, bounds):
                mom.add_int(part)
                if part.hist is not None:
                    store.hist += part.hist
                elif store.keeps_values:
                    store.add_values(part.X, part.m, part.b)
        else:
            mom.mode = "float"
            store.start(None, self.quantiles)
            for fpart in _scan.float_parts(x3, self.k, engine, self.nan):
                mom.add_float_part(fpart)
                if store.keeps_values:
                    store.add_values(fpart.X, fpart.m, fpart.b)
        store.flush_pending()

    # ---------------------------------------------------------------- merge
    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Add the data summarized by ``other`` (same ``k``) to this accumulator, in place. Returns ``self``."""
        if not isinstance(other, StatsAccumulator):
            raise UsageError(
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
            raise UsageError(
                "StatsAccumulator(quantiles=True).merge() received an accumulator built with quantiles=False; "
                "expected both to keep quantile data. Build every part with quantiles=True."
            )
        self._cache.clear()
        was_empty = self.is_empty
        kinds = [c for c in (self._kind, other._kind) if c is not None]
        self._kind = max(kinds, key=_KIND_ORDER.__getitem__)
        if self._moments.mode is None:
            self._moments = other._moments.copy()
        else:
            self._moments.merge(other._moments)
        if self.quantiles:
            self._store.merge(other._store)
        elif self._histogram is True:
            self._store.merge_histogram_only(other._store, was_empty)
        return self

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
            raise UsageError(
                "StatsAccumulator.quantile() needs quantile data, but the accumulator was built with "
                "quantiles=False; expected StatsAccumulator(k, quantiles=True). Rebuild it with quantiles=True."
            )
        qs = np.asarray(q, dtype=np.float64)
        scalar = qs.ndim == 0
        qs = np.atleast_1d(qs).ravel()
        if not np.all((qs >= 0) & (qs <= 1)):
            raise UsageError(
                f"StatsAccumulator.quantile() received q={q!r}; expected values in [0, 1]."
            )
        out = self._store.quantile(qs, self._moments.count)
        return out[0] if scalar else out

    def histogram(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return ``(values, counts)`` of the integer histogram: values ``(nbins,)``, counts ``(k, nbins)``.

        None when no histogram is kept (float data, wide integers, or ``histogram=False``).
        """
        return self._store.histogram()

    def __repr__(self) -> str:
        count = int(self._moments.count.max())
        state = "empty" if self.is_empty else f"kind={self._kind!r}, count={count}"
        return (
            f"StatsAccumulator(k={self.k}, quantiles={self.quantiles}, nan={self.nan!r}; {state})"
        )
