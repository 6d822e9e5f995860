"""Latency figures as every report gives them (stats, heads, benchmarks, the demo)."""

from __future__ import annotations

import numpy as np


def percentiles_ms(values_s) -> dict:
    """p50/p95/p99 in milliseconds of a sequence of seconds (None when empty: reports are strict JSON)."""
    values = np.asarray(list(values_s), dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values * 1e3, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}
