"""A dataset of embeddings from SIMULATED labelled sessions (``biomoe_edge.simulated_sessions``), made by the
gateway's own data path: each session is encoded as the native wire protocol a wearable sends (packets of
float32 samples with device timestamps), fed to a :class:`~biomoe_edge.runtime.pipeline.Pipeline` with the
subject's wearables in one ``[[subjects]]`` entry, windowed, rendered and embedded by ``engine``, and every
embedding labelled with the class of the session block its window lies in.

The frame has the documented ``load_dataset`` columns, so ``train-head`` and ``evaluate-head`` read it as they
read what ``biomoe-edge embed`` writes. No BLE here (packets are handed to the pipeline in-process); the live
demo (``biomoe-edge demo --head``) plays the same sessions over Bumble.
"""

from __future__ import annotations

import collections
import heapq

import numpy as np

from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription, encode_packet
from biomoe_edge.simulated_sessions import wearables_of

#: Samples per packet at most; slow streams send a packet at least every quarter second (SpO2: every sample).
SAMPLES_PER_PACKET = 16


def samples_per_packet(fs: float) -> int:
    return max(1, min(SAMPLES_PER_PACKET, int(fs // 4)))
#: Gateway seconds between a packet's last sample and its arrival.
LINK_DELAY_S = 0.005


def session_settings(session, modalities, *, representations, window_s: float, hop_s: float):
    """The pipeline settings the session is embedded with: its wearables (``wearables_of``) as one subject."""
    from biomoe_edge.runtime.pipeline import ModalitySettings, PipelineSettings
    from biomoe_edge.vocabulary import WindowSpec, check_representations

    devices = wearables_of(session.subject, modalities)
    return PipelineSettings(max_batch=16, deadline_s=0.0, max_queue=1 << 16,
                            windows=ModalitySettings(WindowSpec(window_s, hop_s), check_representations(representations)),
                            subjects={device: session.subject for device in devices})


def _packets(session, devices: dict, start_s: float):
    """(arrival_time_s, device, payload) of every packet of the session, in arrival order."""
    streams = []
    for device, modalities in devices.items():
        for stream_id, modality in enumerate(modalities):
            values, fs = session.signals[modality], session.rates_hz[modality]
            streams.append((device, stream_id, values.astype(np.float32), fs))

    def generate(device, stream_id, values, fs):
        n = samples_per_packet(fs)
        for sequence, first in enumerate(range(0, len(values) - n + 1, n)):
            payload = encode_packet(stream_id=stream_id, sequence=sequence, timestamp_us=int(round(first / fs * 1e6)),
                                    samples=values[first:first + n, None], sample_format=SampleFormat.FLOAT32)
            yield start_s + (first + n - 1) / fs + LINK_DELAY_S, device, payload
    return heapq.merge(*(generate(*s) for s in streams), key=lambda packet: packet[0])


def description(session, modalities) -> DeviceDescription:
    return DeviceDescription("simulated-1.0", tuple(
        StreamDescription(stream_id=i, modality=m, sample_rate_hz=session.rates_hz[m], channels=1,
                          sample_format=SampleFormat.FLOAT32, units="")
        for i, m in enumerate(modalities)))


def embed_simulated_sessions(sessions, engine, *, modalities, representations, window_s: float = 10.0,
                             hop_s: float = 2.0, start_s: float = 1000.0):
    """A pandas DataFrame (the ``load_dataset`` columns) of every embedding of ``sessions`` through the
    gateway's Pipeline. Session time 0 is gateway time ``start_s``; windows are labelled by
    ``session.label_of`` (None across a class change). RuntimeError if any job was dropped or failed (clean
    simulated signals give none; a silently thinner dataset would mislead)."""
    from biomoe_edge.dataset import check_columns, frame_from_columns
    from biomoe_edge.runtime.pipeline import Pipeline
    from biomoe_edge.runtime.recording.embed import Rows

    rows = Rows()  # the columns `embed` collects, filled the same way
    for session in sessions:
        settings = session_settings(session, modalities, representations=representations, window_s=window_s,
                                    hop_s=hop_s)
        devices = wearables_of(session.subject, modalities)
        now = [start_s]
        pipeline = Pipeline(settings, engine, clock=lambda: now[0])
        for device, mods in devices.items():
            pipeline.add_device(device, description(session, mods), mods)
        records = []
        for arrival, device, payload in _packets(session, devices, start_s):
            now[0] = arrival
            pipeline.handle_notification(device, payload, arrival)
            while len(pipeline.scheduler) >= pipeline.max_batch:
                records.extend(pipeline.run_batch(pipeline.next_batch(flush=True)).records)
        for device in devices:
            pipeline.flush_device(device)
        while True:
            jobs = pipeline.next_batch(flush=True)
            if not jobs:
                break
            records.extend(pipeline.run_batch(jobs).records)
        dropped = {k: v for k, v in pipeline.scheduler.stats().jobs_dropped.items() if v}
        if dropped or pipeline.jobs_failed:
            raise RuntimeError(f"{session.subject}: jobs dropped {dropped} or failed {dict(pipeline.jobs_failed)}")
        for record in records:
            rows.add(session.subject, record,
                     session.label_of(record.window_start_s - start_s, record.window_end_s - start_s))
    frame = frame_from_columns(check_columns(rows.columns))
    return frame.sort_values(["subject", "window_end_s", "modality", "representation"], kind="stable",
                             ignore_index=True)


def label_counts(frame) -> dict:
    """Windows per label (None as "unlabelled"), for reports."""
    return dict(collections.Counter("unlabelled" if v is None else v for v in frame["label"]))
