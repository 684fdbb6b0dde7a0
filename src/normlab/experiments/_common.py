"""Shared by the experiment modules: their error types, the parameter checks, and small helpers."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from normlab.errors import ClusterError, CompareError, MissingDataError

__all__ = [
    "ClusterError",
    "CompareError",
    "MissingDataError",
    "available_cores",
    "check_positive_int",
    "check_positive_number",
    "run_failed",
]

def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_positive_int(
    name: str, value: Any, example: int, *, noun: str = "integer", maximum: int | None = None, why: str = ""
) -> int:
    """``value`` as an int when it is a positive integer (not a bool) up to ``maximum``; else a :class:`CompareError`.

    ``why`` says what the maximum protects (it is refused before anything is allocated).

    >>> check_positive_int("epochs", 3, 10)
    3
    >>> check_positive_int("seeds", 0, 5, noun="count")
    Traceback (most recent call last):
    ...
    normlab.errors.CompareError: seeds=0 is not a positive count; expected e.g. seeds=5.
    >>> check_positive_int("threads", 100000, 1, maximum=256, why="threads per worker")
    Traceback (most recent call last):
    ...
    normlab.errors.CompareError: threads=100000 is above the limit of 256 threads per worker; expected 1 to 256, e.g. threads=1.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise CompareError(f"{name}={value!r} is not a positive {noun}; expected e.g. {name}={example}.")
    if maximum is not None and value > maximum:
        raise CompareError(
            f"{name}={value!r} is above the limit of {maximum:,} {why or noun + 's'}; expected 1 to "
            f"{maximum:,}, e.g. {name}={example}."
        )
    return int(value)


def check_positive_number(name: str, value: Any, example: str, *, noun: str) -> float:
    """``value`` as a float when it is finite and above 0; else a :class:`CompareError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (number > 0 and math.isfinite(number)):
        raise CompareError(f"{name}={value!r} is not a positive {noun}; expected e.g. {example}.")
    return number


def run_failed(key: str, error: str, traceback: str, *, where: str = "") -> str:
    """The message of a run that raised: which run, the error, that finished runs are kept, the traceback."""
    return (
        f"run {key} failed{where} with {error}; expected training to finish or diverge. Finished runs are "
        f"saved; fix the cause and run the same command again to resume.\n{traceback.rstrip()}"
    )
