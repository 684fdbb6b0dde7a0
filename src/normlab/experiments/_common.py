"""Shared by the experiment modules: the error type and small helpers."""

from __future__ import annotations

import os

from normlab.errors import CompareError

__all__ = ["CompareError", "available_cores"]


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)
