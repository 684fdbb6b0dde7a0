"""Every refused input or environment is one ``Error:`` line (plus the user's own code lines), never a traceback.

The class: outputs that cannot be written (read-only folder, full disk, a folder or a file in the way),
a damaged results database, a user model whose ``build()`` raises or has the wrong signature or whose
``forward`` fails inside a worker, counts beyond the machine, and user content with control characters.
"""

from __future__ import annotations

import errno
import os
import textwrap
from pathlib import Path

import pytest

from normlab.cli.main import main

USER_MODELS = textwrap.dedent("""
    import torch

    def broken(input_shape, n_classes):
        raise RuntimeError("my build is broken")

    def one_argument(input_shape):
        return torch.nn.Linear(2, 2)

    class Net(torch.nn.Module):
        def __init__(self, n_in, n_classes):
            super().__init__()
            self.fc = torch.nn.Linear(n_in, n_classes)

        def forward(self, x):
            if self.training and x.shape[0] > 2:  # passes the two-sample probe, fails in training
                raise ValueError(f"forward broke on {tuple(x.shape)}")
            return self.fc(x.flatten(1))

    def fails_in_training(input_shape, n_classes):
        return Net(int(torch.tensor(input_shape).prod()), n_classes)
""")

COMPARE = ["compare", "--data", "digits", "--limit", "60", "--methods", "none", "--model", "logreg", "--seeds", "1",
           "--epochs", "1", "--workers", "1", "--threads", "1", "--quiet"]  # fmt: skip


def _one_error(capsys, code: int) -> list[str]:
    """The lines of stderr after checking the shape: exit 1, one ``Error:`` line first, a hint last."""
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.splitlines()
    assert lines[0].startswith("Error: ") and sum(line.startswith("Error:") for line in lines) == 1, err
    assert lines[-1].startswith("hint: see `normlab ")
    assert "Traceback" not in err and all(c.isprintable() for line in lines for c in line), err
    assert all(line.startswith("  ") for line in lines[1:-1]), err
    return lines


@pytest.fixture
def user_models(tmp_path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(USER_MODELS)
    return path


def test_outputs_that_cannot_be_written_are_one_line_with_the_fix(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "results.txt"
    a_file.write_text("keep me")
    lines = _one_error(capsys, main([*COMPARE, "--out", str(a_file)]))
    assert "is a file; expected a run folder" in lines[0] and a_file.read_text() == "keep me"

    a_folder = tmp_path / "stats.json"
    a_folder.mkdir()
    lines = _one_error(capsys, main(["stats", "digits", "--out", str(a_folder)]))
    assert "Is a directory" in lines[0] and "A folder has the file's name" in lines[0]

    def disk_full(src, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", disk_full)
        lines = _one_error(capsys, main(["stats", "digits", "--out", str(tmp_path / "s.json")]))
    assert "No space left on device" in lines[0] and "Free some disk space" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt", "stats.json"]  # no temporary file left

    def read_only(self, *args, **kwargs):  # what a read-only folder does (root, who runs CI, is never refused)
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    with monkeypatch.context() as m:
        m.setattr(Path, "mkdir", read_only)
        lines = _one_error(capsys, main([*COMPARE, "--out", str(tmp_path / "ro" / "run")]))
    assert "Permission denied" in lines[0] and "Choose a folder you may write to" in lines[0]


def test_a_damaged_results_database_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    lines = _one_error(capsys, main(["report", str(run)]))
    assert "is not a readable results database" in lines[0] and "delete the run folder" in lines[0]


def test_user_model_errors_show_the_message_and_only_the_users_lines(user_models, tmp_path, capsys):
    base = ["compare", "--data", "digits", "--limit", "60", "--methods", "none", "--seeds", "1", "--epochs", "1",
            "--threads", "1", "--quiet"]  # fmt: skip
    lines = _one_error(capsys, main([*base, "--model", f"{user_models}:broken", "--out", str(tmp_path / "a")]))
    assert "broken(input_shape, n_classes) raised RuntimeError: my build is broken" in lines[0]
    assert lines[1:-1] == [f'    File "{user_models}", line 5, in broken',
                           '      raise RuntimeError("my build is broken")']  # fmt: skip

    lines = _one_error(capsys, main([*base, "--model", f"{user_models}:one_argument", "--out", str(tmp_path / "b")]))
    assert "failed with TypeError: one_argument() takes 1 positional argument but 2 were given" in lines[0]
    assert "Change the signature of one_argument()" in lines[0] and len(lines) == 2

    # the error happens in a worker process: one message and the user's frame, not the worker's traceback
    lines = _one_error(capsys, main([*base, "--model", f"{user_models}:fails_in_training", "--workers", "2",
                                     "--seeds", "2", "--out", str(tmp_path / "c")]))  # fmt: skip
    assert "failed with ValueError: forward broke on (32, 64)" in lines[0]
    assert lines[1:-1] == [f'    File "{user_models}", line 17, in forward',
                           '      raise ValueError(f"forward broke on {tuple(x.shape)}")']  # fmt: skip


def test_user_content_in_an_error_line_is_escaped_and_short(tmp_path, capsys):
    evil = tmp_path / ("x" * 200 + "name\n\x1b[31mred\r")
    evil.write_text("a file where the run folder should be")
    lines = _one_error(capsys, main([*COMPARE, "--out", str(evil)]))
    assert "\\n\\x1b[31mred\\r" in lines[0] and "more)…" in lines[0] and len(lines[0]) < 400


@pytest.mark.parametrize(
    ("argv", "limit"),
    [
        (["--seeds", "1000000000"], "above the limit of 10,000 seeds of one kind"),
        (["--threads", "100000"], "above the limit of 256 PyTorch threads per worker"),
        (["--workers", "100000"], "worker processes (4 per CPU core"),
        (["--resize", "100000", "100000"], "above the limit of 8,192 pixels per side"),
    ],
)
def test_counts_beyond_the_machine_are_refused_with_the_limit(argv, limit, tmp_path, capsys):
    lines = _one_error(capsys, main([*COMPARE, *argv, "--out", str(tmp_path / "r")]))  # the last value counts
    assert limit in lines[0]
    assert not (tmp_path / "r").exists()  # refused before anything was made
