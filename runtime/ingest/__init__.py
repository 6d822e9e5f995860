"""Samples to windows: per-stream ring buffers, clock-fault handling, resampling, alignment, quality gating.

    ingest = Ingest()
    key = ingest.add_stream(StreamKey("wrist-1", "bvp"), 64.0, config=IngestConfig(window_length_s=10, hop_s=1))
    ingest.push(key, block.samples, block.gateway_times_s, arrival_time_s=now)
    for window in ingest.pop_windows(): ...
    ingest.account(key)   # samples_received == samples_windowed + samples_pending + sum(samples_dropped)
"""

from .exc import (
    ChannelCountError,
    DuplicateStreamError,
    IngestError,
    SampleDtypeError,
    SampleShapeError,
    TimestampError,
    UnknownStreamError,
)
from .ingest import (
    DROP_REASONS,
    WINDOW_DROP_REASONS,
    Ingest,
    IngestConfig,
    StreamAccount,
    StreamKey,
    Window,
)
from .quality import QUALITY_FLAGS, QualityConfig, assess_window
from .resample import model_rate_hz, rational_factor, resample_window
from .ring import SampleRing

__all__ = [
    "ChannelCountError",
    "DROP_REASONS",
    "DuplicateStreamError",
    "Ingest",
    "IngestConfig",
    "IngestError",
    "QUALITY_FLAGS",
    "QualityConfig",
    "SampleDtypeError",
    "SampleRing",
    "SampleShapeError",
    "StreamAccount",
    "StreamKey",
    "TimestampError",
    "UnknownStreamError",
    "WINDOW_DROP_REASONS",
    "Window",
    "assess_window",
    "model_rate_hz",
    "rational_factor",
    "resample_window",
]
