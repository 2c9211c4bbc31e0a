"""The latency figures the simulators print (``devices simulate``, ``factory simulate``)."""

from __future__ import annotations

import statistics


def p50_p99_ms(seconds: list[float]) -> tuple[float, float] | None:
    """The median and 99th percentile of durations, in milliseconds (None for none)."""
    if not seconds:
        return None
    if len(seconds) == 1:
        return seconds[0] * 1000, seconds[0] * 1000
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000
