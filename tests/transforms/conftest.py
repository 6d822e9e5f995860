"""Shared, session-cached inputs for the transforms tests: real PPG windows and simulated signals."""

from __future__ import annotations

import os

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
    """``pyts.image.RecurrencePlot``, imported by its public name, with numba's JIT off while pyts is imported.

    pyts 0.14 compiles every numba kernel of ``pyts.image`` (Gramian, Markov, recurrence) eagerly at import, about
    40 s of CPU; with NUMBA_DISABLE_JIT set when numba is first imported, ``njit`` returns the functions as the
    plain Python they are written in: the same arithmetic in float64, about 0.5 s for a 640-sample plot. (Had numba
    been imported already, the setting is ignored and the import is only slower, never different.)"""
    pytest.importorskip("pyts", reason="pyts is the reference for recurrence plots (pip install pyts)")
    previous = os.environ.get("NUMBA_DISABLE_JIT")
    os.environ["NUMBA_DISABLE_JIT"] = "1"
    try:
        from pyts.image import RecurrencePlot
    finally:
        if previous is None:
            del os.environ["NUMBA_DISABLE_JIT"]
        else:
            os.environ["NUMBA_DISABLE_JIT"] = previous
    return RecurrencePlot
