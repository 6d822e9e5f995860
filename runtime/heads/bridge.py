"""A bridge folder served like a head (``[[heads]]``): ``bridge.json`` + ``bridge.onnx``, written by
``biomoe-edge bridge fit`` (docs/bridge.md). No torch.

A bridge carries a head trained on one modality (the old one, say ECG) to a wearable that measures another (the
new one, say PPG). Its graph reads the new modality's features at one Tiny-BioMoE tap (``tap`` in bridge.json,
the bridge's input position), not the image: ``tap.<name>`` (B, dim) float32 in, ``probabilities`` (B, C) out.
The engine returns those features from the run that embeds the window (an engine graph exported with the tap,
``runtime/engines/taps.py``), so :class:`BridgeStage` runs each bridge on the rows of that run that hold its
input (``"modality:representation"``): a bridged window costs the bridge and the rest of the backbone after its
output position, never a second backbone run. It emits one :class:`~biomoe_edge.runtime.records.PredictionRecord`
per window, ``via_bridge=True``. A bridge waits for nothing (one input), so there is no deadline; a window the
ingest withheld for quality is never rendered and is counted there; a failing graph is counted here
(``bridge_failed``).

Errors are :class:`BridgeError` (a :class:`~biomoe_edge.runtime.heads.head.HeadError`, so whoever catches a head's
error catches a bridge's), naming the file and what is wrong: the refusal of a bridge fitted on another backbone
than the running engine's, and of a bridge whose tap the running engine does not return.
"""

from __future__ import annotations

import collections
import math
import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.runtime.engines.taps import tap_output_name
from biomoe_edge.runtime.records import PredictionRecord
from biomoe_edge.timing import percentiles_ms

from .binding import check_binding
from .head import OUTPUT_NAME, HeadError, ServedGraph, folder_given, open_verified_graph, read_served_manifest

MANIFEST_NAME = "bridge.json"
GRAPH_NAME = "bridge.onnx"
TIMING_HISTORY = 10_000


class BridgeError(HeadError):
    """A bridge folder cannot be served: not a bridge, inconsistent, or fitted on another backbone."""


def is_bridge_folder(path) -> bool:
    """Whether ``path`` (a folder, or its bridge.json / bridge.onnx) is a bridge folder: it holds bridge.json."""
    path = folder_given(path, (MANIFEST_NAME, GRAPH_NAME))
    return path.is_dir() and (path / MANIFEST_NAME).is_file()


def bridge_folder(path) -> pathlib.Path:
    """The folder of a bridge given as the folder, its bridge.json or its bridge.onnx; BridgeError when none."""
    path = folder_given(path, (MANIFEST_NAME, GRAPH_NAME))
    if not path.exists():
        raise BridgeError(f"{path}: no such bridge folder")
    if not path.is_dir() or not (path / MANIFEST_NAME).is_file():
        raise BridgeError(f"{path} is not a bridge folder: no {MANIFEST_NAME} in it (biomoe-edge bridge fit writes "
                          "one)")
    return path


def read_bridge_manifest(path) -> dict:
    """bridge.json of the bridge at ``path``, checked for form (kind, one input, classes, backbone, sha256); no
    ONNX Runtime needed (configuration checks use it)."""
    where = bridge_folder(path) / MANIFEST_NAME
    manifest = read_served_manifest(where, kind="bridge", graph_name=GRAPH_NAME, error=BridgeError,
                                    made_on="the bridge was fitted on",
                                    one_input_is="the new modality's windows, drawn so, whose features it reads")
    tap = manifest.get("tap")
    if not isinstance(tap, str) or not tap:
        raise BridgeError(f"{where}: no tap (the Tiny-BioMoE input position whose features the graph reads): a "
                          "bridge exported by an earlier SDK, whose graph ran the whole backbone again on the "
                          "image; fit it again with `biomoe-edge bridge fit`")
    return manifest


