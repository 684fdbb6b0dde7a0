"""One small real sweep shared by the end-to-end tests (built once per session)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

#: A user model whose file name and the dataset name try to inject HTML into the report.
EVIL_MODEL_FILE = "net<img src=x onerror=alert(1)>.py"
EVIL_DATA_NAME = "digits <b>&</b> 'q' $x"  # $ would start matplotlib mathtext

MODEL_CODE = textwrap.dedent("""
    import torch

    def build(input_shape, n_classes, batchnorm=False):
        layers = [torch.nn.Flatten(), torch.nn.Linear(int(torch.tensor(input_shape).prod()), 32)]
        if batchnorm:
            layers.append(torch.nn.BatchNorm1d(32))
        return torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(32, n_classes))
""")

# one thread per run: fast on a busy machine, and the same numbers in this process and in workers
SWEEP = {
    "methods": "none,standardize,standardize+batchnorm-all",
    "seeds": 2,
    "epochs": 2,
    "threads": 1,
    "progress": False,
}


def digits_dataset(limit: int = 300):
    import normlab.data

    x, y = normlab.data.open("digits", limit=limit).arrays("train")
    return normlab.data.from_arrays(
        np.asarray(x), np.asarray(y), name=EVIL_DATA_NAME, validation_split=0.25
    )


@pytest.fixture(scope="session")
def user_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / EVIL_MODEL_FILE
    path.write_text(MODEL_CODE)
    return path


@pytest.fixture(scope="session")
def run_sweep(user_model: Path):
    """``run_sweep(out, workers=1, **overrides)``: the shared small sweep configuration, into ``out``."""
    from normlab.experiments import compare

    def run(out: Path, workers: int = 1, **overrides):
        settings = {"model": [f"{user_model}:build", "logreg"], **SWEEP, **overrides}
        return compare(digits_dataset(), workers=workers, out=out, **settings)

    return run


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory, run_sweep):
    return run_sweep(tmp_path_factory.mktemp("sweep") / "run")


@pytest.fixture
def tiny_digits():
    return digits_dataset
