"""MQTT publisher (paho-mqtt 2.x, imported only when this sink is created).

One JSON message per record (``EmbeddingRecord.to_dict()``) on ``topic`` formatted with the record's
``device``, ``modality`` and ``representation``. paho's network thread connects and reconnects with
backoff; while the broker is unreachable records wait in a bounded queue (``max_queue``) that is sent in
order on reconnect; when it is full the oldest record is dropped and counted in ``dropped_offline``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Sequence

from biomoe_edge.runtime.records import EmbeddingRecord
from biomoe_edge.runtime.sinks.base import Sink

log = logging.getLogger(__name__)


def import_paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise RuntimeError(f"the MQTT sink needs paho-mqtt>=2 (pip install paho-mqtt): {exc}") from None
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise RuntimeError("the MQTT sink needs paho-mqtt>=2.0 (CallbackAPIVersion missing)")
    return mqtt


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, host: str = "localhost", port: int = 1883, *, topic: str = "biomoe/{device}/{modality}/{representation}",
                 qos: int = 1, client_id: str = "", keepalive_s: int = 30, max_queue: int = 10000,
                 reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0,
                 username: str | None = None, password: str | None = None):
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        mqtt = import_paho()
        self._mqtt = mqtt
        self.host, self.port, self.topic, self.qos = host, int(port), topic, qos
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self.max_queue = max_queue
        self.published = 0
        self.dropped_offline = 0
        self.connections = 0
        self._connected = False
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        # paho's own queue is left unbounded: it holds only what was published while connected and is not
        # yet acknowledged (resent after a reconnect, as QoS 1/2 require). Records made while disconnected
        # wait in our bounded queue instead. (No on_publish callback: paho calls it holding its message lock,
        # which write() may be waiting for while holding ours.)
        self._client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        self._client.connect_async(host, self.port, keepalive_s)
        self._client.loop_start()

    # -- paho's network thread -----------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        with self._lock:
            self._connected = True
            self.connections += 1
            if self.connections > 1:
                log.info("MQTT reconnected to %s:%s; sending %d queued records", self.host, self.port, len(self._queue))
            self._drain_locked()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            if self._connected:
                log.warning("MQTT connection to %s:%s lost (%s); queueing up to %d records",
                            self.host, self.port, reason_code, self.max_queue)
            self._connected = False

    # -- the gateway's side --------------------------------------------------------------------------
    def _drain_locked(self) -> None:
        while self._queue and self._connected:
            topic, payload = self._queue[0]
            info = self._client.publish(topic, payload, qos=self.qos)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:  # the link went down under us: keep it queued
                if info.rc == self._mqtt.MQTT_ERR_NO_CONN:
                    self._connected = False
                return
            self._queue.popleft()
            self.published += 1

    def _enqueue_locked(self, topic: str, payload: bytes) -> None:
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped_offline += 1
        self._queue.append((topic, payload))

    def write(self, records: Sequence[EmbeddingRecord]) -> None:
        with self._lock:
            for record in records:
                topic = self.topic.format(device=record.device, modality=record.modality,
                                          representation=record.representation)
                self._enqueue_locked(topic, json.dumps(record.to_dict()).encode())
            self._drain_locked()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self, timeout_s: float = 2.0) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def stats(self) -> dict:
        return {"published": self.published, "queued": self.queued, "dropped_offline": self.dropped_offline,
                "connections": self.connections}
