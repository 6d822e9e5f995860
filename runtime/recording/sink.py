"""The ``recording`` sink: the gateway's input, recorded as it reaches the ingest (``[[sinks]] kind = "recording"``).

It is a sink by configuration only: embedding records are not what it keeps (``write`` ignores them; the JSONL and
NPZ sinks keep those). The gateway attaches it to its ``Pipeline`` as an observer before any device is added, so
it sees every stream from its first sample; it records into ``directory/<prefix>-<UTC time>/`` (one recording
per gateway run), or into ``directory`` itself with ``per_run=False`` (``biomoe-edge demo --record DIR``).
"""

from __future__ import annotations

import datetime
import logging
import pathlib
import time

from biomoe_edge._version import __version__
from biomoe_edge.runtime.sinks.base import Sink
from biomoe_edge.vocabulary import Modality

from .exc import RecordingError
from .writer import RecordingWriter

log = logging.getLogger("biomoe_edge.runtime.recording")


def gateway_settings(pipeline, config=None, *, subjects: dict | None = None) -> dict:
    """What a replay needs to reproduce the gateway: windows and representations per modality (the pipeline's
    settings), the model and engine identity, and from the gateway's ``config`` (when given) the engine's
    configuration, the allow-listed devices and the device -> subject mapping."""
    windows = {}
    for modality in Modality:
        spec = pipeline.settings.modality(modality.value)
        windows[modality.value] = {"length_s": spec.window.length_s, "hop_s": spec.window.hop_s,
                                   "representations": list(spec.representations)}
    engine = getattr(config, "engine", None)
    return {
        "sdk_version": __version__,
        "clock": "time.monotonic" if pipeline.clock is time.monotonic else "custom",
        "windows": windows,
        "model": dict(pipeline.model_identity),
        "engine": {**{k: v for k, v in dict(getattr(pipeline.engine, "identity", {}) or {}).items()
                      if isinstance(v, (str, int, float, bool, type(None), list))},
                   "max_batch": pipeline.max_batch},
        "engine_config": None if engine is None else {
            "kind": engine.kind, "path": None if engine.path is None else str(engine.path),
            "precision": engine.precision, "max_batch": engine.max_batch, "device": engine.device,
            "random_weights": bool(getattr(engine, "random_weights", False))},
        "devices": [{"name": d.name, "address": d.address, "profile": d.profile, "modalities": list(d.modalities)}
                    for d in getattr(config, "devices", ())],
        "subjects": dict(subjects if subjects is not None else pipeline.settings.subjects),
    }


def build_recording_sink(config) -> "RecordingSink":
    """The sink a ``[[sinks]] kind = "recording"`` table describes (a ``gateway_config.SinkConfig``)."""
    options = dict(config.options)
    return RecordingSink(options.pop("directory"), **options)


def run_folder_name(prefix: str) -> str:
    return f"{prefix}-{datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}"


class RecordingSink(Sink):
    """Record the gateway's input into ``directory`` (see the module docstring). ``lsl_markers``: the name of an
    LSL marker stream whose markers are recorded too. ``subjects``: device -> subject (default: the config's)."""

    name = "recording"

    def __init__(self, directory, *, prefix: str = "recording", segment_s: float = 2.0, per_run: bool = True,
                 lsl_markers: str | None = None, subjects: dict | None = None):
        self.directory = pathlib.Path(directory)
        self.prefix = prefix
        self.segment_s = float(segment_s)
        self.per_run = per_run
        self.lsl_markers = lsl_markers
        self.subjects = subjects
        self.writer: RecordingWriter | None = None
        self.path: pathlib.Path | None = None
        self._lsl = None
        self.records_ignored = 0
        #: blocks the writer refused (also counted by the pipeline's ``observer_errors`` and logged once)
        self.blocks_refused = 0

    def attach(self, pipeline, config=None) -> None:
        """Start recording what ``pipeline`` hands to its ingest (the gateway calls this once)."""
        self.path = self.directory / run_folder_name(self.prefix) if self.per_run else self.directory
        self.writer = RecordingWriter(self.path, gateway_settings(pipeline, config, subjects=self.subjects),
                                      self.segment_s, clock=pipeline.clock)
        pipeline.add_observer(self)
        log.info("recording the gateway's input into %s", self.path)
        if self.lsl_markers:
            from .markers import LslMarkerInlet

            self._lsl = LslMarkerInlet(self.lsl_markers, self.writer, clock=pipeline.clock)

    # -- the pipeline's observer --------------------------------------------------------------------------
    def on_stream(self, device, modality, description) -> None:
        self.writer.add_stream(device, modality, description)

    def on_block(self, device, modality, samples, gateway_times_s, arrival_time_s, lost_before) -> None:
        try:
            self.writer.write_block(device, modality, samples, gateway_times_s, arrival_time_s=arrival_time_s,
                                    lost_before=lost_before)
        except RecordingError:  # a block the writer cannot take: not recorded, and counted as such
            self.blocks_refused += 1
            raise

    def on_event(self, device, modality, kind, time_s, detail) -> None:
        self.writer.write_event(device, modality, kind, time_s, detail)

    # -- the sink interface --------------------------------------------------------------------------------
    def write(self, records) -> None:
        self.records_ignored += len(records)  # embeddings go to the other sinks; this one records the input

    def close(self) -> None:
        if self._lsl is not None:
            self._lsl.close()
        if self.writer is not None:
            self.writer.close()

    def stats(self) -> dict:
        stats = {"path": str(self.path) if self.path else None, "blocks_refused": self.blocks_refused}
        if self.writer is not None:
            stats.update(self.writer.stats())
        if self._lsl is not None:
            stats["lsl_markers"] = self._lsl.markers
        return stats
