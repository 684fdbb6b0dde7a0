"""Two ``normlab compare`` processes on one run folder: the second is refused, and no run is trained twice."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

#: Training blocks until the gate file exists (the two-sample probe before the sweep does not), so the
#: first sweep is certainly in the middle of its runs while the second one starts.
GATED_MODEL = textwrap.dedent("""
    import os
    import time
    import torch

    class Gated(torch.nn.Module):
        def __init__(self, n_in, n_classes):
            super().__init__()
            self.fc = torch.nn.Linear(n_in, n_classes)

        def forward(self, x):
            while self.training and x.shape[0] > 2 and not os.path.exists(os.environ["NORMLAB_TEST_GATE"]):
                time.sleep(0.02)
            return self.fc(x.flatten(1))

    def build(input_shape, n_classes):
        return Gated(int(torch.tensor(input_shape).prod()), n_classes)
""")


def _compare_argv(data: str, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "normlab.cli.main", "compare", "--data", data, "--validation-split", "0.25",
            "--methods", "none,standardize", "--model", f"{model}:build", "--seeds", "2", "--epochs", "2",
            "--batch-size", "16", "--workers", "1", "--threads", "1", "--quiet", "--out", str(out)]  # fmt: skip


def _runs_and_sessions(db: Path) -> tuple[list[str], int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        keys = [r[0] for r in con.execute("SELECT run_key FROM runs")]
        sessions = con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    finally:
        con.close()
    return keys, sessions


@pytest.mark.slow
def test_a_second_compare_on_a_busy_folder_is_refused_and_no_run_is_trained_twice(tmp_path):
    model = tmp_path / "gated.py"
    model.write_text(GATED_MODEL)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    data, out, gate = f"npz:{tmp_path / 'data.npz'}", tmp_path / "run", tmp_path / "gate"
    env = {**os.environ, "NORMLAB_TEST_GATE": str(gate), "NORMLAB_PROGRESS": "0"}
    argv = _compare_argv(data, model, out)
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as first:
        try:
            deadline = time.monotonic() + 120
            while not (out / ".lock").is_file() or not (out / ".lock").read_text():
                assert first.poll() is None, first.stderr.read()[-2000:]
                assert time.monotonic() < deadline, "the first sweep did not take the folder within 120 s"
                time.sleep(0.05)
            second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            assert first.poll() is None, "the first sweep is held at the gate while the second runs"
        finally:
            gate.touch()
        _, first_err = first.communicate(timeout=120)
    assert second.returncode == 1
    lines = second.stderr.splitlines()
    assert lines[0].startswith("Error: ") and "is in use by another `normlab compare`" in lines[0]
    assert f"process {first.pid} on " in lines[0] and "Wait for it to finish" in lines[0]
    assert "Traceback" not in second.stderr and second.stdout == ""
    assert first.returncode == 0, first_err[-2000:]

    keys, sessions = _runs_and_sessions(out / "results.sqlite")
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 4  # every run once
    assert sessions == 1  # the refused sweep never began a session, let alone trained

    from normlab.experiments import compare

    again = compare(data, validation_split=0.25, methods="none,standardize", model=f"{model}:build", seeds=2,
                    epochs=2, batch_size=16, workers=1, threads=1, out=out, progress=False)  # fmt: skip
    assert again.ran == [] and again.n_skipped == 4  # the same sweep, finished: nothing to train
    assert _runs_and_sessions(out / "results.sqlite")[0] == keys