@dataclass
class Bridge(ServedGraph):
    """A loaded bridge: ``predict`` runs it on the features at its tap. Reported on as a ``Head`` is."""

    error = BridgeError
    refusal_advice = ("its old head reads embeddings of those weights (fit the bridge again for the running model, "
                      "or run the model it was fitted on)")

    @property
    def modality(self) -> str:
        return self.input_types[0].modality.value

    @property
    def representation(self) -> str:
        return self.input_types[0].representation.value

    @property
    def tap(self) -> str:
        """The Tiny-BioMoE input tap whose pooled features the graph reads (the bridge's input position)."""
        return self.manifest["tap"]

    @property
    def input_name(self) -> str:
        return tap_output_name(self.tap)

    @property
    def old_inputs(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("old_inputs") or ())

    @property
    def window_length_s(self) -> float | None:
        """Length of the paired windows the bridge was fitted on (None: not recorded)."""
        value = (self.manifest.get("data") or {}).get("window_s")
        return None if value is None else float(value)

    def predict(self, features) -> np.ndarray:
        """Probabilities (B, C) float32 of ``features`` (B, dim): the new modality's pooled features at ``tap``."""
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.tap_dim:
            raise BridgeError(f"bridge {self.path}: {self.input_name} must be (B, {self.tap_dim}), got "
                              f"{features.shape}")
        return self.session.run([OUTPUT_NAME], {self.input_name: features})[0]

    @property
    def tap_dim(self) -> int:
        return int(self.session.get_inputs()[0].shape[1])


def load_bridge(path, *, threads: int = 0) -> Bridge:
    """Load and check the bridge at ``path`` (its folder, bridge.json or bridge.onnx) on ONNX Runtime's CPU
    provider. ``threads``: intra-op threads (0: ONNX Runtime's default)."""
    manifest = read_bridge_manifest(path)
    folder = bridge_folder(path)
    graph = folder / GRAPH_NAME
    session = open_verified_graph(graph, folder / MANIFEST_NAME, manifest["sha256"], threads=threads,
                                  error=BridgeError, made_by="the fit")
    expected = tap_output_name(manifest["tap"])
    nodes = session.get_inputs()
    if [n.name for n in nodes] != [expected]:
        raise BridgeError(f"{graph}: graph inputs {[n.name for n in nodes]}, expected [{expected!r}] (the features "
                          f"at the tap {manifest['tap']!r} that {MANIFEST_NAME} names)")
    shape = list(nodes[0].shape)
    if nodes[0].type != "tensor(float)" or len(shape) != 2 or not isinstance(shape[1], int):
        raise BridgeError(f"{graph}: {expected} is {nodes[0].type} {shape}, expected float32 (B, dim)")
    outputs = [o.name for o in session.get_outputs()]
    if outputs != [OUTPUT_NAME]:
        raise BridgeError(f"{graph}: graph outputs {outputs}, expected [{OUTPUT_NAME!r}]")
    bridge = Bridge(folder.resolve(), manifest, session)
    probe = bridge.predict(np.zeros((1, shape[1]), np.float32))
    if probe.shape != (1, len(bridge.classes)):
        raise BridgeError(f"{graph}: gives {probe.shape[1:]} probabilities per window, but {MANIFEST_NAME} names "
                          f"{len(bridge.classes)} classes {list(bridge.classes)}")
    check_binding(manifest, session, folder / MANIFEST_NAME, graph, BridgeError)
    return bridge


def check_engine_taps(bridges, engine_taps, engine: str) -> None:
    """Refuse (BridgeError) a bridge whose tap the engine (described by ``engine``) does not return beside its
    embeddings (``engine_taps``), naming both and how to export one that does."""
    for bridge in bridges:
        if bridge.tap not in engine_taps:
            raise BridgeError(
                f"bridge {bridge.path} reads Tiny-BioMoE's features at the tap {bridge.tap!r}, but the engine "
                f"{engine} returns {('the taps ' + ', '.join(engine_taps)) if engine_taps else 'no taps'}: export "
                f"the engine's graph with `biomoe-edge export --taps {bridge.tap}` (taps of every bridge served: "
                f"{', '.join(sorted({b.tap for b in bridges}))})")


