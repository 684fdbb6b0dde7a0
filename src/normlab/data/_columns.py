"""What a table's columns may hold without a value changing: field counts and one exact dtype.

Two checks that keep a table's numbers as written:

- :func:`check_field_counts`: every non-blank line of a CSV file has as many fields as its header
  (pandas would drop extra fields or fill missing ones with NaN). Quoted files are read with the
  :mod:`csv` module, others by counting separators a block at a time; memory stays about one block
  (plus the longest line), work is linear in the file's size.
- :func:`feature_dtype`: the one dtype of the ``(n, f)`` features that holds every column exactly:
  ``int64``; ``uint64`` when a column holds values above ``2**63 - 1`` and none is negative;
  ``float64`` when a column holds fractions or missing values, provided no integer column then holds
  a magnitude above ``2**53`` (float64 would round it). Anything else is a :class:`DatasetError`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normlab.data._text import brief
from normlab.errors import DatasetError

__all__ = ["IntRange", "check_field_counts", "check_sep", "feature_dtype", "out_of_range_integer"]

_BLOCK = 1 << 22
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
#: Integers of at most this magnitude are exact in float64.
FLOAT_EXACT = 2**53


@dataclass
class IntRange:
    """Smallest and largest value of an integer column (Python ints, exact); ``None`` before any value."""

    lo: int | None = None
    hi: int | None = None

    def update(self, lo: int, hi: int) -> None:
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)

    @property
    def magnitude(self) -> int:
        return max(abs(self.lo or 0), abs(self.hi or 0))


def check_sep(name: str, sep: object) -> str:
    """The separator if it is one character that can separate fields; else a :class:`DatasetError`."""
    if not isinstance(sep, str) or len(sep) != 1 or sep in "\"\r\n":
        raise DatasetError(
            f"{name}: sep={brief(sep if isinstance(sep, str) else repr(sep))} is not one field separator; expected "
            "a single character other than a quote or a line break, e.g. ',', ';' or a tab (CLI: --sep ';'; a "
            "tab: --sep $'\\t')."
        )
    return sep


def _counts_unquoted(path: Path, sep: int) -> Iterator[tuple[int, int]]:
    """``(line number, fields)`` of every non-blank line of a file without quotes (1-based line numbers)."""
    carry = b""
    line0 = 1
    with open(path, "rb") as f:
        while True:
            block = f.read(_BLOCK)
            data = carry + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            part, carry = data[:cut], data[cut:]
            if part:
                if not part.endswith(b"\n"):
                    part += b"\n"
                a = np.frombuffer(part, dtype=np.uint8)
                ends = np.flatnonzero(a == 10)
                starts = np.concatenate(([0], ends[:-1] + 1))
                seps = np.flatnonzero(a == sep)
                fields = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
                length = ends - starts
                blank = (length == 0) | ((length == 1) & (a[np.maximum(ends - 1, 0)] == 13))
                for i in np.flatnonzero(~blank):
                    yield line0 + int(i), int(fields[i])
                line0 += len(ends)
            if not block:
                return


def _counts_quoted(path: Path, sep: str) -> Iterator[tuple[int, int]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter=sep, quotechar='"', strict=False)
        for row in reader:
            if row:
                yield reader.line_num, len(row)


def _has_quote(path: Path) -> bool:
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            if b'"' in block:
                return True
    return False


def check_field_counts(name: str, path: Path, sep: str, n_columns: int) -> None:
    """Raise :class:`DatasetError` naming the first line whose field count differs from the header's."""
    quoted = len(sep.encode("utf-8")) != 1 or _has_quote(path)
    lines = _counts_quoted(path, sep) if quoted else _counts_unquoted(path, ord(sep))
    try:
        for line, fields in lines:
            if fields != n_columns:
                what = "more" if fields > n_columns else "fewer"
                raise DatasetError(
                    f"{name}: line {line:,} of {path.name} has {fields} fields, {what} than the {n_columns} "
                    f"columns of the header; expected {n_columns} on every line (extra fields would be dropped, "
                    "missing ones read as empty). Fix that line, or check sep= (CLI: --sep)."
                )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(
            f"{name}: {path.name} is not readable as UTF-8 CSV text ({brief(str(exc), 120, quotes=False)}); expected a UTF-8 "
            "table. Convert it first, e.g. iconv -f latin1 -t utf-8."
        ) from None


def feature_dtype(
    name: str, ints: dict[str, IntRange], floats: list[str], with_missing: list[str]
) -> np.dtype:
    """The one dtype that holds every feature column exactly (see the module docstring).

    ``ints``: the value range of each column of integers (and booleans); ``floats``: the columns that
    hold fractions or missing values; ``with_missing``: integer-looking columns that pandas read as
    floats because of empty fields (their integers above ``2**53`` would already be rounded).
    """
    big = [c for c, r in ints.items() if r.magnitude > FLOAT_EXACT]
    for c in [*with_missing, *(c for c in big if c in floats)]:
        raise DatasetError(
            f"{name}: column {brief(c)} holds integers of magnitude above 2**53 together with empty values; "
            "a column with empty values is read as float64, which rounds such integers. Fill the empty "
            "values (or drop the column) so that the column is read as integers."
        )
    if floats:
        if big:
            c = big[0]
            raise DatasetError(
                f"{name}: column {brief(c)} holds integers up to {ints[c].magnitude:,}, beyond 2**53, but column "
                f"{brief(floats[0])} needs float64, which would round them; expected one exact dtype for all "
                f"features. Drop one of the two columns (drop=[{c!r}]), or split the table."
            )
        return np.dtype(np.float64)
    over = [c for c, r in ints.items() if (r.hi or 0) > INT64_MAX]
    if not over:
        return np.dtype(np.int64)
    negative = [c for c, r in ints.items() if (r.lo or 0) < 0]
    if negative:
        raise DatasetError(
            f"{name}: column {brief(over[0])} holds {ints[over[0]].hi:,}, above int64's 2**63 - 1, and column "
            f"{brief(negative[0])} holds the negative {ints[negative[0]].lo:,}; no 64-bit integer type holds "
            f"both and float64 would round them. Drop one of the two columns (drop=[{over[0]!r}])."
        )
    return np.dtype(np.uint64)


def out_of_range_integer(values: np.ndarray) -> str | None:
    """The first value of a text column that is an integer no 64-bit type holds (pandas reads it as text)."""
    for v in values:
        s = str(v).strip()
        body = s[1:] if s[:1] in "+-" else s
        if body.isdigit() and body.isascii():
            k = int(s)
            if k < -(2**63) or k > UINT64_MAX:
                return s
    return None
