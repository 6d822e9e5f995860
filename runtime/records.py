"""What the gateway hands to the application: one embedding of one window of one stream."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.vocabulary import EMBEDDING_DIM


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

    def to_dict(self) -> dict:
        """JSON-ready form (the embedding as a list of floats) used by the file, MQTT and console sinks."""
        return {
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
