"""MQTT publisher (paho-mqtt 2.x, imported only when this sink is created).

One JSON message per record (``to_dict()``): embedding records on ``topic`` (fields ``{device}``,
``{modality}``, ``{representation}``), prediction records on ``prediction_topic`` (field ``{subject}``), the
gateway's status records (``biomoe-edge run``, every 30 s) on ``status_topic``. Field
values are escaped (``runtime.sinks.topics``) so a device name cannot add levels or wildcards.

What the sink holds is bounded by ``max_queue``, paho's own queue included: records wait in the sink's queue
and at most ``inflight`` of them are handed to paho at a time (paho keeps a QoS 1/2 message until the broker
acknowledges it, and resends it after a reconnect). When the bound is reached the oldest waiting record is
dropped and counted (``dropped_offline``). A record whose topic paho refuses is dropped and counted alone
(``dropped_unpublishable``); the others go on. At close the sink waits up to ``close_timeout_s`` for what it
holds to be acknowledged and counts the rest (``dropped_at_close``).

With ``outbox_dir`` the sink stores and forwards (``runtime.sinks.outbox``): while the broker is unreachable, and
when the memory queue is full, records go to a disk outbox (crash-safe, in order, at most ``outbox_max_mb``; over
it the oldest are evicted and counted, ``outbox_evicted``); what waits in memory when the link drops moves there
too. Once connected, the backlog is published in order at up to ``outbox_rate`` records a second, beside the
live records (which go first), and a row leaves the outbox only when the broker acknowledged it (QoS 1 or 2).
A restart sends what an earlier run left. Consumers drop duplicates by ``record_id`` (docs/records.md).

TLS: ``tls_ca_file`` (the CA of the broker's certificate; hostname checked unless ``tls_verify_hostname`` is
False), optional ``tls_cert_file`` and ``tls_key_file`` for a client certificate. The password comes from
``password_file`` or the environment variable named by ``password_env`` (or ``password``).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pathlib
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from biomoe_edge.runtime.records import PredictionRecord, StatusRecord
from biomoe_edge.runtime.sinks.base import Sink
from biomoe_edge.runtime.sinks.outbox import Outbox
from biomoe_edge.runtime.sinks.topics import (EMBEDDING_TOPIC_FIELDS, PREDICTION_TOPIC_FIELDS, check_topic_template,
                                              format_topic)

log = logging.getLogger(__name__)


def import_paho():
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise RuntimeError(f"the MQTT sink needs paho-mqtt>=2 (pip install paho-mqtt): {exc}") from None
    if not hasattr(mqtt, "CallbackAPIVersion"):
        raise RuntimeError("the MQTT sink needs paho-mqtt>=2.0 (CallbackAPIVersion missing)")
    return mqtt


def resolve_password(password: str | None = None, password_file=None, password_env: str | None = None) -> str | None:
    """The password from exactly one source; a missing file or variable is an error that names it."""
    given = [name for name, value in (("password", password), ("password_file", password_file),
                                      ("password_env", password_env)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give one of password, password_file, password_env, not {' and '.join(given)}")
    if password_file is not None:
        path = pathlib.Path(password_file)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"password_file {path}: {exc.strerror or exc}") from None
        if mode & 0o004:
            log.warning("password_file %s is readable by every user (mode %o): chmod 600 or 640 it", path, mode & 0o777)
        return text.rstrip("\r\n")
    if password_env is not None:
        value = os.environ.get(password_env)
        if value is None:
            raise ValueError(f"password_env: the environment variable {password_env} is not set")
        return value
    return password


def tls_context(ca_file, cert_file=None, key_file=None, *, verify_hostname: bool = True) -> ssl.SSLContext:
    """A client TLS context that trusts ``ca_file`` only; errors name the file."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"tls_ca_file {ca_file}: {exc}") from None
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"tls_cert_file {cert_file} / tls_key_file {key_file}: {exc}") from None
    context.check_hostname = verify_hostname
    return context


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, host: str = "localhost", port: int = 1883, *,
                 topic: str = "biomoe/{device}/{modality}/{representation}",
                 prediction_topic: str = "biomoe/{subject}/prediction", status_topic: str = "biomoe/status",
                 qos: int = 1, client_id: str = "", keepalive_s: int = 30, max_queue: int = 10000,
                 inflight: int = 20, reconnect_min_s: float = 1.0, reconnect_max_s: float = 30.0,
                 close_timeout_s: float = 2.0, username: str | None = None, password: str | None = None,
                 password_file=None, password_env: str | None = None, tls_ca_file=None, tls_cert_file=None,
                 tls_key_file=None, tls_verify_hostname: bool = True, outbox_dir=None, outbox_max_mb: float = 256.0,
                 outbox_rate: float = 100.0):
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        if outbox_dir is not None and qos == 0:
            raise ValueError("outbox_dir needs qos 1 or 2: a QoS 0 message is never acknowledged, so the outbox could "
                             "not know what arrived")
        if outbox_rate <= 0:
            raise ValueError(f"outbox_rate must be positive, got {outbox_rate!r}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        check_topic_template(topic, EMBEDDING_TOPIC_FIELDS)
        check_topic_template(prediction_topic, PREDICTION_TOPIC_FIELDS)
        check_topic_template(status_topic, ())
        secret = resolve_password(password, password_file, password_env)
        context = None if tls_ca_file is None else tls_context(tls_ca_file, tls_cert_file, tls_key_file,
                                                               verify_hostname=tls_verify_hostname)
        if context is None and tls_cert_file is not None:
            raise ValueError("tls_cert_file needs tls_ca_file")
        mqtt = import_paho()
        self._mqtt = mqtt
        self.host, self.port, self.topic, self.prediction_topic, self.qos = host, int(port), topic, prediction_topic, qos
        self.status_topic = status_topic
        self.max_queue = max_queue
        self.inflight = max(1, min(inflight, max_queue))
        self.close_timeout_s = close_timeout_s
        self.tls = context is not None
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        # Handed to paho / acknowledged by the broker. _handed changes under _lock; _acked only in paho's thread
        # (on_publish, which paho calls holding its message lock: taking ours there could deadlock with write()).
        self._handed = 0
        self._acked = 0
        self.dropped_offline = 0
        self.dropped_unpublishable = 0
        self.dropped_at_close = 0
        self.connections = 0
        self.last_error: str | None = None
        self._logged_error: str | None = None
        self._connected = False
        self._refused = False
        self._closed = False
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username is not None:
            self._client.username_pw_set(username, secret)
        if context is not None:
            self._client.tls_set_context(context)
        self._context = context
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_publish = self._on_publish
        self._client.reconnect_delay_set(min_delay=reconnect_min_s, max_delay=reconnect_max_s)
        self._outbox = None
        if outbox_dir is not None and outbox_max_mb > 0:
            self._outbox = Outbox(outbox_dir, int(outbox_max_mb * (1 << 20)))
        self.outbox_rate = float(outbox_rate)
        self._outbox_cursor = 0  # the last outbox row handed to paho
        self._outbox_mids: dict[int, int] = {}  # paho message id -> outbox row, until acknowledged
        self._early_acks: set[int] = set()  # acknowledged before publish() returned its id
        self._mid_lock = threading.Lock()  # never held while calling paho
        self.backlog_published = 0
        self._backlog_since: float | None = None
        #: seconds from (re)connecting with a backlog to the outbox being empty, per catch-up
        self.catch_up_s: list[float] = []
        self._client.connect_async(host, self.port, keepalive_s)
        self._client.loop_start()
        self._drainer = None
        if self._outbox is not None:
            self._drainer = threading.Thread(target=self._drain_outbox_loop, name="mqtt-outbox", daemon=True)
            self._drainer.start()

    # -- paho's network thread -----------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        self.last_error = message
        if message != self._logged_error:  # once per distinct problem, not once per retry
            self._logged_error = message
            log.warning("%s", message)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = True  # paho disconnects next: keep this reason, not "closed before accepting"
            self._report(f"MQTT broker {self.host}:{self.port} refused the connection: {reason_code}")
            return
        with self._lock:
            self._connected = True
            self.connections += 1
            self.last_error = self._logged_error = None
            if self.connections > 1:
                log.info("MQTT reconnected to %s:%s; sending %d queued records", self.host, self.port, len(self._queue))
            if self._outbox is not None and self._outbox.records:
                self._backlog_since = time.monotonic()
                self._outbox_cursor = 0  # anything not acknowledged is sent again (duplicates: by record_id)
                log.info("MQTT: sending the outbox's %d records at up to %g a second", self._outbox.records,
                         self.outbox_rate)
            self._drain_locked()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self._lock:
            was_connected, self._connected = self._connected, False
            if self._outbox is not None and self._queue and not self._closed:
                self._outbox.append(self._queue)  # on disk while the link is down
                self._queue.clear()
        refused, self._refused = self._refused, False
        if self._closed or refused:
            return
        if was_connected:
            if self._outbox is not None:
                log.warning("MQTT connection to %s:%s lost (%s); records wait in the outbox %s (up to %.0f MB)",
                            self.host, self.port, reason_code, self._outbox.path, self._outbox.max_bytes / (1 << 20))
            else:
                log.warning("MQTT connection to %s:%s lost (%s); holding up to %d records", self.host, self.port,
                            reason_code, self.max_queue)
        elif reason_code == "Keep alive timeout":  # TCP accepted, then silence: not a TLS mismatch
            self._report(f"MQTT broker {self.host}:{self.port} accepted the connection but did not answer within "
                         f"keepalive_s ({reason_code}); is it frozen or overloaded?")
        else:
            hint = ("a TLS-only listener does this to a plaintext client: set tls_ca_file" if not self.tls else
                    "it may refuse this client's certificate")
            self._report(f"MQTT broker {self.host}:{self.port} closed the connection before accepting it "
                         f"({reason_code}); {hint}")

    def _on_connect_fail(self, client, userdata):
        self._report(self._diagnose())

    def _diagnose(self) -> str:
        """Why connecting fails, found by trying once more by hand (paho does not pass the error on)."""
        where = f"{self.host}:{self.port}"
        try:
            with socket.create_connection((self.host, self.port), timeout=5.0) as sock:
                if self._context is None:
                    return f"MQTT broker {where}: connecting failed"
                with self._context.wrap_socket(sock, server_hostname=self.host):
                    return f"MQTT broker {where}: connecting failed after the TLS handshake"
        except ssl.SSLError as exc:
            plain = "WRONG_VERSION_NUMBER" in str(exc) or "wrong version number" in str(exc)
            return (f"MQTT broker {where}: TLS handshake failed: {exc}"
                    + ("; the port does not speak TLS (a plaintext listener?)" if plain else ""))
        except OSError as exc:
            return f"MQTT broker {where} unreachable: {exc.strerror or exc}"

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self._acked += 1
        if self._outbox is not None:
            with self._mid_lock:
                seq = self._outbox_mids.pop(mid, None)
                if seq is None:
                    self._early_acks.add(mid)
            if seq is not None:
                self._outbox.delete(seq)
        # A slot is free: hand over the next record unless write() or close() is at it right now.
        if self._lock.acquire(blocking=False):
            try:
                self._drain_locked()
            finally:
                self._lock.release()

    # -- the gateway's side ------------------------------------------------------------------------------------
    @property
    def _in_paho(self) -> int:
        return self._handed - self._acked

    def _drain_locked(self) -> None:
        while self._queue and self._connected and self._in_paho < self.inflight:
            topic, payload = self._queue[0]
            try:
                info = self._client.publish(topic, payload, qos=self.qos)
            except ValueError as exc:  # a topic paho will never publish: drop this one record only
                self._queue.popleft()
                self.dropped_unpublishable += 1
                if self.dropped_unpublishable == 1:
                    log.warning("MQTT: cannot publish on %r (%s); such records are dropped and counted", topic, exc)
                continue
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                if info.rc == self._mqtt.MQTT_ERR_NO_CONN and self.qos == 0:
                    self._connected = False
                    return  # a QoS 0 message is not kept by paho when the link is down: keep it queued
                if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
                    return
            # QoS 1/2: paho keeps it (NO_CONN included) and sends it after reconnecting; on_publish counts it.
            self._queue.popleft()
            self._handed += 1

    def _enqueue_locked(self, topic: str, payload: bytes) -> None:
        if self._outbox is not None and (not self._connected or len(self._queue) + self._in_paho >= self.max_queue):
            self._outbox.append([(topic, payload)])
            return
        if len(self._queue) + self._in_paho >= self.max_queue:
            if not self._queue:  # everything held is in paho's hands: the new record is the one dropped
                self.dropped_offline += 1
                return
            self._queue.popleft()
            self.dropped_offline += 1
        self._queue.append((topic, payload))

    #: ``biomoe-edge run`` hands this sink the gateway's StatusRecords (on ``status_topic``)
    takes_status = True

    def topic_of(self, record) -> str:
        if isinstance(record, StatusRecord):
            return self.status_topic
        if isinstance(record, PredictionRecord):
            return format_topic(self.prediction_topic, subject=record.subject)
        return format_topic(self.topic, device=record.device, modality=record.modality,
                            representation=record.representation)

    def write(self, records: Sequence) -> None:
        if self._closed:
            raise RuntimeError("the MQTT sink is closed")
        with self._lock:
            messages = [(self.topic_of(record), json.dumps(record.to_dict()).encode()) for record in records]
            if self._outbox is not None and not self._connected:
                self._outbox.append(messages)  # one transaction per batch
                return
            for topic, payload in messages:
                self._enqueue_locked(topic, payload)
            self._drain_locked()

    # -- the outbox's backlog ------------------------------------------------------------------------------------
    def _drain_outbox_loop(self, tick_s: float = 0.05) -> None:
        """Hand the outbox's rows to paho in order, at most ``outbox_rate`` a second and only into free in-flight
        slots (live records first), while connected."""
        budget = 0.0
        last = time.monotonic()
        while not self._closed:
            time.sleep(tick_s)
            now = time.monotonic()
            budget = min(self.outbox_rate, budget + (now - last) * self.outbox_rate)  # at most one second's worth
            last = now
            with self._lock:
                if self._closed or not self._connected:
                    continue
                if not self._outbox.records:
                    if self._backlog_since is not None and not self._outbox_mids:
                        self.catch_up_s.append(now - self._backlog_since)
                        log.info("MQTT: outbox sent in %.1f s", now - self._backlog_since)
                        self._backlog_since = None
                    continue
                free = self.inflight - self._in_paho
                if self._queue or free <= 0 or budget < 1:
                    continue
                for seq, topic, payload in self._outbox.after(self._outbox_cursor, min(free, int(budget))):
                    info = self._client.publish(topic, payload, qos=self.qos)
                    if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
                        break
                    self._outbox_cursor = seq
                    self._handed += 1
                    self.backlog_published += 1
                    budget -= 1
                    with self._mid_lock:
                        acked_already = info.mid in self._early_acks
                        if acked_already:
                            self._early_acks.discard(info.mid)
                        else:
                            self._outbox_mids[info.mid] = seq
                    if acked_already:
                        self._outbox.delete(seq)

    @property
    def queued(self) -> int:
        """Records held: waiting in the sink's queue or handed to paho and not yet acknowledged."""
        return len(self._queue) + max(0, self._in_paho)

    @property
    def published(self) -> int:
        """Records the broker acknowledged (QoS 1/2) or that were sent (QoS 0)."""
        return self._acked

    @property
    def connected(self) -> bool:
        return self._connected

    def close(self, timeout_s: float | None = None) -> None:
        """Wait up to ``timeout_s`` (default ``close_timeout_s``) for what is held to be acknowledged, count the
        rest in ``dropped_at_close``, then disconnect. Returns within about ``timeout_s`` + 2 s whatever the broker
        does."""
        if self._closed:
            return
        timeout_s = self.close_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while self._connected and self.queued and time.monotonic() < deadline:
            with self._lock:
                self._drain_locked()
            time.sleep(0.01)
        with self._lock:
            self._closed = True
            if self._outbox is not None and self._queue:  # kept on disk: sent by the next run
                self._outbox.append(self._queue)
                self._queue.clear()
            # What paho holds from the outbox stays in the outbox; the rest is lost here.
            left = len(self._queue) + max(0, self._in_paho - len(self._outbox_mids))
            self.dropped_at_close = left
            self._queue.clear()
        if left:
            log.warning("MQTT: %d records not delivered to %s:%s at close (counted in dropped_at_close)", left,
                        self.host, self.port)
        self._client.disconnect()
        self._stop_network_thread()
        if self._drainer is not None:
            self._drainer.join(1.0)
        if self._outbox is not None:
            if self._outbox.records:
                log.info("MQTT: %d records stay in the outbox %s for the next run", self._outbox.records,
                         self._outbox.path)
            self._outbox.close()

    def _stop_network_thread(self) -> None:
        # loop_stop() joins paho's thread, which stays while a frozen broker leaves messages unacknowledged
        # (until keepalive notices): bounded here, and the socket shut to wake it.
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-loop-stop", daemon=True)
        stopper.start()
        stopper.join(2.0)
        if stopper.is_alive():
            sock = self._client.socket()
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            stopper.join(2.0)

    def stats(self) -> dict:
        return {"published": self.published, "queued": self.queued, "held_by_paho": max(0, self._in_paho),
                "dropped_offline": self.dropped_offline, "dropped_unpublishable": self.dropped_unpublishable,
                "dropped_at_close": self.dropped_at_close, "connections": self.connections, "tls": self.tls,
                "last_error": self.last_error,
                **({} if self._outbox is None else {**self._outbox.stats(), "backlog_published": self.backlog_published,
                                                    "catch_up_s": list(self.catch_up_s)})}
