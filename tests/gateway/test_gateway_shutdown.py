"""Stopping the gateway always ends within a bounded time, also in the middle of a reconnection, and leaves no
connection task scanning behind. Emulated wearables over Bumble, through the same bleak
code as on a Jetson."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("bumble", reason="emulated wearables need Bumble (pip install 'biomoe-edge[ble]')")
pytest.importorskip("bleak_retry_connector", reason="the transport needs bleak-retry-connector")

from gateway_helpers import ProjectionEngine  # noqa: E402

from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork  # noqa: E402
from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.gateway_config import parse_config  # noqa: E402
from biomoe_edge.runtime.transport.backend import TransportBackend  # noqa: E402


@pytest.fixture(autouse=True)
def _quiet_virtual_controller(quiet_bumble_controller):
    yield


def _config(names, connect_timeout_s=10.0):
    return parse_config({
        "windows": {"length_s": 2.0, "hop_s": 1.0, "representations": ["waveform"]},
        "devices": [{"name": name, "modalities": ["bvp"]} for name in names],
        "engine": {"max_batch": 8, "deadline_ms": 50},
        "transport": {"backoff_min_s": 0.05, "backoff_max_s": 0.3, "connect_timeout_s": connect_timeout_s},
    })


async def _until(predicate, timeout_s: float, what: str) -> None:
    """Wait for ``predicate``; fail naming ``what`` after ``timeout_s`` (a regression fails fast, never hangs)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, f"{what}: not within {timeout_s:g} s"
        await asyncio.sleep(0.002)


def _connection_tasks():
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("ble-connection") and not t.done()]


# A known race, not yet fixed: on Python 3.10/3.12 (not seen on 3.11), about one run in five, the gateway started
# right after one stopped 0.01 s into a reconnection finds neither emulated board advertising for 10 s (seen on main
# before this change too). Rerun twice; three failures in a row still fail. docs/reliability.md, "Known flaky".
@pytest.mark.flaky(reruns=2)
async def test_stopping_mid_reconnect_ends_at_once_and_leaves_nothing_scanning():
    """Wearables that drop their link every 0.4 s; the gateway is stopped at several points of a reconnection
    (link just lost, backing off, scanning, connecting)."""
    async with VirtualBleNetwork() as network:
        wearables = [await network.add_wearable(f"churn-{i}", modalities=("bvp",), seed=i, disconnect_every=0.4,
                                                disconnect_jitter=0.1, reconnect_delay_s=0.05) for i in range(2)]
        central = await network.central()
        for delay in (0.0, 0.01, 0.03, 0.08, 0.15, 0.3):
            gateway = Gateway(_config([w.name for w in wearables]), engine=ProjectionEngine(),
                              backend=TransportBackend.bumble(central), warmup=False)
            await gateway.__aenter__()
            connections = gateway._manager.connections.values()
            # A few reconnections under way: each link drops every 0.4 s and comes back within a second (a bonded
            # reconnection once took 60 s: bleak-retry-connector's safety timeout of an attempt that never ended).
            await _until(lambda: sum(c.stats.connects for c in connections) >= 3, 10.0,
                         f"three connections (stop at +{delay} s); stats {[c.stats for c in connections]}")
            await _until(lambda: not all(c.state.value == "connected" for c in connections), 10.0,
                         f"a link lost (stop at +{delay} s)")
            await asyncio.sleep(delay)
            await asyncio.wait_for(gateway.close(), 8.0)
            assert _connection_tasks() == [], f"connection tasks still running after close (stop at +{delay} s)"
            assert not central._listeners, "something is still scanning after close"
            assert gateway._manager.stop_overruns == []
            assert {c.state.value for c in connections} == {"stopped"}
        for wearable in wearables:
            await wearable.stop()


async def test_an_attempt_that_swallows_its_cancellation_cannot_hold_the_gateway_open():
    """A backend that turns the cancellation of a connection attempt into an error (the Bumble backend does that
    on Python 3.10, where a task cannot tell its own cancellation from a lost link) makes bleak-retry-connector try
    again: stop() used to wait for that attempt's connect timeout (20 s by default, per attempt) with the
    connection still trying. Now it is cancelled again until it ends."""
    from bleak.exc import BleakError

    from biomoe_edge.firmware_bridge.emulation.bleak_backend import BleakClientBumble

    class SlowClientLosingCancellation(BleakClientBumble):
        attempts = 0

        async def connect(self, pair, **kwargs):
            SlowClientLosingCancellation.attempts += 1
            try:
                await asyncio.sleep(kwargs.get("timeout", 20.0))  # a peripheral slow to answer
            except asyncio.CancelledError:
                raise BleakError("cancelled during connect, reported as a failed connection") from None
            raise BleakError("connection timed out")

    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("slow-1", modalities=("bvp",))
        central = await network.central()
        bumble = TransportBackend.bumble(central)
        backend = TransportBackend("bumble-slow", SlowClientLosingCancellation, bumble.scanner_backend,
                                   bumble.client_kwargs, bumble.scanner_kwargs)
        gateway = Gateway(_config(["slow-1"], connect_timeout_s=20.0), engine=ProjectionEngine(), backend=backend,
                          warmup=False, transport_stop_timeout_s=1.0)
        await gateway.__aenter__()
        await _until(lambda: SlowClientLosingCancellation.attempts > 0, 10.0, "a connection attempt")
        await asyncio.wait_for(gateway.close(), 10.0)  # not after the 20 s connect timeout
        assert _connection_tasks() == []
        assert not central._listeners
        await wearable.stop()
