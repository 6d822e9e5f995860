"""The gateway: BLE wearables in, embedding records out.

``Gateway(config)`` is an async context manager that connects to the allow-listed wearables and yields
:class:`~biomoe_edge.runtime.records.EmbeddingRecord` objects::

    async with Gateway(load_config("gateway.toml")) as gateway:
        gateway.on_embedding(lambda record: print(record.device, record.modality, record.embedding[:4]))
        async for record in gateway.embeddings():
            ...

Its data path, :class:`Pipeline`, has no I/O (no asyncio, no Bluetooth): notifications in, records out.

    notification bytes --decode_packet--> Packet --StreamReassembler--> SampleBlock (gateway time)
      --Ingest--> Window --BatchScheduler--> jobs --preprocess + render--> NCHW buffer --engine.infer--> records

So the same code runs under the gateway (BLE notifications), the benchmark
(packets encoded in-process) and the tests. Nothing a device sends can make it raise: malformed
notifications are counted per device and reason (``garbage``), logged once per reason, and every received
sample ends in a window or in a counter (the ingest's accounting).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.firmware_bridge import DeviceDescription, PacketError, decode_packet
from biomoe_edge.firmware_bridge.reassembly import StreamReassembler
from biomoe_edge.runtime.gateway_config import GatewayConfig
from biomoe_edge.runtime.ingest import Ingest, IngestConfig, IngestError, StreamKey
from biomoe_edge.runtime.records import EmbeddingRecord
from biomoe_edge.runtime.scheduler import BatchScheduler, Job, group_for_render
from biomoe_edge.vocabulary import IMAGE_SIZE, Modality

log = logging.getLogger("biomoe_edge.runtime.gateway")

#: Pipeline stages timed for the benchmark and the console (seconds per call, last STAGE_HISTORY calls).
STAGES = ("decode", "window", "transform", "inference", "sink", "end_to_end")
STAGE_HISTORY = 100_000


@dataclass
class _DeviceState:
    description: DeviceDescription
    #: stream_id -> (StreamKey, reassembler) for the streams the configuration selects.
    streams: dict = field(default_factory=dict)
    #: reason -> count of notifications that carried no usable samples.
    garbage: collections.Counter = field(default_factory=collections.Counter)
    #: stream_id -> why the gateway cannot use a stream the device describes (its packets are counted so).
    unusable: dict = field(default_factory=dict)
    notifications: int = 0


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
    notification; ``next_batch``/``compute``/``make_records`` turn ready windows into embedding records.

    ``engine`` is any ``biomoe_edge.runtime.engines.Engine``; it reads images from one preallocated
    (max_batch, 3, 224, 224) float32 buffer that ``compute`` renders into.
    """

    def __init__(self, config: GatewayConfig, engine, *, clock=time.monotonic):
        self.config = config
        self.engine = engine
        self.clock = clock
        self.max_batch = int(min(config.engine.max_batch, getattr(engine, "max_batch", config.engine.max_batch)))
        self.ingest = Ingest()
        self.scheduler = BatchScheduler(self.max_batch, config.engine.deadline_s,
                                        max(config.engine.max_queue, self.max_batch))
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
        self.model_identity = {"sha256": identity.get("model_sha256"), "precision": identity.get("precision"),
                               "source": identity.get("source")}
        self.engine_identity = {k: identity.get(k) for k in ("kind", "device", "max_batch")}

    # -- devices and notifications ----------------------------------------------------------------------
    def log_once(self, key: str, message: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message + " (logged once; further ones are counted)", *args)

    def add_device(self, device: str, description: DeviceDescription, modalities=()) -> None:
        """Register a device's streams (from its description characteristic). Streams whose modality is
        not in ``modalities`` (empty: all) are ignored. Calling it again after a reconnect keeps the
        existing reassemblers and rings, so sequence gaps across the outage are counted as lost."""
        state = self.devices.get(device)
        if state is not None:
            if state.description != description:
                self.log_once(f"{device}:description", "%s: its description changed after a reconnect; keeping the first one", device)
                state.garbage["description_changed"] += 1
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
            spec = self.config.modality(modality)
            key = self.ingest.add_stream(
                StreamKey(device, modality), float(stream.sample_rate_hz), channels=int(stream.channels),
                config=IngestConfig(window_length_s=spec.window.length_s, hop_s=spec.window.hop_s),
            )
            state.streams[stream.stream_id] = (key, StreamReassembler(stream))
        self.devices[device] = state

    def handle_notification(self, device: str, payload, arrival_time_s: float) -> None:
        """One BLE notification's bytes, received at ``arrival_time_s`` (gateway clock). Never raises."""
        t0 = time.perf_counter()
        state = self.devices.get(device)
        if state is None:
            self.log_once(f"{device}:undescribed", "%s: notification before its description was read; dropped", device)
            self.devices_garbage_unknown[device] += 1
            return
        state.notifications += 1
        try:
            packet = decode_packet(payload)
        except PacketError as exc:
            reason = type(exc).__name__
            state.garbage[reason] += 1
            self.log_once(f"{device}:{reason}", "%s: garbage notification (%s: %s)", device, reason, exc)
            return
        entry = state.streams.get(packet.stream_id)
        if entry is None:
            known = {s.stream_id for s in state.description.streams}
            reason = state.unusable.get(packet.stream_id) or (
                "unselected_stream" if packet.stream_id in known else "unknown_stream")
            state.garbage[reason] += 1
            if reason == "unknown_stream":
                self.log_once(f"{device}:{reason}", "%s: packet for stream %d, which its description does not list",
                              device, packet.stream_id)
            return
        key, reassembler = entry
        try:
            blocks = reassembler.push(packet, arrival_time_s)
        except Exception as exc:  # noqa: BLE001 - a device must never take the gateway down
            reason = f"reassembly_{type(exc).__name__}"
            state.garbage[reason] += 1
            self.log_once(f"{device}:{reason}", "%s: %s", key, exc)
            return
        t1 = time.perf_counter()
        self._push_blocks(key, blocks, arrival_time_s)
        self.timings["decode"].append(t1 - t0)
        self.timings["window"].append(time.perf_counter() - t1)

    def _push_blocks(self, key: StreamKey, blocks, arrival_time_s: float) -> None:
        for block in blocks:
            try:
                # Placed by sample count (samples_lost_before), not by the fitted clock alone, so jitter in the
                # device-to-gateway fit does not turn on-time samples into "late" ones.
                self.ingest.push_block(key, block, arrival_time_s=arrival_time_s)
            except IngestError as exc:  # counted by the ingest as "malformed"
                self.log_once(f"{key}:ingest:{type(exc).__name__}", "%s: %s", key, exc)
        self._submit_ready_windows()

    def _submit_ready_windows(self) -> int:
        now = self.clock()
        submitted = 0
        for window in self.ingest.pop_windows():
            if window.withheld:
                self.windows_withheld[(window.device, window.modality)] += 1
                continue
            submitted += self.scheduler.submit(window, self.config.modality(window.modality).representations, now)
        return submitted

    def flush_device(self, device: str) -> None:
        """Deliver what the reassemblers of ``device`` hold (after a disconnect or at shutdown)."""
        state = self.devices.get(device)
        if state is None:
            return
        for key, reassembler in state.streams.values():
            self._push_blocks(key, reassembler.flush(), self.clock())

    # -- batches -----------------------------------------------------------------------------------------
    def next_batch(self, *, flush: bool = False) -> list[Job]:
        now = self.clock()
        return self.scheduler.flush(now) if flush else self.scheduler.next_batch(now)

    def compute(self, jobs: list[Job]) -> tuple[list[Job], np.ndarray]:
        """Render ``jobs`` into the image buffer and run the engine (call from a worker thread).

        Returns the jobs in buffer order and their (n, 192) embeddings. A group whose windows cannot be
        rendered is counted in ``jobs_failed`` by reason and left out."""
        from biomoe_edge.runtime.transforms.preprocess import preprocess
        from biomoe_edge.runtime.transforms.render import render

        t0 = time.perf_counter()
        ordered: list[Job] = []
        for (modality, fs, representation), group in group_for_render(jobs).items():
            n = len(group)
            try:
                # The first channel of each window (the wearables' modalities are single-channel).
                signals = np.stack([job.window.samples[0] for job in group])
                if self.xp is not np:  # a CUDA engine: preprocess and render on the GPU, into its input
                    signals = self.xp.asarray(signals)
                x, model_fs = preprocess(signals, fs, modality)
                render(x, model_fs, (representation,), modality=modality,
                       out=self.images[len(ordered):len(ordered) + n])
            except Exception as exc:  # noqa: BLE001 - one bad window must not stop the batch
                reason = type(exc).__name__
                self.jobs_failed[reason] += n
                self.log_once(f"render:{reason}", "%s windows could not be rendered as %s: %s", modality, representation, exc)
                continue
            ordered.extend(group)
        t1 = time.perf_counter()
        embeddings = self.engine.infer(self.images[:len(ordered)]) if ordered else np.zeros((0, 192), np.float32)
        t2 = time.perf_counter()
        self.timings["transform"].append(t1 - t0)
        self.timings["inference"].append(t2 - t1)
        return ordered, embeddings

    def make_records(self, jobs: list[Job], embeddings: np.ndarray) -> list[EmbeddingRecord]:
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

    # -- accounting ---------------------------------------------------------------------------------------
    def stream_report(self) -> list[dict]:
        """One entry per device and modality, from the packets that arrived over BLE to the windows.

        ``samples_received`` counts the samples of every decoded packet of the stream. The reassembler
        holds some (reordering: ``samples_pending``) and drops duplicates, late and rejected packets
        (``samples_dropped`` ``duplicate``/``late_packet``/``rejected_packet``); the rest go to the ingest,
        whose own accounting (windowed, pending, dropped by reason) completes the identity
        ``samples_received == samples_windowed + samples_pending + sum(samples_dropped.values())``."""
        entries = []
        for device, state in self.devices.items():
            for key, reassembler in state.streams.values():
                stats = reassembler.stats
                account = self.ingest.account(key)
                dropped = dict(account.samples_dropped)
                for reason, count in (("duplicate", stats.samples_duplicated), ("late_packet", stats.samples_late),
                                      ("rejected_packet", stats.samples_rejected)):
                    if count:
                        dropped[reason] = dropped.get(reason, 0) + count
                entries.append({
                    "device": device,
                    "modality": key.modality,
                    "packets_received": stats.packets_received,
                    "packets_lost": stats.packets_lost - stats.packets_late,
                    "samples_received": stats.samples_received,
                    "samples_windowed": account.samples_windowed,
                    "samples_pending": account.samples_pending + stats.samples_pending,
                    "samples_dropped": dropped,
                    # diagnostics beyond the demo report's fields
                    "packets_duplicated": stats.packets_duplicated,
                    "packets_late": stats.packets_late,
                    "packets_rejected": stats.packets_rejected,
                    "restarts": stats.restarts,
                    "clock_jumps": stats.clock_jumps,
                    "samples_lost": stats.samples_lost,
                    "windows_dropped": dict(account.windows_dropped),
                })
        return entries

    def garbage_report(self) -> dict[str, dict[str, int]]:
        report = {device: dict(state.garbage) for device, state in self.devices.items() if state.garbage}
        for device, count in self.devices_garbage_unknown.items():
            report.setdefault(device, {})["undescribed_device"] = count
        return report


