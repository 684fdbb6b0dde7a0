"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time


def in_turns(fns: list, repeat: int) -> list[tuple[float, float]]:
    """Each of ``fns`` timed ``repeat`` times, taking turns (a, b, a, b, ...), so that the machine's drifting
    load weighs on all of them alike; ``(best, median)`` seconds of each."""
    walls: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            walls[i].append(time.perf_counter() - t)
    return [(min(w), statistics.median(w)) for w in walls]
