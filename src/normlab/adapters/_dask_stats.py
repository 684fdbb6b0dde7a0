"""Statistics of Dask collections: one accumulator per chunk on the workers, merged in a tree.

``Standardize().fit(x)``, ``partial_fit`` and ``normlab.stats`` hand a Dask collection to
:func:`feed_collection` (the hook in :class:`normlab.core._fitting.StatsFeed`). Each chunk of an array,
each partition of a bag, each delayed batch becomes a :class:`~normlab.core.stats.StatsAccumulator` where
the data live; accumulators are merged ``split_every`` at a time up to one, which comes back to the client.
Accumulators are exact for integer data and merge exactly, so the statistics are bit-identical to the
in-memory fit for any chunking; float statistics agree to rounding (about 1e-15 relative).

File-based datasets cut themselves into :class:`~normlab.data.Shard` objects that a worker reads by
itself (``dataset.shards()``, written next to each reader in :mod:`normlab.data`); :func:`dataset_shards`
and :func:`dataset_bag` only choose how many and turn them into the partitions of a bag. No file format is
known here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
import weakref
from math import prod
from typing import Any

import numpy as np

from normlab.core._engine import resolve_engine, thread_limit
from normlab.core._fitting import as_array, check_compatible
from normlab.core._select import (
    KeySpec,
    PassRunner,
    merge_passes,
    pass_counts,
    select_quantiles,
    selects,
)
from normlab.core.axes import Layout, resolve_layout
from normlab.core.normalizers import check_is_fitted
from normlab.core.stats import StatsAccumulator
from normlab.data import SHARD_BYTES, Shard, check_n_shards, skipped_message
from normlab.errors import (
    DataError,
    DatasetError,
    DataTypeError,
    NonFiniteError,
    NormlabWarning,
    nonfinite_message,
)

__all__ = ["Shard", "dataset_bag", "dataset_shards", "feed_collection", "transform"]

#: Accumulators merged by one task of the tree.
SPLIT_EVERY = 8


# --------------------------------------------------------------------------------------------------
# What travels between client and workers
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How to accumulate: the feed's settings, shipped to every task."""

    per: str
    channel_axis: int
    who: str
    quantiles: bool
    nan: str
    job_bytes: int = 0  # the whole array's size: each chunk's kernels are chosen for the job, not the chunk

    def accumulator(self, k: int) -> StatsAccumulator:
        return StatsAccumulator(k, quantiles=self.quantiles, nan=self.nan, job_bytes=self.job_bytes)


@dataclasses.dataclass
class _Part:
    """The statistics of some of the data: an accumulator (stateful modes), samples seen, layout, dtype."""

    acc: StatsAccumulator | None = None
    n: int = 0
    layout: Layout | None = None
    dtype: np.dtype | None = None
    skipped: list = dataclasses.field(default_factory=list)


def _block_part(block: Any, offset: tuple[int | None, ...], count_samples: bool, spec: _Spec) -> _Part:
    """Accumulate one chunk of a Dask array (runs on a worker)."""
    x = np.asarray(block)
    if x.size == 0:
        return _Part(dtype=x.dtype)
    n = int(x.shape[0]) if count_samples else 0
    layout = resolve_layout(spec.per, x.shape, spec.channel_axis, owner=spec.who)
    if not layout.stateful:
        if spec.nan == "raise" and x.dtype.kind == "f" and not np.isfinite(x).all():
            bad = ~np.isfinite(x)
            n_nan = int(np.isnan(x).sum())
            raise _nonfinite(spec.who, n_nan, int(bad.sum()) - n_nan, x.shape, np.argwhere(bad)[0], offset)
        return _Part(n=n, dtype=x.dtype)
    acc = spec.accumulator(max(1, prod(layout.stat_shape)))
    x3 = layout.as_3d(np.ascontiguousarray(x))
    try:
        with _task_threads():
            acc.update(x3)
    except NonFiniteError as err:
        flat = np.ravel_multi_index(err.first_index, x3.shape)
        first = np.unravel_index(flat, x.shape)
        raise _nonfinite(spec.who, err.n_nan, err.n_inf, x.shape, first, offset) from None
    return _Part(acc=acc, n=n, dtype=x.dtype)


