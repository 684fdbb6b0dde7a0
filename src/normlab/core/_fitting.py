"""Turning user input into validated arrays and feeding statistics: shared by normalizers and ``normlab.stats``.

One path for every kind of input: an array or array-like is one batch; a generator, a DataLoader, a
``normlab.data`` dataset or any other iterable is a stream of batches (arrays or ``(x, y)`` pairs). Each
batch is validated, its layout resolved against the first batch, and viewed as ``(a, k, b)`` for the
accumulator. Nothing here copies data that is already a C-contiguous numeric array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from math import prod
from typing import Any

import numpy as np

from normlab._progress import Progress
from normlab.core._batches import as_batches, convention_channel_axis
from normlab.core._hooks import collection_feeder
from normlab.core._quantiles import EXACT_QUANTILE_BUDGET
from normlab.core._select import exact_quantiles, piece_passes, select_quantiles, selects
from normlab.core.axes import Layout, check_guessed_channel_axis, resolve_layout
from normlab.core.stats import StatsAccumulator
from normlab.errors import (
    DataError,
    DataTypeError,
    LayoutError,
    NonFiniteError,
    UsageError,
    nonfinite_message,
)

__all__ = ["PinnedQuantiles", "StatsFeed", "as_array", "is_batch_stream", "is_one_array", "iter_input", "rereader"]


def _is_sparse(x: Any) -> bool:
    mod = type(x).__module__ or ""
    return mod.startswith("scipy.sparse") or (hasattr(x, "tocsr") and hasattr(x, "nnz"))


def is_batch_stream(x: Any) -> bool:
    """True when ``x`` is a stream of batches rather than one array-like.

    Arrays, lists, tuples and objects with ``__array__`` are one batch; datasets with ``iter_batches`` and
    any other iterable (generators, DataLoaders, ``map(...)``) are streams.
    """
    if isinstance(x, (np.ndarray, list, tuple, str, bytes)) or np.isscalar(x):
        return False
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__") or _is_sparse(x):
        return False
    if hasattr(x, "columns") and hasattr(x, "dtypes"):  # a DataFrame iterates over column names
        return False
    return hasattr(x, "iter_batches") or isinstance(x, Iterable)


def as_array(x: Any, who: str) -> np.ndarray:
    """Validate one batch and return it as a NumPy array of a real numeric dtype (never modified)."""
    if isinstance(x, (tuple, list)) and len(x) == 2 and not np.isscalar(x[0]) and _looks_like_xy(x):
        x = x[0]
    if _is_sparse(x):
        raise DataTypeError(
            f"{who} received a sparse matrix of type {type(x).__name__}; sparse input is not supported, "
            "since centering would make it dense. Convert it with x.toarray() if it fits in memory."
        )
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise DataTypeError(
                f"{who} received an object array that is not all numbers ({err}); expected a numeric array. "
                "Convert or drop the non-numeric entries first."
            ) from err
    elif kind == "c":
        raise DataTypeError(
            f"Complex data not supported: {who} received dtype {arr.dtype}; expected real numbers. Normalize the real "
            "and imaginary parts separately, e.g. np.stack([x.real, x.imag], axis=-1)."
        )
    elif kind not in "biuf":
        raise DataTypeError(
            f"{who} received an array of dtype {arr.dtype}; expected numbers (bool, integer or float). "
            "Encode text or categorical columns as numbers first, or drop them."
        )
    if arr.size == 0:
        what = "sample(s)" if arr.ndim == 0 or arr.shape[0] == 0 else "feature(s)"
        raise DataError(
            f"{who} found 0 {what} (shape={arr.shape}) while a minimum of 1 is required; expected at least "
            "one sample with at least one value. Check the data source or the split you selected."
        )
    return arr


def check_finite(x: np.ndarray, who: str) -> None:
    """Raise a located error if float ``x`` holds NaN or inf (one fast pass: a sum, then a detailed look)."""
    if x.dtype.kind != "f" or np.isfinite(np.add.reduce(x, axis=None, dtype=np.float64)):
        return
    bad = ~np.isfinite(x)
    if not bad.any():  # the sum overflowed, the values are fine
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
    raise NonFiniteError(
        nonfinite_message(who, n_nan, n_inf, f"input of shape {x.shape}", first),
        n_nan=n_nan,
        n_inf=n_inf,
        first_index=first,
    )


def _looks_like_xy(pair: Any) -> bool:
    """``(x, y)`` from a data loader: two array-likes whose first axes agree (or y is None)."""
    x, y = pair
    if y is None:
        return True
    nx = getattr(x, "shape", (None,))[:1]
    ny = getattr(y, "shape", (None,))[:1]
    return bool(nx and ny and nx == ny and nx[0] is not None and getattr(x, "ndim", 0) > getattr(y, "ndim", 0))


def iter_input(
    x: Any, who: str, *, split: str | None = None, batch_size: int | None = None
) -> Iterator[np.ndarray]:
    """Yield validated batches from one array-like or a stream of batches.

    A ``normlab.data`` dataset (anything with ``iter_batches``) streams its ``split``; progress is then
    counted in samples against the dataset's size, otherwise in batches (against ``len()`` if known).
    A collection registered in :mod:`normlab.core._hooks` (Dask) is passed through as is: :class:`StatsFeed`
    hands it to its bridge, which accumulates it chunk by chunk where its data live, never as one array.
    """
    if collection_feeder(x) is not None:
        yield x
        return
    x = as_batches(x, batch_size)  # torch/Keras datasets -> batches; imports no framework
    if not is_batch_stream(x):
        yield as_array(x, who)
        return
    total: int | None = None
    unit = "batches"
    if hasattr(x, "iter_batches"):
        stream = x.iter_batches(batch_size=batch_size, split=split)
        total = x.num_samples(split) if hasattr(x, "num_samples") else None
        unit = "samples"
    else:
        stream = x
        try:
            total = len(stream)  # type: ignore[arg-type]
        except TypeError:
            pass
    n = 0
    with Progress(total=total, desc=who, unit=unit) as bar:
        for batch in stream:
            if collection_feeder(batch) is not None:
                yield batch
                n += 1
                continue
            arr = as_array(batch, who)
            yield arr
            n += 1
            bar.update(len(arr) if unit == "samples" else 1)
    if n == 0:
        raise DataError(f"{who} received a stream with no batches; expected at least one batch of samples.")


def is_one_array(x: Any) -> bool:
    """True when ``x`` is one array-like in memory (not a stream, not a Dask collection): it can be read
    again, so its quantiles can be selected exactly in a few passes."""
    return collection_feeder(x) is None and not is_batch_stream(as_batches(x, None))


def rereader(x: Any, who: str, *, split: str | None = None,
             batch_size: int | None = None) -> Callable[[], Iterator[np.ndarray]] | None:
    """How to read the stream ``x`` again at about the speed of memory, or None where that costs more.

    A ``normlab.data`` dataset with more values than the exact store keeps (``2**22``) whose split is in
    memory or memory-mapped (``.npy``, uncompressed ``.npz`` and IDX files, bundled data:
    ``dataset.rereads_fast(split)``) can be read a few more times for exact quantiles; a decoded or parsed
    source (CSV, Parquet, images), a generator or a DataLoader (which may shuffle or augment) cannot, and
    keeps the one-pass sketch.
    """
    if collection_feeder(x) is not None:
        return None  # a Dask collection selects on its workers (its bridge runs the passes there)
    fast = getattr(x, "rereads_fast", None)
    if not callable(fast) or not hasattr(x, "iter_batches") or not fast(split):
        return None
    nbytes = x.nbytes(split)
    if nbytes is not None and nbytes // np.dtype(x.dtype).itemsize <= EXACT_QUANTILE_BUDGET:
        return None  # the one-pass store keeps every value: exact already
    return lambda: (as_array(b, who) for b in x.iter_batches(batch_size=batch_size, split=split))


class PinnedQuantiles:
    """An accumulator's statistics with exact quantiles selected from the data (``quantile_rank_error`` 0)."""

    quantile_rank_error = 0.0

    def __init__(self, acc: StatsAccumulator, table: dict[float, np.ndarray]):
        self._acc, self._table = acc, table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._acc, name)

    def quantile(self, q: Any) -> np.ndarray:
        qs = np.atleast_1d(np.asarray(q, np.float64))
        missing = [float(v) for v in qs if float(v) not in self._table]
        if missing:
            raise UsageError(
                f"these statistics hold the exact quantiles {sorted(self._table)}, not {missing}; expected one "
                "of those. Compute the others with normlab.stats(data, quantiles=(...))."
            )
        out = np.stack([self._table[float(v)] for v in qs])
        return out[0] if np.ndim(q) == 0 else out


