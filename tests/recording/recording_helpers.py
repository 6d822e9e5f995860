"""Helpers of the recording tests: the gateway tests' packet generator and projection engine, and a gateway run
that records."""

from __future__ import annotations

import asyncio
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "gateway"))

from gateway_helpers import ProjectionEngine, description, packets  # noqa: E402

__all__ = ["FakeTime", "ProjectionEngine", "description", "gateway_toml", "lossy", "packets", "record_gateway_run"]


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def gateway_toml(directory, *, representations=("spectrogram_psd", "waveform"), length_s=10.0, hop_s=2.0,
                 segment_s=0.5) -> str:
    return f"""
[windows]
length_s = {length_s}
hop_s = {hop_s}
representations = {list(representations)!r}
[engine]
max_batch = 8
deadline_ms = 0
[[sinks]]
kind = "recording"
directory = "{directory}"
segment_s = {segment_s}
"""


async def _feed(config, items, *, engine, device="wrist-1", extra=None):
    from biomoe_edge.runtime.gateway import Gateway

    clock = FakeTime()
    records = []
    async with Gateway(config, engine=engine, transport=False, clock=clock) as gateway:
        gateway.on_embedding(records.append)
        gateway.add_device(device, description())
        for arrival, stream_id, seq, data in items:
            clock.now = arrival
            gateway.feed(device, data, arrival)
            if extra is not None:
                extra(gateway, arrival, stream_id, seq)
            await asyncio.sleep(0)
        clock.now += 1.0
    return gateway, records


def record_gateway_run(directory, items, *, engine=None, extra=None, **toml_options):
    """Run the gateway on ``items`` (``packets()`` tuples) with a recording sink under ``directory``; returns
    (gateway, live records, recording folder). ``extra(gateway, arrival, stream_id, seq)`` after each packet."""
    from biomoe_edge.config import tomllib
    from biomoe_edge.runtime.gateway_config import parse_config

    config = parse_config(tomllib.loads(gateway_toml(directory, **toml_options)))
    gateway, records = asyncio.run(_feed(config, items, engine=engine or ProjectionEngine(), extra=extra))
    (folder,) = pathlib.Path(directory).iterdir()
    return gateway, records, folder


def lossy(items, fraction: float, seed: int = 0):
    """``items`` with a random ``fraction`` of packets dropped and a few pairs swapped (reordered)."""
    rng = np.random.default_rng(seed)
    kept = [item for item in items if rng.random() >= fraction]
    for i in range(5, len(kept) - 1, 37):
        kept[i], kept[i + 1] = kept[i + 1], kept[i]
    return kept
