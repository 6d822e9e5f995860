"""Errors raised by ingest. All are ValueError, so cli.py prints them as one clean line.

A push that raises one of these has still been counted: its samples are in ``samples_received`` and in
``samples_dropped["malformed"]`` (when their number could be read), so nothing is lost silently.
"""

from __future__ import annotations


class IngestError(ValueError):
    """Base of every error raised by ``biomoe_edge.runtime.ingest``."""


class UnknownStreamError(IngestError):
    """``push``/``mark_lost`` named a stream that was never added with ``add_stream``."""


class DuplicateStreamError(IngestError):
    """``add_stream`` was called twice for the same (device, modality)."""


class SampleShapeError(IngestError):
    """Samples are not (n,) or (n, channels), or their channel count differs from the stream's."""


class ChannelCountError(SampleShapeError):
    """Samples have a channel count other than the one the stream was added with."""


class SampleDtypeError(IngestError):
    """Samples are not real numbers (strings, objects, complex, bool)."""


class TimestampError(IngestError):
    """Gateway times are not a 1-D array of real numbers, one per sample."""
