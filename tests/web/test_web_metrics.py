"""GET /metrics (read back with prometheus_client's own parser) and GET /healthz, on a gateway fed by hand."""

from __future__ import annotations

import asyncio
import collections
import os
import pathlib
import re
import threading

import pytest

pytest.importorskip("aiohttp", reason="the web listener needs aiohttp (pip install 'biomoe-edge[web]')")
pytest.importorskip("prometheus_client", reason="metrics need prometheus_client (pip install 'biomoe-edge[web]')")

import aiohttp  # noqa: E402
from gateway_helpers import ProjectionEngine, description, packets  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.gateway_config import WebConfig, parse_config  # noqa: E402
from biomoe_edge.runtime.sinks import GuardedSink, Sink  # noqa: E402
from biomoe_edge.runtime.web.server import WebError, WebServer  # noqa: E402


REPO = pathlib.Path(__file__).resolve().parents[2]


def _config(devices=(), max_queue=256):
    return parse_config({
        "windows": {"length_s": 2.0, "hop_s": 1.0, "representations": ["waveform"]},
        "devices": [{"name": name, "modalities": ["bvp", "eda"]} for name in devices],
        "engine": {"max_batch": 8, "deadline_ms": 20, "max_queue": max_queue},
    })


async def _get(url, **kwargs):
    async with aiohttp.ClientSession() as session:
        async with session.get(url, **kwargs) as response:
            return response.status, await response.text()