@contextlib.contextmanager
def _task_threads():
    """Run a chunk's kernels on as many threads as the Dask worker has: normlab's thread pool and numba
    would otherwise each start one per core in every worker process (2 workers x 1 thread on 2 cores ran
    4 threads, and a 32 MiB chunk's kernel ran at a quarter of its one-thread speed)."""
    nthreads = None
    try:
        from distributed import get_worker

        nthreads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):  # not in a worker
        pass
    if nthreads is None:
        yield
        return
    with thread_limit(nthreads):
        yield


def _nonfinite(who: str, n_nan: int, n_inf: int, shape: tuple, first: Any, offset: tuple) -> NonFiniteError:
    local = tuple(int(i) for i in first)
    if all(o is not None for o in offset):
        where, first = f"the array, in a Dask chunk of shape {tuple(shape)}", tuple(
            int(o) + i for o, i in zip(offset, local, strict=True)
        )
    else:
        where, first = f"a Dask chunk of shape {tuple(shape)}", local
    return NonFiniteError(
        nonfinite_message(who, n_nan, n_inf, where, first, fix="x.map_blocks(np.nan_to_num)"),
        n_nan=n_nan,
        n_inf=n_inf,
        first_index=first,
    )


def _items_part(items: Any, spec: _Spec, single: bool = False) -> _Part:
    """Accumulate the batches of a bag partition, or one delayed batch if ``single`` (runs on a worker).

    An item is a batch (an array or an ``(x, y)`` pair), or a :class:`Shard` whose batches are read here.
    """
    from normlab.core._fitting import StatsFeed

    if single:
        items = [items]
    feed = StatsFeed(spec.per, spec.channel_axis, spec.who, quantiles=spec.quantiles, nan=spec.nan,
                     job_bytes=spec.job_bytes)  # fmt: skip
    skipped: list = []
    with _task_threads():
        for item in items:
            if isinstance(item, Shard):
                for batch in item:
                    feed.update(as_array(batch, spec.who))
                skipped += item.skipped
            else:
                feed.update(as_array(item, spec.who))
    return _Part(acc=feed.acc, n=feed.n_samples, layout=feed.layout, dtype=feed.dtype, skipped=skipped)


def _merge(*parts: _Part, spec: _Spec, check: bool) -> _Part:
    """Merge parts into a new one (inputs are never modified: a task may run twice)."""
    out = _Part()
    for p in parts:
        out.n += p.n
        out.skipped += p.skipped
        if out.dtype is None:
            out.dtype = p.dtype
        if p.layout is not None:
            if out.layout is None:
                out.layout = p.layout
            elif check:
                check_compatible(out.layout, p.layout, spec.who, verb="fit()")
        if p.acc is not None and not p.acc.is_empty:
            if out.acc is None:
                out.acc = spec.accumulator(p.acc.k)
            out.acc.merge(p.acc)
    return out


def _tree(parts: list, spec: _Spec, *, check: bool) -> Any:
    """Merge delayed parts ``SPLIT_EVERY`` at a time until one is left (a Delayed)."""
    import dask
    from dask.base import tokenize

    merge = dask.delayed(_merge, pure=True, traverse=False)
    token = tokenize([p.key for p in parts], spec, check)
    level, depth = list(parts), 0
    while True:
        level = [
            merge(*level[i : i + SPLIT_EVERY], spec=spec, check=check,
                  dask_key_name=f"normlab-merge-{token}-{depth}-{i // SPLIT_EVERY}")
            for i in range(0, len(level), SPLIT_EVERY)
        ]  # fmt: skip
        depth += 1
        if len(level) == 1:
            return level[0]


# --------------------------------------------------------------------------------------------------
# The hook: a Dask collection given to fit / partial_fit / normlab.stats
# --------------------------------------------------------------------------------------------------

# Datasets behind the bags made by dataset_bag(): skipped image files are reported back to them.
_BAG_SOURCES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
# Bags whose shards learn their sample counts only by reading: the split's size, and what to do if they differ.
_BAG_COUNTS: dict[str, tuple[int, str]] = {}
# Bags of shards of float or 32/64-bit integer data that read again at memory speed: quantiles selected.
_BAG_REREADS: dict[str, bool] = {}
# The size of the dataset behind a bag, where known: the job every partition is a part of.
_BAG_BYTES: dict[str, int] = {}


