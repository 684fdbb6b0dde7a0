"""A sweep on a real LocalCluster: the local numbers, every run exactly once, even when a worker is killed.

``normlab.compare`` runs with its runner swapped for :func:`execute_tasks_on_cluster`, exactly as
``normlab compare --scheduler`` does, so the client alone writes the run store.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from normlab.experiments import CompareError, api, cluster
from normlab.experiments import execute as execute_step
from normlab.experiments.cluster import execute_tasks_on_cluster
from normlab.experiments.models import parse_model
from normlab.experiments.store import open_store
from normlab.experiments.train import TrainSettings

pytestmark = pytest.mark.slow  # worker processes import torch: about 20 s for the module

RUN = dict(methods="none,standardize", model="logreg", seeds=2, epochs=5, limit=600, validation_split=0.25,
           device="cpu", workers=1, threads=1, write_report=False, progress=False)  # fmt: skip
SETTINGS = TrainSettings(epochs=5, batch_size=32)


def _numbers(epochs) -> list[dict]:
    """What runs measured, without wall times."""
    return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]


def _stored(rundir: Path) -> dict[str, list[dict]]:
    with open_store(rundir) as store:
        rows = store.epochs()
    out: dict[str, list[dict]] = {}
    for row in _numbers(rows):
        out.setdefault(row["run_key"], []).append(row)
    return out


def _by_key(results) -> dict[str, list[dict]]:
    return {key: _numbers(r.epochs) for key, r in results}


def _plain(stored: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Stored epochs as a RunResult holds them (without the run's identity columns)."""
    drop = ("run_key", "model", "method", "init_seed", "order_seed", "status")
    return {k: [{f: v for f, v in e.items() if f not in drop} for e in rows] for k, rows in stored.items()}


