"""The gateway: BLE wearables in, embedding records out.

``Gateway(config)`` is an async context manager that connects to the allow-listed wearables and yields
:class:`~biomoe_edge.runtime.records.EmbeddingRecord` objects::

    async with Gateway(load_config("gateway.toml")) as gateway:
        gateway.on_embedding(lambda record: print(record.device, record.modality, record.embedding[:4]))
        async for record in gateway.embeddings():
            ...

With ``[[heads]]`` configured, task heads fuse the embeddings of each subject's wearables by window time and
emit :class:`~biomoe_edge.runtime.records.PredictionRecord` objects (``on_prediction``, ``predictions()``, and
the configured sinks; docs/heads.md).

It runs the transport (``runtime.transport``), the data path (:class:`~biomoe_edge.runtime.pipeline.Pipeline`,
which has no I/O) and the sinks on one asyncio loop, with engine work in a worker thread.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time


from biomoe_edge.firmware_bridge.profiles.registry import profile_spec
from biomoe_edge.runtime.gateway_config import GatewayConfig
from biomoe_edge.runtime.pipeline import Pipeline
from biomoe_edge.timing import percentiles_ms

log = logging.getLogger("biomoe_edge.runtime.gateway")


class Gateway:
    """Transport -> :class:`Pipeline` -> sinks, on one asyncio loop; engine work in a worker thread.

    ``engine``: an opened ``Engine`` (default: ``open_engine`` from ``config.engine``, closed on exit).
    ``backend``: a bleak client backend passed to the transport (the Bumble backend for emulated
    wearables; None for the platform's adapter). ``transport``: False to connect nothing (feed
    notifications with :meth:`add_device` and :meth:`feed`, as tests and the benchmark do). ``warmup``: on
    entry, run :meth:`Pipeline.warmup` before connecting anything, so the first live windows do not wait for
    kernel compilation or the engine's first runs.
    """

    def __init__(self, config: GatewayConfig, *, engine=None, backend=None, transport: bool = True,
                 clock=time.monotonic, iterator_queue: int = 4096, drain_timeout_s: float = 15.0,
                 warmup: bool = True, transport_stop_timeout_s: float = 5.0):
        self.config = config
        self.warmup = warmup
        #: at close, queued windows are still run for at most this long; the rest are counted, not run
        self.drain_timeout_s = drain_timeout_s
        #: at close, each connection gets this long to stop by itself, then is cancelled until it ends (as long
        #: again at most): stopping never waits for a scan or connection attempt to time out
        self.transport_stop_timeout_s = transport_stop_timeout_s
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
        #: task heads' predictions (``[[heads]]``): ``on_prediction`` callbacks and ``predictions()`` queues
        self._prediction_sinks: list = []
        self._prediction_iterators: list = []
        self._manager = None
        self._modalities: dict = {}
        #: (device, state) -> how often the transport reported it (connected, disconnected, failed...)
        self.connection_events: collections.Counter = collections.Counter()
        #: (device, advertised name, address, reason) -> refusals: impostors of a name pinned to another identity
        #: (never connected), links short of the device's security level, a known device whose description changed
        #: (its data never windowed). Reported as ``stats()["refused_devices"]``.
        self.refused: collections.Counter = collections.Counter()
        self._worker = None
        self._stopping = False
        self._wake = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------------
    async def __aenter__(self) -> "Gateway":
        from biomoe_edge.runtime.gateway_config import build_sink
        from biomoe_edge.runtime.sinks import GuardedSink

        if self._engine is None:
            from biomoe_edge.runtime.engines import open_configured_engine

            # A missing engine.path is an error (never random weights by fallback); the choice is logged.
            self._engine = await asyncio.to_thread(open_configured_engine, self.config.engine)
        try:
            self.pipeline = Pipeline(self.config, self._engine, clock=self.clock)
        except Exception:  # e.g. a head trained on other weights (HeadError): release the engine we opened
            if self._owns_engine:
                self._engine.close()
            raise
        if self.warmup:
            try:
                await asyncio.to_thread(self.pipeline.warmup)
            except Exception as exc:  # noqa: BLE001 - a slow first batch is better than no gateway
                log.warning("warm-up failed (%s: %s); the first batch pays its one-time costs", type(exc).__name__, exc)
        # A sink that cannot start (full disk, no permission) is isolated: failed in stats(), retried, counted.
        self.sinks.extend(self._start_sink(s, build_sink, GuardedSink) for s in self.config.sinks)
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
        # Window times still waiting for inputs: counted, not guessed; stand-ins past their deadline go out, the
        # rest are counted.
        self.emit_predictions(self.pipeline.close_predictions())
        for queue in self._iterators + self._prediction_iterators:
            queue.put_nowait(None)
        self._close_sinks_and_engine()

    @staticmethod
    def _build_sink(config, build_sink):
        if config.kind == "recording":  # it watches the pipeline: built here, above the configuration's layer
            from biomoe_edge.runtime.recording.sink import build_recording_sink

            return build_recording_sink(config)
        return build_sink(config)

    def _start_sink(self, config, build_sink, guard_class):
        """Build a configured sink under guard. Sinks that watch the data path itself (the recording sink: every
        ``Ingest.push``) attach to the pipeline before any device is added, so they see every stream from its first
        sample (a later restart is told the streams known by then); while such a sink is down, its guard counts
        the input blocks it misses."""
        def start():
            sink = self._build_sink(config, build_sink)
            attach = getattr(sink, "attach", None)
            if attach is not None:
                try:
                    attach(self.pipeline, self.config)
                except BaseException:
                    sink.close()
                    raise
            return sink

        options = config.options
        path = options.get("directory") or (f"{options['host']}:{options['port']}" if "host" in options else None)
        guard = guard_class.start(start, kind=config.kind, path=None if path is None else str(path), clock=self.clock)
        if config.kind == "recording":
            self.pipeline.add_observer(guard)
        return guard

    def _close_sinks_and_engine(self) -> None:
        for sink in self.sinks:
            sink.close()
        if self._owns_engine and self._engine is not None:
            self._engine.close()

    # -- transport ---------------------------------------------------------------------------------------
    async def _start_transport(self) -> None:
        """A ``ConnectionManager`` over the allow-list: one connection per device, reconnecting with backoff."""
        from biomoe_edge.runtime.transport import ConnectionManager, DeviceTarget, TransportBackend
        from biomoe_edge.runtime.transport.security import IdentityPins

        t = self.config.transport
        targets = [DeviceTarget(name=d.name, address=d.address, profile=d.profile, security=d.security)
                   for d in self.config.devices]
        self._modalities = {target.label: d.modalities for target, d in zip(targets, self.config.devices)}
        self._manager = ConnectionManager(
            targets, on_packet=self._on_packet, on_state=self._on_state, on_refused=self._on_refused,
            check_description=self.pipeline.description_refusal,  # a known device with other streams: refused
            pins=IdentityPins(t.state_dir),  # names pinned to bonded identities (state_dir None: in memory)
            backend=self._backend or TransportBackend.platform(adapter=t.adapter),
            backoff_initial_s=t.backoff_min_s, backoff_max_s=t.backoff_max_s,
            connect_timeout_s=t.connect_timeout_s, clock=self.clock)
        for target, device in zip(targets, self.config.devices):
            spec = profile_spec(device.profile)
            if spec.describes_itself:
                continue  # registered from its description once connected
            # Standard profiles describe themselves by their characteristic: their streams exist from the start.
            self.pipeline.add_profile_device(target.label, device.profile, device.modalities)
            self._manager.connections[target.label].start_commands = spec.start_commands(spec.modalities(device.modalities))
        await self._manager.start()

    async def _stop_transport(self) -> None:
        if self._manager is not None:
            await self._manager.stop(self.transport_stop_timeout_s)

    def connection(self, device: str):
        """The transport's connection to ``device`` (its label), or None before the transport started or for a
        device it does not know."""
        return self._manager.connections.get(device) if self._manager is not None else None

    def _register_from_connection(self, device: str) -> None:
        from biomoe_edge.runtime.pipeline import DeviceRefused

        connection = self._manager.connections.get(device) if self._manager is not None else None
        if connection is not None and connection.description is not None:
            try:
                self.add_device(device, connection.description, self._modalities.get(device, ()))
            except DeviceRefused as exc:  # counted by the pipeline; its notifications are dropped, counted
                self._on_refused(device, connection.target.name, connection.address, exc.reason)
            except Exception as exc:  # noqa: BLE001 - a device must never take the gateway down
                # Unregistered, its notifications are counted as undescribed (gateway.stats()), not lost silently.
                self.pipeline.log_once(f"{device}:register", "%s: cannot register its description: %s", device, exc)

    def _on_packet(self, device: str, payload: bytes, arrival_time_s: float) -> None:
        if device not in self.pipeline.devices:
            # The description is read before notifications are enabled: register the device on its first packet.
            self._register_from_connection(device)
        self.feed(device, payload, arrival_time_s)

    def _on_refused(self, device: str, name, address, reason: str) -> None:
        self.refused[(device, name, address, reason)] += 1

    def refused_devices(self) -> list[dict]:
        """One entry per device refused (name, address, reason) with how often."""
        return [{"device": device, "name": name, "address": address, "reason": reason, "attempts": count}
                for (device, name, address, reason), count in self.refused.items()]

    def _on_state(self, device: str, state: str, reason: str) -> None:
        self.connection_events[(device, state)] += 1
        if state == "connected":
            self._register_from_connection(device)
        elif state in ("disconnected", "stopped"):
            self.pipeline.flush_device(device)

    # -- input (called by the transport, or directly) -------------------------------------------------------
    def add_device(self, device: str, description, modalities=()) -> None:
        self.pipeline.add_device(device, description, modalities)

    def add_profile_device(self, device: str, profile: str, modalities=()) -> None:
        """A standard-profile device (``firmware_bridge.profiles.registry``), for :meth:`feed`."""
        self.pipeline.add_profile_device(device, profile, modalities)

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

    def embeddings(self):
        """Async iterator over embedding records, from now until the gateway closes."""
        return _drain_until_closed(self._iterators)

    # -- the worker ----------------------------------------------------------------------------------------
    async def _work(self) -> None:
        """Run batches as they become due (full, or the oldest job waited the deadline) until closed."""
        while not self._stopping:
            self.pipeline.expire_predictions()
            self.emit_predictions(self.pipeline.settle_fallbacks())
            jobs = self.pipeline.next_batch()
            if jobs:
                await self._run(jobs)
                continue
            self._wake.clear()
            timeout = self.pipeline.scheduler.seconds_until_ready(self.clock())
            deadline = self.pipeline.seconds_until_prediction_deadline()
            if deadline is not None:  # wake for the heads' deadlines too (missing inputs are counted on time)
                timeout = deadline if timeout is None else min(timeout, deadline)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except asyncio.TimeoutError:
                pass

    async def _run(self, jobs) -> None:
        try:
            # Rendering and inference hold the CPU/GPU for milliseconds: off the loop, so BLE keeps flowing.
            result = await asyncio.to_thread(self.pipeline.run_batch, jobs)
        except Exception as exc:  # noqa: BLE001 - an engine failure loses this batch (counted), not the gateway
            reason = type(exc).__name__
            self.pipeline.jobs_failed[reason] += len(jobs)
            self.pipeline.log_once(f"engine:{reason}", "engine failed on a batch of %d images: %s", len(jobs), exc)
            return
        self.emit(result.records)
        self.emit_predictions(result.predictions)

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

    # -- predictions (task heads, ``[[heads]]``) ---------------------------------------------------------------
    def on_prediction(self, callback) -> None:
        """Call ``callback(record)`` for every PredictionRecord (exceptions are counted and logged once)."""
        from biomoe_edge.runtime.sinks import CallbackSink, GuardedSink

        self._prediction_sinks.append(GuardedSink(CallbackSink(callback)))

    def predictions(self):
        """Async iterator over the heads' PredictionRecords, from now until the gateway closes."""
        return _drain_until_closed(self._prediction_iterators)

    def emit_predictions(self, predictions) -> None:
        """Hand predictions to the prediction callbacks, the ``predictions()`` iterators and every configured sink
        (each takes PredictionRecords beside embeddings: JSONL/NPZ, MQTT on its prediction topic, LSL as its own
        stream); ``on_embedding`` callbacks get embeddings only."""
        if not predictions:
            return
        for sink in self._prediction_sinks + [s for s in self.sinks if not _is_embedding_callback(s)]:
            sink.write(predictions)
        for queue in self._prediction_iterators:
            for record in predictions:
                if queue.qsize() >= self._iterator_queue:
                    queue.get_nowait()
                    self.iterator_dropped += 1
                queue.put_nowait(record)

    # -- reports -------------------------------------------------------------------------------------------
    @property
    def engine(self):
        return self._engine

    def connection_stats(self) -> dict:
        """Per allow-listed device, the transport's ``ConnectionStats`` (connects, failed attempts, last_error)."""
        return self._manager.stats() if self._manager is not None else {}

    def links(self) -> dict[str, dict]:
        """Per allow-listed device, its link now: ``state`` (connecting, connected, disconnected, failed, stopped),
        the ``security`` level required, what the link is (``encrypted``, ``bonded``; None before a link), its
        ``address``, ``connects``, ``disconnects``, ``failed_attempts`` and ``last_error``."""
        if self._manager is None:
            return {}
        out = {}
        for label, connection in self._manager.connections.items():
            link, stats = connection.link, connection.stats
            out[label] = {"state": connection.state.value, "security": connection.security.value,
                          "encrypted": None if link is None else bool(link.encrypted),
                          "bonded": None if link is None else bool(link.bonded), "address": connection.address,
                          "connects": stats.connects, "disconnects": stats.disconnects,
                          "failed_attempts": stats.failed_attempts, "last_error": stats.last_error}
        return out

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
            "refused_devices": self.refused_devices(),
            "heads": self.pipeline.heads_stats(),
        }


def _is_embedding_callback(sink) -> bool:
    from biomoe_edge.runtime.sinks import CallbackSink

    return isinstance(getattr(sink, "sink", sink), CallbackSink)


async def _drain_until_closed(queues: list):
    """Yield what arrives on a new queue registered in ``queues`` until None (the gateway closing) arrives."""
    queue: asyncio.Queue = asyncio.Queue()
    queues.append(queue)
    try:
        while True:
            record = await queue.get()
            if record is None:
                return
            yield record
    finally:
        queues.remove(queue)
