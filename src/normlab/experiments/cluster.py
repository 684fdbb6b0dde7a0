"""A sweep on a Dask cluster: every run a task, results committed by the client alone as they arrive.

The execute step of :func:`normlab.compare` calls it for ``scheduler=`` (CLI ``--scheduler``); the
connection itself is :func:`normlab.adapters.dask.connect`'s. :func:`execute_tasks_on_cluster` keeps the contract of :func:`normlab.experiments.runner.execute_tasks`:
each task is trained by :func:`~normlab.experiments.runner.run_task` (on a worker) and its result handed to
``on_result`` in the calling process, which alone writes the store. A run whose worker dies is started
again on another worker by the scheduler; a run that raises is retried ``retries`` times. Killing the
client loses only the runs in flight: the store keeps every finished run, and the next call resumes.

Data. A task (the plain-dict form of a :class:`~normlab.experiments.plan.Task`) names the prepared splits
it trains on (``task["files"]``, written by the client into the run
folder). Workers that see those files (same machine, shared filesystem) read them in place. Any other
machine gets a copy on its local disk (``$TMPDIR/normlab-sweep-data/``), sent by the client before its
first run there and removed after the sweep; a copy on disk survives the worker processes of that machine,
so a restarted worker finds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from normlab._files import atomic_write_bytes
from normlab.adapters._dask_cluster import require_dask
from normlab.experiments._common import ClusterError, CompareError, MissingDataError, run_failed
from normlab.experiments._usercode import user_frames
from normlab.experiments.runner import run_task

__all__ = ["execute_tasks_on_cluster"]

_COPIES = "normlab-sweep-data"
_MAX_RESENDS = 3

# Inside a worker process: one run at a time (seeds are process-global).
_RUN_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True)
class _FileRef:
    """A data file of the sweep as the client sees it: path, size, modification time, and its copy folder."""

    path: str
    size: int
    mtime_ns: int
    folder: str = ""  # name of the folder its copy goes to on machines that cannot see ``path``

    @classmethod
    def of(cls, path: str) -> _FileRef:
        st = os.stat(path)
        return cls(str(path), int(st.st_size), int(st.st_mtime_ns))

    def seen_here(self) -> bool:
        """True when this machine has the same file at the same path (the same or a shared filesystem)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return int(st.st_size) == self.size and int(st.st_mtime_ns) == self.mtime_ns

    @property
    def copy(self) -> Path:
        return Path(tempfile.gettempdir()) / _COPIES / self.folder / Path(self.path).name


def _with_folders(refs: dict[str, _FileRef]) -> dict[str, _FileRef]:
    """Give the files of one source folder one copy folder, named after all of their versions."""
    parents: dict[str, list[_FileRef]] = {}
    for ref in refs.values():
        parents.setdefault(str(Path(ref.path).parent), []).append(ref)
    out = {}
    for group in parents.values():
        digest = hashlib.blake2b(repr(sorted((r.path, r.size, r.mtime_ns) for r in group)).encode(), digest_size=12)
        out.update((r.path, dataclasses.replace(r, folder=digest.hexdigest())) for r in group)
    return out


def _task_files(task: dict[str, Any]) -> list[str]:
    """The files a task reads: the prepared splits of its method."""
    return [str(f) for f in task.get("files", ())]


def _with_files(task: dict[str, Any], files: list[str]) -> dict[str, Any]:
    return {**task, "files": files} if "files" in task else task


# --------------------------------------------------------------------------------------------------
# On the workers
# --------------------------------------------------------------------------------------------------


def _sees(refs: list[_FileRef]) -> bool:
    return all(ref.seen_here() for ref in refs)


def _store_copy(ref: _FileRef, data: bytes) -> str:
    """Write ``data`` as the local copy of ``ref`` (atomically; a copy already there is kept)."""
    dest = ref.copy
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dest, data)
    return str(dest)


def _drop_copies(folders: list[str]) -> None:
    root = Path(tempfile.gettempdir()) / _COPIES
    for name in folders:
        shutil.rmtree(root / name, ignore_errors=True)


def _local_files(refs: list[_FileRef]) -> list[str]:
    """Paths on this machine holding the files ``refs``: the client's own, or the copies sent here."""
    out = []
    for ref in refs:
        if ref.seen_here():
            out.append(ref.path)
        elif ref.folder and ref.copy.is_file():
            out.append(str(ref.copy))
        else:
            try:
                from distributed import get_worker

                where = get_worker().address
            except (ImportError, ValueError):
                where = "(this process)"
            raise MissingDataError(where, ref.path)
    return out


