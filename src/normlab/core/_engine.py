"""Which engine runs a kernel, and the worker threads the NumPy engine shares.

The statistics (:mod:`normlab.core.stats`) and the transform (:mod:`normlab.core._kernels`) both run on one
of two engines with identical results: NumPy, always available, or the compiled kernels of the optional
numba package (:mod:`normlab.core._numba`). This module decides which (``NORMLAB_ENGINE=numpy`` forces
NumPy everywhere, ``=numba`` the compiled kernels whatever the size), knows whether numba is installed
without compiling anything, and owns the process-wide thread pool that the NumPy engine spreads big jobs
over (NumPy releases the GIL in its loops; ``NORMLAB_THREADS=n`` sets the worker count), plus per-thread
scratch buffers.

It imports nothing of normlab, so every kernel module can use it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
from collections import deque
from typing import Any

import numpy as np

#: The values of ``engine=``.
ENGINES = ("auto", "numpy", "numba")
#: With engine="auto", jobs at least this big use the compiled kernels (when numba is installed). A job is
#: all the data of one call (an array, a file read in batches, a stream of partial_fit updates so far, a
#: Dask array's chunks), never one batch of it: a file read in 8 MiB batches is a big job.
NUMBA_MIN_BYTES = 1 << 23
#: The same threshold in a process that runs one command and exits (the CLI), while numba is not yet
#: imported: the first use of the compiled kernels in a process imports numba and loads them from the cache
#: (about 0.6 s on the 2-core reference machine), which only a job this big repays (uint8 moments in 8 MiB
#: batches: 1.7 GB/s on NumPy, 8 GB/s compiled).
ONE_SHOT_MIN_BYTES = 1 << 30

_NUMBA: dict[str, bool] = {}
_ONE_SHOT: list[bool] = []
_POOL: dict[str, Any] = {}
_LOCAL = threading.local()


def env_engine() -> str:
    """The engine forced by the environment variable ``NORMLAB_ENGINE`` (``""`` when not set)."""
    return os.environ.get("NORMLAB_ENGINE", "").strip().lower()


def numba_available() -> bool:
    """True when numba can be imported (checked once per process; nothing is compiled)."""
    if "ok" not in _NUMBA:
        try:
            import numba  # noqa: F401

            _NUMBA["ok"] = True
        except Exception:  # pragma: no cover - depends on the environment
            _NUMBA["ok"] = False
    return _NUMBA["ok"]


def resolve_engine(engine: str, nbytes: int | None = None) -> str:
    """``"numba"`` when compiled kernels are wanted and available, else ``"numpy"``.

    ``nbytes`` is the size of the whole job (see ``NUMBA_MIN_BYTES``). ``"auto"`` uses them for jobs of at
    least ``NUMBA_MIN_BYTES`` (results are identical, and small jobs never wait for a first compilation),
    inside :func:`one_shot` of at least ``ONE_SHOT_MIN_BYTES`` until numba is imported.
    ``NORMLAB_ENGINE=numpy`` turns them off everywhere; ``NORMLAB_ENGINE=numba`` uses them whatever the size.
    """
    env = env_engine()
    if env == "numpy" or engine == "numpy":
        return "numpy"
    forced = engine == "numba" or env == "numba"
    least = ONE_SHOT_MIN_BYTES if _ONE_SHOT and "numba" not in sys.modules else NUMBA_MIN_BYTES
    if not forced and nbytes is not None and nbytes < least:
        return "numpy"  # decided before importing numba at all
    return "numba" if numba_available() else "numpy"


@contextlib.contextmanager
def one_shot():
    """Run one command of a process that then exits (the CLI): ``"auto"`` loads the compiled kernels only for
    jobs that repay the load (``ONE_SHOT_MIN_BYTES``); once numba is imported, the usual threshold holds."""
    _ONE_SHOT.append(True)
    try:
        yield
    finally:
        _ONE_SHOT.pop()


def n_workers() -> int:
    """Worker threads of a kernel called from this thread: the :func:`thread_limit` in force here, else
    ``NORMLAB_THREADS``, else the usable cores (at most 8)."""
    limit = getattr(_LOCAL, "threads", None)
    if limit is not None:
        return limit
    env = os.environ.get("NORMLAB_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(os.cpu_count() or 1, 8))


@contextlib.contextmanager
def thread_limit(n: int):
    """Run the kernels called from this thread on at most ``n`` threads: normlab's pool and numba's
    threads alike (a Dask worker with one thread must not start one per core). A limit inside another
    never raises it."""
    old = getattr(_LOCAL, "threads", None)
    _LOCAL.threads = max(1, int(n) if old is None else min(old, int(n)))
    nb = sys.modules.get("numba")
    nb_old = nb.get_num_threads() if nb is not None else None
    if nb is not None:
        nb.set_num_threads(max(1, min(nb_old, int(n))))  # numba's setting is per calling thread
    try:
        yield
    finally:
        _LOCAL.threads = old
        if nb is not None:
            nb.set_num_threads(nb_old)


def pool():
    """A process-wide thread pool for the NumPy engine (NumPy releases the GIL in its loops)."""
    from concurrent.futures import ThreadPoolExecutor

    if _POOL.get("pid") != os.getpid():  # a forked child must not reuse its parent's threads
        _POOL.clear()
        _POOL["pid"] = os.getpid()
        _POOL["pool"] = ThreadPoolExecutor(
            max_workers=n_workers(), thread_name_prefix="normlab-stats"
        )
    return _POOL["pool"]


def pmap(fn, items, parallel: bool):
    """``fn(*item)`` for each item, results in order; at most ``2 * workers`` items in flight."""
    if not parallel:
        for item in items:
            yield fn(*item)
        return
    workers = pool()
    window: deque = deque()
    limit = 2 * n_workers()
    for item in items:
        window.append(workers.submit(fn, *item))
        if len(window) >= limit:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A per-thread reusable buffer (avoids mapping fresh pages for every chunk)."""
    buf = getattr(_LOCAL, name, None)
    need = math.prod(shape) * np.dtype(dtype).itemsize
    if buf is None or buf.nbytes < need:
        buf = np.empty(max(need, 1), np.uint8)
        setattr(_LOCAL, name, buf)
    return buf[:need].view(dtype).reshape(shape)