def feed_collection(feed: Any, x: Any) -> Layout:
    """Accumulate the Dask collection ``x`` into ``feed`` (a :class:`~normlab.core._fitting.StatsFeed`).

    Computes on Dask's current scheduler (the active :class:`distributed.Client`, if any). Returns the
    layout of the data, as ``StatsFeed.update`` does for one batch.
    """
    from normlab.adapters._dask_cluster import require_dask

    require_dask(feed.who)

    # quantiles asked of fit()/normlab.stats on a float or wide-integer array: selected exactly in passes
    # over its chunks, so the moments pass keeps no values
    selected = _selected(x) if feed.exact and feed.acc is None else None
    spec = _Spec(feed.per, feed.channel_axis, feed.who, feed.quantiles and selected is None, feed.nan)
    if feed.layout is not None:  # later batches resolve per= exactly as the first did
        spec = dataclasses.replace(spec, per=feed.layout.per)
    root, layout = _plan(x, spec, feed.layout)
    part = _compute(root, spec)
    if layout is None:
        layout = part.layout
    else:  # the sample count of an array whose chunk sizes were unknown, or of several arrays
        layout = dataclasses.replace(layout, shape=(int(part.n), *layout.shape[1:]))
    if part.n == 0 or layout is None:
        raise DataError(
            f"{feed.who} received a Dask collection with no samples; expected at least one sample with at "
            "least one value. Check the collection's partitions."
        )
    name = _bag_name(x)
    expected, hint = _BAG_COUNTS.get(name, (None, "")) if name is not None else (None, "")
    if expected is not None and part.n != expected:
        raise DatasetError(
            f"{feed.who}: the shards of {name} held {part.n} samples; expected {expected}. {hint}".rstrip()
        )
    if part.skipped:
        _report_skipped(x, part.skipped)
    if feed.layout is None:
        feed.layout, feed.dtype = layout, part.dtype
    else:
        check_compatible(feed.layout, layout, feed.who, verb="partial_fit()")
    if layout.stateful and part.acc is not None:
        if feed.acc is None:
            feed.acc = part.acc
        else:
            feed.acc.merge(part.acc)
        if selected is not None:
            acc, qs = part.acc, np.asarray(sorted(set(feed.exact)), np.float64)
            job = int(np.sum(acc.count)) * np.dtype(part.dtype).itemsize  # every pass reads all of it
            run = _cluster_passes(selected, dataclasses.replace(spec, per=layout.per, job_bytes=job), layout)
            values = select_quantiles(run, np.dtype(part.dtype), qs, acc.count, acc.min, acc.max)
            feed.pinned = {float(q): values[i] for i, q in enumerate(qs)}
    feed.n_samples += int(part.n)
    return layout


def _plan(x: Any, spec: _Spec, fitted: Layout | None) -> tuple[Any, Layout | None]:
    """The delayed root part for ``x`` and, for arrays, the layout resolved on the client."""
    import dask
    import dask.array as da
    import dask.bag as db
    from dask.base import tokenize
    from dask.delayed import Delayed

    if isinstance(x, list):  # several collections (e.g. delayed batches): one tree over all of them
        roots, layouts = zip(*(_plan(item, spec, fitted) for item in x), strict=True)
        roots = tuple(r.delayed(spec) if isinstance(r, _Done) else r for r in roots)
        known = [lay for lay in layouts if lay is not None]
        for lay in known[1:]:
            check_compatible(known[0], lay, spec.who, verb="fit()")
        if len(known) < len(layouts):
            return _tree(list(roots), spec, check=True), None
        return _tree(list(roots), spec, check=False), known[0]
    items_part = dask.delayed(_items_part, pure=True, traverse=False)
    if isinstance(x, Delayed):  # (checked first: any attribute of a Delayed is another Delayed)
        return _tree([items_part(x, spec, single=True, dask_key_name=f"normlab-items-{tokenize(x.key, spec)}")],
                     spec, check=True), None  # fmt: skip
    if isinstance(x, db.Bag):
        spec = dataclasses.replace(spec, job_bytes=_BAG_BYTES.get(x.name, 0))
        token = tokenize(x.name, spec)
        parts = [items_part(p, spec, dask_key_name=f"normlab-items-{token}-{i}")
                 for i, p in enumerate(x.to_delayed(optimize_graph=True))]  # fmt: skip
        return _tree(parts, spec, check=True), None
    if hasattr(x, "to_dask_array") and not isinstance(x, da.Array):  # a Dask DataFrame or Series
        x = x.to_dask_array()
    if isinstance(x, da.Array):
        return _plan_array(x, spec, fitted)
    raise DataTypeError(
        f"{spec.who} received a {type(x).__module__}.{type(x).__name__}; expected a Dask array, DataFrame, "
        "bag or delayed object (or a list of them). Convert it with .to_dask_array() or dask.bag.from_delayed()."
    )


