"""A dependency-free progress bar for long work: drawn on a terminal, silent otherwise.

Library code reports progress through :class:`Progress`; it never prints. The bar goes to stderr only
when stderr is a terminal (or ``show=True``), so pipes, CI logs and tests stay clean. A command whose work
takes minutes asks for ``show="log"`` when stderr is not a terminal: then a plain line every
``log_interval`` seconds (and one at the end) says how far it is, for log files and batch jobs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

__all__ = ["Progress"]


def _fmt_seconds(s: float) -> str:
    s = round(s)
    if s < 3600:
        return f"{s // 60:02d}:{s % 60:02d}"
    return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def _fmt_amount(n: float, unit: str) -> str:
    if unit == "B":
        for suffix in ("B", "kB", "MB", "GB", "TB"):
            if abs(n) < 1000 or suffix == "TB":
                return f"{n:.0f} {suffix}" if suffix == "B" else f"{n:.1f} {suffix}"
            n /= 1000
    return f"{n:,.0f} {unit}".rstrip()


class Progress:
    """Report progress of ``total`` units (``None`` when unknown) to a terminal.

    Parameters
    ----------
    total : float or None
        Expected amount of work, in ``unit``; ``None`` shows a counter instead of a bar.
    desc : str
        A few words that say what is being done.
    unit : str
        ``"B"`` formats bytes; anything else is printed after the count.
    show : bool, "auto" or "log"
        ``"auto"`` draws only when the stream is a terminal and ``NORMLAB_PROGRESS`` is not ``0``.
        ``"log"`` draws the bar on a terminal and otherwise writes a plain line at most every
        ``log_interval`` seconds, and one when the work is done (``NORMLAB_PROGRESS=0`` silences it).
    log_interval : float
        Seconds between two lines in ``"log"`` mode.

    Examples
    --------
    >>> with Progress(total=3, desc="fitting", show=False) as bar:
    ...     for _ in range(3):
    ...         bar.update(1)
    >>> bar.done
    3
    """

    def __init__(
        self,
        total: float | None = None,
        desc: str = "",
        unit: str = "",
        show: bool | str = "auto",
        stream: TextIO | None = None,
        min_interval: float = 0.2,
        log_interval: float = 30.0,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.log = False
        if show in ("auto", "log"):
            env = os.environ.get("NORMLAB_PROGRESS")
            tty = hasattr(self.stream, "isatty") and self.stream.isatty()
            self.log = show == "log" and env != "0" and not tty and env != "1"
            show = env == "1" or (env != "0" and tty) or self.log
            if self.log:
                min_interval = log_interval
        self.show = bool(show)
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done: float = 0
        self.min_interval = min_interval
        self._start = time.perf_counter()
        self._last_draw = time.perf_counter() if self.log else 0.0  # a first line after log_interval
        self._drawn = False
        self._drawn_at: float | None = None  # self.done when last drawn
        self._postfix = ""

    def update(self, amount: float = 1, *, postfix: str = "") -> None:
        self.done += amount
        if not self.show:
            return
        now = time.perf_counter()
        if now - self._last_draw >= self.min_interval or (self.total is not None and self.done >= self.total):
            self._last_draw = now
            self._draw(now, postfix)

    def _draw(self, now: float, postfix: str = "") -> None:
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            frac = min(1.0, self.done / self.total)
            width = 24
            filled = int(frac * width)
            bar = "#" * filled + "-" * (width - filled)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            amount = (
                f"{_fmt_amount(self.done, 'B')}/{_fmt_amount(self.total, 'B')}"
                if self.unit == "B"
                else f"{self.done:,.0f}/{_fmt_amount(self.total, self.unit)}"  # 12/40 epochs
            )
            line = (
                f"{head}{frac * 100:5.1f}% |{bar}| {amount} "
                f"[{_fmt_seconds(elapsed)}<{_fmt_seconds(eta)}]"
            )
        else:
            line = f"{head}{_fmt_amount(self.done, self.unit)} [{_fmt_seconds(elapsed)}]"
        if self.unit == "B" and elapsed > 0:
            line += f" {_fmt_amount(rate, 'B')}/s"
        if postfix:
            line += f" {postfix}"
        self._postfix = postfix
        self._drawn_at = self.done
        if self.log:  # plain lines: a log file has no carriage returns to overwrite
            self.stream.write(line[:200] + "\n")
            self.stream.flush()
            return
        self.stream.write("\r" + line[:200] + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.log:
            if self.done and self._drawn_at != self.done:
                self._draw(time.perf_counter(), self._postfix)
            return
        if self.show and self.done and not self._drawn:
            self._draw(time.perf_counter())
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