def _warm() -> None:
    """What a worker's first run would spend seconds on: importing torch and its optimizers."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


@pytest.fixture(scope="module")
def local(client, tmp_path_factory):
    """The sweep run locally (in this process): its stored numbers per run."""
    warming = [client.submit(_warm, pure=False, workers=[w]) for w in client.scheduler_info()["workers"]]
    out = tmp_path_factory.mktemp("local")
    api.compare("digits", out=out, **RUN)
    client.gather(warming)  # the workers imported torch meanwhile
    return _stored(out)


@pytest.fixture(scope="module")
def tasks(local, client, tmp_path_factory):
    """The same sweep through normlab.compare on the cluster; returns its tasks (data files kept)."""
    keep = tmp_path_factory.mktemp("kept")
    seen: list = []
    epochs: dict[str, list[int]] = {}

    def on_cluster(tasks, settings, *, device, workers, threads, on_result, on_epoch=None):
        for t in tasks:
            files = []
            for f in t["files"]:
                if not (keep / Path(f).name).exists():
                    shutil.copy2(f, keep / Path(f).name)
                files.append(str(keep / Path(f).name))
            seen.append({**t, "files": files})

        def progress(key: str, epoch: int) -> None:
            epochs.setdefault(key, []).append(epoch)
            on_epoch(key, epoch)

        execute_tasks_on_cluster(tasks, settings, client=client, device=device, threads=threads,
                                 on_result=on_result, on_epoch=progress)  # fmt: skip

    mp = pytest.MonkeyPatch()
    mp.setattr(execute_step, "execute_tasks", on_cluster)
    try:
        out = tmp_path_factory.mktemp("cluster")
        result = api.compare("digits", out=out, **RUN)
    finally:
        mp.undo()
    return {"tasks": seen, "stored": _stored(out), "epochs": epochs, "result": result}


def test_a_sweep_on_the_cluster_stores_the_numbers_of_the_local_run(local, tasks):
    assert sorted(tasks["stored"]) == sorted(local) and len(local) == 4
    assert tasks["stored"] == local
    assert sorted(tasks["result"].ran) == sorted(local)
    assert tasks["epochs"]  # progress came back from the workers: each epoch of a run once, in order
    for seen in tasks["epochs"].values():
        assert seen == list(range(1, len(seen) + 1)) and len(seen) <= SETTINGS.epochs


def test_a_rerun_after_the_client_stopped_trains_only_the_missing_runs(local, client, tmp_path, monkeypatch):
    committed: list[str] = []

    def stopped_after_two(tasks, settings, *, device, workers, threads, on_result, on_epoch=None):
        def commit(task, result):
            on_result(task, result)
            committed.append(task["key"])
            if len(committed) == 2:
                raise KeyboardInterrupt  # the client is stopped; the runs still on the cluster are dropped

        execute_tasks_on_cluster(tasks, settings, client=client, device=device, threads=threads, on_result=commit)

    monkeypatch.setattr(execute_step, "execute_tasks", stopped_after_two)
    with pytest.raises(KeyboardInterrupt):
        api.compare("digits", out=tmp_path, **RUN)
    assert sorted(_stored(tmp_path)) == sorted(committed)
    monkeypatch.setattr(execute_step, "execute_tasks", lambda tasks, settings, **kw: execute_tasks_on_cluster(
        tasks, settings, client=client, device=kw["device"], threads=kw["threads"], on_result=kw["on_result"]))
    again = api.compare("digits", out=tmp_path, **RUN)
    assert again.n_skipped == 2 and sorted(again.ran) == sorted(set(local) - set(committed))
    assert _stored(tmp_path) == local


@pytest.fixture
def elsewhere(tasks, monkeypatch):
    """The tasks with files at paths the workers cannot see: only the client (patched here) reads them."""
    real = {}
    moved = []
    for t in tasks["tasks"]:
        files = []
        for f in t["files"]:
            fake = f"/normlab-not-on-this-machine/{Path(f).name}"
            real[fake] = f
            files.append(fake)
        moved.append({**t, "files": files})
    of = cluster._FileRef.of.__func__
    monkeypatch.setattr(cluster._FileRef, "of", classmethod(lambda cls, path: dataclasses.replace(
        of(cls, real.get(path, path)), path=str(path))))
    monkeypatch.setattr(cluster, "_read_bytes", lambda path: Path(real.get(path, path)).read_bytes())
    return moved


def _copies() -> list[str]:
    root = Path(tempfile.gettempdir()) / "normlab-sweep-data"
    return sorted(p.name for p in root.glob("*/*.npy"))


def test_machines_that_cannot_see_the_run_folder_get_a_copy_on_disk(client, local, elsewhere, monkeypatch):
    results: list = []
    execute_tasks_on_cluster(elsewhere, SETTINGS, client=client, threads=1,
                             on_result=lambda task, result: results.append((task["key"], result)))  # fmt: skip
    assert _by_key(results) == _plain(local)
    assert _copies() == []  # removed after the sweep
    # a machine that joins later reports the missing files and gets them then
    monkeypatch.setattr(cluster._Shipper, "to_blind_workers", lambda self: None)
    results.clear()
    execute_tasks_on_cluster(elsewhere[:2], SETTINGS, client=client, threads=1,
                             on_result=lambda task, result: results.append((task["key"], result)))  # fmt: skip
    assert sorted(k for k, _ in results) == sorted(t["key"] for t in elsewhere[:2])
    with pytest.raises(CompareError, match=r"cannot read /normlab-not-on-this-machine/.*every worker shares.*ship_data=True"):
        execute_tasks_on_cluster(elsewhere[:1], SETTINGS, client=client, retries=0, ship_data=False,
                                 on_result=lambda task, result: None)  # fmt: skip


def test_a_failing_run_stops_the_sweep_with_its_error(client, tasks, tmp_path):
    model_file = tmp_path / "bad_model.py"
    model_file.write_text("def build(input_shape, n_classes):\n    raise RuntimeError('this model cannot be built')\n")
    good = tasks["tasks"][0]
    bad = {**good, "key": "bad", "model_spec": parse_model(f"{model_file}:build")}
    done: list[str] = []
    with pytest.raises(CompareError, match="this model cannot be built"):
        execute_tasks_on_cluster([good, bad], SETTINGS, client=client, retries=0,
                                 on_result=lambda task, result: done.append(task["key"]))  # fmt: skip
    assert "bad" not in done


def test_killing_a_worker_mid_sweep_still_gives_every_run_exactly_once(client, local, elsewhere):
    pids = client.run(os.getpid)
    killed: dict = {}

    def kill_a_busy_worker(key: str, epoch: int) -> None:
        if killed:
            return
        busy = {a: ks for a, ks in client.processing().items() if any("normlab-run-" in str(k) for k in ks)}
        if busy:
            addr = sorted(busy)[0]
            killed.update(addr=addr, pid=pids[addr], keys=list(busy[addr]))
            os.kill(pids[addr], signal.SIGKILL)

    results: list = []
    # the data reach the workers as copies on disk, which the restarted worker finds again
    execute_tasks_on_cluster(elsewhere, SETTINGS, client=client, threads=1, on_epoch=kill_a_busy_worker,
                             on_result=lambda task, result: results.append((task["key"], result)))  # fmt: skip
    assert killed and killed["keys"], "no worker was busy with a run when the first epoch was reported"
    assert killed["pid"] not in client.run(os.getpid).values()
    keys = [k for k, _ in results]
    assert sorted(keys) == sorted(local)  # every run once: none lost, none twice
    assert _by_key(results) == _plain(local)


def test_a_keras_engine_sweep_on_the_cluster_and_on_two_local_workers_stores_the_local_numbers(client, tmp_path):
    """The Keras engine goes through the same plan, store and executors as the torch engine: two local
    worker processes and the Dask workers store exactly what one in-process worker stores."""
    pytest.importorskip("keras")
    run = {**RUN, "model": "mlp", "engine": "keras", "epochs": 2, "methods": "max,batchnorm-input"}
    api.compare("digits", out=tmp_path / "one", **run)
    api.compare("digits", out=tmp_path / "two", **{**run, "workers": 2})
    one = _stored(tmp_path / "one")

    def on_cluster(tasks, settings, *, device, workers, threads, on_result, on_epoch=None):
        execute_tasks_on_cluster(tasks, settings, client=client, device=device, threads=threads,
                                 on_result=on_result, on_epoch=on_epoch)  # fmt: skip

    mp = pytest.MonkeyPatch()
    mp.setattr(execute_step, "execute_tasks", on_cluster)
    try:
        api.compare("digits", out=tmp_path / "cluster", **run)
    finally:
        mp.undo()
    assert len(one) == 4 and all(len(rows) == 2 for rows in one.values())
    assert _stored(tmp_path / "two") == one
    assert _stored(tmp_path / "cluster") == one
