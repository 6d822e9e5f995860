"""The gateway's data path, with no I/O (no asyncio, no Bluetooth): notifications in, records out.

    notification bytes --decode_packet--> Packet --StreamReassembler--> SampleBlock (gateway time)
      --Ingest--> Window --BatchScheduler--> jobs --preprocess + render--> NCHW buffer --engine.infer--> records

Standard-profile wearables take the same path with the profile's streams (``ProfileSpec.open_streams`` of
``firmware_bridge.profiles.registry``) in place of the packet decoder and reassembler; the profile's
``stream_key`` says which stream a notification belongs to::

    Polar PMD       PMD data frame --PmdStream (by measurement type)--> SampleBlock --Ingest--> ecg / bvp windows
    Pulse Oximeter  PLX Continuous --PlxStream--> SampleBlock (SpO2 channel) --Ingest--> spo2 windows
    Heart Rate      Heart Rate Measurement --HeartRateStream--> counted, dropped as "not_a_model_modality"

So the same code runs under the gateway (BLE notifications, ``runtime.gateway``), the benchmark (packets
encoded in-process) and the tests. Nothing a device sends can make it raise: malformed notifications are
counted per device and reason (``garbage``), logged once per reason, and every received sample ends in a
window or in a counter (the ingest's accounting).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.firmware_bridge import DeviceDescription, PacketError, decode_packet
from biomoe_edge.firmware_bridge.packet import as_bytes
from biomoe_edge.firmware_bridge.profiles.registry import Profile, profile_spec
from biomoe_edge.firmware_bridge.reassembly import StreamReassembler
from biomoe_edge.runtime.ingest import Ingest, IngestConfig, IngestError, StreamKey
from biomoe_edge.runtime.records import EmbeddingRecord, PredictionRecord
from biomoe_edge.runtime.scheduler import BatchScheduler, Job, group_for_render
from biomoe_edge.identity import model_identity
from biomoe_edge.vocabulary import EMBEDDING_DIM, IMAGE_SHAPE, Modality, WindowSpec, model_rate_hz

log = logging.getLogger("biomoe_edge.runtime.pipeline")

#: Pipeline stages timed for the benchmark and the console (seconds per call, last STAGE_HISTORY calls).
STAGES = ("decode", "window", "transform", "inference", "sink", "end_to_end")
STAGE_HISTORY = 100_000


@dataclass(frozen=True)
class ModalitySettings:
    """How one modality's windows are cut and drawn: the window, and the representations each becomes."""

    window: WindowSpec = field(default_factory=WindowSpec)
    representations: tuple[str, ...] = ("spectrogram_psd", "scalogram")


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline reads, and nothing else: the engine's batching, each modality's windows and
    representations, who wears what, and the heads to serve. ``GatewayConfig.pipeline_settings()`` builds it from
    a configuration file; the demo, replay, simulated datasets and benchmarks build it directly."""

    #: Largest batch the engine runs (the engine's own maximum caps it).
    max_batch: int = 16
    #: A partly filled batch runs once its oldest job has waited this long (seconds).
    deadline_s: float = 0.05
    #: Bound of the scheduler's queue of (window, representation) jobs; the oldest are dropped beyond it.
    max_queue: int = 256
    #: Every modality's windows and representations, unless ``modalities`` names it.
    windows: ModalitySettings = field(default_factory=ModalitySettings)
    #: Modality name -> its own ``ModalitySettings``.
    modalities: dict = field(default_factory=dict)
    #: Device label -> the subject wearing it (``[[subjects]]``); a device in none is its own subject.
    subjects: dict = field(default_factory=dict)
    #: The ``[[heads]]`` entries to serve (``gateway_config.HeadConfig``: path, kind, subjects, tolerance_s,
    #: deadline_s), loaded when the pipeline is built.
    heads: tuple = ()

    def modality(self, modality) -> ModalitySettings:
        """Window and representations of ``modality`` (its own, else the defaults)."""
        return self.modalities.get(Modality.parse(modality).value, self.windows)

    def subject_of(self, device: str) -> str:
        return self.subjects.get(device, device)


@dataclass
class BatchResult:
    """What one batch gives (:meth:`Pipeline.run_batch`): the embedding records of the jobs the engine ran, in
    buffer order, and the predictions they completed (heads) or made (bridges, fallback bridges standing in)."""

    records: list[EmbeddingRecord]
    predictions: list[PredictionRecord]
    #: The jobs rendered and run, in buffer order (``records[i]`` is ``jobs[i]``'s); jobs whose windows could
    #: not be rendered are counted in ``Pipeline.jobs_failed`` and are not here.
    jobs: list[Job]


#: Why every sample of a Heart Rate Measurement device is dropped: bpm and RR intervals are none of the model's
#: modalities (docs/gateway.md, "Standard-profile wearables").
NOT_A_MODEL_MODALITY = "not_a_model_modality"

@dataclass
class _Route:
    """Where one stream's data goes: its decoder (``StreamReassembler`` for native packets, a profile stream
    for standard profiles: both have ``push``/``flush``/``stats``) and the ingest stream that windows it."""

    modality: str
    stream: object
    #: None: not a model modality; every delivered sample is counted dropped as ``drop_reason``.
    key: StreamKey | None
    drop_reason: str | None = None
    #: Maps a block's (n, channels) samples to the (n, c) the ingest stream takes (None: as they come).
    select: object = None
    #: True for device-timed streams (native, PMD): blocks are placed by sample count (samples_lost_before).
    #: False for arrival-timed ones (Heart Rate, PLX): placed by their gateway times, gaps read from them.
    placed_by_count: bool = True
    logged: set = field(default_factory=set)


class DeviceRefused(ValueError):
    """A device the pipeline will not take data from (``reason``); its notifications are counted, never windowed."""

    def __init__(self, device: str, reason: str):
        self.device, self.reason = device, reason
        super().__init__(f"{device}: refused: {reason}")


#: A known device (label) came back describing other streams: an impostor taking over its label, or new firmware.
DESCRIPTION_CHANGED = "description changed"


@dataclass
class _DeviceState:
    description: DeviceDescription | None
    profile: str = Profile.NATIVE.value
    #: stream_id (native) or the profile's stream key (PMD: measurement type) -> _Route, for the selected streams.
    streams: dict = field(default_factory=dict)
    #: reason -> count of notifications that carried no usable samples.
    garbage: collections.Counter = field(default_factory=collections.Counter)
    #: stream_id -> why the gateway cannot use a stream the device describes (its packets are counted so).
    unusable: dict = field(default_factory=dict)
    notifications: int = 0
    #: why its notifications are refused (``DESCRIPTION_CHANGED``), or None
    refused: str | None = None


#: Above this a described sample rate is not a wearable's biosignal (ECG needs at most a few hundred Hz);
#: refusing it keeps a bad description from sizing huge ring buffers.
MAX_SAMPLE_RATE_HZ = 4000.0
MAX_CHANNELS = 16


def unusable_stream_reason(stream) -> str | None:
    """Why the gateway cannot take ``stream`` (a ``StreamDescription``), or None when it can."""
    try:
        Modality.parse(stream.modality)
    except ValueError:
        return "unsupported_modality"
    rate = float(stream.sample_rate_hz)
    if not (math.isfinite(rate) and 0 < rate <= MAX_SAMPLE_RATE_HZ) or not 1 <= int(stream.channels) <= MAX_CHANNELS:
        return "implausible_stream"
    return None


class Pipeline:
    """Synchronous core of the gateway: call ``add_device``, then ``handle_notification`` for each BLE
    notification; ``next_batch`` gives the jobs that are due and ``run_batch`` turns them into embedding records
    and predictions.

    ``settings``: a :class:`PipelineSettings` (a ``GatewayConfig`` is taken too, through its
    ``pipeline_settings()``). ``engine`` is any ``biomoe_edge.runtime.engines.Engine``; it reads images from one
    preallocated (max_batch, 3, 224, 224) float32 buffer that ``run_batch`` renders into.
    """

    def __init__(self, settings: PipelineSettings, engine, *, clock=time.monotonic):
        if not isinstance(settings, PipelineSettings):
            settings = settings.pipeline_settings()
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.max_batch = int(min(settings.max_batch, getattr(engine, "max_batch", settings.max_batch)))
        self.ingest = Ingest()
        self.scheduler = BatchScheduler(self.max_batch, settings.deadline_s, max(settings.max_queue, self.max_batch))
        # The engine's input: allocated once, filled in place by transforms.render.
        self.xp, self.images = engine_input_buffer(engine, self.max_batch)
        self.devices: dict[str, _DeviceState] = {}
        self.timings = {stage: collections.deque(maxlen=STAGE_HISTORY) for stage in STAGES}
        self.latencies_s: collections.deque = collections.deque(maxlen=STAGE_HISTORY)
        self.embeddings = 0
        self.windows_withheld: collections.Counter = collections.Counter()
        self.jobs_failed: collections.Counter = collections.Counter()
        self._logged: set[str] = set()
        #: device -> notifications received before the device was described (no stream to put them in)
        self.devices_garbage_unknown: collections.Counter = collections.Counter()
        identity = dict(getattr(engine, "identity", {}) or {})
        self.model_identity = model_identity(identity)
        self.engine_identity = {k: identity.get(k) for k in ("kind", "device", "max_batch")}
        #: The configured task heads' fusion stage (``runtime.heads``), None without ``[[heads]]``. Built here so
        #: that a head trained on other weights than the engine's is refused before anything connects.
        self.fusion = None
        #: The configured bridges' stage (``runtime.heads.bridge``), None without bridge folders in ``[[heads]]``:
        #: each bridge runs on the engine's tap features of its input in ``run_batch``.
        self.bridges = None
        #: Bridges standing in for heads whose own input is missing (``[[heads]] fallback``; runtime.heads.fallback),
        #: None without any.
        self.fallbacks = None
        #: ``run_batch`` runs in the gateway's worker thread while the event loop tells the fusion stage of
        #: withheld windows, expires its deadlines and settles the fallbacks' held predictions: one lock keeps the
        #: fusion and fallback stages' slots consistent.
        self.fusion_lock = threading.Lock()
        if settings.heads:
            from biomoe_edge.runtime.heads.serving import bridge_stage_for, fallback_stage_for, fusion_stage_for

            self.fusion = fusion_stage_for(settings.heads, settings.subjects, self.model_identity, clock=clock)
            self.bridges = bridge_stage_for(settings.heads, settings.subjects, self.model_identity, clock=clock,
                                            engine=engine)
            self.fallbacks = fallback_stage_for(settings.heads, settings.subjects, self.model_identity, self.fusion,
                                                clock=clock, engine=engine)

    # -- devices and notifications ----------------------------------------------------------------------
    def log_once(self, key: str, message: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message + " (logged once; further ones are counted)", *args)

    def description_refusal(self, device: str, description: DeviceDescription) -> str | None:
        """Why ``description`` would be refused for ``device`` (a known device describing other streams), or None;
        the transport asks before it subscribes (``DeviceConnection(check_description=...)``)."""
        state = self.devices.get(device)
        if state is not None and state.description is not None and state.description != description:
            return DESCRIPTION_CHANGED
        return None

    def add_device(self, device: str, description: DeviceDescription, modalities=()) -> None:
        """Register a device's streams (from its description characteristic). Streams whose modality is
        not in ``modalities`` (empty: all) are ignored. Calling it again after a reconnect keeps the
        existing reassemblers and rings, so sequence gaps across the outage are counted as lost.

        A known device that comes back with another description is refused, not merged (``DeviceRefused``): its
        notifications are counted as garbage (``description changed``), never windowed, until it describes
        itself as before. (A real firmware change needs a gateway restart.)"""
        state = self.devices.get(device)
        if state is not None:
            if state.description != description:
                state.refused = DESCRIPTION_CHANGED
                self.log_once(f"{device}:description", "%s: its description changed after a reconnect: refused (an "
                              "impostor under its name, or new firmware: restart the gateway to take it); its "
                              "notifications are counted, not windowed", device)
                raise DeviceRefused(device, DESCRIPTION_CHANGED)
            state.refused = None
            return
        state = _DeviceState(description)
        for stream in description.streams:
            # Checked before anything is added: one odd stream must not cost the device its other streams.
            reason = unusable_stream_reason(stream)
            if reason is not None:
                state.unusable[stream.stream_id] = reason
                self.log_once(f"{device}:{reason}", "%s: stream %d (%s, %s Hz, %s channels) is not usable (%s); its "
                              "packets are counted, not windowed", device, stream.stream_id, stream.modality,
                              stream.sample_rate_hz, stream.channels, reason)
                continue
            modality = Modality.parse(stream.modality).value
            if modalities and modality not in modalities:
                continue
            key = self._add_ingest_stream(device, modality, float(stream.sample_rate_hz), int(stream.channels))
            state.streams[stream.stream_id] = _Route(modality, StreamReassembler(stream), key)
        self.devices[device] = state
        self._announce_streams(device)

    def _add_ingest_stream(self, device: str, modality: str, sample_rate_hz: float, channels: int) -> StreamKey:
        spec = self.settings.modality(modality)
        return self.ingest.add_stream(
            StreamKey(device, modality), sample_rate_hz, channels=channels,
            config=IngestConfig(window_length_s=spec.window.length_s, hop_s=spec.window.hop_s),
            # The devices of one [[subjects]] entry share a window grid: their windows end at the same times.
            grid=self.settings.subject_of(device),
        )

    def add_profile_device(self, device: str, profile: str, modalities=()) -> None:
        """Register a standard-profile device (``firmware_bridge.profiles.registry``): these describe themselves by
        their characteristic, so the streams come from the profile and ``modalities`` (empty: the profile's
        default). Again after a reconnect: nothing changes (the profile streams keep their timelines and count
        the outage)."""
        if device in self.devices:
            return
        spec = profile_spec(profile)
        if spec.describes_itself:
            raise ValueError(f"{device}: {profile!r} is not a standard profile; devices that describe their own streams "
                             "are added with add_device")
        try:
            modalities = spec.modalities(tuple(Modality.parse(m).value for m in modalities))
        except ValueError as exc:
            raise ValueError(f"{device}: {exc}") from None
        state = _DeviceState(None, spec.name)
        for route in spec.open_streams(modalities):
            stream = route.stream
            if route.modality is None:
                state.streams[route.key] = _Route(stream.description.modality, stream, None,
                                                  drop_reason=NOT_A_MODEL_MODALITY, placed_by_count=stream.device_timed)
                log.warning("%s: a %s device delivers %s, none of the model's modalities: its samples are counted as "
                            "dropped (%s), not windowed", device, spec.name, stream.description.modality,
                            NOT_A_MODEL_MODALITY)
                continue
            channels = 1 if route.select is not None else stream.description.channels
            key = self._add_ingest_stream(device, route.modality, stream.description.sample_rate_hz, channels)
            state.streams[route.key] = _Route(route.modality, stream, key, select=route.select,
                                              placed_by_count=stream.device_timed)
        self.devices[device] = state
        self._announce_streams(device)

    def handle_notification(self, device: str, payload, arrival_time_s: float) -> None:
        """One BLE notification's bytes, received at ``arrival_time_s`` (gateway clock). Never raises."""
        t0 = time.perf_counter()
        state = self.devices.get(device)
        if state is None:
            self.log_once(f"{device}:undescribed", "%s: notification before its description was read; dropped", device)
            self.devices_garbage_unknown[device] += 1
            return
        state.notifications += 1
        if state.refused is not None:
            state.garbage[state.refused] += 1
            return
        found = self._route_native(device, state, payload) if state.description is not None else \
            self._route_profile(device, state, payload)
        if found is None:
            return
        route, data = found
        try:
            blocks = route.stream.push(data, arrival_time_s)
        except Exception as exc:  # noqa: BLE001 - a device must never take the gateway down
            reason = f"reassembly_{type(exc).__name__}"
            state.garbage[reason] += 1
            self.log_once(f"{device}:{reason}", "%s/%s: %s", device, route.modality, exc)
            return
        self._log_stream_faults(device, route)
        t1 = time.perf_counter()
        self._push_blocks(route, blocks, arrival_time_s)
        self.timings["decode"].append(t1 - t0)
        self.timings["window"].append(time.perf_counter() - t1)

    def _garbage(self, device: str, state: _DeviceState, reason: str, message: str, *args) -> None:
        state.garbage[reason] += 1
        self.log_once(f"{device}:{reason}", message, *args)

    def _route_native(self, device: str, state: _DeviceState, payload):
        """(route, packet) for a native notification, or None when it is counted as garbage."""
        try:
            packet = decode_packet(payload)
        except PacketError as exc:
            reason = type(exc).__name__
            self._garbage(device, state, reason, "%s: garbage notification (%s: %s)", device, reason, exc)
            return None
        route = state.streams.get(packet.stream_id)
        if route is None:
            known = {s.stream_id for s in state.description.streams}
            reason = state.unusable.get(packet.stream_id) or (
                "unselected_stream" if packet.stream_id in known else "unknown_stream")
            state.garbage[reason] += 1
            if reason == "unknown_stream":
                self.log_once(f"{device}:{reason}", "%s: packet for stream %d, which its description does not list",
                              device, packet.stream_id)
            return None
        return route, packet

    def _route_profile(self, device: str, state: _DeviceState, payload):
        """(route, bytes) for a standard-profile notification, or None when it is counted as garbage. The profile's
        ``stream_key`` names the stream (PMD: the measurement type, byte 0; one-stream profiles: always their one
        stream, which parses, and counts as rejected, whatever comes)."""
        spec = profile_spec(state.profile)
        try:
            data = as_bytes(payload, "notification")
            key = spec.stream_key(data)
        except PacketError as exc:
            reason = type(exc).__name__
            self._garbage(device, state, reason, "%s: garbage notification (%s: %s)", device, reason, exc)
            return None
        route = state.streams.get(key)
        if route is None:
            self._garbage(device, state, spec.unrouted_reason, "%s: %s notification of stream %d, which the gateway "
                          "did not start (not a configured modality)", device, spec.name, key)
            return None
        return route, data

    def _log_stream_faults(self, device: str, route: _Route) -> None:
        """Log the first rejected packet, restart and clock jump of a stream (its stats count them all)."""
        stats = route.stream.stats
        for counter, what in (("packets_rejected", "rejected notification(s)"), ("restarts", "device clock restart(s)"),
                              ("clock_jumps", "device clock jump(s)")):
            if getattr(stats, counter) and counter not in route.logged:
                route.logged.add(counter)
                detail = f" {stats.rejected_reasons}" if counter == "packets_rejected" else ""
                log.warning("%s/%s: %s%s (logged once; counted in the stream report)", device, route.modality, what, detail)

    def _push_blocks(self, route: _Route, blocks, arrival_time_s: float) -> None:
        key = route.key
        if key is None:  # not a model modality: its samples stay counted by the stream (as dropped in the report)
            return
        if self._observers:
            self._observe_counters(route, arrival_time_s)
        for block in blocks:
            samples = block.samples if route.select is None else route.select(block.samples)
            # Device-timed streams are placed by sample count (samples_lost_before), not by the fitted clock
            # alone, so jitter in the device-to-gateway fit does not turn on-time samples into "late" ones.
            # Arrival-timed ones have nothing but their gateway times: gaps and late data are read from them.
            lost_before = block.samples_lost_before if route.placed_by_count else None
            if self._observers:
                self._observe_block(route, block, samples, arrival_time_s, lost_before)
            try:
                self.ingest.push(key, samples, block.gateway_times_s, arrival_time_s=arrival_time_s,
                                 lost_before=lost_before)
            except IngestError as exc:  # counted by the ingest as "malformed"
                self.log_once(f"{key}:ingest:{type(exc).__name__}", "%s: %s", key, exc)
        self._submit_ready_windows()

    def _submit_ready_windows(self) -> int:
        now = self.clock()
        submitted = 0
        for window in self.ingest.pop_windows():
            if window.withheld:
                self.windows_withheld[(window.device, window.modality)] += 1
                if self.fusion is not None:  # heads waiting for this window time learn why it will not come
                    with self.fusion_lock:
                        self.fusion.window_withheld(window.device, window.modality, float(window.end_s))
                continue
            submitted += self.scheduler.submit(window, self.settings.modality(window.modality).representations, now)
        return submitted

    def flush_device(self, device: str) -> None:
        """Deliver what the reassemblers of ``device`` hold (after a disconnect or at shutdown)."""
        state = self.devices.get(device)
        if state is None:
            return
        for route in state.streams.values():
            self._push_blocks(route, route.stream.flush(), self.clock())

    # -- batches -----------------------------------------------------------------------------------------
    def next_batch(self, *, flush: bool = False) -> list[Job]:
        now = self.clock()
        return self.scheduler.flush(now) if flush else self.scheduler.next_batch(now)

    def run_batch(self, jobs: list[Job]) -> BatchResult:
        """Render ``jobs``, run the engine, make their embedding records, and the predictions of the heads (the
        window times these records complete), of the bridges (on the engine's taps of these windows) and of the
        fallback bridges whose head missed its deadline (``FallbackStage.settle``: one path per window time). Call
        from a worker thread; an engine failure raises (the batch is lost; the caller counts it). Nothing of a batch
        is kept between calls: the fallback stage holds only the stand-ins waiting for their head's deadline."""
        ordered, embeddings, taps = self._compute(jobs)
        records = self._make_records(ordered, embeddings)
        bridge_predictions = []
        if self.bridges is not None and ordered:  # after the engine: a failed batch has no taps
            bridge_predictions = self.bridges.run(ordered, taps, self.model_identity)
        # The stand-ins' predictions of these windows (graphs run outside the lock), held until the heads had
        # their chance.
        stand_ins = self.fallbacks.predict(ordered, taps, self.model_identity) \
            if self.fallbacks is not None and ordered else []
        predictions = []
        if self.fusion is not None or self.fallbacks is not None:
            with self.fusion_lock:
                if self.fusion is not None and records:
                    predictions = self.fusion.add(records)
                if self.fallbacks is not None:
                    self.fallbacks.hold(stand_ins)
                    # one path per window time: the head's, or a bridge standing in for it
                    predictions = self.fallbacks.settle(predictions)
        return BatchResult(records, predictions + bridge_predictions, ordered)

    def _compute(self, jobs: list[Job]) -> tuple[list[Job], np.ndarray, dict]:
        """Render ``jobs`` into the image buffer and run the engine, with the taps the bridges read.

        Returns the jobs in buffer order, their (n, 192) embeddings and the engine's taps of this same run (tap
        name -> (n, ...) array; empty without bridges). A group whose windows cannot be rendered is counted in
        ``jobs_failed`` by reason and left out."""
        from biomoe_edge.runtime.transforms.preprocess import preprocess
        from biomoe_edge.runtime.transforms.render import render

        t0 = time.perf_counter()
        ordered: list[Job] = []
        for (modality, fs), by_representation in group_for_render(jobs).items():
            # Each window once, however many of its representations are in the batch.
            windows = list({id(job.window): job.window
                            for group in by_representation.values() for job in group}.values())
            row = {id(window): i for i, window in enumerate(windows)}
            try:
                # The first channel of each window (the wearables' modalities are single-channel).
                signals = np.stack([window.samples[0] for window in windows])
                if self.xp is not np:  # a CUDA engine: preprocess and render on the GPU, into its input
                    signals = self.xp.asarray(signals)
                x, model_fs = preprocess(signals, fs, modality)
            except Exception as exc:  # noqa: BLE001 - one bad window must not stop the batch
                self._render_failed(modality, "preprocessed", by_representation.values(), exc)
                continue
            for representation, group in by_representation.items():
                n = len(group)
                rows = [row[id(job.window)] for job in group]
                try:
                    render(x if rows == list(range(len(windows))) else x[rows], model_fs, (representation,),
                           modality=modality, out=self.images[len(ordered):len(ordered) + n])
                except Exception as exc:  # noqa: BLE001
                    self._render_failed(modality, f"rendered as {representation}", (group,), exc)
                    continue
                ordered.extend(group)
        t1 = time.perf_counter()
        taps: dict = {}
        wanted = tuple(dict.fromkeys((*(self.bridges.taps if self.bridges is not None else ()),
                                      *(self.fallbacks.taps if self.fallbacks is not None else ()))))
        if not ordered:
            embeddings = np.zeros((0, EMBEDDING_DIM), np.float32)
        elif wanted:  # the bridges read the taps of this same engine run
            embeddings, taps = self.engine.infer_tapped(self.images[:len(ordered)], wanted)
        else:
            embeddings = self.engine.infer(self.images[:len(ordered)])
        t2 = time.perf_counter()
        self.timings["transform"].append(t1 - t0)
        self.timings["inference"].append(t2 - t1)
        return ordered, embeddings, taps

    def warmup(self, modalities=tuple(Modality)) -> None:
        """Pay the first batch's one-time costs now, on a synthetic window per modality: on CUDA, compiling the
        render kernels (NVRTC, seconds on a first start) and planning the FFTs; then the engine's first runs at
        batch 1 and ``max_batch`` (allocations, CUDA graph capture). Nothing is counted or emitted."""
        from biomoe_edge.runtime.transforms.preprocess import preprocess
        from biomoe_edge.runtime.transforms.render import render

        rng = np.random.default_rng(0)
        for modality in dict.fromkeys(Modality.parse(m).value for m in modalities):
            spec, fs = self.settings.modality(modality), model_rate_hz(modality)
            t = np.arange(int(round(spec.window.length_s * fs))) / fs
            signal = self.xp.asarray((np.sin(2 * np.pi * 0.25 * t) + 0.1 * rng.standard_normal(t.size))[None])
            x, model_fs = preprocess(signal, fs, modality)
            for representation in spec.representations:
                render(x, model_fs, (representation,), modality=modality, out=self.images[:1])
        self.engine.warmup(sorted({1, self.max_batch}))

    def _render_failed(self, modality: str, what: str, groups, exc: Exception) -> None:
        reason = type(exc).__name__
        self.jobs_failed[reason] += sum(len(group) for group in groups)
        self.log_once(f"render:{reason}", "%s windows could not be %s: %s", modality, what, exc)

    def _make_records(self, jobs: list[Job], embeddings: np.ndarray) -> list[EmbeddingRecord]:
        now = self.clock()
        records = []
        for job, embedding in zip(jobs, embeddings):
            window = job.window
            record = EmbeddingRecord(
                device=window.device, modality=window.modality, representation=job.representation,
                window_start_s=float(window.start_s), window_end_s=float(window.end_s), embedding=embedding,
                quality=window.quality, model=self.model_identity, engine=self.engine_identity,
                arrival_time_s=float(window.arrival_time_s), emitted_time_s=now,
            )
            if math.isfinite(record.latency_s):
                self.latencies_s.append(record.latency_s)
                self.timings["end_to_end"].append(record.latency_s)
            records.append(record)
        self.embeddings += len(records)
        return records

    # -- predictions (task heads, runtime.heads) ------------------------------------------------------------
    def expire_predictions(self) -> int:
        """Count and drop window times that waited past their head's deadline; how many."""
        if self.fusion is None:
            return 0
        with self.fusion_lock:
            return self.fusion.expire()

    def settle_fallbacks(self) -> list[PredictionRecord]:
        """Predictions of bridges standing in for heads whose input missed its deadline since the last batch (the
        gateway's loop asks between batches; ``run_batch`` settles them too, with the batch's head predictions)."""
        if self.fallbacks is None:
            return []
        with self.fusion_lock:
            return self.fallbacks.settle([])

    def seconds_until_prediction_deadline(self) -> float | None:
        if self.fusion is None and self.fallbacks is None:
            return None
        with self.fusion_lock:
            deadlines = [d for d in (self.fusion.seconds_until_deadline() if self.fusion is not None else None,
                                     self.fallbacks.seconds_until_deadline() if self.fallbacks is not None else None)
                         if d is not None]
        return min(deadlines) if deadlines else None

    def close_predictions(self) -> list[PredictionRecord]:
        """At shutdown: count the window times still waiting for inputs as dropped (``closed``), never guessed;
        return the fallback bridges' stand-ins already past their head's deadline, and count the rest still held
        (``pending_at_close``)."""
        due: list[PredictionRecord] = []
        with self.fusion_lock:
            if self.fusion is not None:
                self.fusion.close()
            if self.fallbacks is not None:
                due = self.fallbacks.settle([])
                self.fallbacks.close()
        return due

    def heads_stats(self) -> list[dict]:
        """One entry per served head, bridge and head with fallbacks (``FusionStage.stats``, ``BridgeStage.stats``,
        ``FallbackStage.stats``)."""
        return ((self.fusion.stats() if self.fusion is not None else [])
                + (self.bridges.stats() if self.bridges is not None else [])
                + (self.fallbacks.stats() if self.fallbacks is not None else []))

    def served_classes(self) -> tuple[str, ...] | None:
        """The classes of the first served head (else bridge), in its order; None when none is served."""
        served = (self.fusion.heads if self.fusion is not None else []) + \
            (self.bridges.bridges if self.bridges is not None else [])
        return tuple(served[0].classes) if served else None

    # -- accounting ---------------------------------------------------------------------------------------
    def stream_report(self) -> list[dict]:
        """One entry per device and modality, from the packets that arrived over BLE to the windows.

        ``samples_received`` counts the samples of every decoded packet of the stream. The reassembler (or
        profile stream) holds some (reordering: ``samples_pending``) and drops duplicates, late and rejected
        packets (``samples_dropped`` ``duplicate``/``late_packet``/``rejected_packet``); the rest go to the
        ingest, whose own accounting (windowed, pending, dropped by reason) completes the identity
        ``samples_received == samples_windowed + samples_pending + sum(samples_dropped.values())``. A stream of
        no model modality (Heart Rate) has no ingest stream: its delivered samples are dropped as
        ``not_a_model_modality``."""
        entries = []
        for device, state in self.devices.items():
            for route in state.streams.values():
                stats = route.stream.stats
                if route.key is not None:
                    account = self.ingest.account(route.key)
                    dropped = dict(account.samples_dropped)
                    windowed, pending = account.samples_windowed, account.samples_pending
                    windows_dropped = dict(account.windows_dropped)
                else:
                    dropped = {route.drop_reason: stats.samples_delivered} if stats.samples_delivered else {}
                    windowed, pending, windows_dropped = 0, 0, {}
                for reason, count in (("duplicate", stats.samples_duplicated), ("late_packet", stats.samples_late),
                                      ("rejected_packet", stats.samples_rejected)):
                    if count:
                        dropped[reason] = dropped.get(reason, 0) + count
                entries.append({
                    "device": device,
                    "modality": route.modality,
                    "packets_received": stats.packets_received,
                    # Late packets were first counted lost (a gap), then arrived. Standard profiles carry no
                    # sequence number: their losses are estimated from device time (PMD) or arrival gaps.
                    "packets_lost": max(0, stats.packets_lost - stats.packets_late),
                    "samples_received": stats.samples_received,
                    "samples_windowed": windowed,
                    "samples_pending": pending + stats.samples_pending,
                    "samples_dropped": dropped,
                    # diagnostics beyond the demo report's fields
                    "packets_duplicated": stats.packets_duplicated,
                    "packets_late": stats.packets_late,
                    "packets_rejected": stats.packets_rejected,
                    "restarts": stats.restarts,
                    "clock_jumps": stats.clock_jumps,
                    "samples_lost": stats.samples_lost,
                    "windows_dropped": windows_dropped,
                    "profile": state.profile,
                    "rejected_reasons": dict(stats.rejected_reasons),
                })
        return entries

    def garbage_report(self) -> dict[str, dict[str, int]]:
        report = {device: dict(state.garbage) for device, state in self.devices.items() if state.garbage}
        for device, count in self.devices_garbage_unknown.items():
            report.setdefault(device, {})["undescribed_device"] = count
        return report

    # -- observers and replay (runtime.recording) -------------------------------------------------------------
    #: Objects watching the data path (``add_observer``); a tuple, so the common case (none) costs one test.
    _observers: tuple = ()
    #: StreamKey -> (restarts, clock_jumps) of its decoder last told to the observers.
    _observed_counters: dict = None

    def add_observer(self, observer) -> None:
        """Let ``observer`` watch what the ingest is given, in the order it happens. Optional methods:

        ``on_stream(device, modality, description)``: a stream the ingest windows (rate, channels, units,
        profile...); existing streams are announced at once. ``on_block(device, modality, samples,
        gateway_times_s, arrival_time_s, lost_before)``: exactly the arguments of one ``Ingest.push``.
        ``on_event(device, modality, kind, time_s, detail)``: accounting events of the decoders: ``gap``
        (``samples_lost`` before a block), ``restart`` and ``clock_jump`` (device clock).

        Replaying the blocks in order through :meth:`replay_block` reproduces the windows. An observer's
        exception is counted (``observer_errors``) and logged once, never raised into the data path."""
        if "observer_errors" not in self.__dict__:
            self.observer_errors: collections.Counter = collections.Counter()
        self._observers = self._observers + (observer,)
        for device in self.devices:
            self._announce_streams(device, observers=(observer,))

    def _notify(self, observers, method: str, *args) -> None:
        for observer in observers:
            call = getattr(observer, method, None)
            if call is None:
                continue
            try:
                call(*args)
            except Exception as exc:  # noqa: BLE001 - watching must never break the data path
                self.observer_errors[f"{method}:{type(exc).__name__}"] += 1
                self.log_once(f"observer:{method}:{type(exc).__name__}", "observer %s.%s failed: %s",
                              type(observer).__name__, method, exc)

    def _announce_streams(self, device: str, observers=None) -> None:
        observers = self._observers if observers is None else observers
        state = self.devices.get(device)
        if not observers or state is None:
            return
        for route in state.streams.values():
            if route.key is None:
                continue
            described = getattr(route.stream, "description", None) or route.stream.stream
            channels = int(described.channels)
            units = described.units
            if route.select is not None:  # the channels the ingest gets, after the profile's selection
                channels = int(route.select(np.zeros((1, channels))).shape[1])
                parts = units.split(", ")
                units = ", ".join(parts[:channels]) if len(parts) == described.channels else units
            description = {
                "sample_rate_hz": float(described.sample_rate_hz), "channels": channels, "units": units,
                "profile": state.profile, "stream_id": int(described.stream_id), "placed_by_count": route.placed_by_count,
                "device_channels": int(described.channels),
                "firmware_version": state.description.firmware_version if state.description is not None else None,
            }
            self._notify(observers, "on_stream", route.key.device, route.key.modality, description)

    def _observe_counters(self, route: _Route, arrival_time_s: float) -> None:
        """Tell observers of device clock restarts and jumps the decoder counted since the last look."""
        if self._observed_counters is None:
            self._observed_counters = {}
        stats = route.stream.stats
        now = (stats.restarts, stats.clock_jumps)
        before = self._observed_counters.get(route.key, (0, 0))
        if now != before:
            self._observed_counters[route.key] = now
            for kind, new, old in zip(("restart", "clock_jump"), now, before):
                if new > old:
                    self._notify(self._observers, "on_event", route.key.device, route.key.modality, kind,
                                 float(arrival_time_s), {"count": new - old})

    def _observe_block(self, route: _Route, block, samples, arrival_time_s: float, lost_before) -> None:
        key = route.key
        if block.samples_lost_before:
            time_s = float(block.gateway_times_s[0]) if len(block.gateway_times_s) else float(arrival_time_s)
            self._notify(self._observers, "on_event", key.device, key.modality, "gap", time_s,
                         {"samples_lost": int(block.samples_lost_before)})
        self._notify(self._observers, "on_block", key.device, key.modality, samples, block.gateway_times_s,
                     float(arrival_time_s), lost_before)

    def add_replay_stream(self, device: str, modality: str, sample_rate_hz: float, channels: int) -> StreamKey:
        """Register a recorded stream for :meth:`replay_block` (windows and representations from the config)."""
        return self._add_ingest_stream(device, Modality.parse(modality).value, float(sample_rate_hz), int(channels))

    def replay_block(self, device: str, modality: str, samples, gateway_times_s, *, arrival_time_s: float,
                     lost_before=None) -> None:
        """One recorded ``Ingest.push`` (``on_block``'s arguments), then what ``_push_blocks`` does next: ready
        windows to the scheduler. Blocks replayed in their recorded order give the live windows."""
        key = StreamKey(device, modality)
        try:
            self.ingest.push(key, samples, gateway_times_s, arrival_time_s=arrival_time_s, lost_before=lost_before)
        except IngestError as exc:  # counted by the ingest as "malformed", as live
            self.log_once(f"{key}:ingest:{type(exc).__name__}", "%s: %s", key, exc)
        self._submit_ready_windows()

def engine_input_buffer(engine, max_batch: int):
    """``(xp, buffer)``: the (max_batch, 3, 224, 224) input the engine reads, in the engine's input dtype.

    CuPy device memory when the engine runs on CUDA (its identity's ``device``) and CuPy imports: the
    transforms then render on the GPU straight into it; NumPy otherwise."""
    dtype = np.dtype(getattr(engine, "input_dtype", np.float32))
    if dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
        dtype = np.dtype(np.float32)
    shape = (max_batch, *IMAGE_SHAPE)
    device = str((getattr(engine, "identity", None) or {}).get("device") or "cpu")
    if device.startswith("cuda"):
        try:
            import cupy
        except ImportError:
            log.warning("engine on %s but CuPy is missing: rendering on the CPU", device)
        else:
            return cupy, cupy.zeros(shape, dtype=dtype)
    return np, np.zeros(shape, dtype=dtype)
