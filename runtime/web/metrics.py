"""The gateway's counters in Prometheus' text format, written with ``prometheus_client``.

Most figures already exist in ``gateway.stats()`` and ``gateway.links()``; :class:`GatewayCollector` reads them at
scrape time (nothing is copied between scrapes). What the gateway keeps only as recent percentiles (latencies,
batch sizes) is observed record by record into histograms by :class:`RecordObserver`, registered as an embedding
callback and a prediction callback. Names follow Prometheus' conventions: ``biomoe_edge_`` prefix, ``_total`` for
counters, base units (seconds, bytes).
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from biomoe_edge.runtime.sinks import CallbackSink

PREFIX = "biomoe_edge"
#: Arrival of a window's newest sample to its embedding or prediction: a few ms (GPU) to seconds (busy CPU).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LOOP_LAG_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
#: Sink counters (``Sink.stats()`` keys) that count records lost, with the reason their name gives.
SINK_LOST_KEYS = {"dropped_offline": "offline", "dropped_unpublishable": "unpublishable",
                  "dropped_at_close": "at_close", "outbox_evicted": "outbox_full", "records_failed": "write_failed"}


class RecordObserver(CallbackSink):
    """Histograms and counters that need every record: latency, batch size, embeddings per stream, predictions.

    A ``CallbackSink`` (so the gateway hands it embeddings only, one engine batch per ``write``); predictions come
    through :meth:`prediction`, registered with ``gateway.on_prediction``."""

    name = "metrics"

    def __init__(self, registry: CollectorRegistry):
        super().__init__(lambda record: None)
        self.embedding_latency = Histogram(
            f"{PREFIX}_embedding_latency_seconds", "From the arrival of a window's newest sample to its embedding",
            registry=registry, buckets=LATENCY_BUCKETS_S)
        self.prediction_latency = Histogram(
            f"{PREFIX}_prediction_latency_seconds", "From the arrival of the newest input sample to the prediction",
            registry=registry, buckets=LATENCY_BUCKETS_S)
        self.batch_size = Histogram(f"{PREFIX}_engine_batch_size", "Images per engine batch", registry=registry,
                                    buckets=BATCH_SIZE_BUCKETS)
        self.embeddings = Counter(f"{PREFIX}_stream_embeddings", "Embeddings made, per stream and representation",
                                  ["device", "modality", "representation"], registry=registry)
        self.predictions = Counter(f"{PREFIX}_predictions", "Predictions made, per head and predicted class",
                                   ["head", "subject", "predicted"], registry=registry)

    def write(self, records) -> None:
        self.batch_size.observe(len(records))
        for record in records:
            latency = record.latency_s
            if latency == latency:  # not NaN
                self.embedding_latency.observe(max(0.0, latency))
            self.embeddings.labels(record.device, record.modality, record.representation).inc()

    def prediction(self, record) -> None:
        latency = record.latency_s
        if latency == latency:
            self.prediction_latency.observe(max(0.0, latency))
        self.predictions.labels(str(record.head.get("path", "")), record.subject, record.predicted).inc()


class LoopLagProbe:
    """How late the event loop runs a timer: sleeps ``interval_s`` and observes the overshoot (what a blocked loop
    costs BLE notifications and the page's updates)."""

    def __init__(self, registry: CollectorRegistry, interval_s: float = 0.5, on_tick=None):
        self.interval_s = interval_s
        self.on_tick = on_tick
        self.lag = Histogram(f"{PREFIX}_event_loop_lag_seconds", "How late the event loop ran a timer",
                             registry=registry, buckets=LOOP_LAG_BUCKETS_S)
        self.last_lag_s = 0.0

    async def run(self) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.interval_s)
            self.last_lag_s = max(0.0, time.monotonic() - start - self.interval_s)
            self.lag.observe(self.last_lag_s)
            if self.on_tick is not None:
                self.on_tick()


def _counter(name, doc, labels=()):
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


def _gauge(name, doc, labels=()):
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))


