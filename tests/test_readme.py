"""The README's Python blocks run as written, in order, in one fresh interpreter (as a reader pastes them).

A block is run unless the line before its opening fence is ``<!-- not run -->``: kept for what needs a
cluster, and for the 15-run experiment of ``normlab.compare`` (minutes; its API is tested in
tests/experiments). Paths in the README are relative (``mnist:data/mnist``): the test runs in a temporary
folder whose ``data`` links to the shared datasets, so every block is checked verbatim.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
SKIP = "<!-- not run -->"

RUNNER = r"""
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
ns = {"__name__": "__main__"}
for line, code in blocks:
    try:
        exec(compile(code, f"README.md:{line}", "exec"), ns)
    except Exception:
        traceback.print_exc()
        sys.exit(f"README.md block at line {line} failed")
print(f"ran {len(blocks)} blocks")
"""


def readme_blocks(text: str) -> tuple[list[tuple[int, str]], int]:
    """The runnable ``python`` blocks as (line of the fence, code), and how many are marked not to run."""
    run, skipped = [], 0
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        if before == SKIP:
            skipped += 1
        else:
            run.append((line, m.group(1)))
    return run, skipped


def test_block_extraction_finds_every_fence_and_honours_the_marker():
    text = "a\n```python\nx = 1\n```\n<!-- not run -->\n```python\nboom()\n```\n```python\ny = x\n```\n"
    run, skipped = readme_blocks(text)
    assert [line for line, _ in run] == [2, 9] and run[1][1] == "y = x\n" and skipped == 1


def test_the_readme_python_blocks_run_verbatim(shared_data, tmp_path):
    run, skipped = readme_blocks(README.read_text())
    assert len(run) >= 6 and skipped <= 2, (len(run), skipped)  # fragments stay rare
    (tmp_path / "data").symlink_to(shared_data, target_is_directory=True)
    blocks = tmp_path / "blocks.json"
    blocks.write_text(json.dumps(run))
    env = {**os.environ, "KERAS_BACKEND": "torch", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(blocks)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"ran {len(run)} blocks" in proc.stdout
    assert (tmp_path / "norm.json").exists() and (tmp_path / "model.keras").exists()


@pytest.mark.parametrize("argv", [["stats", "digits"]])
def test_the_readme_console_examples_that_need_no_files_run(argv, capsys):
    from normlab.cli.main import main

    assert main(argv) == 0
    assert "digits [train]: 1797 samples of shape (64,)" in capsys.readouterr().out
