"""What the gateway hands to the application: one embedding of one window of one stream (EmbeddingRecord), or a
task head's prediction for one window time of one subject (PredictionRecord); and, for the uplink, the gateway's
health at one moment (StatusRecord)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.vocabulary import EMBEDDING_DIM


#: The namespace of every ``record_id`` (a UUID 5 of the record's identifying fields).
RECORD_ID_NAMESPACE = uuid.UUID("5b0f3c1e-9a4d-5c3e-8f2b-b10e0ed6e001")


def make_record_id(kind: str, *parts) -> str:
    """A stable id of one record: the UUID 5 of its kind and identifying fields (times in whole microseconds, so
    a value read back from JSON gives the same id). The same window gives the same id however often it is sent
    (QoS 1 duplicates, an outbox replayed after a reconnect), so a consumer de-duplicates by it."""
    fields = [round(p * 1e6) if isinstance(p, float) else p for p in parts]
    return str(uuid.uuid5(RECORD_ID_NAMESPACE, json.dumps([kind, *fields], separators=(",", ":"))))


@dataclass(frozen=True)
class EmbeddingRecord:
    """One 192-D embedding of one window, with everything needed to trace where it came from.

    Times are gateway monotonic seconds (``time.monotonic()``), the clock the firmware bridge maps every
    device clock to, so records of different devices line up.
    """

    device: str
    modality: str
    representation: str
    window_start_s: float
    window_end_s: float
    embedding: np.ndarray
    #: Quality flags the ingest set on the window (empty when it passed every check).
    quality: tuple[str, ...] = ()
    #: Model identity: at least ``sha256`` and ``precision`` (from the engine's manifest).
    model: dict = field(default_factory=dict)
    #: Engine identity: at least ``kind`` and ``device`` (e.g. onnxruntime/cpu, tensorrt/cuda:0).
    engine: dict = field(default_factory=dict)
    #: Gateway time when the newest sample of the window arrived over BLE.
    arrival_time_s: float = float("nan")
    #: Gateway time when the embedding was ready.
    emitted_time_s: float = float("nan")

    def __post_init__(self):
        embedding = np.asarray(self.embedding, dtype=np.float32)
        if embedding.shape != (EMBEDDING_DIM,):
            raise ValueError(f"embedding must have shape ({EMBEDDING_DIM},), got {embedding.shape}")
        object.__setattr__(self, "embedding", embedding)
        object.__setattr__(self, "quality", tuple(self.quality))

    @property
    def latency_s(self) -> float:
        """From the arrival of the window's newest sample to the embedding."""
        return self.emitted_time_s - self.arrival_time_s

    @property
    def record_id(self) -> str:
        """Stable id from device, modality, representation and window start (:func:`make_record_id`)."""
        return make_record_id("embedding", self.device, self.modality, self.representation, float(self.window_start_s))

    def to_dict(self) -> dict:
        """JSON-ready form (the embedding as a list of floats) used by the file, MQTT and console sinks."""
        return {
            "record": "embedding",
            "record_id": self.record_id,
            "device": self.device,
            "modality": self.modality,
            "representation": self.representation,
            "window_start_s": self.window_start_s,
            "window_end_s": self.window_end_s,
            "quality": list(self.quality),
            "model": dict(self.model),
            "engine": dict(self.engine),
            "arrival_time_s": self.arrival_time_s,
            "emitted_time_s": self.emitted_time_s,
            "embedding": self.embedding.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "EmbeddingRecord":
        return cls(
            device=data["device"],
            modality=data["modality"],
            representation=data["representation"],
            window_start_s=float(data["window_start_s"]),
            window_end_s=float(data["window_end_s"]),
            embedding=np.asarray(data["embedding"], dtype=np.float32),
            quality=tuple(data.get("quality", ())),
            model=dict(data.get("model", {})),
            engine=dict(data.get("engine", {})),
            arrival_time_s=float(data.get("arrival_time_s", float("nan"))),
            emitted_time_s=float(data.get("emitted_time_s", float("nan"))),
        )


@dataclass(frozen=True)
class PredictionRecord:
    """One task head's decision for one window time of one subject (``runtime.heads``).

    A head fuses the embeddings of its ``inputs`` (``"modality:representation"``, possibly from several
    ``devices`` of the subject) whose windows end at the same time; a bridged head (``via_bridge``) reads the
    new modality's image instead. ``probabilities`` follow ``classes``; ``predicted`` is the most probable class.
    Times are gateway seconds, as in :class:`EmbeddingRecord`.
    """

    subject: str
    devices: tuple[str, ...]
    window_start_s: float
    window_end_s: float
    probabilities: np.ndarray
    classes: tuple[str, ...]
    #: ``"modality:representation"`` of every input the head used, in the head's order.
    inputs: tuple[str, ...] = ()
    #: The modalities the inputs came from (for a bridged head: the new modality, the wearable's).
    modalities: tuple[str, ...] = ()
    via_bridge: bool = False
    #: Union of the inputs' window quality flags (empty when every input passed every check).
    quality: tuple[str, ...] = ()
    #: Head identity: at least ``path``, ``sha256`` (of its ONNX graph) and ``kind`` ("head" | "bridge").
    head: dict = field(default_factory=dict)
    #: Identity of the Tiny-BioMoE model that made the inputs (``biomoe_edge.identity.model_identity``).
    model: dict = field(default_factory=dict)
    #: Gateway time when the newest sample of the newest input window arrived over BLE.
    arrival_time_s: float = float("nan")
    #: Gateway time when the prediction was ready.
    emitted_time_s: float = float("nan")

    def __post_init__(self):
        probabilities = np.asarray(self.probabilities, dtype=np.float32)
        classes = tuple(str(c) for c in self.classes)
        if probabilities.shape != (len(classes),) or not classes:
            raise ValueError(f"probabilities must have one value per class ({len(classes)}), got shape "
                             f"{probabilities.shape}")
        object.__setattr__(self, "probabilities", probabilities)
        object.__setattr__(self, "classes", classes)
        for name in ("devices", "inputs", "modalities", "quality"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def predicted(self) -> str:
        """The most probable class (the first of equals, in ``classes`` order)."""
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def latency_s(self) -> float:
        """From the arrival of the newest input window's newest sample to the prediction."""
        return self.emitted_time_s - self.arrival_time_s

    @property
    def record_id(self) -> str:
        """Stable id from the head (its graph's sha256, else its path), the subject and the window time."""
        head = self.head.get("sha256") or str(self.head.get("path", ""))
        return make_record_id("prediction", head, self.subject, float(self.window_start_s), float(self.window_end_s))

    def to_dict(self) -> dict:
        """JSON-ready form, used by the file, MQTT and console sinks (``"record": "prediction"`` tells it from an
        embedding record in a mixed stream)."""
        return {
            "record": "prediction",
            "record_id": self.record_id,
            "subject": self.subject,
            "devices": list(self.devices),
            "window_start_s": self.window_start_s,
            "window_end_s": self.window_end_s,
            "classes": list(self.classes),
            "probabilities": self.probabilities.tolist(),
            "predicted": self.predicted,
            "inputs": list(self.inputs),
            "modalities": list(self.modalities),
            "via_bridge": self.via_bridge,
            "quality": list(self.quality),
            "head": dict(self.head),
            "model": dict(self.model),
            "arrival_time_s": self.arrival_time_s,
            "emitted_time_s": self.emitted_time_s,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PredictionRecord":
        return cls(
            subject=data["subject"],
            devices=tuple(data.get("devices", ())),
            window_start_s=float(data["window_start_s"]),
            window_end_s=float(data["window_end_s"]),
            probabilities=np.asarray(data["probabilities"], dtype=np.float32),
            classes=tuple(data["classes"]),
            inputs=tuple(data.get("inputs", ())),
            modalities=tuple(data.get("modalities", ())),
            via_bridge=bool(data.get("via_bridge", False)),
            quality=tuple(data.get("quality", ())),
            head=dict(data.get("head", {})),
            model=dict(data.get("model", {})),
            arrival_time_s=float(data.get("arrival_time_s", float("nan"))),
            emitted_time_s=float(data.get("emitted_time_s", float("nan"))),
        )


@dataclass(frozen=True)
class StatusRecord:
    """The gateway's health at one moment, for the uplink (MQTT ``status_topic``): what ``/healthz`` says, and
    enough counters to tell a quiet gateway from a dead one upstream. Times as in :class:`EmbeddingRecord`."""

    gateway: str
    time_s: float
    healthy: bool
    #: why it is unhealthy (``runtime.web.health``); empty when healthy
    reasons: tuple[str, ...] = ()
    #: wall-clock time, ISO 8601 UTC (upstream systems have no access to the gateway's monotonic clock)
    wall_time: str = ""
    devices: int = 0
    devices_connected: int = 0
    embeddings: int = 0
    predictions: int = 0

    def __post_init__(self):
        object.__setattr__(self, "reasons", tuple(str(r) for r in self.reasons))

    @property
    def record_id(self) -> str:
        """Stable id from the gateway and the time."""
        return make_record_id("status", self.gateway, float(self.time_s))

    def to_dict(self) -> dict:
        return {"record": "status", "record_id": self.record_id, "gateway": self.gateway, "time_s": self.time_s,
                "wall_time": self.wall_time, "healthy": self.healthy, "reasons": list(self.reasons),
                "devices": self.devices, "devices_connected": self.devices_connected, "embeddings": self.embeddings,
                "predictions": self.predictions}

    @classmethod
    def from_dict(cls, data: dict) -> "StatusRecord":
        return cls(gateway=data["gateway"], time_s=float(data["time_s"]), healthy=bool(data["healthy"]),
                   reasons=tuple(data.get("reasons", ())), wall_time=data.get("wall_time", ""),
                   devices=int(data.get("devices", 0)), devices_connected=int(data.get("devices_connected", 0)),
                   embeddings=int(data.get("embeddings", 0)), predictions=int(data.get("predictions", 0)))


def record_from_dict(data: dict):
    """An :class:`EmbeddingRecord`, :class:`PredictionRecord` or :class:`StatusRecord` from its ``to_dict()`` form."""
    if data.get("record") == "status":
        return StatusRecord.from_dict(data)
    return PredictionRecord.from_dict(data) if data.get("record") == "prediction" else EmbeddingRecord.from_dict(data)


def jsonl_lines(records) -> bytes:
    """``records`` as JSON Lines (one ``to_dict()`` a line, UTF-8): what the JSONL sink and the demo's embeddings
    file write, and ``record_from_dict`` reads back."""
    import json

    return "".join(json.dumps(r.to_dict(), allow_nan=True) + "\n" for r in records).encode("utf-8")