class GatewayCollector:
    """A custom collector: every scrape reads ``gateway.stats()``, ``gateway.links()`` and the health judgement."""

    def __init__(self, gateway, health=None):
        self.gateway = gateway
        self.health = health

    def describe(self):
        return []  # collected at scrape time only (the families depend on the devices present)

    def collect(self):
        gateway = self.gateway
        if gateway.pipeline is None:
            return
        stats = gateway.stats()
        yield from self._streams(stats)
        yield from self._links(gateway.links(), stats)
        yield from self._engine(stats)
        yield from self._heads(stats)
        yield from self._sinks(stats)
        if self.health is not None:
            reasons = self.health.reasons()
            healthy = _gauge("healthy", "1 while /healthz answers 200, else 0")
            healthy.add_metric([], 0.0 if reasons else 1.0)
            yield healthy

    @staticmethod
    def _streams(stats):
        labels = ("device", "modality")
        families = {
            "packets_received": _counter("stream_packets_received", "Packets (BLE notifications) received", labels),
            "packets_lost": _counter("stream_packets_lost", "Packets lost on the way (sequence gaps)", labels),
            "samples_received": _counter("stream_samples_received", "Samples decoded", labels),
            "samples_windowed": _counter("stream_samples_windowed", "Samples that went into windows", labels),
        }
        pending = _gauge("stream_samples_pending", "Samples held (reordering, the next window)", labels)
        dropped = _counter("stream_samples_dropped", "Samples dropped, by reason", labels + ("reason",))
        windows_dropped = _counter("stream_windows_dropped", "Windows dropped, by reason", labels + ("reason",))
        for entry in stats["streams"]:
            key = [entry["device"], entry["modality"]]
            for name, family in families.items():
                family.add_metric(key, entry[name])
            pending.add_metric(key, entry["samples_pending"])
            for reason, count in entry["samples_dropped"].items():
                dropped.add_metric(key + [reason], count)
            for reason, count in entry.get("windows_dropped", {}).items():
                windows_dropped.add_metric(key + [str(reason)], count)
        garbage = _counter("device_packets_rejected", "Notifications that could not be decoded, by reason",
                           ("device", "reason"))
        for device, reasons in stats["garbage"].items():
            for reason, count in reasons.items():
                garbage.add_metric([device, reason], count)
        yield from (*families.values(), pending, dropped, windows_dropped, garbage)

    @staticmethod
    def _links(links, stats):
        labels = ("device",)
        up = _gauge("device_connected", "1 while the device's link is up and streaming", labels)
        state = _gauge("device_link_state", "1 for the link's current state", labels + ("state",))
        required = _gauge("device_link_security_required", "1 for the security level the device must reach",
                          labels + ("level",))
        encrypted = _gauge("device_link_encrypted", "1 when the current (or last) link is encrypted", labels)
        bonded = _gauge("device_link_bonded", "1 when the current (or last) link is bonded", labels)
        connects = _counter("device_connects", "Successful connections (the first included)", labels)
        disconnects = _counter("device_disconnects", "Links lost after a successful set-up", labels)
        failed = _counter("device_connect_failures", "Failed connection attempts", labels)
        for device, link in links.items():
            up.add_metric([device], 1.0 if link["state"] == "connected" else 0.0)
            state.add_metric([device, link["state"]], 1.0)
            required.add_metric([device, link["security"]], 1.0)
            if link["encrypted"] is not None:
                encrypted.add_metric([device], float(link["encrypted"]))
                bonded.add_metric([device], float(link["bonded"]))
            connects.add_metric([device], link["connects"])
            disconnects.add_metric([device], link["disconnects"])
            failed.add_metric([device], link["failed_attempts"])
        refused = _counter("devices_refused", "Connections refused (impostors, links short of their security level)",
                           ("device", "reason"))
        totals: dict = {}
        for entry in stats["refused_devices"]:
            key = (entry["device"], entry["reason"])
            totals[key] = totals.get(key, 0) + entry["attempts"]
        for key, count in totals.items():
            refused.add_metric(list(key), count)
        yield from (up, state, required, encrypted, bonded, connects, disconnects, failed, refused)

    @staticmethod
    def _engine(stats):
        sched = stats["scheduler"]
        embeddings = _counter("embeddings", "Embeddings made")
        embeddings.add_metric([], stats["embeddings"])
        queued = _gauge("engine_jobs_queued", "Window images waiting for the engine")
        queued.add_metric([], sched["jobs_queued"])
        batches = _counter("engine_batches", "Engine batches run")
        batches.add_metric([], sched["batches"])
        dropped = _counter("engine_jobs_dropped", "Window images dropped before the engine, by stream and reason",
                           ("stream", "reason"))
        for stream, reasons in sched["jobs_dropped"].items():  # {"device/modality": {reason: count}}
            for reason, count in reasons.items():
                dropped.add_metric([stream, str(reason)], count)
        failed = _counter("engine_jobs_failed", "Window images lost to a failed batch, by error", ("reason",))
        for reason, count in stats["jobs_failed"].items():
            failed.add_metric([reason], count)
        withheld = _counter("windows_withheld", "Windows the quality gate kept from the engine", ("device", "modality"))
        for key, count in stats["windows_withheld"].items():
            device, _, modality = key.rpartition("/")
            withheld.add_metric([device, modality], count)
        yield from (embeddings, queued, batches, dropped, failed, withheld)

    @staticmethod
    def _heads(stats):
        predictions = _counter("head_predictions", "Predictions made by each head", ("head",))
        dropped = _counter("head_windows_dropped", "Window times a head gave up, by reason", ("head", "reason"))
        for entry in stats["heads"]:
            predictions.add_metric([entry["head"]], entry["predictions"])
            for reason, count in entry["windows_dropped"].items():
                dropped.add_metric([entry["head"], str(reason)], count)
        yield from (predictions, dropped)

    @staticmethod
    def _sinks(stats):
        labels = ("sink", "position")
        written = _counter("sink_records_written", "Records a sink accepted", labels)
        lost = _counter("sink_records_lost", "Records a sink lost, by reason", labels + ("reason",))
        queued = _gauge("sink_records_queued", "Records a sink holds, not yet delivered", labels)
        failed = _gauge("sink_failed", "1 while a sink is failed (isolated from the gateway)", labels)
        segments = _counter("recording_segments", "Recording segments written", labels)
        recorded = _counter("recording_bytes", "Bytes of recording segments written", labels)
        outbox = _gauge("sink_outbox_bytes", "Bytes held in an MQTT sink's disk outbox", labels)
        outbox_records = _gauge("sink_outbox_records", "Records held in an MQTT sink's disk outbox", labels)
        for position, entry in enumerate(stats["sinks"]):
            key = [str(entry.get("name", "sink")), str(position)]
            written.add_metric(key, entry.get("written", entry.get("records_written", 0)))
            reasons: dict = {}
            for name, reason in SINK_LOST_KEYS.items():
                if entry.get(name):
                    reasons[reason] = reasons.get(reason, 0) + entry[name]
            if isinstance(entry.get("lost"), int) and not reasons:
                reasons["lost"] = entry["lost"]
            for reason, count in reasons.items():
                lost.add_metric(key + [reason], count)
            if "queued" in entry:
                queued.add_metric(key, entry["queued"])
            failed.add_metric(key, 1.0 if entry.get("state") == "failed" else 0.0)
            if "segments_written" in entry:
                segments.add_metric(key, entry["segments_written"])
                recorded.add_metric(key, entry.get("bytes_written", 0))
            if "outbox_bytes" in entry:
                outbox.add_metric(key, entry["outbox_bytes"])
                outbox_records.add_metric(key, entry.get("outbox_records", 0))
        yield from (written, lost, queued, failed, segments, recorded, outbox, outbox_records)


def gateway_registry(gateway, health=None) -> tuple[CollectorRegistry, RecordObserver]:
    """A registry of the gateway's metrics, the process' (RSS, open files, CPU) and the record observer (to
    register: ``gateway.sinks.append(GuardedSink(observer))``, ``gateway.on_prediction(observer.prediction)``)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(GatewayCollector(gateway, health))
    return registry, RecordObserver(registry)