def engine_input_buffer(engine, max_batch: int):
    """``(xp, buffer)``: the (max_batch, 3, 224, 224) input the engine reads, in the engine's input dtype.

    CuPy device memory when the engine runs on CUDA (its identity's ``device``) and CuPy imports: the
    transforms then render on the GPU straight into it; NumPy otherwise."""
    dtype = np.dtype(getattr(engine, "input_dtype", np.float32))
    if dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
        dtype = np.dtype(np.float32)
    shape = (max_batch, 3, IMAGE_SIZE, IMAGE_SIZE)
    device = str((getattr(engine, "identity", None) or {}).get("device") or "cpu")
    if device.startswith("cuda"):
        try:
            import cupy
        except ImportError:
            log.warning("engine on %s but CuPy is missing: rendering on the CPU", device)
        else:
            return cupy, cupy.zeros(shape, dtype=dtype)
    return np, np.zeros(shape, dtype=dtype)


def percentiles_ms(values_s) -> dict:
    """p50/p95/p99 in milliseconds of a sequence of seconds (None when empty: reports are strict JSON)."""
    values = np.asarray(list(values_s), dtype=np.float64)
    if values.size == 0:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(values * 1e3, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


class Gateway:
    """Transport -> :class:`Pipeline` -> sinks, on one asyncio loop; engine work in a worker thread.

    ``engine``: an opened ``Engine`` (default: ``open_engine`` from ``config.engine``, closed on exit).
    ``backend``: a bleak client backend passed to the transport (the Bumble backend for emulated
    wearables; None for the platform's adapter). ``transport``: False to connect nothing (feed
    notifications with :meth:`add_device` and :meth:`feed`, as tests and the benchmark do).
    """

    def __init__(self, config: GatewayConfig, *, engine=None, backend=None, transport: bool = True,
                 clock=time.monotonic, iterator_queue: int = 4096, drain_timeout_s: float = 15.0):
        self.config = config
        #: at close, queued windows are still run for at most this long; the rest are counted, not run
        self.drain_timeout_s = drain_timeout_s
        #: jobs (window x representation) still queued when the drain time ran out
        self.jobs_unfinished = 0
        self._engine = engine
        self._owns_engine = engine is None
        self._backend = backend
        self._use_transport = transport
        self.clock = clock
        self._iterator_queue = iterator_queue
        self.pipeline: Pipeline | None = None
        self.sinks: list = []
        self._iterators: list = []
        #: records an ``embeddings()`` consumer did not read in time (its queue was full): oldest dropped.
        self.iterator_dropped = 0
        self._manager = None
        self._modalities: dict = {}
        #: (device, state) -> how often the transport reported it (connected, disconnected, failed...)
        self.connection_events: collections.Counter = collections.Counter()
        self._worker = None
        self._stopping = False
        self._wake = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def __aenter__(self) -> "Gateway":
        from biomoe_edge.runtime.gateway_config import build_sink
        from biomoe_edge.runtime.sinks import GuardedSink

        if self._engine is None:
            from biomoe_edge.runtime.engines import open_engine

            e = self.config.engine
            # Options each backend takes (a TensorRT engine's batch and precision are fixed when it is built).
            options = {"onnxruntime": {"max_batch": e.max_batch},
                       "pytorch": {"max_batch": e.max_batch, "precision": e.precision, "device": e.device},
                       }.get(e.kind, {})
            self._engine = await asyncio.to_thread(open_engine, e.kind, e.path, **options)
        self.pipeline = Pipeline(self.config, self._engine, clock=self.clock)
        try:
            self.sinks.extend(GuardedSink(build_sink(s)) for s in self.config.sinks)
        except Exception:
            self._close_sinks_and_engine()
            raise
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="biomoe-gateway-worker")
        if self._use_transport and self.config.devices:
            try:
                await self._start_transport()
            except BaseException:
                await self.close()
                raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        """Disconnect, run what is queued, close sinks and (if opened here) the engine. Safe twice."""
        if self._closed:
            return
        self._closed = True
        await self._stop_transport()
        for device in list(self.pipeline.devices):
            self.pipeline.flush_device(device)
        if self._worker is not None:  # it finishes the batch it is running, then returns
            self._stopping = True
            self._wake.set()
            await self._worker
        drain_until = time.monotonic() + self.drain_timeout_s
        while True:
            jobs = self.pipeline.next_batch(flush=True)
            if not jobs:
                break
            if time.monotonic() >= drain_until:
                self.jobs_unfinished += len(jobs)
                continue
            await self._run(jobs)
        if self.jobs_unfinished:
            log.warning("closing: %d queued jobs not run (the engine was behind; drain_timeout_s=%g)",
                        self.jobs_unfinished, self.drain_timeout_s)
        for queue in self._iterators:
            queue.put_nowait(None)
        self._close_sinks_and_engine()

    def _close_sinks_and_engine(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self._owns_engine and self._engine is not None:
            self._engine.close()

    # -- transport ---------------------------------------------------------------------------------------
    async def _start_transport(self) -> None:
        """A ``ConnectionManager`` over the allow-list: one connection per device, reconnecting with backoff."""
        from biomoe_edge.runtime.transport import ConnectionManager, DeviceTarget, TransportBackend

        t = self.config.transport
        targets = [DeviceTarget(name=d.name, address=d.address, profile=d.profile) for d in self.config.devices]
        self._modalities = {target.label: d.modalities for target, d in zip(targets, self.config.devices)}
        self._manager = ConnectionManager(
            targets, on_packet=self._on_packet, on_state=self._on_state,
            backend=self._backend or TransportBackend.platform(adapter=t.adapter),
            backoff_initial_s=t.backoff_min_s, backoff_max_s=t.backoff_max_s,
            connect_timeout_s=t.connect_timeout_s, clock=self.clock)
        await self._manager.start()

    async def _stop_transport(self) -> None:
        if self._manager is not None:
            await self._manager.stop()

    def _register_from_connection(self, device: str) -> None:
        connection = self._manager.connections.get(device) if self._manager is not None else None
        if connection is not None and connection.description is not None:
            try:
                self.add_device(device, connection.description, self._modalities.get(device, ()))
            except Exception as exc:  # noqa: BLE001 - a device must never take the gateway down
                # Unregistered, its notifications are counted as undescribed (gateway.stats()), not lost silently.
                self.pipeline.log_once(f"{device}:register", "%s: cannot register its description: %s", device, exc)

    def _on_packet(self, device: str, payload: bytes, arrival_time_s: float) -> None:
        if device not in self.pipeline.devices:
            # The description is read before notifications are enabled: register the device on its first packet.
            self._register_from_connection(device)
        self.feed(device, payload, arrival_time_s)

    def _on_state(self, device: str, state: str, reason: str) -> None:
        self.connection_events[(device, state)] += 1
        if state == "connected":
            self._register_from_connection(device)
        elif state in ("disconnected", "stopped"):
            self.pipeline.flush_device(device)

    # -- input (called by the transport, or directly) -------------------------------------------------------
    def add_device(self, device: str, description, modalities=()) -> None:
        self.pipeline.add_device(device, description, modalities)

    def feed(self, device: str, payload, arrival_time_s: float | None = None) -> None:
        """One notification's bytes from ``device``; never raises (bad input is counted)."""
        self.pipeline.handle_notification(device, payload, self.clock() if arrival_time_s is None else arrival_time_s)
        if len(self.pipeline.scheduler) and self._wake is not None:
            self._wake.set()

    # -- output ------------------------------------------------------------------------------------------
    def on_embedding(self, callback) -> None:
        """Call ``callback(record)`` for every embedding (exceptions are counted and logged once)."""
        from biomoe_edge.runtime.sinks import CallbackSink, GuardedSink

        self.sinks.append(GuardedSink(CallbackSink(callback)))

    async def embeddings(self):
        """Async iterator over embedding records, from now until the gateway closes."""
        queue: asyncio.Queue = asyncio.Queue()
        self._iterators.append(queue)
        try:
            while True:
                record = await queue.get()
                if record is None:
                    return
                yield record
        finally:
            self._iterators.remove(queue)

    # -- the worker ----------------------------------------------------------------------------------------
    async def _work(self) -> None:
        """Run batches as they become due (full, or the oldest job waited the deadline) until closed."""
        while not self._stopping:
            jobs = self.pipeline.next_batch()
            if jobs:
                await self._run(jobs)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.pipeline.scheduler.seconds_until_ready(self.clock()))
            except asyncio.TimeoutError:
                pass

    async def _run(self, jobs) -> None:
        try:
            # Rendering and inference hold the CPU/GPU for milliseconds: off the loop, so BLE keeps flowing.
            ordered, embeddings = await asyncio.to_thread(self.pipeline.compute, jobs)
        except Exception as exc:  # noqa: BLE001 - an engine failure loses this batch (counted), not the gateway
            reason = type(exc).__name__
            self.pipeline.jobs_failed[reason] += len(jobs)
            self.pipeline.log_once(f"engine:{reason}", "engine failed on a batch of %d images: %s", len(jobs), exc)
            return
        self.emit(self.pipeline.make_records(ordered, embeddings))

    def emit(self, records) -> None:
        if not records:
            return
        t0 = time.perf_counter()
        for sink in self.sinks:
            sink.write(records)
        self.pipeline.timings["sink"].append(time.perf_counter() - t0)
        for queue in self._iterators:
            for record in records:
                if queue.qsize() >= self._iterator_queue:
                    queue.get_nowait()
                    self.iterator_dropped += 1
                queue.put_nowait(record)

    # -- reports -------------------------------------------------------------------------------------------
    @property
    def engine(self):
        return self._engine

    def stats(self) -> dict:
        """Everything counted: streams, garbage, scheduler and sink counters, latency percentiles."""
        p = self.pipeline
        sched = p.scheduler.stats()
        return {
            "embeddings": p.embeddings,
            "latency_ms": percentiles_ms(p.latencies_s),
            "streams": p.stream_report(),
            "garbage": p.garbage_report(),
            "windows_withheld": {f"{d}/{m}": n for (d, m), n in p.windows_withheld.items()},
            "jobs_failed": dict(p.jobs_failed),
            "scheduler": {"jobs_submitted": sched.jobs_submitted, "jobs_batched": sched.jobs_batched,
                          "jobs_queued": sched.jobs_queued, "batches": sched.batches,
                          "jobs_dropped": {str(k): v for k, v in sched.jobs_dropped.items()}},
            "sinks": [{"name": s.name, **s.stats()} for s in self.sinks],
            "iterator_dropped": self.iterator_dropped,
            "jobs_unfinished": self.jobs_unfinished,
            "connections": {f"{d}/{state}": n for (d, state), n in self.connection_events.items()},
        }