def _job_bytes(x: Any) -> int:
    """The size of a Dask array in bytes (0 while its chunk sizes are unknown)."""
    n = x.nbytes
    return 0 if math.isnan(n) else int(n)


def _plan_array(x: Any, spec: _Spec, fitted: Layout | None) -> tuple[Any, Layout]:
    import dask
    from dask.base import tokenize

    kind = np.dtype(x.dtype).kind
    if kind not in "biuf":
        what = "complex numbers" if kind == "c" else f"dtype {x.dtype}"
        raise DataTypeError(
            f"{spec.who} received a Dask array of {what}; expected numbers (bool, integer or float). Convert it "
            "first, e.g. x.astype('float32') or x.real."
        )
    if any(math.isnan(s) for s in x.shape[1:]):
        x = x.compute_chunk_sizes()
    n_known = not math.isnan(x.shape[0])
    if x.ndim == 0 or (n_known and x.size == 0):
        raise DataError(
            f"{spec.who} found 0 samples (shape={x.shape}) in a Dask array; expected at least one sample with at "
            "least one value. Check the data source or the split you selected."
        )
    shape = (int(x.shape[0]) if n_known else 0, *(int(s) for s in x.shape[1:]))
    layout = resolve_layout(spec.per, shape, spec.channel_axis, owner=spec.who)
    if fitted is not None:
        check_compatible(fitted, layout, spec.who, verb="partial_fit()")
    spec = dataclasses.replace(spec, per=layout.per, job_bytes=_job_bytes(x))
    x = _whole_entries(x, layout)
    starts = [np.concatenate(([0], np.cumsum(c)[:-1])) if n_known or a else None for a, c in enumerate(x.chunks)]
    where = [(tuple(None if starts[a] is None else int(starts[a][i]) for a, i in enumerate(idx)),
              all(i == 0 for i in idx[1:])) for idx in np.ndindex(*x.numblocks)]  # fmt: skip
    held = _held(x)
    parts = None if held is None else held.run(_chunks_part, where, spec)
    if parts is not None:  # chunks already in the workers' memory: read in place, no task per chunk
        return _Done(_merge(*parts, spec=spec, check=False)), layout
    blocks = x.to_delayed(optimize_graph=True)
    block_part = dask.delayed(_block_part, pure=True, traverse=False)
    token = tokenize(x.name, spec)
    parts = []
    for idx, (offset, first) in zip(np.ndindex(*blocks.shape), where, strict=True):
        name = f"normlab-chunk-{token}-{'-'.join(map(str, idx))}"
        parts.append(block_part(blocks[idx], offset, first, spec, dask_key_name=name))
    return _tree(parts, spec, check=False), layout


@dataclasses.dataclass
class _Done:
    """A part already computed on the workers (the chunks of a persisted array, read in place)."""

    part: _Part

    def delayed(self, spec: _Spec) -> Any:
        import dask

        return dask.delayed(_merge, pure=False, traverse=False)(self.part, spec=spec, check=False)


def _compute(root: Any, spec: _Spec) -> _Part:
    """The part at ``root``: a Delayed (computed on Dask's scheduler) or a :class:`_Done` part."""
    import dask

    if isinstance(root, _Done):
        return root.part
    (part,) = dask.compute(root)
    return part


