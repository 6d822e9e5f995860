"""Shared, session-cached inputs for the transforms tests: real PPG windows and simulated signals."""

from __future__ import annotations

import numpy as np
import pytest

from biomoe_edge.runtime.transforms.signals import real_ppg_windows


@pytest.fixture(scope="session")
def real_bvp_windows():
    """Six preprocessed 10 s windows of HeartPy's real PPG at 64 Hz (float32, (6, 640))."""
    windows, fs = real_ppg_windows(6)
    return windows, fs


@pytest.fixture(scope="session")
def noise_windows():
    rng = np.random.default_rng(7)
    return rng.standard_normal((2, 3, 500)).astype(np.float32)


@pytest.fixture(scope="session")
def pyts_recurrence_plot():
    """pyts.image.RecurrencePlot (its module loaded alone: ``import pyts.image`` spends ~45 s CPU in numba)."""
    pytest.importorskip("pyts", reason="pyts is the reference for recurrence plots (pip install pyts)")
    from biomoe_edge.runtime.transforms.reference import pyts_recurrence_plot_class

    return pyts_recurrence_plot_class()
