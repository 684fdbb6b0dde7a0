"""A sweep killed with SIGKILL in the middle of training resumes without repeating or losing a run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

SLOW_MODEL = textwrap.dedent("""
    import time
    import torch

    class Slow(torch.nn.Module):
        def __init__(self, n_in, n_classes):
            super().__init__()
            self.fc = torch.nn.Linear(n_in, n_classes)

        def forward(self, x):
            time.sleep(0.01)  # slow without using the CPU, so that the kill lands mid-epoch
            return self.fc(x.flatten(1))

    def build(input_shape, n_classes):
        return Slow(int(torch.tensor(input_shape).prod()), n_classes)
""")

SLOW_KERAS_MODEL = textwrap.dedent("""
    import time
    import keras

    class Slow(keras.layers.Layer):
        def call(self, x):
            time.sleep(0.01)  # slow without using the CPU, so that the kill lands mid-epoch
            return x

    def build(input_shape, n_classes):
        return keras.Sequential([keras.Input(input_shape), Slow(), keras.layers.Dense(n_classes)])
""")

SCRIPT = textwrap.dedent("""
    import sys
    from normlab.experiments import compare
    compare(sys.argv[4], validation_split=0.25, methods="none,batchnorm-input", model=sys.argv[2], seeds=3,
            epochs=4, batch_size=16, workers=int(sys.argv[3]), threads=1, out=sys.argv[1], progress=False,
            write_report=False)
""")


def _finished(db: Path) -> dict[str, tuple]:
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute(
            "SELECT run_key, finished_at, session, seconds, epochs_done FROM runs"
        ).fetchall()
        n_epochs = dict(
            con.execute("SELECT run_key, COUNT(*) FROM epochs GROUP BY run_key").fetchall()
        )
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    finally:
        con.close()
    return {r[0]: (*r[1:], n_epochs.get(r[0], 0)) for r in rows}


def _kill_once_finished(proc: subprocess.Popen, db: Path, *, runs: int, seconds: float) -> None:
    """SIGKILL the sweep ``proc`` as soon as ``runs`` runs are stored in ``db`` (it must not end first)."""
    deadline = time.monotonic() + seconds
    while len(_finished(db)) < runs:
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before it was killed: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"no {runs} runs finished within {seconds:g} s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _tagged_processes(tag: str) -> list[int]:
    pids = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if tag.encode() in env.read_bytes():
                pids.append(int(env.parent.name))
        except OSError:
            pass
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "keras"])
def test_sigkill_mid_sweep_then_resume_finishes_only_the_missing_runs(tmp_path, engine):
    if engine == "keras":
        pytest.importorskip("keras")
    model = tmp_path / "slow.py"
    model.write_text(SLOW_MODEL if engine == "torch" else SLOW_KERAS_MODEL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    data = f"npz:{tmp_path / 'data.npz'}"
    out = tmp_path / "run"
    db = out / "results.sqlite"
    tag = f"NORMLAB_TEST_TAG={uuid.uuid4().hex}"
    env = {**os.environ, "NORMLAB_PROGRESS": "0", "KERAS_BACKEND": "torch", tag.split("=")[0]: tag.split("=")[1]}
    with subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), f"{model}:build", "2", data],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as proc:
        _kill_once_finished(proc, db, runs=2, seconds=120)
    before = _finished(db)
    assert 2 <= len(before) < 6, "the kill should land in the middle of the sweep"
    assert all(v[3] == 4 and v[4] == 4 for v in before.values()), (
        "a committed run has all its epochs"
    )
    if Path("/proc").is_dir():  # orphaned workers notice their parent is gone and exit
        for _ in range(100):
            if not _tagged_processes(tag):
                break
            time.sleep(0.1)
        assert _tagged_processes(tag) == []

    from normlab.experiments import compare

    result = compare(
        data,
        validation_split=0.25,
        methods="none,batchnorm-input",
        model=f"{model}:build",
        seeds=3,
        epochs=4,
        batch_size=16,
        workers=1,
        threads=1,
        out=out,
        progress=False,
        write_report=False,
    )
    after = _finished(db)
    assert len(after) == 6 == result.n_finished
    assert sorted(result.ran) == sorted(
        set(after) - set(before)
    )  # only the missing runs were trained
    assert result.n_skipped == len(before)
    assert {
        k: after[k] for k in before
    } == before  # finished runs untouched: same time, session, epochs
    assert all(after[k][1] == 2 for k in result.ran)  # trained in the second session
    assert not (out / ".cache").exists()


KERAS_SCRIPT = textwrap.dedent("""
    import sys
    from normlab.experiments import compare
    compare(sys.argv[2], limit=600, methods="scale,batchnorm-input", model="mlp", engine="keras", seeds=4,
            epochs=2, batch_size=32, workers=1, threads=1, out=sys.argv[1], progress=False, write_report=False)
""")

NOT_TIMES = ("seconds", "run_key")


def _numbers(rundir: Path) -> dict[tuple, list[dict]]:
    """Every run's epochs, all fields but the wall times, keyed by (model, method, init seed, order seed)."""
    from normlab.experiments.store import open_store

    runs: dict[tuple, list[dict]] = {}
    with open_store(rundir) as store:
        for e in store.epochs():
            key = (e["model"], e["method"], e["init_seed"], e["order_seed"])
            runs.setdefault(key, []).append({k: v for k, v in e.items() if k not in NOT_TIMES})
    return runs


@pytest.mark.slow
def test_keras_engine_sweep_killed_mid_way_resumes_to_the_numbers_of_an_uninterrupted_sweep(tmp_path, shared_data):
    pytest.importorskip("keras")
    from normlab.experiments import compare

    data = f"mnist:{shared_data / 'mnist'}"
    out = tmp_path / "killed"
    db = out / "results.sqlite"
    tag = f"NORMLAB_TEST_TAG={uuid.uuid4().hex}"
    env = {**os.environ, "NORMLAB_PROGRESS": "0", "KERAS_BACKEND": "torch", tag.split("=")[0]: tag.split("=")[1]}
    with subprocess.Popen([sys.executable, "-c", KERAS_SCRIPT, str(out), data], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:  # fmt: skip
        _kill_once_finished(proc, db, runs=1, seconds=300)
    before = _finished(db)
    assert 1 <= len(before) < 8, "the kill should land in the middle of the sweep"
    assert all(v[3] == 2 and v[4] == 2 for v in before.values()), "a committed run has all its epochs"

    settings = dict(limit=600, methods="scale,batchnorm-input", model="mlp", engine="keras", seeds=4, epochs=2,
                    batch_size=32, workers=1, threads=1, progress=False, write_report=False)  # fmt: skip
    resumed = compare(data, out=out, **settings)
    after = _finished(db)
    assert len(after) == 8 == resumed.n_finished and resumed.n_skipped == len(before)
    assert sorted(resumed.ran) == sorted(set(after) - set(before))  # only the missing runs were trained
    assert {k: after[k] for k in before} == before  # the finished runs untouched

    whole = compare(data, out=tmp_path / "whole", **settings)
    assert whole.n_finished == 8 and whole.n_skipped == 0
    got, expected = _numbers(out), _numbers(tmp_path / "whole")
    assert len(got) == 8 and all(len(v) == 2 for v in got.values())  # every run once, both epochs
    assert got == expected  # a resumed Keras sweep has the numbers of one that never stopped
    assert len({round(v[-1]["val_acc"], 6) for v in got.values()}) > 1  # the seeds differ: not a constant