@dataclasses.dataclass
class _Held:
    """The chunks of a persisted Dask array and the worker that reads each one (flat block order)."""

    client: Any
    keys: list  # one per chunk
    groups: dict[str, list[int]]  # worker address -> the chunks it reads (each chunk in one group)

    def run(self, fn: Any, extra: list, *args: Any) -> list | None:
        """``fn(chunks, extras, *args)`` over the chunks in each worker's memory, on that worker's threads
        (one call per thread); the small results, worker by worker. None where they cannot be read in place
        (a chunk moved or a worker left, or this runs inside a task): the caller then builds tasks.

        The calls run in each worker's own executor through ``client.run``: one message each way (2 ms on
        the 2-core reference machine), where two tasks, one per worker, cost 10-13 ms of scheduler round
        trips against a kernel of 60-70 ms for 1 GiB of uint8. An error in ``fn`` (a NaN in a chunk) is
        raised here.
        """
        from distributed import get_worker

        try:
            get_worker()
            return None  # inside a task: its thread may be the one the calls would wait for
        except ValueError:
            pass
        work = {w: ([self.keys[i] for i in idx], [extra[i] for i in idx]) for w, idx in self.groups.items()}
        try:
            out = self.client.run(_read_in_place, work, fn, args, workers=list(work))
        except Exception:  # a worker left, a connection broke: the scheduler knows where the chunks are
            return None
        results = []
        for w in work:
            got = out.get(w)
            if got is None:
                return None
            for status, value in got:
                if status == "missing":
                    return None
                if status == "error":
                    raise value
                results.append(value)
        return results


async def _read_in_place(work: dict, fn: Any, args: tuple, dask_worker: Any = None) -> list:
    """On a worker (``client.run``): ``fn`` over this worker's chunks of ``work``, split over its threads,
    each call in the worker's executor on one thread; ``[("ok", result) | ("error", exc) | ("missing", key or
    None)]``, where "missing" means a chunk is no longer in this worker's memory."""
    import asyncio

    keys, extras = work[dask_worker.address]
    data = dask_worker.data
    for k in keys:
        if k not in data:
            return [("missing", k)]
    n = max(1, min(int(dask_worker.state.nthreads), len(keys)))

    def call(g: int) -> tuple:
        try:
            with thread_limit(1):
                return "ok", fn([data[k] for k in keys[g::n]], extras[g::n], *args)
        except KeyError:  # released meanwhile
            return "missing", None
        except Exception as err:  # the data's own error (non-finite values): raised on the client
            return "error", err

    loop = asyncio.get_running_loop()
    executor = dask_worker.executors["default"]
    return list(await asyncio.gather(*(loop.run_in_executor(executor, call, g) for g in range(n))))


def _held(x: Any) -> _Held | None:
    """The chunks of ``x`` and who reads each, when every one of them is already in a distributed cluster's
    memory (a persisted array), else None.

    Such chunks need no task of their own: a task per chunk costs more than its kernel (each is a scheduler
    round trip; 33 chunks of 32 MiB on two 1-thread workers spent half their time waiting), so each worker
    reads the chunks it holds, in place. A chunk held by several workers (copies left by an earlier
    computation) goes to the holder with the least work per thread so far, so that copies never pile all
    the work onto one worker.
    """
    try:
        from dask.core import flatten
        from distributed import default_client, futures_of, wait

        client = default_client()
    except (ImportError, ValueError):
        return None
    keys = list(flatten(x.__dask_keys__()))
    futures = {f.key: f for f in futures_of(x)}
    if not keys or any(k not in futures for k in keys):
        return None
    try:
        wait([futures[k] for k in keys])  # a just-persisted array: its chunks are on their way into memory
        who = client.who_has([futures[k] for k in keys])
        threads = client.nthreads()
    except Exception:  # a client that lost its scheduler: the graph path reports it
        return None
    holders = []
    for k in keys:
        h = sorted(who.get(k) or who.get(str(k)) or ())
        if not h:
            return None
        holders.append(h)
    sizes = [prod(int(c[i]) for c, i in zip(x.chunks, idx, strict=True)) for idx in np.ndindex(*x.numblocks)]
    load = {w: 0 for h in holders for w in h}
    groups: dict[str, list[int]] = {}
    for i in sorted(range(len(keys)), key=lambda i: (len(holders[i]), i)):  # single copies first
        w = min(holders[i], key=lambda w: (load[w] + sizes[i]) / max(1, int(threads.get(w, 1))))
        load[w] += sizes[i]
        groups.setdefault(w, []).append(i)
    return _Held(client, keys, {w: sorted(idx) for w, idx in sorted(groups.items())})


