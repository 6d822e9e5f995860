"""Replay: a recording through the gateway's own ``Pipeline`` (ingest -> scheduler -> transforms -> engine), as fast
as the machine allows.

The gateway's recording holds every ``Ingest.push`` in the order it happened; :class:`Replay` registers the same
streams and replays the pushes in that order through :meth:`Pipeline.replay_block`, which is the code the live
path runs after decoding. Windows (grid, boundaries, quality flags, withheld or not) are therefore the live ones,
and with the same engine so are the embeddings. Unlike the gateway, a replay never drops a job: its scheduler
queue is unbounded and a batch runs whenever one is full, so the replay can hold windows the live gateway dropped
when its engine fell behind.
"""

from __future__ import annotations

import math

from biomoe_edge.runtime.pipeline import ModalitySettings, Pipeline, PipelineSettings
from biomoe_edge.vocabulary import Modality, WindowSpec, check_representations

#: A replay's scheduler queue: never full (the replay waits for the engine instead of dropping).
UNBOUNDED_QUEUE = 1 << 30


def replay_config(source, *, representations=None, window_s: float | None = None, hop_s: float | None = None,
                  max_batch: int = 16) -> PipelineSettings:
    """The windows and representations a replay uses: the recording's own (per modality), unless overridden;
    the gateway's defaults for imported files."""
    recorded = (getattr(source, "settings", None) or {}).get("windows") or {}
    default = ModalitySettings()
    if representations is not None:
        representations = check_representations(representations)
    modalities = {}
    for modality in Modality:
        spec = recorded.get(modality.value)
        length = window_s if window_s is not None else float(spec["length_s"]) if spec else default.window.length_s
        hop = hop_s if hop_s is not None else float(spec["hop_s"]) if spec else default.window.hop_s
        reps = representations or (tuple(spec["representations"]) if spec else default.representations)
        modalities[modality.value] = ModalitySettings(WindowSpec(length, hop), check_representations(reps))
    # The recorded [[subjects]]: their devices' windows were cut on one grid per subject live (heads fuse them
    # by window time), so the replay cuts them on the same grids.
    return PipelineSettings(max_batch=max_batch, deadline_s=0.0, max_queue=UNBOUNDED_QUEUE,
                            windows=modalities[Modality.EDA.value], modalities=modalities,
                            subjects=dict(getattr(source, "subjects", None) or {}))


class Replay:
    """One source (an opened recording or imported file) through a fresh :class:`Pipeline` on ``engine``.

    ``records()`` yields the :class:`EmbeddingRecord` s; ``windows()`` yields the windows the engine would get
    (``engine=None`` suffices), for those who render or embed them otherwise. ``stats()`` after either."""

    def __init__(self, source, engine, config: PipelineSettings | None = None):
        self.source = source
        self.config = config if config is not None else replay_config(source)
        self._now = 0.0
        self.pipeline = Pipeline(self.config, engine, clock=lambda: self._now)
        for (device, modality), info in source.streams.items():
            self.pipeline.add_replay_stream(device, modality, info.sample_rate_hz, info.channels)

    def _push_all(self, on_block=None):
        """Replay every block; after each, yield the jobs of full batches (``[]`` when none is due)."""
        pipeline = self.pipeline
        for block in self.source.blocks():
            if math.isfinite(block.arrival_time_s):
                self._now = block.arrival_time_s
            pipeline.replay_block(block.device, block.modality, block.samples, block.gateway_times_s,
                                  arrival_time_s=block.arrival_time_s, lost_before=block.lost_before)
            if on_block is not None:
                on_block(block)
            while len(pipeline.scheduler) >= pipeline.max_batch:
                yield pipeline.next_batch(flush=True)
        while True:
            jobs = pipeline.next_batch(flush=True)
            if not jobs:
                return
            yield jobs

    def records(self, *, on_block=None):
        """Embedding records of every window, in the order the engine ran them. ``on_block(block)`` after each
        replayed block (progress)."""
        for jobs in self._push_all(on_block):
            yield from self.pipeline.run_batch(jobs).records

    def windows(self, *, on_block=None):
        """The windows (``runtime.ingest.Window``) that would be embedded, each once, in order."""
        for jobs in self._push_all(on_block):
            yield from {id(job.window): job.window for job in jobs}.values()

    def stats(self) -> dict:
        """Per stream the ingest's accounting; windows withheld for quality; jobs that failed to render."""
        pipeline = self.pipeline
        return {
            "streams": [account.as_dict() for account in pipeline.ingest.accounts().values()],
            "windows_withheld": {f"{d}/{m}": n for (d, m), n in pipeline.windows_withheld.items()},
            "jobs_failed": dict(pipeline.jobs_failed),
            "embeddings": pipeline.embeddings,
        }
