"""Helpers for the gateway tests: packets of simulated signals, and a small deterministic engine."""

from __future__ import annotations

import numpy as np

from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription, encode_packet
from biomoe_edge.runtime.engines.base import Engine

RATES = {"bvp": 64.0, "eda": 32.0}


def description() -> DeviceDescription:
    return DeviceDescription("test-1.0", tuple(
        StreamDescription(stream_id=i, modality=m, sample_rate_hz=fs, channels=1,
                          sample_format=SampleFormat.INT16, scale=0.01, offset=0.0, units="au")
        for i, (m, fs) in enumerate(RATES.items())))


def packets(seconds: float, *, per_packet: int = 16, seed: int = 0):
    """(arrival_time_s, stream_id, sequence, bytes) of every packet of both streams, in arrival order.

    The device clock starts at 0; a packet arrives 5 ms after its last sample was taken."""
    rng = np.random.default_rng(seed)
    out = []
    for stream_id, (modality, fs) in enumerate(RATES.items()):
        n = int(seconds * fs)
        t = np.arange(n) / fs
        signal = 100 * np.sin(2 * np.pi * (1.2 if modality == "bvp" else 0.05) * t) + rng.normal(0, 5, n)
        raw = np.round(signal / 0.01 / 10).astype(np.int16)  # keep within int16
        for seq, start in enumerate(range(0, n - per_packet + 1, per_packet)):
            data = encode_packet(stream_id=stream_id, sequence=seq, timestamp_us=int(round(start / fs * 1e6)),
                                 samples=raw[start:start + per_packet, None], sample_format=SampleFormat.INT16)
            arrival = (start + per_packet - 1) / fs + 0.005
            out.append((arrival, stream_id, seq, data))
    out.sort(key=lambda p: p[0])
    return out


class ProjectionEngine(Engine):
    """A fixed random projection of 8x8-pooled images to 192 values: cheap, deterministic, and sensitive
    to every image it is given (so wrong buffers or mixed-up order change the embeddings)."""

    def __init__(self, max_batch: int = 8):
        super().__init__()
        self.max_batch = max_batch
        self.weights = np.random.default_rng(1).standard_normal((3 * 28 * 28, 192)).astype(np.float32)
        self.images_seen: list[np.ndarray] = []
        self._identity = {"kind": "projection", "precision": "fp32", "model_sha256": "0" * 64, "source": None,
                          "device": "cpu", "max_batch": max_batch}

    def _infer_batch(self, images):
        self.images_seen.append(np.array(images))
        pooled = images.reshape(len(images), 3, 28, 8, 28, 8).mean(axis=(3, 5)).reshape(len(images), -1)
        return pooled.astype(np.float32) @ self.weights