def _chunks_part(blocks: list, where: list, spec: _Spec) -> _Part:
    """Accumulate some chunks of a Dask array held by this worker (runs on it)."""
    return _merge(*(_block_part(b, offset, first, spec) for b, (offset, first) in zip(blocks, where, strict=True)),
                  spec=spec, check=False)


def _whole_entries(x: Any, layout: Layout) -> Any:
    """``x`` re-cut so that a chunk holds all of its entries: axes kept whole, axis 0 re-cut to a sane size."""
    split = [a for a in layout.keep_axes if a != 0 and len(x.chunks[a]) > 1] if layout.stateful else []
    if split:
        x = x.rechunk({**({0: "auto"} if not math.isnan(x.shape[0]) else {}), **{a: -1 for a in split}})
    return x


# --------------------------------------------------------------------------------------------------
# Exact quantiles of a Dask array: each selection pass is a histogram per chunk, merged in a tree
# --------------------------------------------------------------------------------------------------


def _selected(x: Any) -> Any:
    """``x`` as the collection whose quantiles are selected exactly, or None (then sketched): a Dask array of
    float or 32/64-bit integers, or a bag of the shards of such a dataset that reads again at memory speed
    (:func:`dataset_bag`; its workers read the shards again for every pass)."""
    import dask.array as da
    import dask.bag as db

    if isinstance(x, db.Bag):
        return x if _BAG_REREADS.get(x.name) else None
    if hasattr(x, "to_dask_array") and not isinstance(x, da.Array):  # a DataFrame: as _plan reads it
        x = x.to_dask_array()
    if not isinstance(x, da.Array) or not selects(np.dtype(x.dtype)):
        return None
    return x


