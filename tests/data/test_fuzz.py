"""Fuzzing every file reader byte by byte: only NormlabError, bounded memory, no hang.

The fuzzer (``_fuzz.py``) runs in a child process under ``RLIMIT_AS``, so an allocation the readers do not
bound fails the run (as a MemoryError, which is not a NormlabError). It runs for a few seconds in the
suite; set ``NORMLAB_FUZZ_SECONDS`` for a longer campaign, e.g. ``NORMLAB_FUZZ_SECONDS=600 pytest
tests/data/test_fuzz.py``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("pandas")
pytest.importorskip("PIL")

#: The child's address space: the interpreter with NumPy, pandas, Pillow and hypothesis needs ~450 MB.
ADDRESS_SPACE = 1600 * 2**20


def test_mutated_files_raise_only_normlab_errors_in_bounded_memory():
    seconds = float(os.environ.get("NORMLAB_FUZZ_SECONDS", "3"))

    def limit() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_fuzz.py")), str(seconds)],
        capture_output=True, text=True, preexec_fn=limit, env=env,
        timeout=seconds * 4 + 120,  # a hang guard, not a speed claim
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "examples over 12 formats" in proc.stdout
