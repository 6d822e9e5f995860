"""Lab Streaming Layer outlets (pylsl, imported only when this sink is created).

One outlet per (device, modality, representation): 192 float32 channels, irregular rate, one sample
per embedding, stamped with the window's end converted to the LSL clock. Prediction records get outlets of their
own, one per subject and head (``<prefix>/<subject>/prediction``, type ``Prediction``): one channel per class,
labelled with the class name, carrying the probabilities. pylsl's wheels bundle liblsl
for x86-64 only; on a Jetson install liblsl from its release page (or build it) and set PYLSL_LIB.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from biomoe_edge.runtime.records import EmbeddingRecord, PredictionRecord
from biomoe_edge.runtime.sinks.base import Sink
from biomoe_edge.vocabulary import EMBEDDING_DIM


def import_pylsl():
    """pylsl, or RuntimeError saying why it cannot load (missing package or missing liblsl)."""
    try:
        import pylsl
    except ImportError as exc:  # pylsl raises RuntimeError itself when liblsl is missing
        raise RuntimeError(f"the LSL sink needs pylsl (pip install pylsl): {exc}") from None
    except RuntimeError as exc:
        raise RuntimeError(f"pylsl is installed but cannot load liblsl: {exc}") from None
    return pylsl


class LslSink(Sink):
    name = "lsl"

    def __init__(self, *, stream_prefix: str = "biomoe", stream_type: str = "Embedding", max_buffered_s: int = 360,
                 prediction_type: str = "Prediction"):
        self._pylsl = import_pylsl()
        self.stream_prefix = stream_prefix
        self.stream_type = stream_type
        self.max_buffered_s = max_buffered_s
        self.prediction_type = prediction_type
        self._outlets: dict[tuple, object] = {}
        self.samples_pushed = 0

    def stream_name(self, device: str, modality: str, representation: str) -> str:
        return f"{self.stream_prefix}/{device}/{modality}/{representation}"

    def prediction_stream_name(self, subject: str) -> str:
        return f"{self.stream_prefix}/{subject}/prediction"

    def _prediction_outlet(self, record: PredictionRecord):
        head_sha = str(record.head.get("sha256", ""))
        key = ("prediction", record.subject, head_sha, record.classes)
        outlet = self._outlets.get(key)
        if outlet is None:
            lsl = self._pylsl
            name = self.prediction_stream_name(record.subject)
            info = lsl.StreamInfo(name, self.prediction_type, len(record.classes), lsl.IRREGULAR_RATE, lsl.cf_float32,
                                  f"{name}/{head_sha[:16]}")
            desc = info.desc()
            desc.append_child_value("subject", record.subject)
            channels = desc.append_child("channels")
            for label in record.classes:
                channel = channels.append_child("channel")
                channel.append_child_value("label", label)
                channel.append_child_value("unit", "probability")
                channel.append_child_value("type", "Probability")
            for group, identity in (("head", record.head), ("model", record.model)):
                child = desc.append_child(group)
                for tag, value in identity.items():
                    child.append_child_value(str(tag), str(value))
            outlet = lsl.StreamOutlet(info, 1, self.max_buffered_s)
            self._outlets[key] = outlet
        return outlet

    def _outlet(self, record: EmbeddingRecord):
        key = (record.device, record.modality, record.representation)
        outlet = self._outlets.get(key)
        if outlet is None:
            lsl = self._pylsl
            name = self.stream_name(*key)
            info = lsl.StreamInfo(name, self.stream_type, EMBEDDING_DIM, lsl.IRREGULAR_RATE, lsl.cf_float32, name)
            desc = info.desc()
            for tag, value in (("device", record.device), ("modality", record.modality),
                               ("representation", record.representation)):
                desc.append_child_value(tag, value)
            for group, identity in (("model", record.model), ("engine", record.engine)):
                child = desc.append_child(group)
                for tag, value in identity.items():
                    child.append_child_value(str(tag), str(value))
            outlet = lsl.StreamOutlet(info, 1, self.max_buffered_s)
            self._outlets[key] = outlet
        return outlet

    def write(self, records: Sequence[EmbeddingRecord]) -> None:
        # Gateway times are time.monotonic(); convert through "now" so the stamp is right on any clock.
        offset = self._pylsl.local_clock() - time.monotonic()
        for record in records:
            if isinstance(record, PredictionRecord):
                self._prediction_outlet(record).push_sample(record.probabilities.tolist(), record.window_end_s + offset)
            else:
                self._outlet(record).push_sample(record.embedding.tolist(), record.window_end_s + offset)
            self.samples_pushed += 1

    def close(self) -> None:
        self._outlets.clear()  # pylsl destroys an outlet when its last reference goes

    def stats(self) -> dict:
        return {"outlets": len(self._outlets), "samples_pushed": self.samples_pushed}