def _block_pass(block: Any, spec: _Spec, keys: KeySpec, win: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """One selection pass over one chunk (runs on a worker): its histogram and gathered keys."""
    x = np.asarray(block)
    if x.size == 0:
        return merge_passes([], win)
    layout = resolve_layout(spec.per, x.shape, spec.channel_axis, owner=spec.who)
    x3 = layout.as_3d(np.ascontiguousarray(x))
    with _task_threads():
        return pass_counts(x3, keys, win, resolve_engine("auto", max(x3.nbytes, spec.job_bytes)))


def _items_pass(items: Any, spec: _Spec, keys: KeySpec, win: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    """One selection pass over a bag partition (runs on a worker): its shards read again, batch by batch."""
    batches = (batch for item in items for batch in (item if isinstance(item, Shard) else [item]))
    with _task_threads():  # the shards' reading too, not only each batch's kernel
        return merge_passes((_block_pass(as_array(b, spec.who), spec, keys, win) for b in batches), win)


def _chunks_pass(blocks: list, _where: list, spec: _Spec, keys: KeySpec, win: Any) -> tuple:
    """One selection pass over some chunks held by this worker (runs on it)."""
    return merge_passes((_block_pass(b, spec, keys, win) for b in blocks), win)


def _merge_pass_results(*results: tuple, win: Any) -> tuple[np.ndarray, list[np.ndarray]]:
    return merge_passes(results, win)


def _cluster_passes(x: Any, spec: _Spec, layout: Layout) -> PassRunner:
    """A :data:`~normlab.core._select.PassRunner` computing each pass on Dask: one task per chunk (or bag
    partition) returns counts and gathered keys, at most the gather budget in all, never data; they are
    merged in a tree."""
    import dask
    import dask.bag as db
    from dask.base import tokenize

    held = None
    if isinstance(x, db.Bag):
        pieces, fn = list(x.to_delayed(optimize_graph=True)), _items_pass
    else:
        x = _whole_entries(x, layout)
        held = _held(x)  # chunks in the workers' memory: each pass reads them in place, as the moments did
        pieces, fn = list(x.to_delayed(optimize_graph=True).ravel()), _block_pass
    leaf = dask.delayed(fn, pure=True, traverse=False)
    merge = dask.delayed(_merge_pass_results, pure=True, traverse=False)
    passes = [0]

    def run(keys: KeySpec, win: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        results = None if held is None else held.run(_chunks_pass, [None] * len(held.keys), spec, keys, win)
        if results is not None:
            return merge_passes(results, win)
        passes[0] += 1
        token = tokenize(x.name, spec, passes[0], win.lo, win.hi, win.shift)
        level = [leaf(b, spec, keys, win, dask_key_name=f"normlab-select-{token}-{i}") for i, b in enumerate(pieces)]
        depth = 0
        while len(level) > 1:
            level = [merge(*level[i : i + SPLIT_EVERY], win=win,
                           dask_key_name=f"normlab-select-merge-{token}-{depth}-{i // SPLIT_EVERY}")
                     for i in range(0, len(level), SPLIT_EVERY)]  # fmt: skip
            depth += 1
        (result,) = dask.compute(level[0])
        return result

    return run


def _bag_name(x: Any) -> str | None:
    """The name of a Dask bag (where dataset_bag() may have recorded its dataset), else None."""
    import dask.bag as db

    return x.name if isinstance(x, db.Bag) else None


def _report_skipped(x: Any, skipped: list) -> None:
    name = _bag_name(x)
    dataset = _BAG_SOURCES.get(name) if name is not None else None
    label = getattr(dataset, "name", "images")
    if dataset is not None:
        known = {path for path, _ in dataset.skipped}
        dataset.skipped.extend(item for item in skipped if item[0] not in known)
    warnings.warn(skipped_message(label, skipped), NormlabWarning, stacklevel=5)


# --------------------------------------------------------------------------------------------------
# Datasets: they cut themselves into shards; here the shards become the partitions of a bag
# --------------------------------------------------------------------------------------------------


def dataset_shards(
    dataset: Any,
    split: str | None = None,
    *,
    batch_size: int | None = None,
    n_shards: int | None = None,
    shard_bytes: int = SHARD_BYTES,
) -> list[Shard]:
    """Cut one split of a ``normlab.data`` dataset into shards that workers read independently.

    Parameters
    ----------
    dataset : a dataset from :func:`normlab.data.open`
    split : str, optional
        The split (default: the dataset's default split). ``limit=`` and ``validation_split=`` apply.
    batch_size : int, optional
        Samples per batch inside a shard (default: about 8 MiB).
    n_shards : int, optional
        How many shards. Default: about ``shard_bytes`` of decoded samples each, at least two per worker
        thread of the active Dask client; one per gzip-compressed file (a stream is read from its
        start, so cutting it saves nothing).
    shard_bytes : int
        Target decoded size of a shard for the default ``n_shards``.

    Returns
    -------
    list of Shard
        Together they hold every sample of the split exactly once, in file order.

    Notes
    -----
    The dataset cuts itself (:meth:`normlab.data.LoadedDataset.shards`): IDX and ``.npy`` files into row
    ranges read by seeking; image folders into groups of files; CIFAR-10 at its batch files; Parquet at
    its row groups; CSV files into byte ranges cut at line ends (fields with line breaks inside quotes
    cannot be cut so; the count of rows read is checked).
    """
    if n_shards is not None:
        check_n_shards(n_shards, "dataset_shards")
    threads = _worker_threads()
    return dataset.shards(
        split, n_shards, batch_size=batch_size, shard_bytes=shard_bytes, min_shards=2 * threads
    )


def _worker_threads() -> int:
    """Worker threads of the active Dask client (0 without one)."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        return 0
    try:
        return int(sum(client.nthreads().values()))
    except Exception:  # a client that lost its scheduler
        return 0


def _dataset_bytes(dataset: Any, split: str | None) -> int:
    """The decoded size of ``split``, or 0 where it is not known before reading (images of mixed sizes)."""
    try:
        return int(dataset.nbytes(split) or 0)
    except (TypeError, ValueError):  # a sample shape with unknown sizes
        return 0


def dataset_bag(
    dataset: Any,
    split: str | None = None,
    *,
    batch_size: int | None = None,
    n_shards: int | None = None,
) -> Any:
    """A :class:`dask.bag.Bag` with one shard of ``split`` per partition, for ``normlab.stats`` and ``fit``.

    ``normlab.stats(dataset_bag(ds))`` reads every shard on a worker and merges the statistics: the same
    numbers as ``normlab.stats(ds)``. Files must be readable at the same path on every worker.

    Examples
    --------
    >>> import dask, numpy as np, normlab, normlab.data
    >>> from normlab.adapters.dask import dataset_bag
    >>> ds = normlab.data.open("digits")
    >>> bag = dataset_bag(ds, n_shards=3)
    >>> with dask.config.set(scheduler="sync"):
    ...     s = normlab.stats(bag, source="digits")
    >>> bool(np.allclose(s.mean, normlab.stats(ds).mean, rtol=1e-13, atol=0)), s.n_samples
    (True, 1797)
    """
    from normlab.adapters._dask_cluster import require_dask

    require_dask("dataset_bag()")
    import dask.bag as db

    shards = dataset_shards(dataset, split, batch_size=batch_size, n_shards=n_shards)
    bag = db.from_sequence(shards, npartitions=len(shards))
    _BAG_SOURCES[bag.name] = dataset
    _BAG_REREADS[bag.name] = bool(dataset.rereads_fast(split)) and selects(np.dtype(dataset.dtype))
    _BAG_BYTES[bag.name] = _dataset_bytes(dataset, split)  # each partition's kernels are chosen for all of it
    # Shards that learn their size only by reading (byte ranges): their total is checked after the pass.
    uncounted = [shard for shard in shards if shard.n is None]
    expected = dataset.num_samples(split)
    if uncounted and expected is not None:
        _BAG_COUNTS[bag.name] = (int(expected), uncounted[0].count_hint)
    return bag


# --------------------------------------------------------------------------------------------------
# Transform
# --------------------------------------------------------------------------------------------------


def transform(normalizer: Any, x: Any) -> Any:
    """Apply a fitted normalizer to a Dask array chunk by chunk; returns a lazy Dask array.

    Chunks are re-cut so that each holds whole statistics (all channels for ``per="channel"``, whole
    samples for ``per="feature"`` and the per-sample modes); every chunk is then ``normalizer.transform``.

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np, normlab
    >>> from normlab.adapters.dask import transform
    >>> x = np.arange(24, dtype=np.uint8).reshape(4, 2, 3)
    >>> n = normlab.Standardize(per="channel").fit(x)
    >>> y = transform(n, da.from_array(x, chunks=(2, 1, 2)))
    >>> with dask.config.set(scheduler="sync"):
    ...     bool(np.array_equal(y.compute(), n.transform(x)))
    True
    """
    import dask.array as da

    if not isinstance(x, da.Array):
        raise DataTypeError(
            f"transform() received {type(x).__name__}; expected a dask.array.Array. Call normalizer.transform(x) "
            "for NumPy input."
        )
    check_is_fitted(normalizer, "transform()")
    shape = (1, *(int(s) for s in x.shape[1:]))
    owner = f"{type(normalizer).__name__}(per={normalizer.per_!r})"
    layout = resolve_layout(normalizer.per_, shape, normalizer.layout_.channel_axis, owner=owner)
    whole = layout.keep_axes if layout.stateful else tuple(range(1, x.ndim))
    split = [a for a in whole if a != 0 and len(x.chunks[a]) > 1]
    if split:
        x = x.rechunk({0: "auto", **{a: -1 for a in split}})
    if normalizer.dtype is not None:
        dtype = np.dtype(normalizer.dtype)
    else:
        dtype = np.dtype(np.float64) if x.dtype == np.float64 else np.dtype(np.float32)
    return x.map_blocks(normalizer.transform, dtype=dtype)