class StatsFeed:
    """The statistics of a stream of batches under one ``per=`` mode, checked batch against batch.

    Parameters
    ----------
    per, channel_axis : as for the normalizers; ``channel_axis=None`` takes the convention of ``data``
        (:func:`~normlab.core._batches.convention_channel_axis`), checked on the first batch by
        :func:`~normlab.core.axes.check_guessed_channel_axis`.
    who : str
        How to name the caller in messages, e.g. ``"Standardize(per='channel')"``.
    quantiles, nan : forwarded to :class:`~normlab.core.stats.StatsAccumulator`.
    exact : tuple of float
        Quantiles to select exactly (:mod:`~normlab.core._select`, a few histogram passes) for float or
        32/64-bit integer data: over the one array in memory that the feed gets (:func:`is_one_array`), or,
        with ``reread``, over the stream read again when :meth:`statistics` is asked. The accumulator then
        keeps no quantile data, and the feed takes no further batch once they are selected.
    reread : callable, optional
        A fresh iterator over the same batches each call (:func:`rereader`).
    """

    def __init__(self, per: str, channel_axis: int | None, who: str, *, quantiles: bool = False, nan: str = "raise",
                 data: Any = None, exact: tuple[float, ...] = (),
                 reread: Callable[[], Iterable[np.ndarray]] | None = None, job_bytes: int = 0):
        self.per = per
        self.job_bytes = job_bytes  # the size of the whole job, where known (StatsAccumulator job_bytes)
        self.guessed = channel_axis is None  # then the input's convention decides, and the guard checks it
        self.channel_axis = convention_channel_axis(data) if channel_axis is None else channel_axis
        self.who = who
        self.quantiles = quantiles
        self.nan = nan
        self.exact = tuple(exact)
        self.pinned: dict[float, np.ndarray] | None = None
        self.reread = reread
        self.deferred = False  # quantiles to select from the stream read again, in statistics()
        self.layout: Layout | None = None
        self.acc: StatsAccumulator | None = None
        self.n_samples = 0
        self.dtype: np.dtype | None = None
        #: one sample's shape; None where batches differ (images of mixed sizes pooled per channel)
        self.sample_shape: tuple[int | None, ...] | None = None

    def update(self, x: np.ndarray) -> Layout:
        if self.pinned is not None:
            raise UsageError(
                f"{self.who} selected its quantiles exactly from the data given to fit(), so partial_fit() "
                "cannot add data to them; expected all the data in one fit(X), or partial_fit() for every "
                "batch (quantiles then exact up to 2**22 values, else from a sketch with a stated bound)."
            )
        feed = None if isinstance(x, np.ndarray) else collection_feeder(x)
        if feed is not None:
            return feed(self, x)
        layout = resolve_layout(self.per, x.shape, self.channel_axis, owner=self.who)
        if self.layout is None:
            if self.guessed:
                check_guessed_channel_axis(layout, self.who)
            self.layout = layout
            self.dtype = x.dtype
        else:
            check_compatible(self.layout, layout, self.who, verb="partial_fit()")
        sample = tuple(int(n) for n in x.shape[1:])
        old = self.sample_shape or sample
        self.sample_shape = tuple(a if a == b else None for a, b in zip(old, sample, strict=True))
        if layout.stateful:
            select = bool(self.exact) and self.acc is None and selects(x.dtype)
            if self.acc is None:
                k = max(1, prod(layout.stat_shape))
                self.acc = StatsAccumulator(k, quantiles=self.quantiles and not select, nan=self.nan,
                                            job_bytes=self.job_bytes)  # fmt: skip
            x3 = layout.as_3d(np.ascontiguousarray(x))
            try:
                self.acc.update(x3)
            except NonFiniteError as err:
                raise _locate_nonfinite(err, x, x3, self.who) from None
            if select and self.reread is not None:
                self.deferred = True
            elif select:
                qs = np.asarray(sorted(set(self.exact)), np.float64)
                acc = self.acc
                values = exact_quantiles(x3, qs, acc.count, acc.min, acc.max, engine=acc.engine)
                self.pinned = {float(q): values[i] for i, q in enumerate(qs)}
        elif self.nan == "raise":
            check_finite(x, self.who)
        self.n_samples += int(x.shape[0])
        return layout

    def statistics(self) -> Any:
        """The accumulator, or a view of it with the exactly selected quantiles."""
        if self.deferred and self.pinned is None:
            self._select_again()
        return self.acc if self.pinned is None else PinnedQuantiles(self.acc, self.pinned)

    def _select_again(self) -> None:
        """Select the quantiles in passes over the stream read again, each pass shown as progress."""
        acc, layout, reread = self.acc, self.layout, self.reread
        assert acc is not None and layout is not None and reread is not None and self.dtype is not None
        passes = [0]

        def pieces() -> Iterator[np.ndarray]:
            passes[0] += 1
            desc = f"{self.who}: exact quantiles, pass {passes[0]}"
            with Progress(total=self.n_samples, desc=desc, unit="samples") as bar:
                for x in reread():
                    yield layout.as_3d(np.ascontiguousarray(x))
                    bar.update(len(x))

        qs = np.asarray(sorted(set(self.exact)), np.float64)
        nbytes = int(np.sum(acc.count)) * self.dtype.itemsize
        run = piece_passes(pieces, acc.engine, nbytes)
        values = select_quantiles(run, self.dtype, qs, acc.count, acc.min, acc.max)
        self.pinned = {float(q): values[i] for i, q in enumerate(qs)}


