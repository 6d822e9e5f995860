"""What the live page shows, gathered on the gateway's loop: one snapshot per update, shared by every client.

:class:`SignalTail` watches the pipeline (``Pipeline.add_observer``) and keeps the last seconds of every stream's
signal (first channel), thinned to at most ``points`` values per stream, so that an update stays a few kB.
:class:`LiveState` adds the devices' links, the streams' counters and drops, the quality gate's verdicts,
embedding rate and latency, the latest prediction per subject and head, refused devices and the warnings.
"""

from __future__ import annotations

import collections
import math
import time

import numpy as np


class SignalTail:
    """The last ``seconds`` of each (device, modality) stream as it reached the ingest; an observer of the
    pipeline (``on_block``). Memory is bounded by ``max_rate_hz`` x ``seconds`` per stream."""

    def __init__(self, seconds: float = 10.0, points: int = 250, max_rate_hz: float = 1000.0):
        self.seconds = float(seconds)
        self.points = int(points)
        self._capacity = int(max_rate_hz * seconds)
        self._times: dict[tuple[str, str], collections.deque] = {}
        self._values: dict[tuple[str, str], collections.deque] = {}

    def on_block(self, device, modality, samples, gateway_times_s, arrival_time_s, lost_before) -> None:
        key = (device, modality)
        if key not in self._times:
            self._times[key] = collections.deque(maxlen=self._capacity)
            self._values[key] = collections.deque(maxlen=self._capacity)
        values = np.asarray(samples, dtype=np.float64)
        values = values[:, 0] if values.ndim == 2 else values.reshape(-1)
        self._times[key].extend(np.asarray(gateway_times_s, dtype=np.float64).tolist())
        self._values[key].extend(values.tolist())

    def snapshot(self) -> dict[str, dict]:
        """``{"device/modality": {"t": [...], "y": [...]}}``: ``t`` in seconds relative to the newest sample (<= 0)."""
        out = {}
        for key, times in self._times.items():
            if not times:
                continue
            t = np.fromiter(times, dtype=np.float64, count=len(times))
            y = np.fromiter(self._values[key], dtype=np.float64, count=len(times))
            keep = t >= t[-1] - self.seconds
            t, y = t[keep], y[keep]
            step = max(1, math.ceil(len(t) / self.points))
            t, y = t[::step], y[::step]
            y = np.where(np.isfinite(y), y, 0.0)
            out[f"{key[0]}/{key[1]}"] = {"t": np.round(t - t[-1], 3).tolist(), "y": np.round(y, 4).tolist()}
        return out


class LiveState:
    """Collects what the page shows. Register it: ``gateway.on_embedding(state.embedding)``,
    ``gateway.on_prediction(state.prediction)``, ``gateway.pipeline.add_observer(state.signals)``."""

    def __init__(self, gateway, *, health=None, warnings=None, model_line: str | None = None,
                 rate_window_s: float = 10.0, clock=time.monotonic):
        self.gateway = gateway
        self.health = health
        self.warnings = warnings  # a callable returning [{"level", "message", "count"}] (the console's collector)
        self.model_line = model_line
        self.clock = clock
        self.signals = SignalTail()
        self.rate_window_s = rate_window_s
        self._recent: collections.deque = collections.deque(maxlen=4096)  # (emitted time, latency)
        self._quality: dict[tuple[str, str], tuple[str, ...]] = {}
        self._predictions: dict[tuple[str, str], dict] = {}
        self.started = clock()

    def embedding(self, record) -> None:
        self._recent.append((self.clock(), record.latency_s))
        self._quality[(record.device, record.modality)] = record.quality

    def prediction(self, record) -> None:
        self._predictions[(record.subject, str(record.head.get("path", "")))] = {
            "subject": record.subject, "head": str(record.head.get("path", "")), "predicted": record.predicted,
            "classes": list(record.classes), "probabilities": [round(float(p), 4) for p in record.probabilities],
            "window_end_s": record.window_end_s, "record_id": getattr(record, "record_id", None)}

    def snapshot(self, *, with_signals: bool) -> dict:
        gateway, now = self.gateway, self.clock()
        stats = gateway.stats()
        links = gateway.links()
        streams: dict[str, list] = collections.defaultdict(list)
        for entry in stats["streams"]:
            key = (entry["device"], entry["modality"])
            withheld = stats["windows_withheld"].get(f"{entry['device']}/{entry['modality']}", 0)
            quality = self._quality.get(key)
            streams[entry["device"]].append({
                "modality": entry["modality"], "packets_received": entry["packets_received"],
                "packets_lost": entry["packets_lost"], "samples_windowed": entry["samples_windowed"],
                "samples_dropped": entry["samples_dropped"], "windows_withheld": withheld,
                "quality": None if quality is None else (list(quality) or ["ok"])})
        devices = []
        for name in list(links) + [d for d in streams if d not in links]:
            link = links.get(name, {"state": "connected", "security": None, "encrypted": None, "bonded": None,
                                    "connects": None, "disconnects": None, "last_error": None})
            devices.append({"device": name, **{k: link.get(k) for k in (
                "state", "security", "encrypted", "bonded", "connects", "disconnects", "last_error")},
                            "streams": streams.get(name, [])})
        recent = [(t, lat) for t, lat in self._recent if now - t <= self.rate_window_s]
        latencies = [lat for _, lat in recent if lat == lat]
        span = min(self.rate_window_s, max(1e-9, now - self.started))
        out = {
            "time_s": round(now - self.started, 3),
            "model": self.model_line,
            "healthy": None, "health_reasons": [],
            "devices": devices,
            "embeddings": stats["embeddings"],
            "embedding_rate_hz": round(len(recent) / span, 2),
            "latency_ms": {"p50": round(float(np.percentile(latencies, 50)) * 1e3, 1) if latencies else None,
                           "p95": round(float(np.percentile(latencies, 95)) * 1e3, 1) if latencies else None},
            "predictions": sorted(self._predictions.values(), key=lambda p: (p["subject"], p["head"])),
            "refused": stats["refused_devices"],
            "sinks": [{k: v for k, v in entry.items() if isinstance(v, (int, float, str, bool, type(None)))}
                      for entry in stats["sinks"] if entry.get("name") not in ("callback", "metrics")],
            "warnings": self.warnings() if self.warnings is not None else [],
            "signals_shown": with_signals,
        }
        if self.health is not None:
            out["health_reasons"] = self.health.reasons()
            out["healthy"] = not out["health_reasons"]
        if with_signals:
            out["signals"] = self.signals.snapshot()
        return out
