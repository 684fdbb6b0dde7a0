"""Every file normlab writes is replaced atomically and created with the user's umask.

The class: report.html, curves.png, final.png, summary.csv, epochs.csv, config.json, the preprocessed
splits in ``.cache/``, saved normalizers and saved statistics all go through ``normlab._files``. A write
that fails or is killed before it ends leaves the old file as it was.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import normlab
from normlab.errors import OutputError

ARTIFACTS = {"report.html", "curves.png", "final.png", "summary.csv", "epochs.csv", "config.json"}
#: The preprocessed splits of the two methods, written for the runs and removed when the sweep ends.
CACHE = {"y_train.npy", "y_val.npy", "m0_x_train.npy", "m0_x_val.npy", "m1_x_train.npy", "m1_x_val.npy"}


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_every_artifact_is_replaced_atomically_with_the_users_umask(tmp_path, tiny_digits, monkeypatch, umask_027):
    real_replace = os.replace
    written: dict[str, int] = {}

    def spy(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        written[Path(dst).name] = os.stat(dst).st_mode & 0o777

    monkeypatch.setattr(os, "replace", spy)
    out = tmp_path / "run"
    normlab.compare(tiny_digits(120), methods="none,standardize", model="logreg", seeds=1, epochs=1,
                    workers=1, threads=1, out=out, progress=False)  # fmt: skip
    x = np.arange(12.0).reshape(4, 3)
    normlab.Standardize().fit(x).save(tmp_path / "std.json")
    normlab.stats(x).save(tmp_path / "stats.json")
    assert set(written) == ARTIFACTS | CACHE | {"std.json", "stats.json"}
    assert set(written.values()) == {0o640}  # 0o666 less the umask, not mkstemp's 0o600
    assert not (out / ".cache").exists()

    # a full disk at the moment of the rename: the error names the file and the fix, the old files stay
    before = _contents(out)
    assert ARTIFACTS <= set(before)

    def disk_full(src, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OutputError, match=r"cannot write '.*summary\.csv': No space left on device; .*Free some"):
        normlab.experiments.report(out)
    assert _contents(out) == before  # no temporary file left either


def test_a_report_killed_before_its_files_are_complete_leaves_the_old_files_intact(tmp_path, tiny_digits):
    out = tmp_path / "run"
    normlab.compare(tiny_digits(120), methods="none", model="logreg", seeds=1, epochs=1, workers=1, threads=1,
                    out=out, progress=False)  # fmt: skip
    before = _contents(out)
    (out / "summary.csv").unlink()  # so the kill lands on a later file, after one new file was complete
    script = textwrap.dedent("""
        import os, signal, sys
        from normlab.cli.main import main
        real, done = os.replace, []
        def replace(src, dst):
            if done:  # the second file of the report: its temporary file is complete, SIGKILL before renaming
                os.kill(os.getpid(), signal.SIGKILL)
            real(src, dst)
            done.append(dst)
        os.replace = replace
        main(["report", sys.argv[1]])
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    after = _contents(out)
    assert after["summary.csv"] == before["summary.csv"]  # the one file renamed before the kill is whole
    assert {k: v for k, v in after.items() if k in ARTIFACTS} == {k: v for k, v in before.items() if k in ARTIFACTS}
    # the killed write left only its hidden temporary file, never a half-written artifact
    leftovers = {name for name in set(after) - set(before) if not name.startswith("results.sqlite")}
    assert len(leftovers) == 1 and next(iter(leftovers)).startswith(".epochs.csv.")