def _run_on_worker(
    task: dict[str, Any],
    settings: Any,
    device: str,
    threads: int | None,
    refs: list[_FileRef],
    topic: str | None,
) -> Any:
    """Train one run on a worker (one at a time per process) and return its RunResult."""
    with _RUN_LOCK:
        task = _with_files(task, _local_files(refs))  # the runner's cache checks each file's version
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        if device.startswith("cuda"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        report = None
        if topic is not None:
            from distributed import get_worker

            worker, key = get_worker(), task["key"]

            def report(epoch: int, record: dict[str, float]) -> None:
                worker.log_event(topic, {"key": key, "epoch": int(epoch)})

        return run_task(task, settings, device, on_epoch=report)


# --------------------------------------------------------------------------------------------------
# On the client
# --------------------------------------------------------------------------------------------------


def _read_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


class _Shipper:
    """Sends the sweep's files to the machines that cannot see them, one worker per machine."""

    def __init__(self, client: Any, refs: dict[str, _FileRef], enabled: bool) -> None:
        self.client, self.refs, self.enabled = client, refs, enabled
        self.hosts_done: set[str] = set()
        self.shipped = False

    def _host(self, addr: str) -> str:
        info = self.client.scheduler_info().get("workers", {}).get(addr, {})
        return str(info.get("host") or addr)

    def to_blind_workers(self) -> None:
        """Before the sweep: copy the files to every machine whose workers cannot read them."""
        if not self.enabled or not self.refs:
            return
        sees = self.client.run(_sees, list(self.refs.values()))
        by_host: dict[str, list[str]] = {}
        for addr, ok in sees.items():
            by_host.setdefault(self._host(addr), []).append(addr)
            if ok:
                self.hosts_done.add(self._host(addr))
        targets = [sorted(addrs)[0] for host, addrs in sorted(by_host.items()) if host not in self.hosts_done]
        self._send(targets)

    def to_worker(self, addr: str) -> None:
        """A worker reported missing data (it joined later): copy the files to its machine."""
        self.hosts_done.discard(self._host(addr))
        self._send([addr])

    def _send(self, workers: list[str]) -> None:
        if not workers:
            return
        for ref in self.refs.values():  # one file at a time: the client holds one file in memory
            self.client.run(_store_copy, ref, _read_bytes(ref.path), workers=workers)
        self.hosts_done.update(self._host(a) for a in workers)
        self.shipped = True

    def cleanup(self) -> None:
        if self.shipped:
            folders = sorted({ref.folder for ref in self.refs.values()})
            try:
                self.client.run(_drop_copies, folders)
            except Exception:  # best effort: a worker may be gone
                pass


def execute_tasks_on_cluster(
    tasks: Sequence[dict[str, Any]],
    settings: Any,
    *,
    client: Any,
    on_result: Callable[[dict[str, Any], Any], None],
    on_epoch: Callable[[str, int], None] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    retries: int = 2,
    ship_data: bool = True,
) -> None:
    """Run ``tasks`` on the Dask cluster of ``client``; hand each result to ``on_result`` as it arrives.

    The drop-in for :func:`normlab.experiments.runner.execute_tasks` on a cluster: the same ``tasks`` (dicts
    with ``key``, ``files``, ``model_spec``, seeds, ...), the same ``settings`` and callbacks, which run in
    this process only, so only this process writes the store.

    Parameters
    ----------
    tasks : sequence of dict
        As built by :func:`normlab.compare`; ``key`` identifies a run.
    settings : TrainSettings
    client : distributed.Client
        See :func:`normlab.adapters.dask.connect`.
    on_result : callable ``(task, RunResult) -> None``
        Called once per run, in completion order, in this process.
    on_epoch : callable ``(key, epoch) -> None``, optional
        Progress: called once per epoch of each run (epochs of a run started again are not repeated).
    device : str
        The torch device on the workers (``"cpu"`` or ``"cuda"``).
    threads : int, optional
        Torch threads per run (default: what the worker process has; ``dask worker`` sets 1 per thread).
        Runs are bit-identical to local ones trained with the same number of threads.
    retries : int
        How often a run that raised is tried again before the sweep stops. Runs lost with a worker that
        died are restarted by the scheduler (up to its ``allowed-failures``, default 3) in any case.
    ship_data : bool
        Copy the tasks' files to the local disk of machines whose workers cannot read them (default).
        ``False``: such a worker fails the sweep with an error asking for a shared filesystem.

    Raises
    ------
    CompareError
        A run failed (after its retries) or was lost with too many workers; finished runs were handed to
        ``on_result`` before, so the same sweep resumes.
    """
    if not tasks:
        return
    require_dask("execute_tasks_on_cluster()")
    by_key = {t["key"]: t for t in tasks}
    if len(by_key) != len(tasks):
        raise CompareError("execute_tasks_on_cluster() received two tasks with one key; expected unique keys.")
    _ClusterSweep(client, by_key, settings, device, threads, retries, bool(ship_data),
                  on_result, on_epoch).run()  # fmt: skip


class _ClusterSweep:
    """One call of :func:`execute_tasks_on_cluster`: submits the runs, relays progress, hands back results."""

    def __init__(
        self, client: Any, by_key: dict[str, dict[str, Any]], settings: Any, device: str,
        threads: int | None, retries: int, ship_data: bool,
        on_result: Callable[[dict[str, Any], Any], None], on_epoch: Callable[[str, int], None] | None,
    ) -> None:  # fmt: skip
        self.client, self.by_key, self.settings, self.device = client, by_key, settings, device
        self.threads, self.retries, self.ship_data = threads, retries, ship_data
        self.on_result, self.on_epoch = on_result, on_epoch
        self.refs = _with_folders({path: _FileRef.of(path) for t in by_key.values() for path in _task_files(t)})
        self.shipper = _Shipper(client, self.refs, ship_data)
        self.sweep = uuid.uuid4().hex[:12]
        self.topic = f"normlab-epoch-{self.sweep}" if on_epoch is not None else None
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.pending: dict[Any, dict[str, Any]] = {}
        self.resent: dict[str, int] = {}
        self.finished: set[str] = set()
        self.epochs: dict[str, int] = {}
        self.index = {key: i for i, key in enumerate(by_key)}
        self.ac: Any = None

    def run(self) -> None:
        from distributed import as_completed

        self.ac = as_completed()
        try:
            self.shipper.to_blind_workers()
            if self.topic is not None:
                self.client.subscribe_topic(self.topic, lambda event: self.events.put(event[1]))
            for task in self.by_key.values():
                self.submit(task)
            while self.pending:
                self.drain()
                batch = self.ac.next_batch(block=False)
                if not batch:
                    time.sleep(0.05)
                    continue
                for fut in batch:
                    self.collect(fut)
        finally:
            self.close()

    def submit(self, task: dict[str, Any], attempt: int = 0) -> None:
        files = [self.refs[f] for f in _task_files(task)]
        fut = self.client.submit(
            _run_on_worker, task, self.settings, self.device, self.threads, files, self.topic,
            key=f"normlab-run-{self.sweep}-{self.index[task['key']]}-{attempt}", retries=self.retries,
            pure=False,
        )  # fmt: skip
        self.pending[fut] = task
        self.ac.add(fut)

    def drain(self) -> None:
        """Relay the epochs the workers reported (each epoch of a run once, in order)."""
        while True:
            try:
                msg = self.events.get_nowait()
            except queue.Empty:
                return
            key, epoch = msg.get("key"), int(msg.get("epoch", 0))
            if key in self.by_key and key not in self.finished and self.on_epoch is not None:
                for e in range(self.epochs.get(key, 0) + 1, epoch + 1):
                    self.on_epoch(key, e)
                self.epochs[key] = max(self.epochs.get(key, 0), epoch)

    def collect(self, fut: Any) -> None:
        """A future is done: hand its result on, send missing data and try again, or stop the sweep."""
        task = self.pending.pop(fut)
        key = task["key"]
        if fut.status == "error" and isinstance(fut.exception(), MissingDataError) and self.ship_data:
            self.resent[key] = self.resent.get(key, 0) + 1
            if self.resent[key] <= _MAX_RESENDS:  # a machine that joined after the start
                self.shipper.to_worker(fut.exception().worker)
                self.submit(task, self.resent[key])
                return
        if fut.status != "finished":
            _raise_failure(fut, task, CompareError)
        result = fut.result()
        fut.release()
        self.finished.add(key)
        self.on_result(task, result)

    def close(self) -> None:
        if self.pending:
            self.client.cancel(list(self.pending))
        if self.topic is not None:
            try:
                self.client.unsubscribe_topic(self.topic)
            except Exception:  # the client may be closing
                pass
        self.shipper.cleanup()


def _raise_failure(fut: Any, task: dict[str, Any], error: type) -> None:
    key = task["key"]
    if fut.status == "cancelled":
        try:
            fut.result()
            why = ""
        except BaseException as err:  # distributed says why (e.g. the scheduler restarted)
            why = f" ({err})"
        raise ClusterError(
            f"run {key} was cancelled on the cluster{why}; expected it to finish. Finished runs are saved: run "
            "the same command again to resume."
        )
    exc = fut.exception()
    if isinstance(exc, MissingDataError):
        raise error(
            f"run {key}: {exc}; expected the run folder on a filesystem every worker shares. Put it there "
            "(--out), or let the client copy the data to the workers (ship_data=True)."
        ) from None
    if type(exc).__name__ == "KilledWorker":
        raise error(
            f"run {key} was lost with every worker that started it ({exc}); expected the workers to survive it "
            "(out of memory?). Finished runs are saved: run the same command again to resume, on workers with "
            "more memory."
        ) from None
    if isinstance(exc, error):
        raise error(str(exc)) from None
    trace = fut.traceback()
    mine = "" if trace is None else user_frames(exc, getattr(task.get("model_spec"), "path", None), trace)
    tb = mine or ("".join(traceback.format_tb(trace)) if trace is not None else "")
    raise error(run_failed(key, f"{type(exc).__name__}: {exc}", tb, where=" on the cluster")) from None
