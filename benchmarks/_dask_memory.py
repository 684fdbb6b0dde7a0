"""``bench_dask.py --in-memory``: statistics of an array held in the workers' memory, and where the time goes.

A uint8 stack ``(n, 64, 64, 3)`` is generated on a fresh ``LocalCluster`` (W worker processes × 1 thread)
and persisted there in ``--chunk-mib`` chunks. Timed, each best and median of ``repeat`` calls on a fresh
collection or under new task keys, so that no result of an earlier call is reused:

* ``normlab.stats(x, per="channel", quantiles=())`` on the persisted array (its chunks already in the
  workers' memory: each worker reads the chunks it holds in place, on its own threads), and its first call
  on the new cluster;
* one process: ``normlab.stats`` of the same array gathered into the client as one NumPy array, timed in
  turns with the row above (cluster, one process, cluster, ...), so that the machine's drifting load weighs
  on both alike;
* the same on a fresh lazy collection over those chunks (:func:`fresh`: a task per chunk, merged in a tree);
* Dask's own per-chunk sum, ``x.sum(axis=(0, 1, 2), dtype=np.uint64)``.

Exact float quantiles: a float64 table ``(n, 20)`` of ``gib / 4`` persisted the same way,
``normlab.stats(t, per="feature")`` with its default quartiles (selected exactly: each pass a histogram per
chunk on the workers), against one process's ``normlab.stats`` and ``np.quantile`` of the same table.

Then the task stream of one call on the lazy collection: the time the workers spent in normlab's chunk tasks and merge
tasks, against the wall time (what is left is scheduling, transfer and idle time), and the kernel's
speed on one 32 MiB chunk inside a worker.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from _timing import in_turns

SAMPLE = (64, 64, 3)
HEADING = "## Statistics of an array in the workers' memory (`bench_dask.py --in-memory`)"
#: What the task stream showed when this was first measured (2026-12-07), before the fixes.
FINDINGS = (
    "Where the time went, first measured with the task stream: (1) where `import normlab` does not import `normlab.adapters` (the hook that routes Dask "
    "collections is registered there; main now imports it in `normlab/__init__.py`), `normlab.stats(dask_array)` "
    "converted the array with `np.asarray`: Dask ran that as one task pulling every chunk to one worker "
    "and on to the client (0.57–0.85 GB/s here, against 5–7 GB/s for one process); the script imports "
    "`normlab.adapters` itself. (2) Each 1-thread worker's numba kernels started a "
    "thread per core (4 threads on 2 cores); chunk tasks now run them on the worker's own thread count. (3) "
    "With both, the tasks return small accumulators merged in a tree (8 per merge task), the merge tasks "
    "are negligible, and what is left is per-task overhead: a chunk task takes several times its kernel's "
    "time (line below), and the first call on a new cluster pays each worker's numba import and the load of "
    "its cached kernels (no compilation per task). (4) Repeated calls on the same collection built the same "
    "task keys, and the scheduler could still hold the last call's results: one earlier \"fresh collection\" "
    "figure (100 % of one process) was such a reuse; every timed call now has new keys. Measured so, a task "
    "per chunk cost about twice its kernel's time and the workers waited on the scheduler for the rest (39 "
    "trivial tasks alone took 0.11 s on this machine, where the scheduler, the client and both workers share "
    "2 cores). (5) So a persisted array's chunks, already in the workers' memory, get no task each. First one "
    "task per worker thread accumulated the chunks it holds (49-62 % of one process): two such tasks still "
    "cost 10-13 ms a call in scheduler round trips (submit, start, finish, gather), against 2 ms for one "
    "`client.run` message to each worker, and the kernels of 1 GiB take 60-70 ms. Now each worker reads its "
    "chunks in place, in its own executor on its own thread count, through `client.run`; a worker that no "
    "longer holds a chunk, or a call from inside a task, falls back to tasks. The selection passes of float "
    "quantiles run the same way. (6) Copies: `x.compute()` concatenates every chunk on one worker, which then "
    "holds a copy of each; the first split (each chunk to its first holder) then gave that worker all 33 "
    "chunks and the other none (half the speed). Each chunk now goes to the holder with the least work per "
    "thread. (7) What is left: the split follows where the chunks live (18 and 15 here, as the scheduler placed "
    "them), and this machine's noise (the same worker's chunks ran at 8.6 GB/s in one call and 4.4-6.2 in "
    "the next); one process's pool hands chunks to whichever thread is free. The one-process figure is "
    "timed in turns with the cluster's, so that drifting load weighs on both alike."
)


def _chunk(rows: int, total: int, block_id=None):
    a = block_id[0] * rows
    n = min(rows, total - a)
    return np.random.default_rng(block_id[0]).integers(0, 256, (n, *SAMPLE), dtype=np.uint8)


def _same(block):
    return block


def fresh(x):
    """A new collection over the persisted chunks of ``x``: new keys, so no result of an earlier call can be
    reused by the scheduler (the identity is fused into normlab's chunk tasks)."""
    import uuid

    return x.map_blocks(_same, dtype=x.dtype, name=f"fresh-{uuid.uuid4().hex}")


def _timed(fn, repeat: int):
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    return min(walls), statistics.median(walls)


def _gathered(client, x) -> np.ndarray:
    """The persisted array ``x`` as one NumPy array in this process, its chunks fetched directly (x.compute()
    would concatenate them on one worker first, leaving copies of every chunk there)."""
    from dask.core import flatten
    from distributed import futures_of

    futures = {f.key: f for f in futures_of(x)}
    blocks = client.gather([futures[k] for k in flatten(x.__dask_keys__())])
    return np.concatenate(blocks, axis=0)


def _table_chunk(rows: int, total: int, block_id=None):
    a = block_id[0] * rows
    n = min(rows, total - a)
    rng = np.random.default_rng(1000 + block_id[0])
    return rng.normal(size=(n, 20)) * np.geomspace(0.01, 15, 20) + np.geomspace(0.3, 3e12, 20)


def _float_quantile_rows(gib: float, chunk_mib: float, repeat: int) -> tuple[list[str], str]:
    """Rows for exact quartiles of a float64 table persisted in the workers (run inside the client)."""
    import dask.array as da
    from distributed import wait

    import normlab

    n = int(gib * 2**30) // (8 * 20)
    rows = max(1, int(chunk_mib * 2**20) // (8 * 20))
    chunks = ((rows,) * (n // rows) + ((n % rows,) if n % rows else ()), (20,))
    t = da.map_blocks(_table_chunk, rows, n, chunks=chunks, dtype=np.float64,
                      meta=np.empty((0, 0), np.float64)).persist()  # fmt: skip
    wait(t)
    normlab.stats(t[: 10 * rows], per="feature")  # the workers' kernels loaded, as for the first row above

    def nl():
        return normlab.stats(t, per="feature")

    from distributed import default_client

    local = _gathered(default_client(), t)
    normlab.stats(local[:1000], per="feature")
    (cbest, cmed), (pbest, pmed) = in_turns([nl, lambda: normlab.stats(local, per="feature")], repeat)
    got = nl()
    qbest, qmed = _timed(lambda: np.quantile(local, (0.25, 0.5, 0.75), axis=0), 1)
    ref = np.quantile(local, (0.25, 0.5, 0.75), axis=0)
    same = all(np.array_equal(got.quantiles[q], ref[i]) for i, q in enumerate((0.25, 0.5, 0.75)))
    gb = local.nbytes / 1e9
    out = [
        f"| exact quartiles and moments of a float64 ({n}, 20) table on the cluster, `normlab.stats(t, per='feature')` | {gb / cbest:.2f} | {gb / cmed:.2f} |",
        f"| the same table in one process, `normlab.stats` (timed in turns with the row above) | {gb / pbest:.2f} | {gb / pmed:.2f} |",
        f"| `np.quantile(t, (0.25, 0.5, 0.75), axis=0)` in one process | {gb / qbest:.2f} | {gb / qmed:.2f} |",
    ]  # fmt: skip
    note = (f"Float quartiles on the cluster: {pbest / cbest:.0%} of one process's throughput, {qbest / cbest:.1f}× "
            f"np.quantile; equal to np.quantile bit for bit: {same}; quantile_rank_error {got.quantile_rank_error}.")
    return out, note


def _kernel_in_worker(rows: int) -> float:
    """Seconds for one chunk's statistics on one of a worker's threads (the kernel alone, data in memory,
    on one thread as in a chunk task of these 1-thread workers)."""
    from normlab.core._engine import thread_limit
    from normlab.core.stats import StatsAccumulator

    x = np.random.default_rng(0).integers(0, 256, (rows, *SAMPLE), dtype=np.uint8).reshape(-1, 3, 1)
    with thread_limit(1):
        StatsAccumulator(3).update(x)
        t = time.perf_counter()
        StatsAccumulator(3).update(x)
        return time.perf_counter() - t


def run(gib: float, workers: int, chunk_mib: float, repeat: int = 7) -> list[str]:
    import dask.array as da
    from distributed import Client, LocalCluster, get_task_stream, wait

    import normlab
    import normlab.adapters  # registers the Dask hook: without it the array is gathered first

    n = int(gib * 2**30) // int(np.prod(SAMPLE))
    rows = max(1, int(chunk_mib * 2**20) // int(np.prod(SAMPLE)))
    nbytes = n * int(np.prod(SAMPLE))
    out = []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:  # fmt: skip
        chunks = ((rows,) * (n // rows) + ((n % rows,) if n % rows else ()), *((s,) for s in SAMPLE))
        x = da.map_blocks(_chunk, rows, n, chunks=chunks, dtype=np.uint8, meta=np.empty((0, 0, 0, 0), np.uint8)).persist()
        wait(x)

        def nl():  # the persisted array itself: one task per worker thread over the chunks it holds
            return normlab.stats(x, per="channel", quantiles=())

        def nl_lazy():  # a new lazy collection over the same chunks: a task per chunk, merged in a tree
            return normlab.stats(fresh(x), per="channel", quantiles=())

        t = time.perf_counter()
        nl()
        first = time.perf_counter() - t
        local = _gathered(client, x)  # one process: the same array in this process, timed in turns with the cluster
        normlab.stats(local[:100], per="channel", quantiles=())
        (best, med), (pbest, pmed) = in_turns([nl, lambda: normlab.stats(local, per="channel", quantiles=())],
                                             repeat)  # fmt: skip
        lbest, lmed = _timed(nl_lazy, repeat)
        dbest, dmed = _timed(lambda: fresh(x).sum(axis=(0, 1, 2), dtype=np.uint64).compute(), repeat)
        with get_task_stream(client) as ts:
            t = time.perf_counter()
            nl_lazy()
            wall = time.perf_counter() - t
        busy: dict[str, float] = {}
        count: dict[str, int] = {}
        for task in ts.data:
            key = str(task["key"])
            kind = "merge" if "normlab-merge" in key else "chunk" if "normlab-chunk" in key else "other"
            for s in task["startstops"]:
                if s["action"] == "compute":
                    busy[kind] = busy.get(kind, 0.0) + s["stop"] - s["start"]
            count[kind] = count.get(kind, 0) + 1
        kernel = min(client.run(_kernel_in_worker, rows).values())
        local = None  # freed before the float table is made
        float_rows, float_note = _float_quantile_rows(gib / 4, chunk_mib, repeat)
    gb = nbytes / 1e9
    out.append(f"| `normlab.stats(x, per='channel', quantiles=())`, first call on a new cluster | {gb / first:.2f} | – |")
    out.append(f"| `normlab.stats(x, per='channel', quantiles=())`, x persisted (each worker reads its chunks in place) | {gb / best:.2f} | {gb / med:.2f} |")
    out.append(f"| the same on a fresh lazy collection over those chunks (a task per chunk) | {gb / lbest:.2f} | {gb / lmed:.2f} |")
    out.append(f"| Dask's own per-chunk sum `x.sum(axis=(0, 1, 2), dtype=np.uint64)` | {gb / dbest:.2f} | {gb / dmed:.2f} |")
    out.append(f"| one process, `normlab.stats` of the same array in NumPy (timed in turns with the row above) | {gb / pbest:.2f} | {gb / pmed:.2f} |")
    work = sum(busy.values())
    breakdown = (
        f"One traced call on the lazy collection: {wall:.2f} s wall, {count.get('chunk', 0)} chunk tasks busy "
        f"{busy.get('chunk', 0):.2f} s and {count.get('merge', 0)} merge tasks busy {busy.get('merge', 0):.3f} s "
        f"in total over {workers} workers, so {work / (workers * wall):.0%} of the workers' time went into "
        f"normlab's tasks and the rest into scheduling, transfers and waiting. The kernel alone on one "
        f"{chunk_mib:g} MiB chunk in a worker: {rows * np.prod(SAMPLE) / kernel / 1e9:.2f} GB/s "
        f"({kernel * 1e3:.1f} ms per chunk against {busy.get('chunk', 0) / max(1, count.get('chunk', 1)) * 1e3:.1f} "
        "ms per chunk task)."
    )  # fmt: skip
    ratio = (
        f"normlab on the cluster, x persisted: {pbest / best:.0%} of one process's throughput best against best "
        f"({pmed / med:.0%} median against median), {dbest / best:.2f}× Dask's own per-chunk sum; on the lazy "
        f"collection {pbest / lbest:.0%} ({pmed / lmed:.0%})."
    )
    return [f"{n} × {SAMPLE} uint8, {gb:.2f} GB persisted in {workers} workers × 1 thread, {chunk_mib:g} MiB chunks",
            "", "| what | best GB/s | median GB/s |", "|---|---:|---:|", *out, *float_rows, "", FINDINGS, "",
            breakdown, "", ratio, "", float_note]  # fmt: skip
