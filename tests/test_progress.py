"""Progress on stderr: a bar on a terminal, silence in pipes, plain lines in log mode."""

from __future__ import annotations

import io

import pytest

from normlab._progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("NORMLAB_PROGRESS", raising=False)


def _run(show, stream, n=4, **kw):
    with Progress(total=n, desc="compare", unit="epochs", show=show, stream=stream, **kw) as bar:
        for i in range(n):
            bar.update(1, postfix=f"runs {i + 1}/{n}")
    return stream.getvalue()


def test_a_terminal_gets_one_redrawn_bar_and_a_final_newline():
    text = _run("auto", _Terminal())
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    assert "100.0% |" in text and "4/4 epochs" in text and "runs 4/4" in text


@pytest.mark.parametrize("show", ["auto", False])
def test_a_pipe_gets_nothing(show):
    assert _run(show, io.StringIO()) == ""


def test_log_mode_writes_plain_lines_and_one_when_done():
    text = _run("log", io.StringIO(), n=3, log_interval=0.0)
    lines = text.splitlines()
    assert "\r" not in text and "\x1b" not in text
    assert len(lines) == 3 and lines[-1].startswith("compare: 100.0% |") and lines[-1].endswith("runs 3/3")


def test_log_mode_waits_its_interval_then_reports_the_end_once():
    text = _run("log", io.StringIO(), n=3, log_interval=3600.0)
    assert text.count("\n") == 1 and "100.0%" in text and "runs 3/3" in text
    stream = io.StringIO()
    with Progress(total=10, desc="compare", show="log", stream=stream, log_interval=3600.0) as bar:
        bar.update(4)  # stopped early (an error, Ctrl-C): the last line says how far it got
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[0]]
    assert " 40.0% |" in stream.getvalue()


def test_log_mode_keeps_the_bar_on_a_terminal_and_obeys_the_environment(monkeypatch):
    assert _run("log", _Terminal()).startswith("\r")
    monkeypatch.setenv("NORMLAB_PROGRESS", "0")
    assert _run("log", io.StringIO(), log_interval=0.0) == ""