@dataclass
class _BridgeState:
    bridge: Bridge
    subjects: frozenset | None
    predictions: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)
    latencies_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TIMING_HISTORY))


class BridgeStage:
    """Runs bridges on the engine's tap features of the windows of their input; no I/O.

    ``bridges``: loaded bridges (:func:`load_bridge`). ``subjects``: device -> subject (``[[subjects]]``; a device
    in no subject is its own). ``bridge_subjects``: per bridge, the subjects it serves (None or empty: all).
    """

    def __init__(self, bridges, *, subjects=None, bridge_subjects=None, clock=time.monotonic):
        bridges = list(bridges)
        served = list(bridge_subjects or [])
        self.subjects = dict(subjects or {})
        self.clock = clock
        self.states = [_BridgeState(bridge, frozenset(served[i]) if i < len(served) and served[i] else None)
                       for i, bridge in enumerate(bridges)]
        self.bridge_time_s: collections.deque = collections.deque(maxlen=TIMING_HISTORY)

    @property
    def bridges(self) -> list:
        """The served bridges, in the order they were given."""
        return [state.bridge for state in self.states]

    def subject_of(self, device: str) -> str:
        return self.subjects.get(device, device)

    @property
    def taps(self) -> tuple[str, ...]:
        """The taps the bridges read: what the engine returns beside the embeddings."""
        return tuple(dict.fromkeys(state.bridge.tap for state in self.states))

    def run(self, jobs, taps: dict, model: dict) -> list[PredictionRecord]:
        """Predictions of every bridge on the ``jobs`` (``runtime.scheduler.Job``, in buffer order) whose window
        and representation are its input; ``taps``: tap name -> the engine's pooled features of those jobs from
        the run that embedded them (row i = jobs[i]); ``model``: the pipeline's model identity."""
        predictions = []
        for state in self.states:
            bridge = state.bridge
            rows = [i for i, job in enumerate(jobs)
                    if job.window.modality == bridge.modality and job.representation == bridge.representation
                    and (state.subjects is None or self.subject_of(job.window.device) in state.subjects)]
            if not rows:
                continue
            t0 = time.perf_counter()
            try:
                probabilities = bridge.predict(taps[bridge.tap][rows])
            except Exception as exc:  # noqa: BLE001 - a failing bridge must not stop the gateway
                state.dropped["bridge_failed"] += len(rows)
                state.errors[type(exc).__name__] += 1
                continue
            self.bridge_time_s.append(time.perf_counter() - t0)
            now = self.clock()
            for i, row in zip(rows, probabilities):
                window = jobs[i].window
                prediction = PredictionRecord(
                    subject=self.subject_of(window.device), devices=(window.device,),
                    window_start_s=float(window.start_s), window_end_s=float(window.end_s), probabilities=row,
                    classes=bridge.classes, inputs=bridge.inputs, modalities=(window.modality,), via_bridge=True,
                    quality=tuple(window.quality), head=bridge.identity, model=dict(model),
                    arrival_time_s=float(window.arrival_time_s), emitted_time_s=now)
                if math.isfinite(prediction.latency_s):
                    state.latencies_s.append(prediction.latency_s)
                predictions.append(prediction)
            state.predictions += len(rows)
        return predictions

    def stats(self) -> list[dict]:
        """One entry per bridge, in the form of ``FusionStage.stats`` (plus ``kind``)."""
        return [{
            "head": str(state.bridge.path),
            "kind": "bridge",
            "inputs": list(state.bridge.inputs),
            "old_inputs": list(state.bridge.old_inputs),
            "predictions": state.predictions,
            "windows_dropped": dict(state.dropped),
            "errors": dict(state.errors),
            "latency_ms": percentiles_ms(state.latencies_s),
        } for state in self.states]