def _samples(text):
    """{(name, sorted labels): value} of every sample in a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _feed(gateway, seconds=6.0, device="dev-1", after_s=None):
    """Feed ``seconds`` of both streams; ``after_s``: only the packets that arrive after it (the device known)."""
    if after_s is None:
        gateway.add_device(device, description())
    fed = collections.Counter()
    for arrival, stream_id, _, data in packets(seconds):
        if after_s is None or arrival > after_s:
            gateway.feed(device, data, arrival)
            fed[("bvp", "eda")[stream_id]] += 1
    return fed


async def _until(predicate, timeout_s=20.0, what="condition"):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.01)


async def test_metrics_are_prometheus_text_with_the_gateways_counts():
    records = []
    clock = [0.0]
    async with Gateway(_config(), engine=ProjectionEngine(), transport=False, warmup=False,
                       clock=lambda: clock[0]) as gateway:
        gateway.on_embedding(records.append)
        async with WebServer(gateway, WebConfig(port=0)) as server:
            fed = await _feed(gateway)
            clock[0] = 100.0  # every window's deadline has passed: batches run now
            gateway._wake.set()
            await _until(lambda: len(records) >= 8, what="embeddings")
            await asyncio.sleep(0.1)
            status, text = await _get(f"{server.url}metrics")
    assert status == 200
    samples = _samples(text)
    for modality, count in fed.items():  # the test's own count of the packets it fed
        key = ("device", "dev-1"), ("modality", modality)
        assert samples[("biomoe_edge_stream_packets_received_total", key)] == count
        assert samples[("biomoe_edge_stream_packets_lost_total", key)] == 0
    assert samples[("biomoe_edge_embeddings_total", ())] == len(records)
    # one latency observation per record the callback saw; arrival and emission on the test's clock
    assert samples[("biomoe_edge_embedding_latency_seconds_count", ())] == len(records)
    assert samples[("biomoe_edge_engine_batch_size_sum", ())] == len(records)
    per_stream = collections.Counter((r.device, r.modality, r.representation) for r in records)
    for (device, modality, representation), n in per_stream.items():
        assert samples[("biomoe_edge_stream_embeddings_total", (("device", device), ("modality", modality),
                                                                ("representation", representation)))] == n
    assert samples[("biomoe_edge_healthy", ())] == 1.0
    assert ("process_resident_memory_bytes", ()) in samples
    assert samples[("process_open_fds", ())] > 0
    assert ("biomoe_edge_event_loop_lag_seconds_count", ()) in samples
    served = {s.name for f in text_string_to_metric_families(text) for s in f.samples} | \
             {f.name for f in text_string_to_metric_families(text)}
    dashboard = (REPO / "examples" / "monitoring" / "grafana-dashboard.json").read_text()
    queried = set(re.findall(r"\b((?:biomoe_edge|process)_[a-z_]+)", dashboard))
    assert queried
    for name in queried:  # every metric the fleet dashboard queries is one the gateway serves
        assert name in served or re.sub(r"_(total|bucket)$", "", name) in served, name


class BrokenSink(Sink):
    name = "broken"

    def write(self, records):
        raise OSError("disk gone")


async def test_healthz_names_a_failing_sink_and_recovers_to_200_without_it():
    records = []
    clock = [0.0]
    async with Gateway(_config(), engine=ProjectionEngine(), transport=False, warmup=False,
                       clock=lambda: clock[0]) as gateway:
        gateway.on_embedding(records.append)
        async with WebServer(gateway, WebConfig(port=0)) as server:
            assert await _get(f"{server.url}healthz") == (200, "ok\n")
            broken = GuardedSink(BrokenSink())
            gateway.sinks.append(broken)
            await _feed(gateway)
            clock[0] = 100.0
            gateway._wake.set()
            await _until(lambda: broken.records_failed > 0, what="the broken sink's first failure")
            status, text = await _get(f"{server.url}healthz")
            assert status == 503
            assert "sink broken" in text and "OSError" in text
            _, metrics = await _get(f"{server.url}metrics")
            assert _samples(metrics)[("biomoe_edge_healthy", ())] == 0.0


class StuckEngine(ProjectionEngine):
    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def _infer_batch(self, images):
        self.release.wait(10)
        return super()._infer_batch(images)


async def test_healthz_says_the_engine_stalled_and_that_no_device_connected():
    engine = StuckEngine()
    clock = [0.0]
    try:
        async with Gateway(_config(["dev-1"], max_queue=4), engine=engine, transport=False, warmup=False,
                           drain_timeout_s=0.5,
                           clock=lambda: clock[0]) as gateway:
            health_config = WebConfig(port=0, no_device_s=0.2, engine_stall_s=0.3)
            async with WebServer(gateway, health_config, clock=lambda: clock[0]) as server:
                assert (await _get(f"{server.url}healthz"))[0] == 200
                await _feed(gateway, seconds=4.0)
                clock[0] = 100.0
                gateway._wake.set()
                await asyncio.sleep(0.2)  # the engine is stuck in its first batch; more windows come and queue up
                await _feed(gateway, seconds=20.0, after_s=4.0)
                assert (await _get(f"{server.url}healthz"))[0] == 503  # no device connected since t=0
                clock[0] = 101.0
                status, text = await _get(f"{server.url}healthz")
                # the stuck engine's queue overflowed: dropped jobs are served per stream and reason
                metrics_status, metrics = await _get(f"{server.url}metrics")
                dropped = gateway.pipeline.scheduler.stats().total_jobs_dropped()
                engine.release.set()
    finally:
        engine.release.set()
    assert metrics_status == 200
    assert dropped > 0
    assert sum(v for (name, _), v in _samples(metrics).items()
               if name == "biomoe_edge_engine_jobs_dropped_total") == dropped
    assert status == 503
    assert "engine stalled" in text
    assert "no device connected" in text


async def test_off_loopback_a_token_is_required(tmp_path, monkeypatch):
    monkeypatch.delenv("BIOMOE_WEB_TOKEN", raising=False)
    async with Gateway(_config(), engine=ProjectionEngine(), transport=False, warmup=False) as gateway:
        with pytest.raises(WebError, match="not a loopback address"):
            WebServer(gateway, WebConfig(host="0.0.0.0", port=0))
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        os.chmod(token_file, 0o644)
        with pytest.raises(WebError, match="chmod 600"):
            WebServer(gateway, WebConfig(host="0.0.0.0", port=0, token_file=token_file))
        os.chmod(token_file, 0o600)
        async with WebServer(gateway, WebConfig(host="0.0.0.0", port=0, token_file=token_file)) as server:
            base = f"http://127.0.0.1:{server.port}/"
            for path in ("", "metrics", "events", "state"):
                assert (await _get(base + path))[0] == 401, path
                assert (await _get(base + path, headers={"Authorization": "Bearer wrong"}))[0] == 401, path
            assert (await _get(base + "metrics", headers={"Authorization": "Bearer s3cret"}))[0] == 200
            assert (await _get(base + "state", headers={"Authorization": "Bearer s3cret"}))[0] == 200
            assert (await _get(base + "healthz"))[0] == 200  # for load balancers and probes: no data in it
        monkeypatch.setenv("BIOMOE_WEB_TOKEN", "from-env")
        async with WebServer(gateway, WebConfig(host="0.0.0.0", port=0)) as server:
            base = f"http://127.0.0.1:{server.port}/"
            assert (await _get(base + "metrics", headers={"Authorization": "Bearer from-env"}))[0] == 200
            assert (await _get(base + "metrics"))[0] == 401


class StatusSink(Sink):
    name = "status-taker"
    takes_status = True

    def __init__(self):
        self.records = []

    def write(self, records):
        self.records.extend(records)


async def test_run_publishes_status_records_every_period_to_sinks_that_take_them():
    from biomoe_edge.commands.run import StatusPublisher
    from biomoe_edge.runtime.web.health import HealthMonitor

    clock = [0.0]
    async with Gateway(_config(), engine=ProjectionEngine(), transport=False, warmup=False) as gateway:
        taker, other = StatusSink(), StatusSink()
        other.takes_status = False
        gateway.sinks += [GuardedSink(taker), GuardedSink(other)]
        publisher = StatusPublisher(gateway, HealthMonitor(gateway), every_s=30.0, clock=lambda: clock[0])
        for t in (0.0, 10.0, 29.9, 30.0, 45.0, 61.0):
            clock[0] = t
            publisher.tick()
    assert [r.to_dict()["record"] for r in taker.records] == ["status"] * 3  # at 0, 30 and 61 s
    assert other.records == []
    assert all(r.healthy for r in taker.records)  # an empty allow-list is not a fault
