"""The gateway's data path fed with real packets (no Bluetooth): records, accounting and bad input."""

import asyncio
import logging

import numpy as np
import pytest
from gateway_helpers import ProjectionEngine, description, packets

from biomoe_edge.config import tomllib
from biomoe_edge.runtime.gateway import Gateway
from biomoe_edge.runtime.gateway_config import parse_config

CONFIG = """
[windows]
length_s = 10.0
hop_s = 2.0
representations = ["spectrogram_psd", "waveform"]
[engine]
max_batch = 8
deadline_ms = 0
"""


class FakeTime:
    """The gateway's clock, advanced by the test to each packet's arrival (simulated real time)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


async def _run(feed_items, *, extra=None, seconds=24.0):
    clock = FakeTime()
    engine = ProjectionEngine()
    config = parse_config(tomllib.loads(CONFIG))
    records = []
    async with Gateway(config, engine=engine, transport=False, clock=clock) as gateway:
        gateway.on_embedding(records.append)
        gateway.add_device("wrist-1", description())
        for arrival, stream_id, seq, data in feed_items:
            clock.now = arrival
            gateway.feed("wrist-1", data, arrival)
            if extra is not None:
                extra(gateway, arrival, stream_id, seq)
            await asyncio.sleep(0)
        clock.now = seconds + 1
    return gateway, engine, records


async def test_warmup_renders_and_runs_the_engine_before_any_device_and_emits_nothing():
    engine = ProjectionEngine()
    records = []
    async with Gateway(parse_config(tomllib.loads(CONFIG)), engine=engine, transport=False) as gateway:
        gateway.on_embedding(records.append)
        warm_pictures = np.array(gateway.pipeline.images[:1])
    assert [len(images) for images in engine.images_seen] == [1, 8]
    assert records == [] and gateway.stats()["embeddings"] == 0
    assert warm_pictures.max() > 0  # the configured representations were drawn into the engine's buffer
    engine = ProjectionEngine()
    async with Gateway(parse_config(tomllib.loads(CONFIG)), engine=engine, transport=False, warmup=False):
        pass
    assert engine.images_seen == []


async def test_records_carry_windows_identity_and_latency():
    gateway, engine, records = await _run(packets(24.0))
    stats = gateway.stats()
    # 24 s of signal, 10 s windows every 2 s: windows end at 10, 12, ..., 24 s -> 7 or 8 per stream
    per_stream = {}
    for r in records:
        per_stream.setdefault((r.modality, r.representation), []).append(r)
    assert set(per_stream) == {(m, rep) for m in ("bvp", "eda") for rep in ("spectrogram_psd", "waveform")}
    for group in per_stream.values():
        assert 6 <= len(group) <= 8
        starts = [r.window_start_s for r in group]
        assert np.allclose(np.diff(starts), 2.0)
        assert all(r.window_end_s - r.window_start_s == pytest.approx(10.0) for r in group)
    r = records[0]
    assert r.device == "wrist-1" and r.embedding.shape == (192,) and r.embedding.dtype == np.float32
    # An engine that names no checkpoint counts as random weights (biomoe_edge.identity), and records say so.
    assert r.model == {"sha256": "0" * 64, "checkpoint_sha256": None, "precision": "fp32", "source": None,
                       "random_weights": True, "seed": None}
    assert r.engine["kind"] == "projection"
    assert all(rec.latency_s >= 0 for rec in records)
    assert stats["embeddings"] == len(records)
    # The warm-up ran the engine at batch 1 and max_batch before any device; every image after it became
    # exactly one record.
    assert [len(images) for images in engine.images_seen[:2]] == [1, 8]
    seen = np.concatenate(engine.images_seen[2:])
    assert len(seen) == len(records)
    assert not np.allclose(per_stream[("bvp", "waveform")][0].embedding, per_stream[("bvp", "spectrogram_psd")][0].embedding)
    for entry in stats["streams"]:
        assert entry["samples_received"] == (entry["samples_windowed"] + entry["samples_pending"]
                                             + sum(entry["samples_dropped"].values()))
        assert entry["packets_lost"] == 0


async def test_lost_packets_are_counted_and_samples_balance():
    items = packets(24.0)
    skipped = {(0, 10), (0, 11), (1, 7), (0, 40)}
    gateway, _, records = await _run([p for p in items if (p[1], p[2]) not in skipped])
    lost = {e["modality"]: e["packets_lost"] for e in gateway.stats()["streams"]}
    assert lost == {"bvp": 3, "eda": 1}
    assert records


async def test_garbage_notifications_are_counted_by_reason_and_never_stop_the_stream(caplog):
    items = packets(24.0)
    good_total = len(items)

    def inject(gateway, arrival, stream_id, seq):
        if stream_id == 0 and seq % 50 == 0:
            gateway.feed("wrist-1", b"\x01\x02", arrival)                    # truncated
            bad_crc = bytearray(items[0][3])
            bad_crc[-1] ^= 0xFF
            gateway.feed("wrist-1", bytes(bad_crc), arrival)                # CRC mismatch
            gateway.feed("wrist-1", "not bytes", arrival)                   # not even bytes
            gateway.feed("ghost", items[0][3], arrival)                     # a device never described

    with caplog.at_level(logging.WARNING):
        gateway, _, records = await _run(items, extra=inject)
    garbage = gateway.stats()["garbage"]
    n_injections = len([p for p in items if p[1] == 0 and p[2] % 50 == 0])
    assert sum(garbage["wrist-1"].values()) == 3 * n_injections
    assert garbage["wrist-1"]["CRCError"] == n_injections
    assert garbage["ghost"] == {"undescribed_device": n_injections}
    assert sum(e["packets_received"] for e in gateway.stats()["streams"]) == good_total
    assert records
    crc_logs = [r for r in caplog.records if "CRCError" in r.getMessage()]
    assert len(crc_logs) == 1


async def test_async_iterator_yields_what_the_callback_sees():
    clock = FakeTime()
    config = parse_config(tomllib.loads(CONFIG))
    seen_by_callback, seen_by_iterator = [], []
    async with Gateway(config, engine=ProjectionEngine(), transport=False, clock=clock) as gateway:
        gateway.on_embedding(seen_by_callback.append)

        async def consume():
            async for record in gateway.embeddings():
                seen_by_iterator.append(record)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)
        gateway.add_device("wrist-1", description())
        for arrival, _, _, data in packets(16.0):
            clock.now = arrival
            gateway.feed("wrist-1", data, arrival)
            await asyncio.sleep(0)
    await asyncio.wait_for(consumer, 5)
    assert seen_by_iterator and seen_by_iterator == seen_by_callback


async def test_a_failing_callback_does_not_stop_other_sinks():
    clock = FakeTime()
    config = parse_config(tomllib.loads(CONFIG))
    good = []

    def broken(record):
        raise RuntimeError("application bug")

    async with Gateway(config, engine=ProjectionEngine(), transport=False, clock=clock) as gateway:
        gateway.on_embedding(broken)
        gateway.on_embedding(good.append)
        gateway.add_device("wrist-1", description())
        for arrival, _, _, data in packets(14.0):
            clock.now = arrival
            gateway.feed("wrist-1", data, arrival)
            await asyncio.sleep(0)
    sinks = gateway.stats()["sinks"]
    assert good
    broken_stats, good_stats = sinks
    assert broken_stats["records_failed"] == len(good) and broken_stats["records_written"] == 0
    assert broken_stats["errors"] == {"RuntimeError": broken_stats["batches_failed"]}
    assert good_stats["records_written"] == len(good) and good_stats["errors"] == {}


async def test_a_device_clock_jump_is_counted_and_every_sample_stays_accounted_for():
    """The wearable's clock leaps 120 s forward half-way (a firmware clock reset): the reassembler and the
    ingest re-anchor and count it, nothing raises, and windows resume after the jump."""
    from biomoe_edge.firmware_bridge import decode_packet, encode_packet

    items = []
    for arrival, stream_id, seq, data in packets(30.0):
        if arrival > 15.0:
            p = decode_packet(data)
            data = encode_packet(stream_id=p.stream_id, sequence=p.sequence, timestamp_us=p.timestamp_us + 120_000_000,
                                 samples=p.samples, sample_format=p.sample_format)
        items.append((arrival, stream_id, seq, data))
    gateway, _, records = await _run(items, seconds=30.0)
    stats = gateway.stats()
    for entry in stats["streams"]:
        assert entry["clock_jumps"] >= 1
        assert entry["samples_received"] == (entry["samples_windowed"] + entry["samples_pending"]
                                             + sum(entry["samples_dropped"].values()))
    assert max(r.window_end_s for r in records) > 20.0, "windows resume after the jump"


async def test_jobs_left_when_the_drain_time_runs_out_are_counted_not_lost():
    clock = FakeTime()
    config = parse_config(tomllib.loads(CONFIG))
    engine = ProjectionEngine()
    async with Gateway(config, engine=engine, transport=False, clock=clock, drain_timeout_s=0.0,
                       warmup=False) as gateway:
        gateway.add_device("wrist-1", description())
        for arrival, _, _, data in packets(16.0):  # no await: the worker never gets a turn before close
            clock.now = arrival
            gateway.feed("wrist-1", data, arrival)
    stats = gateway.stats()
    assert stats["scheduler"]["jobs_submitted"] > 0
    assert stats["embeddings"] == 0 and not engine.images_seen
    assert stats["jobs_unfinished"] == stats["scheduler"]["jobs_submitted"]


async def test_a_stream_the_gateway_cannot_use_costs_the_device_nothing_else():
    from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription, encode_packet

    usable = description().streams  # bvp (id 0) and eda (id 1)
    odd = (StreamDescription(stream_id=7, modality="temp", sample_rate_hz=1.0, channels=1,
                             sample_format=SampleFormat.INT16, scale=0.01, offset=0.0, units="C"),
           StreamDescription(stream_id=8, modality="ecg", sample_rate_hz=1e6, channels=1,
                             sample_format=SampleFormat.INT16, scale=0.01, offset=0.0, units="mV"))
    # the odd streams come first, so a half-registered device would lose bvp and eda
    desc = DeviceDescription("test-1.0", odd + tuple(usable))
    clock = FakeTime()
    async with Gateway(parse_config(tomllib.loads(CONFIG)), engine=ProjectionEngine(), transport=False,
                       clock=clock) as gateway:
        gateway.add_device("wrist-1", desc)
        for stream_id in (7, 8):
            gateway.feed("wrist-1", encode_packet(stream_id=stream_id, sequence=0, timestamp_us=0,
                                                  samples=np.zeros((4, 1)), sample_format=SampleFormat.INT16), 0.1)
        for arrival, _, _, data in packets(12.0):
            clock.now = arrival
            gateway.feed("wrist-1", data, arrival)
        stats = gateway.stats()
    assert stats["garbage"]["wrist-1"] == {"unsupported_modality": 1, "implausible_stream": 1}
    streams = {s["modality"]: s for s in stats["streams"]}
    assert set(streams) == {"bvp", "eda"}
    assert streams["bvp"]["samples_windowed"] > 0 and streams["eda"]["samples_windowed"] > 0


def test_each_image_is_its_windows_picture_when_a_batch_splits_a_windows_representations():
    """Batches of 5 over 3 representations split windows' representations across batches (a window is then
    preprocessed for only some of its pictures): every image must still be its own window's picture."""
    from biomoe_edge.runtime.pipeline import Pipeline
    from biomoe_edge.runtime.transforms import preprocess, render

    representations = ["spectrogram_psd", "scalogram", "waveform"]
    config = parse_config({"windows": {"length_s": 10.0, "hop_s": 1.0, "representations": representations},
                           "engine": {"max_batch": 5, "deadline_ms": 0, "max_queue": 1024}})
    pipeline = Pipeline(config, ProjectionEngine(max_batch=5))
    pipeline.add_device("wrist-1", description())
    for arrival, _, _, data in packets(14.0):
        pipeline.handle_notification("wrist-1", data, arrival)
    checked, split = 0, 0
    while jobs := pipeline.next_batch(flush=True):
        ordered = pipeline.run_batch(jobs).jobs
        assert sorted(map(id, ordered)) == sorted(map(id, jobs))
        windows_here = {}
        for job in ordered:
            windows_here.setdefault(id(job.window), set()).add(job.representation)
        split += sum(len(reps) < len(representations) for reps in windows_here.values())
        for image, job in zip(pipeline.images, ordered):
            window = job.window
            x, fs = preprocess(window.samples[0][None], window.fs, window.modality)
            expected = render(x, fs, (job.representation,), modality=window.modality)[0]
            np.testing.assert_allclose(image, expected, atol=1e-6)
            checked += 1
    assert checked >= 2 * 4 * len(representations) and split > 0
