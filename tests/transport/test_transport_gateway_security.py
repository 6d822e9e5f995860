"""The impostor attacks through the whole gateway (transport, pipeline, records): an impostor advertising
a bonded wearable's name, before and after a restart, and a device that takes over a known stream with another
description. Emulated wearables over Bumble's real SMP, the production bleak code."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import ProjectionEngine, description, packets

from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
from biomoe_edge.firmware_bridge.description import DeviceDescription
from biomoe_edge.runtime.gateway import Gateway
from biomoe_edge.runtime.gateway_config import parse_config
from biomoe_edge.runtime.pipeline import DESCRIPTION_CHANGED, DeviceRefused, Pipeline
from biomoe_edge.runtime.transport.backend import TransportBackend
from biomoe_edge.runtime.transport.connection import REFUSED_IMPOSTOR


def _config(security: str, state_dir=None):
    transport = {"backoff_min_s": 0.05, "backoff_max_s": 0.3, "connect_timeout_s": 10.0}
    if state_dir is not None:
        transport["state_dir"] = str(state_dir)
    return parse_config({
        "windows": {"length_s": 2.0, "hop_s": 1.0, "representations": ["waveform"]},
        "devices": [{"name": "wear1", "modalities": ["bvp"], "security": security}],
        "engine": {"max_batch": 8, "deadline_ms": 50},
        "transport": transport,
    })


async def _until(predicate, timeout=20.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def _stream(gateway, device="wear1"):
    (entry,) = [e for e in gateway.stats()["streams"] if e["device"] == device]
    return entry


async def test_an_impostor_of_a_bonded_wearable_is_refused_and_no_record_carries_its_data(tmp_path):
    async with VirtualBleNetwork() as network:
        genuine = await network.add_wearable("wear1", modalities=("bvp",), seed=1)
        central = await network.central()
        gateway = Gateway(_config("bonded", tmp_path), engine=ProjectionEngine(), backend=TransportBackend.bumble(central),
                          warmup=False)
        records = []
        async with gateway:
            gateway.on_embedding(records.append)
            connection = gateway._manager.connections["wear1"]
            await _until(lambda: len(records) >= 2)
            impostor = await network.add_wearable("wear1", modalities=("bvp",), seed=2, firmware_version="impostor-1.0")
            genuine.reconnect_delay_s = 1.0
            await genuine.disconnect()
            await _until(lambda: connection.stats.connects == 2)
            await _until(lambda: len(records) >= 5)
            await genuine.stop()
            await impostor.stop()
        stats = gateway.stats()
        (refused,) = stats["refused_devices"]
        assert refused["name"] == "wear1" and refused["address"] == impostor.address
        assert refused["reason"] == REFUSED_IMPOSTOR and refused["attempts"] >= 1
        assert impostor.counters.connections == 0
        # Every sample the gateway took is one the genuine wearable sent; every record is of it.
        assert _stream(gateway)["samples_received"] == genuine.counters.total("samples_sent")
        assert {r.device for r in records} == {"wear1"}

        # Restart, with only the impostor on the air: the pin persisted, nothing is taken from it.
        impostor = await network.add_wearable("wear1", modalities=("bvp",), seed=3, firmware_version="impostor-1.0")
        gateway = Gateway(_config("bonded", tmp_path), engine=ProjectionEngine(), backend=TransportBackend.bumble(central),
                          warmup=False)
        records = []
        async with gateway:
            gateway.on_embedding(records.append)
            await _until(lambda: gateway.refused_devices() != [])
            await asyncio.sleep(1.0)  # one scan lasts 10 s: the impostor keeps advertising, unconnected
            await impostor.stop()
        assert impostor.counters.connections == 0 and records == [] and gateway.stats()["streams"] == []
        assert {(r["address"], r["reason"]) for r in gateway.refused_devices()} == {(impostor.address, REFUSED_IMPOSTOR)}


async def test_at_none_a_device_taking_over_a_known_stream_with_another_description_is_refused_not_merged():
    """No pairing, so nothing identifies the device but what it describes: an impostor with other firmware under
    the genuine name is refused before the gateway subscribes, and the genuine wearable is taken again."""
    async with VirtualBleNetwork() as network:
        genuine = await network.add_wearable("wear1", modalities=("bvp",), seed=1, security="none")
        gateway = Gateway(_config("none"), engine=ProjectionEngine(),
                          backend=TransportBackend.bumble(await network.central()), warmup=False)
        records = []
        async with gateway:
            gateway.on_embedding(records.append)
            connection = gateway._manager.connections["wear1"]
            await _until(lambda: len(records) >= 2)
            impostor = await network.add_wearable("wear1", modalities=("bvp",), seed=2, security="none",
                                                  firmware_version="impostor-1.0")
            genuine.reconnect_delay_s = 1.0
            await genuine.disconnect()
            await _until(lambda: gateway.refused_devices() != [] and connection.stats.connects == 2)
            await _until(lambda: len(records) >= 5)
            await genuine.stop()
            await impostor.stop()
        refused = gateway.refused_devices()
        assert {(r["name"], r["address"], r["reason"]) for r in refused} == {("wear1", impostor.address,
                                                                            DESCRIPTION_CHANGED)}
        assert impostor.counters.connections >= 1  # at none the impostor is connected...
        assert impostor.counters.total("packets_sent") == 0  # ...but never subscribed to
        assert _stream(gateway)["samples_received"] == genuine.counters.total("samples_sent")


def test_the_pipeline_refuses_a_changed_description_and_counts_its_notifications():
    """Fed directly (no transport): the refusal holds in the pipeline too, and ends when the device describes
    itself as before."""
    pipeline = Pipeline(_config("none"), ProjectionEngine())
    original = description()
    pipeline.add_device("wear1", original)
    other = DeviceDescription("impostor-1.0", original.streams)
    assert pipeline.description_refusal("wear1", other) == DESCRIPTION_CHANGED
    assert pipeline.description_refusal("wear1", original) is None
    with pytest.raises(DeviceRefused, match="description changed"):
        pipeline.add_device("wear1", other)
    feed = packets(10.0)
    for arrival, _, _, data in feed[:20]:
        pipeline.handle_notification("wear1", data, arrival)
    assert pipeline.garbage_report()["wear1"] == {DESCRIPTION_CHANGED: 20}
    assert all(entry["packets_received"] == 0 for entry in pipeline.stream_report())
    pipeline.add_device("wear1", original)  # the genuine description again: taken
    for arrival, _, _, data in feed[20:]:
        pipeline.handle_notification("wear1", data, arrival)
    received = sum(entry["packets_received"] for entry in pipeline.stream_report())
    assert received == len(feed) - 20


async def test_demo_security_bonded_impostor_lists_the_impostor_and_takes_none_of_its_data():
    from biomoe_edge.commands.demo import run_demo

    report, gateway, wearables = await run_demo(
        duration_s=8.0, devices=1, loss=0.0, engine=ProjectionEngine(), modalities=("bvp",),
        representations=("waveform",), window_s=2.0, hop_s=1.0, quiet=True, security="bonded", impostor=True)
    genuine, impostor = wearables[0], wearables[-1]
    assert impostor.name == genuine.name and impostor.address != genuine.address
    (refused,) = report["refused_devices"]
    assert (refused["name"], refused["address"], refused["reason"]) == (genuine.name, impostor.address,
                                                                        REFUSED_IMPOSTOR)
    assert refused["attempts"] >= 1 and impostor.counters.connections == 0
    (stream,) = report["streams"]
    assert stream["samples_received"] == genuine.counters.total("samples_sent") > 0
    assert report["embeddings"] > 0 and gateway.stats()["connections"]["biomoe-demo-1/connected"] == 2
