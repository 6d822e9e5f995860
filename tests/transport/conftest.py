"""Transport tests run the real bleak facades and bleak-retry-connector against emulated wearables on
Bumble's virtual link (a real Bluetooth host stack; only the radio is simulated)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

pytest.importorskip("bumble", reason="emulated wearables need Bumble (pip install 'biomoe-edge[ble]')")
pytest.importorskip("bleak_retry_connector", reason="the transport needs bleak-retry-connector (pip install 'biomoe-edge[ble]')")


@pytest.fixture
def recording() -> dict:
    t64 = np.arange(2048) / 64.0
    t250 = np.arange(8192) / 250.0
    return {"bvp": (np.sin(2 * np.pi * 1.1 * t64), 64.0), "ecg": (np.sin(2 * np.pi * 1.3 * t250) ** 9, 250.0)}


@pytest.fixture(autouse=True)
def _quiet_virtual_controller(quiet_bumble_controller):
    yield


# The gateway-level security tests drive a Gateway with the small deterministic engine of the gateway tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "gateway"))
