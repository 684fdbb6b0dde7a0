"""Numbers as text: the one family of formatters behind normlab's messages and tables.

Used by the diagnostics' messages (``normlab check``) and by the ``normlab stats`` table; imports NumPy only,
so every layer may use it.

- :func:`fmt`, :func:`fmt_seq`, :func:`fmt_ratio`: numbers inside a sentence (4 significant digits,
  thousands separators, ``(a, b, c)`` for several values, ratios near 1 with the digits that matter).
- :func:`fmt_cell`, :func:`text_table`: fixed-width tables for a terminal.
- :func:`as_list`: values as plain floats for the machine-readable ``numbers`` of a finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_list", "clip_user", "fmt", "fmt_cell", "fmt_ratio", "fmt_seq", "quote_user", "text_table"]


def fmt(v: Any, digits: int = 4) -> str:
    """A number for a message: integers with thousands separators, floats with ``digits`` significant digits.

    >>> fmt(60000), fmt(255.0), fmt(0.30810001), fmt(1.5e-07), fmt(float("nan")), fmt(True)
    ('60,000', '255', '0.3081', '1.5e-7', 'nan', 'True')
    """
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e6:
        return f"{int(v):,}" if abs(v) >= 1000 else str(int(v))
    out = f"{v:.{digits}g}"
    return out.replace("e+0", "e+").replace("e-0", "e-")


def fmt_seq(values: Any, digits: int = 4, limit: int = 6) -> str:
    """One value as itself, several as ``(a, b, c)`` (long sequences end with ``...``).

    >>> fmt_seq([0.1307]), fmt_seq([0.485, 0.456, 0.406]), fmt_seq(range(10), limit=3)
    ('0.1307', '(0.485, 0.456, 0.406)', '(0, 1, 2, ...)')
    """
    arr = np.ravel(np.asarray(values, dtype=np.float64))
    if arr.size == 1:
        return fmt(arr[0], digits)
    shown = ", ".join(fmt(v, digits) for v in arr[:limit])
    return f"({shown}{', ...' if arr.size > limit else ''})"


def fmt_ratio(values: Any) -> str:
    """Ratios near 1 with enough digits to show how far from 1 they are (``1.00023``, ``1.21``).

    >>> fmt_ratio([1.21, 1.3]), fmt_ratio(1.000234)
    ('(1.21, 1.3)', '1.00023')
    """
    arr = np.ravel(np.asarray(values, dtype=np.float64))
    off = float(np.max(np.abs(arr - 1))) if arr.size else 0.0
    digits = 3 if off <= 0 or not np.isfinite(off) else max(3, 2 - int(np.floor(np.log10(off))))
    return fmt_seq(arr, digits)


def as_list(values: Any, limit: int = 64) -> list[float]:
    """The first ``limit`` values as plain floats (for JSON).

    >>> as_list(np.array([[1, 2], [3, 4]], dtype=np.uint8), limit=3)
    [1.0, 2.0, 3.0]
    """
    return [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64))[:limit]]


def fmt_cell(v: Any, digits: int = 6) -> str:
    """A table cell: text as it is, integers with thousands separators, floats with ``digits`` significant digits.

    >>> fmt_cell("channel 0"), fmt_cell(60000), fmt_cell(33.318421449829934)
    ('channel 0', '60,000', '33.3184')
    """
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    return f"{v:.{digits}g}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align: str = "<",
               rstrip: bool = False) -> list[str]:
    """Fixed-width lines: the header, a rule of dashes, then one line per row, columns two spaces apart.

    ``align`` holds one character per column, ``"<"`` (left) or ``">"`` (right); its last character
    also serves every further column. ``rstrip`` drops the padding at the end of each line.

    >>> print("\\n".join(text_table(["name", "mean"], [["channel 0", "33.3"], ["all", "120.75"]], align="<>")))
    name         mean
    ---------  ------
    channel 0    33.3
    all        120.75
    """
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    sides = [align[min(i, len(align) - 1)] for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        text = "  ".join(c.ljust(w) if s == "<" else c.rjust(w) for c, w, s in zip(cells, widths, sides, strict=True))
        return text.rstrip() if rstrip else text

    return [line(header), line(["-" * w for w in widths]), *map(line, rows)]


def quote_user(text: Any, limit: int = 80) -> str:
    """User content (a file name, a value, a line of a file) quoted for one line of a message.

    Control characters (newlines, ANSI escapes, NUL, ...) and other unprintable characters are escaped as
    Python would write them, and text longer than ``limit`` characters keeps its start and end around
    ``…`` with the number of characters left out, so that a 40 MB line never reaches a terminal.

    >>> quote_user("runs/mnist")
    "'runs/mnist'"
    >>> quote_user("evil\\n\\x1b[31mred.png")
    "'evil\\\\n\\\\x1b[31mred.png'"
    >>> quote_user("x" * 200, limit=20)
    "'xxxxxxxxx…(182 more)…xxxxxxxxx'"
    """
    return "'" + clip_user(text, limit).replace("'", "\\'") + "'"


def clip_user(text: Any, limit: int = 1000) -> str:
    """``text`` with control characters escaped and its middle left out beyond ``limit`` characters.

    What :func:`quote_user` quotes, and what the CLI does to every line of an error message.

    >>> clip_user("a\\tb\\x1b[0m"), clip_user("0123456789", limit=6)
    ('a\\\\tb\\\\x1b[0m', '01…(6 more)…89')
    """
    text = str(text)
    if len(text) > limit:
        keep = max(1, (limit - 2) // 2)
        return f"{_escape(text[:keep])}…({len(text) - 2 * keep} more)…{_escape(text[-keep:])}"
    return _escape(text)


def _escape(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
