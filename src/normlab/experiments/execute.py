"""The third step of :func:`normlab.compare`: train the runs the store is missing, committing each at once.

:func:`execute` chooses the workers and threads for the runs left to do, records the session in the store,
writes every needed method's preprocessed splits to ``.cache/`` in the run folder, and hands the tasks
(in their plain-dict form) to the local runner (:func:`normlab.experiments.runner.execute_tasks`) or to a
Dask cluster (:func:`normlab.experiments.cluster.execute_tasks_on_cluster`). Either hands every finished
run back to this process, which alone commits it to the store, and shows the progress in epochs.
"""

from __future__ import annotations

import json
import platform
import shutil
from typing import Any

import numpy as np

from normlab._files import atomic_path
from normlab._progress import Progress
from normlab._version import __version__
from normlab.experiments._common import available_cores
from normlab.experiments.models import to_model_input
from normlab.experiments.plan import Sweep, Task, prepared_files
from normlab.experiments.runner import default_workers, execute_tasks, threads_per_worker
from normlab.experiments.store import ResultStore
from normlab.experiments.train import RunResult

__all__ = ["execute"]


def execute(sweep: Sweep, store: ResultStore, todo: list[Task], *, progress: bool | str) -> list[str]:
    """Train ``todo`` (the sweep's tasks not yet in ``store``); returns the keys of the runs trained."""
    cores = available_cores()
    workers = sweep.workers if sweep.workers is not None else default_workers(len(todo), sweep.device, cores)
    workers = max(1, min(int(workers), max(1, len(todo))))
    threads = sweep.threads if sweep.threads is not None else threads_per_worker(cores, workers)
    _record_session(sweep, store, len(todo), workers, threads)
    if not todo:
        return []
    _write_cache(sweep, {t.method for t in todo})
    tally = _Tally(store, len(todo), sweep.settings.epochs, progress)
    payloads = [t.to_dict() for t in todo]
    with tally.bar:
        if sweep.scheduler is None:
            execute_tasks(payloads, sweep.settings, device=sweep.device, workers=workers, threads=threads,
                          on_result=tally.on_result, on_epoch=tally.on_epoch)  # fmt: skip
        else:
            from normlab.adapters._dask_cluster import connect
            from normlab.experiments.cluster import execute_tasks_on_cluster

            with connect(sweep.scheduler) as client:
                execute_tasks_on_cluster(
                    payloads, sweep.settings, client=client, on_result=tally.on_result,
                    on_epoch=tally.on_epoch, device=sweep.device,
                    threads=sweep.threads,  # None: what each Dask worker is configured for
                )  # fmt: skip
    shutil.rmtree(sweep.cache, ignore_errors=True)
    return tally.ran


def _record_session(sweep: Sweep, store: ResultStore, planned: int, workers: int, threads: int) -> None:
    """Store how this session runs (workers, threads, versions, ...), what each method feeds, the session."""
    import torch

    run_settings = {
        "baseline": sweep.baseline,
        "device": sweep.device,
        "workers": workers,
        "threads": threads,
        "scheduler": None if sweep.scheduler is None else str(sweep.scheduler),
        "data_spec": sweep.data.spec,
        "preset": sweep.preset,
        "versions": {
            "normlab": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "config_hash": sweep.config_hash,
        "platform": platform.platform(),
    }
    if any(t.engine == "keras" for t in sweep.tasks):
        from normlab.experiments.keras_models import import_keras

        run_settings["versions"]["keras"] = import_keras().__version__
    store.set_meta("settings", json.dumps(run_settings, sort_keys=True))
    for spec in sweep.methods:
        fitted = sweep.fitted[spec.name]
        store.save_method(spec.name, fitted.feeds(), fitted.notes)
    store.begin_session(planned)


def _write_cache(sweep: Sweep, methods: set[str]) -> None:
    """Preprocess every split with each of ``methods`` once, in the models' layout, for the workers."""
    cache = sweep.cache
    cache.mkdir(exist_ok=True)
    x_train, y_train, x_val, y_val = sweep.data.arrays
    labels_written = False
    for index, spec in enumerate(sweep.methods):
        if spec.name not in methods:
            continue
        fitted = sweep.fitted[spec.name]
        files = prepared_files(cache, index)
        if not labels_written:
            _save(files[1], y_train)
            _save(files[3], y_val)
            labels_written = True
        _save(files[0], to_model_input(fitted.transform(x_train)))
        _save(files[2], to_model_input(fitted.transform(x_val)))


def _save(path: str, a: np.ndarray) -> None:
    """``np.save`` to ``path`` through a temporary file, so that a reader never sees half a file."""
    with atomic_path(path) as tmp:
        np.save(tmp, a)


class _Tally:
    """Commits each finished run to the store and counts the sweep's epochs on a progress bar."""

    def __init__(self, store: ResultStore, n_runs: int, epochs: int, show: bool | str) -> None:
        self.store, self.n_runs, self.epochs = store, n_runs, epochs
        self.bar = Progress(total=n_runs * epochs, desc="compare", unit="epochs", show=show)
        self.counted: dict[str, int] = {}
        self.ran: list[str] = []

    def on_epoch(self, key: str, epoch: int) -> None:
        self.counted[key] = self.counted.get(key, 0) + 1
        self.bar.update(1, postfix=f"runs {len(self.ran)}/{self.n_runs}")

    def on_result(self, task: dict[str, Any], result: RunResult) -> None:
        self.store.add_run(task["key"], task, result)
        self.ran.append(task["key"])
        self.bar.update(
            self.epochs - self.counted.get(task["key"], 0), postfix=f"runs {len(self.ran)}/{self.n_runs}"
        )
