"""Wall-clock timing helpers shared by the experiment and benchmark scripts."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def run_times(fn: Callable[[], Any], reps: int) -> list[float]:
    """Seconds of each of ``reps`` calls of ``fn``."""
    if reps < 1:
        raise ValueError(f"run_times: reps={reps} must be >= 1")
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_time(fn: Callable[[], Any], reps: int = 2) -> float:
    """Fastest of ``reps`` calls, in seconds."""
    return min(run_times(fn, reps))


def median_time(fn: Callable[[], Any], reps: int) -> float:
    """Median of ``reps`` calls, in seconds."""
    return statistics.median(run_times(fn, reps))
