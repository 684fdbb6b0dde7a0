"""User content inside error messages: brief, and with control characters escaped.

A message quotes a file name, a field or a key from a data file; such content may be 40 MB long or
hold terminal escape sequences. :func:`brief` quotes one value; :func:`one_line` makes a whole message
safe to print as the CLI's single ``Error:`` line (the readers' messages pass through it where they
leave the data layer: when a dataset is opened and when its batches are read).

>>> brief("x" * 100, limit=12)
"'xxxxxxxxxxxx...' (100 characters)"
>>> one_line("bad file a\\x1b[31m.png\\nsecond")
'bad file a\\\\x1b[31m.png\\\\nsecond'
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_MESSAGE", "brief", "one_line"]

#: The longest message a reader raises (longer ones are cut, saying how much was left out).
MAX_MESSAGE = 2000

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    return match.group(0).encode("unicode_escape").decode("ascii")


def brief(value: Any, limit: int = 60, quotes: bool = True) -> str:
    """``repr``-like quote of ``value`` (str or bytes), at most ``limit`` characters of it, escaped."""
    if isinstance(value, (bytes, bytearray)):
        n, text = len(value), bytes(value[: limit + 1]).decode("latin1")
    else:
        text = value if isinstance(value, str) else str(value)
        n = len(text)
    shown = _CONTROL.sub(_escape, text[:limit])
    q = "'" if quotes else ""
    if quotes:
        shown = shown.replace("'", "\\'")
    if n > limit:
        return f"{q}{shown}...{q} ({n:,} characters)"
    return f"{q}{shown}{q}"


def one_line(message: str) -> str:
    """``message`` with control characters (newlines included) escaped and cut at :data:`MAX_MESSAGE`."""
    text = _CONTROL.sub(_escape, message)
    if len(text) > MAX_MESSAGE:
        text = f"{text[: MAX_MESSAGE - 40]}... ({len(text) - MAX_MESSAGE + 40:,} more characters)"
    return text
