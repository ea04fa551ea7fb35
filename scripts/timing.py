"""What the benchmarks share: the median time of a repeated action, its setup left out."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(
    function: Callable[[], Any], runs: int, setup: Callable[[], Any] | None = None
) -> float:
    """The median of `runs` timings of `function`, each after `setup` (not timed): the median,
    as one slow run on a shared machine should not move the figure."""
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