def _locate_nonfinite(err: NonFiniteError, x: np.ndarray, x3: np.ndarray, who: str) -> NonFiniteError:
    """``err`` (located in the ``(a, k, b)`` view) restated for the caller's array ``x``."""
    first = None
    if err.first_index:
        flat = np.ravel_multi_index(err.first_index, x3.shape)
        first = tuple(int(i) for i in np.unravel_index(flat, x.shape))
    return NonFiniteError(
        nonfinite_message(who, err.n_nan, err.n_inf, f"a batch of shape {x.shape}", first),
        n_nan=err.n_nan,
        n_inf=err.n_inf,
        first_index=first or (),
    )


def check_compatible(fitted: Layout, layout: Layout, who: str, *, verb: str) -> None:
    """Raise when ``layout`` (a new batch) does not fit what was fitted."""
    if layout.ndim != fitted.ndim:
        raise LayoutError(
            f"{who} was fitted on {fitted.ndim}-D data laid out as {fitted.describe()} but {verb} received "
            f"a {layout.ndim}-D array of shape {layout.shape}; expected {fitted.ndim}-D data. Reshape the "
            "input to the layout used in fit."
        )
    if (fitted.per == "feature" or fitted.ndim == 2) and layout.shape[1:] != fitted.shape[1:]:
        if fitted.ndim == 2:
            raise LayoutError(
                f"X has {layout.shape[1]} features, but {who.split('(')[0]} is expecting "
                f"{fitted.shape[1]} features as input. {who} was fitted on layout (n, f) with "
                f"f={fitted.shape[1]}; pass data with the same columns."
            )
        raise LayoutError(
            f"{who} was fitted on samples of shape {fitted.shape[1:]} (layout {fitted.describe()}) but "
            f"{verb} received samples of shape {layout.shape[1:]}; expected the same shape per sample. "
            "Resize the input, or fit per='channel' if only the channel count should match."
        )
    if fitted.per in ("channel", "sample-channel"):
        c_fit, c_new = fitted.shape[fitted.channel_axis], layout.shape[layout.channel_axis]
        if c_fit != c_new:
            other = 1 if fitted.channel_axis == fitted.ndim - 1 else -1
            raise LayoutError(
                f"{who} was fitted on {c_fit} channels (layout {fitted.describe()}) but {verb} received "
                f"shape {layout.shape}, whose channel axis ({fitted.channel_axis - fitted.ndim}) has "
                f"{c_new} entries. If your data is {'channels-first' if other == 1 else 'channels-last'}, "
                f"create the normalizer with channel_axis={other}."
            )
