"""Real data for the check tests: MNIST (train and t10k), scikit-learn's breast cancer, the CIFAR-10 subset."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


def _idx(path: Path, limit: int | None = None) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        header = fh.read(16)
        n, h, w = (int.from_bytes(header[i : i + 4], "big") for i in (4, 8, 12))
        n = n if limit is None else min(n, limit)
        return np.frombuffer(fh.read(n * h * w), dtype=np.uint8).reshape(n, h, w, 1)


@pytest.fixture(scope="session")
def mnist_test() -> np.ndarray:
    """The 10,000 MNIST test images, (n, 28, 28, 1) uint8."""
    path = SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return _idx(path)


@pytest.fixture(scope="session")
def breast_cancer():
    """scikit-learn's breast cancer table as DataFrames, split 70/30 (random_state=0)."""
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.model_selection import train_test_split

    x = datasets.load_breast_cancer(as_frame=True).data
    x_train, x_test = train_test_split(x, test_size=0.3, random_state=0)
    return x_train, x_test


@pytest.fixture(scope="session")
def cifar_subset() -> np.ndarray:
    """The 1,000 CIFAR-10 test JPEGs of ../shared/data, (n, 32, 32, 3) uint8."""
    folder = SHARED_DATA / "cifar10-jpg-subset" / "test"
    if not folder.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    pytest.importorskip("PIL")
    import normlab.data

    x, _ = normlab.data.open(f"images:{folder}").arrays()
    return x


def _keras_normalize(x: np.ndarray, axis: int) -> np.ndarray:
    norm = np.atleast_1d(np.linalg.norm(x, 2, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


@pytest.fixture(scope="session")
def keras_normalize():
    """keras.utils.normalize(x, axis) for NumPy input, as Keras 3 computes it (zero norms left as 1)."""
    return _keras_normalize
