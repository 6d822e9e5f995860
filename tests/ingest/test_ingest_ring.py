"""SampleRing: preallocated, mirrored, absolute indices; views are contiguous across the wrap."""

from __future__ import annotations

import numpy as np
import pytest

from biomoe_edge.runtime.ingest import SampleRing


def _append(ring, start, n, real=None):
    values = np.arange(start, start + n, dtype=float)[:, None] * [1.0, -1.0]
    times = np.arange(start, start + n, dtype=float) / 10
    real = np.ones(n, bool) if real is None else real
    ring.append(values, times, real, ~real)


def test_views_cross_the_wrap_contiguously_and_hold_what_was_written():
    ring = SampleRing(8, 2)
    _append(ring, 0, 6)
    ring.release(5)
    _append(ring, 6, 7)  # slots 6..12 wrap around the 8-slot storage
    assert (ring.start, ring.end, ring.free) == (5, 13, 0)
    view = ring.values(5, 13)
    assert view.flags["C_CONTIGUOUS"] or view.base is not None
    np.testing.assert_array_equal(view[:, 0], [5, 6, 7, 8, 9, 10, 11, 12])
    np.testing.assert_array_equal(view[:, 1], -view[:, 0])
    np.testing.assert_allclose(ring.times(5, 13), np.arange(5, 13) / 10)


def test_real_counts_over_any_range():
    ring = SampleRing(16, 2)
    real = np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 0], bool)
    _append(ring, 0, 10, real)
    for a in range(11):
        for b in range(a, 11):
            assert ring.count_real(a, b) == real[a:b].sum()
    np.testing.assert_array_equal(ring.invalid(0, 10), ~real)


def test_never_grows_and_refuses_to_overwrite():
    ring = SampleRing(4, 2)
    before = ring.nbytes
    _append(ring, 0, 4)
    with pytest.raises(OverflowError):
        _append(ring, 4, 1)
    with pytest.raises(IndexError):
        ring.values(0, 5)
    assert ring.nbytes == before


def test_first_at_or_after_searches_retained_times():
    ring = SampleRing(8, 2)
    _append(ring, 0, 8)
    ring.release(3)
    assert ring.first_at_or_after(0.0) == 3
    assert ring.first_at_or_after(0.45) == 5
    assert ring.first_at_or_after(5.0) == 8
    assert ring.time(5) == 0.5
    with pytest.raises(IndexError):
        ring.time(2)  # released
