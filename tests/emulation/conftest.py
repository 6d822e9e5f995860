"""Shared pieces of the emulation tests: known signals (so decoded values have an independent reference)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bumble", reason="the emulated wearable needs Bumble (pip install 'biomoe-edge[ble]')")
pytest.importorskip("bleak", reason="the bleak backend needs bleak (pip install 'biomoe-edge[ble]')")

BVP_RATE = 64.0
ECG_RATE = 250.0


def known_recording() -> dict:
    """Two streams of distinct, non-periodic-looking signals: a chirp (bvp) and a two-tone ECG stand-in."""
    t_bvp = np.arange(4096) / BVP_RATE
    t_ecg = np.arange(16384) / ECG_RATE
    return {
        "bvp": (np.sin(2 * np.pi * (0.5 + 0.05 * t_bvp) * t_bvp), BVP_RATE),
        "ecg": (0.8 * np.sin(2 * np.pi * 1.2 * t_ecg) + 0.3 * np.cos(2 * np.pi * 7.0 * t_ecg) + 0.1, ECG_RATE),
    }


@pytest.fixture
def recording() -> dict:
    return known_recording()


@pytest.fixture(autouse=True)
def _quiet_virtual_controller(quiet_bumble_controller):
    yield
