"""Is the gateway healthy? One judgement for ``GET /healthz``, the ``biomoe_edge_healthy`` gauge, the page and the
systemd watchdog (``biomoe-edge run``).

Unhealthy, with a reason each, when: no allow-listed device has been connected for longer than ``no_device_s``
(an empty allow-list is not a fault);
a sink is failed (``stats()["sinks"][i]["state"] == "failed"`` where the sink reports a state, else its writes
failed since the last look and none succeeded); the engine stalled (window images waited and no batch finished for
``engine_stall_s``).
"""

from __future__ import annotations

import time


class HealthMonitor:
    def __init__(self, gateway, *, no_device_s: float = 60.0, engine_stall_s: float = 30.0, clock=time.monotonic):
        self.gateway = gateway
        self.no_device_s = float(no_device_s)
        self.engine_stall_s = float(engine_stall_s)
        self.clock = clock
        now = clock()
        self._last_connected = now  # the grace period starts at start-up
        self._batches = -1
        self._batches_changed = now
        self._sink_counts: dict[int, tuple[int, int]] = {}
        self._sink_failing: dict[int, str] = {}

    def reasons(self) -> list[str]:
        """Why the gateway is unhealthy now (empty: healthy). Cheap; call it as often as wanted."""
        gateway, now = self.gateway, self.clock()
        if gateway.pipeline is None:
            return ["the gateway is not running"]
        reasons = []
        links = gateway.links()
        # An empty allow-list is a gateway waiting to be configured (``run`` says so at start), not a fault: restarting
        # it (the watchdog) would not help.
        if any(link["state"] == "connected" for link in links.values()) or not gateway.config.devices:
            self._last_connected = now
        elif now - self._last_connected > self.no_device_s:
            reasons.append(f"no device connected for {now - self._last_connected:.0f} s "
                           f"(limit no_device_s={self.no_device_s:g})")
        stats = gateway.stats()
        sched = stats["scheduler"]
        if sched["batches"] != self._batches:
            self._batches, self._batches_changed = sched["batches"], now
        elif sched["jobs_queued"] and now - self._batches_changed > self.engine_stall_s:
            reasons.append(f"engine stalled: {sched['jobs_queued']} window images queued and no batch finished for "
                           f"{now - self._batches_changed:.0f} s (limit engine_stall_s={self.engine_stall_s:g})")
        for position, entry in enumerate(stats["sinks"]):
            failing = self._sink_failure(position, entry)
            if failing:
                reasons.append(f"sink {entry.get('name', position)} (#{position}) failed: {failing}")
        return reasons

    def _sink_failure(self, position: int, entry: dict) -> str | None:
        if "state" in entry:  # sinks that report their own state
            return (entry.get("reason") or "failed") if entry["state"] == "failed" else None
        counts = (entry.get("records_written", 0), entry.get("records_failed", 0))
        before = self._sink_counts.get(position, (0, 0))
        self._sink_counts[position] = counts
        if counts[1] > before[1] and counts[0] == before[0]:
            errors = entry.get("errors") or {}
            self._sink_failing[position] = ", ".join(f"{k} x{v}" for k, v in errors.items()) or "writes failed"
        elif counts[0] > before[0]:
            self._sink_failing.pop(position, None)
        return self._sink_failing.get(position)

    @property
    def healthy(self) -> bool:
        return not self.reasons()

    def status_record(self, gateway_name: str):
        """The judgement now as a :class:`~biomoe_edge.runtime.records.StatusRecord` (for the uplink)."""
        import datetime

        from biomoe_edge.runtime.records import StatusRecord

        reasons = self.reasons()
        stats = self.gateway.stats()
        links = self.gateway.links()
        return StatusRecord(
            gateway=gateway_name, time_s=float(self.clock()), healthy=not reasons, reasons=tuple(reasons),
            wall_time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            devices=len(self.gateway.config.devices),
            devices_connected=sum(link["state"] == "connected" for link in links.values()),
            embeddings=stats["embeddings"], predictions=sum(h.get("predictions", 0) for h in stats["heads"]))
