"""``normlab.compare`` at the top level of a plain script (no ``if __name__ == "__main__":``) runs in workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

PLAIN_SCRIPT = textwrap.dedent("""
    import sys
    import normlab

    print("script body ran", flush=True)
    result = normlab.compare("digits", limit=120, methods="none,standardize", model="logreg", seeds=2, epochs=1,
                             workers=2, threads=1, out=sys.argv[1], progress=False, write_report=False)
    print("trained", len(result.ran), "runs")
""")


@pytest.mark.slow
def test_a_plain_script_without_a_main_guard_trains_in_worker_processes(tmp_path):
    script = tmp_path / "my_experiment.py"
    script.write_text(PLAIN_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "NORMLAB_PROGRESS": "0"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the workers never ran the script again: its body ran once, and the four runs were trained
    assert proc.stdout.splitlines() == ["script body ran", "trained 4 runs"]
