"""The engines' cache of prepared splits: reused while the files are the same, re-read when they change.

A worker process can outlive a sweep (a Dask worker does), and a resumed sweep writes its new splits to
the same paths in the run folder; a cache keyed by path alone would train on the old tensors.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from normlab.experiments import engines, runner
from normlab.experiments.models import parse_model
from normlab.experiments.train import TrainSettings


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.setattr(engines, "_STATE", {})


def _prepared(task):
    return engines.prepared(task["files"], torch.from_numpy, "torch:cpu")


def _write(folder, x_train, y_train, x_val, y_val, *, bump_mtime=False) -> list[str]:
    paths = []
    for name, a in zip(
        ("x_train", "y_train", "x_val", "y_val"), (x_train, y_train, x_val, y_val), strict=True
    ):
        path = folder / f"{name}.npy"
        old = os.stat(path).st_mtime_ns if path.exists() else None
        np.save(path, a)
        if bump_mtime and old is not None:  # a clock tick can be coarser than two quick writes
            os.utime(path, ns=(old + 10**9, old + 10**9))
        paths.append(str(path))
    return paths


def _splits(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return x[:60], y[:60], x[60:], y[60:]


def test_prepared_splits_are_reused_while_the_files_are_unchanged(tmp_path):
    task = {"files": _write(tmp_path, *_splits(0))}
    first = _prepared(task)
    assert _prepared(task) is first


def test_prepared_splits_are_read_again_when_a_file_at_the_same_path_changes(tmp_path):
    task = {"files": _write(tmp_path, *_splits(0))}
    _prepared(task)
    # the same shapes, so the same file sizes: only the modification time tells the versions apart
    new = _splits(1)
    _write(tmp_path, *new, bump_mtime=True)
    got = _prepared(task)
    for tensor, expected in zip(got, new, strict=True):
        np.testing.assert_array_equal(tensor.numpy(), expected)


def test_a_run_after_its_files_were_rewritten_has_the_numbers_of_a_fresh_process(tmp_path):
    """The resumed sweep on a long-lived worker: the second run must not train on the first's tensors."""
    settings = TrainSettings(epochs=2, batch_size=16)
    task = {"key": "k", "model": "logreg", "method": "none", "files": _write(tmp_path, *_splits(0)),
            "model_spec": parse_model("logreg"),
            "sample_shape": [6], "n_classes": 2, "batchnorm_input": False, "batchnorm_all": False,
            "init_seed": 0, "order_seed": 0}  # fmt: skip
    runner.run_task(task, settings, "cpu")
    _write(tmp_path, *_splits(1), bump_mtime=True)
    after = runner.run_task(task, settings, "cpu").epochs
    engines.clear_prepared()  # what a fresh worker process starts with
    fresh = runner.run_task(task, settings, "cpu").epochs

    def numbers(epochs):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]

    assert numbers(after) == numbers(fresh)
