"""Shared fixtures: the real datasets beside the repository, and small deterministic arrays."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("NORMLAB_PROGRESS", "0")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def read_idx_images(path: Path, limit: int | None = None) -> np.ndarray:
    """The IDX image file as (n, 28, 28, 1) uint8 (a tiny reader, independent of normlab.data)."""
    with gzip.open(path, "rb") as fh:
        header = fh.read(16)
        n, h, w = (int.from_bytes(header[i : i + 4], "big") for i in (4, 8, 12))
        n = n if limit is None else min(n, limit)
        data = np.frombuffer(fh.read(n * h * w), dtype=np.uint8)
    return data.reshape(n, h, w, 1)


@pytest.fixture(scope="session")
def mnist_train(shared_data: Path) -> np.ndarray:
    return read_idx_images(shared_data / "mnist" / "train-images-idx3-ubyte.gz")


@pytest.fixture(scope="session")
def mnist_small(mnist_train: np.ndarray) -> np.ndarray:
    return mnist_train[:2000]
