"""The sweep runner: run every missing (model, method, init seed, order seed) in worker processes.

Workers are started with the ``spawn`` context (PyTorch and ``fork`` do not mix), without importing the
user's main script in them (so a plain script without ``if __name__ == "__main__":`` works), each limited to
``cores // workers`` threads. They read the splits, already preprocessed by the parent with each
method's fitted normalizers, from ``.cache/`` in the run folder, build the model under the run's init
seed, train, and send the result back. Only the parent writes to the store, one transaction per finished
run, as results arrive. A worker whose parent dies (even by SIGKILL) exits within a second.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from normlab.experiments._common import CompareError, run_failed
from normlab.experiments._usercode import error_trace
from normlab.experiments.engines import clear_prepared, get_engine
from normlab.experiments.plan import Task
from normlab.experiments.train import RunResult, TrainSettings

__all__ = ["default_workers", "execute_tasks", "run_task", "threads_per_worker"]

# --------------------------------------------------------------------------------------------------
# Inside a worker (or in-process)
# --------------------------------------------------------------------------------------------------


def run_task(
    task: dict[str, Any],
    settings: TrainSettings,
    device: str,
    *,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> RunResult:
    """Run one task with its engine: prepare data, build the model under its init seed, train.

    ``task`` is the plain-dict form of a :class:`~normlab.experiments.plan.Task` (:meth:`Task.to_dict`);
    its ``engine`` (:data:`normlab.experiments.engines.ENGINES`) trains it.
    """
    run = Task.from_dict(task)
    return get_engine(run.engine).run(run.to_dict(), settings, device, on_epoch=on_epoch)


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(3)


def _worker_main(
    task_q: Any, result_q: Any, threads: int, parent_pid: int, settings: TrainSettings, device: str
) -> None:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    if device.startswith("cuda"):
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    while True:
        task = task_q.get()
        if task is None:
            return
        key = task["key"]

        def report(epoch: int, record: dict[str, float], key: str = key) -> None:
            result_q.put(("epoch", key, epoch))

        try:
            result = run_task(task, settings, device, on_epoch=report)
        except BaseException as e:  # sent to the parent, which stops the sweep with this message
            plain = str(e) if isinstance(e, CompareError) else None
            trace = error_trace(e, getattr(task["model_spec"], "path", None))
            result_q.put(("error", key, f"{type(e).__name__}: {e}", trace, plain))
            return
        result_q.put(("done", key, result))


# --------------------------------------------------------------------------------------------------
# In the parent
# --------------------------------------------------------------------------------------------------


def execute_tasks(
    tasks: Sequence[dict[str, Any]],
    settings: TrainSettings,
    *,
    device: str,
    workers: int,
    threads: int,
    on_result: Callable[[dict[str, Any], RunResult], None],
    on_epoch: Callable[[str, int], None] | None = None,
) -> None:
    """Run ``tasks`` and hand each finished one to ``on_result`` (which commits it) as it arrives.

    ``tasks`` are plain-dict forms of :class:`~normlab.experiments.plan.Task` (what crosses to the worker
    processes); ``on_result`` receives them back. ``workers == 1`` runs in this process; more start that
    many spawned worker processes.
    """
    if not tasks:
        return
    if workers <= 1:
        _execute_inline(tasks, settings, device, threads, on_result, on_epoch)
        return
    ctx = mp.get_context("spawn")
    task_q, result_q = ctx.Queue(), ctx.Queue()
    n_workers = min(workers, len(tasks))
    for t in tasks:
        task_q.put(t)
    for _ in range(n_workers):
        task_q.put(None)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(task_q, result_q, threads, os.getpid(), settings, device),
            daemon=True,
            name=f"normlab-compare-{i}",
        )
        for i in range(n_workers)
    ]
    by_key = {t["key"]: t for t in tasks}
    pending = set(by_key)
    try:
        with _main_not_reimported():
            for p in procs:
                p.start()
        while pending:
            try:
                msg = result_q.get(timeout=0.5)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead or all(p.exitcode is not None for p in procs):
                    time.sleep(0.2)  # let a last message arrive
                    if result_q.empty():
                        code = dead[0].exitcode if dead else 0
                        raise CompareError(
                            f"a worker process stopped (exit code {code}) with {len(pending)} run(s) unfinished; "
                            "expected it to finish its runs (out of memory?). Finished runs are saved: run the "
                            "same command again to resume, with fewer --workers if memory is short."
                        ) from None
                continue
            kind, key = msg[0], msg[1]
            if kind == "epoch":
                if on_epoch is not None:
                    on_epoch(key, msg[2])
            elif kind == "done":
                pending.discard(key)
                on_result(by_key[key], msg[2])
            else:
                _raise_task_error(by_key[key], msg[2], msg[3], msg[4])
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
        task_q.cancel_join_thread()
        result_q.cancel_join_thread()


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Start ``spawn`` workers without importing the user's ``__main__`` module in them.

    ``spawn`` runs the parent's main script again in every child (as ``__mp_main__``), so a plain script
    that calls ``normlab.compare`` at its top level, without ``if __name__ == "__main__":``, would start a
    comparison inside each worker, which multiprocessing stops, and the worker dies. The workers need
    nothing from ``__main__`` (their function, the tasks and the settings live in normlab; the user's model
    is imported from its file), so while they start, ``__main__`` is an empty module: without ``__file__``
    and ``__spec__`` there is nothing for spawn to import.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main


def _raise_task_error(task: dict[str, Any], message: str, tb: str, plain: str | None) -> None:
    if plain is not None:
        raise CompareError(plain)
    raise CompareError(run_failed(task["key"], message, tb))


def _execute_inline(
    tasks: Sequence[dict[str, Any]],
    settings: TrainSettings,
    device: str,
    threads: int,
    on_result: Callable[[dict[str, Any], RunResult], None],
    on_epoch: Callable[[str, int], None] | None,
) -> None:
    import torch

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for task in tasks:

            def report(epoch: int, record: dict[str, float], key: str = task["key"]) -> None:
                if on_epoch is not None:
                    on_epoch(key, epoch)

            try:
                result = run_task(task, settings, device, on_epoch=report)
            except CompareError:
                raise
            except Exception as e:
                _raise_task_error(task, f"{type(e).__name__}: {e}", error_trace(e, getattr(task["model_spec"], "path", None)), None)
            on_result(task, result)
    finally:
        torch.set_num_threads(old_threads)
        clear_prepared()


def default_workers(n_tasks: int, device: str, cores: int) -> int:
    """Workers when ``--workers`` is not given: one per core on a CPU; a few sharing one GPU."""
    if device.startswith("cuda"):
        return max(1, min(n_tasks, cores, 4))
    return max(1, min(n_tasks, cores))


def threads_per_worker(cores: int, workers: int) -> int:
    return max(1, math.floor(cores / max(1, workers)))
