"""A head folder, loaded and checked for serving: ``head.json`` (the manifest ``biomoe-edge train-head`` writes)
and ``head.onnx`` (k inputs ``input_0..`` of (B, 192) float32 -> ``probabilities`` (B, C)), run with ONNX
Runtime on the CPU. No torch.

Everything that makes a folder unusable is a :class:`HeadError` naming the file and what is wrong: a path
that is not a head folder, a manifest that is not JSON or not a head's, a graph that does not match its
manifest (sha256, inputs, classes), and a head trained on another backbone than the running engine's.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.identity import backbone_identity, backbone_mismatch
from biomoe_edge.vocabulary import EMBEDDING_DIM, InputType

from .binding import check_binding

MANIFEST_NAME = "head.json"
GRAPH_NAME = "head.onnx"
#: The graph's I/O names: a head's k inputs are ``input_0..input_{k-1}`` (graph_input_name); heads and bridges
#: alike give ``probabilities``.
INPUT_PREFIX = "input_"
OUTPUT_NAME = "probabilities"
#: head.json versions this SDK reads (docs/heads.md).
HEAD_FORMATS = (1,)
BACKBONE_KEYS = ("checkpoint_sha256", "random_weights", "seed", "precision")


class HeadError(ValueError):
    """A head folder cannot be served: not a head, inconsistent, or trained on another backbone."""


def graph_input_name(position: int) -> str:
    """The name of a head graph's input at ``position`` (the manifest's ``inputs`` order)."""
    return f"{INPUT_PREFIX}{position}"


def folder_given(path, file_names) -> pathlib.Path:
    """A head's or bridge's folder, given as the folder or as one of its files (``file_names``)."""
    path = pathlib.Path(path)
    return path.parent if path.is_file() and path.name in file_names else path


def head_folder(path) -> pathlib.Path:
    """The folder of a head given as the folder, its head.json or its head.onnx; HeadError when it is none."""
    path = folder_given(path, (MANIFEST_NAME, GRAPH_NAME))
    if not path.exists():
        raise HeadError(f"{path}: no such head folder")
    if not path.is_dir():
        raise HeadError(f"{path} is not a head: a head is a folder holding {MANIFEST_NAME} and {GRAPH_NAME}")
    if not (path / MANIFEST_NAME).is_file():
        if (path / "bridge.json").is_file():
            raise HeadError(f"{path} is a bridge folder (bridge.json), not a head: bridges are served by the bridge "
                            "stage, not loaded as heads")
        raise HeadError(f"{path} is not a head folder: no {MANIFEST_NAME} in it (biomoe-edge train-head writes one)")
    return path


def read_head_manifest(path) -> dict:
    """head.json of the head at ``path``, checked for form (keys, types, inputs, classes, backbone); no ONNX
    Runtime needed (configuration checks use it)."""
    manifest_path = head_folder(path) / MANIFEST_NAME
    manifest = read_served_manifest(manifest_path, kind="head", graph_name=GRAPH_NAME, error=HeadError,
                                    made_on="the head was trained on")
    if manifest.get("head_format") not in HEAD_FORMATS:
        raise HeadError(f"{manifest_path}: head_format {manifest.get('head_format')!r} is not one this SDK reads "
                        f"({', '.join(map(str, HEAD_FORMATS))})")
    return manifest


def read_served_manifest(manifest_path: pathlib.Path, *, kind: str, graph_name: str, error=HeadError,
                         made_on: str, one_input_is: str | None = None) -> dict:
    """The manifest of what the gateway serves beside embeddings (a head's head.json, a bridge's bridge.json),
    checked for the form both share: a JSON object of ``kind``; ``inputs`` ("modality:representation", normalised;
    exactly one when ``one_input_is`` says what that one is); at least two distinct ``classes``; the ``backbone``
    it was ``made_on``; the ``sha256`` of ``graph_name``. ``error`` (a HeadError class) names the file."""
    where = str(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{where} is not valid JSON ({exc}): not a {kind} manifest") from None
    except UnicodeDecodeError:
        raise error(f"{where} is not a text file: not a {kind} manifest") from None
    except RecursionError:  # json's parser recurses per nesting level
        raise error(f"{where}: nested too deeply to be a {kind} manifest") from None
    if not isinstance(manifest, dict):
        raise error(f"{where}: expected a JSON object, got {type(manifest).__name__}: not a {kind} manifest")
    if manifest.get("kind") != kind:
        raise error(f"{where}: kind is {manifest.get('kind')!r}, expected \"{kind}\": not a {kind} manifest")
    inputs = manifest.get("inputs")
    if one_input_is is not None:
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], str):
            raise error(f"{where}: inputs must list exactly one \"modality:representation\" ({one_input_is}), "
                        f"got {inputs!r}")
    elif not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise error(f"{where}: inputs must be a non-empty list of \"modality:representation\", got {inputs!r}")
    normalised = []
    for i, name in enumerate(inputs):
        try:
            normalised.append(str(InputType.parse(name)))
        except ValueError as exc:
            raise error(f"{where}: inputs[{i}]: {exc}") from None
    if len(set(normalised)) != len(normalised):
        raise error(f"{where}: inputs lists an input twice: {inputs}")
    manifest["inputs"] = normalised
    classes = manifest.get("classes")
    if (not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes)
            or len(set(classes)) != len(classes)):
        raise error(f"{where}: classes must be a list of at least two distinct names, got {classes!r}")
    backbone = manifest.get("backbone")
    if not isinstance(backbone, dict) or any(key not in backbone for key in BACKBONE_KEYS):
        raise error(f"{where}: backbone must name {', '.join(BACKBONE_KEYS)} (the Tiny-BioMoE weights {made_on}), "
                    f"got {backbone!r}")
    if not isinstance(manifest.get("sha256"), str):
        raise error(f"{where}: no sha256 of {graph_name}")
    return manifest


@dataclass
class ServedGraph:
    """What heads and bridges share once loaded: their folder, checked manifest and ONNX Runtime session, and the
    refusal of embeddings of other weights than the backbone they were made on."""

    path: pathlib.Path
    manifest: dict
    session: object = field(repr=False)

    #: What ``check_backbone`` raises, and what it tells the user to do.
    error = HeadError
    refusal_advice = ""

    @property
    def inputs(self) -> tuple[str, ...]:
        """The manifest's inputs as written ("modality:representation"), in graph order."""
        return tuple(self.manifest["inputs"])

    @property
    def input_types(self) -> tuple[InputType, ...]:
        return tuple(InputType.parse(name) for name in self.inputs)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.manifest["classes"])

    @property
    def backbone(self) -> dict:
        return dict(self.manifest["backbone"])

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def identity(self) -> dict:
        """What every PredictionRecord names as its ``head``."""
        return {"path": str(self.path), "sha256": self.sha256, "kind": self.manifest["kind"]}

    def check_backbone(self, running_model: dict) -> None:
        """``error`` when it was made on other weights than ``running_model`` (a record's ``model`` dict,
        ``biomoe_edge.identity.model_identity``); the message names both."""
        why = backbone_mismatch(self.backbone, backbone_identity(running_model))
        if why is not None:
            raise self.error(f"{self.manifest['kind']} {self.path} refused: {why}; {self.refusal_advice}")


@dataclass
class Head(ServedGraph):
    """A loaded head: ``predict`` runs it. ``inputs``/``classes`` in graph order; ``identity`` goes into every
    PredictionRecord; ``window_length_s`` is what each input's windows were in training (None: not recorded)."""

    refusal_advice = ("embeddings of other weights are meaningless to it (train it again on embeddings of the running "
                      "model, or run the model it was trained on)")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(it.modality.value for it in self.input_types))

    @property
    def window_length_s(self) -> dict:
        return dict(self.manifest.get("window_length_s") or {})

    def predict(self, embeddings) -> np.ndarray:
        """Probabilities (B, C) float32 of ``embeddings``: (B, k, 192), or a sequence of k (B, 192) arrays."""
        if isinstance(embeddings, np.ndarray):
            parts = [embeddings[:, i] for i in range(embeddings.shape[1])] if embeddings.ndim == 3 else [embeddings]
        else:
            parts = list(embeddings)
        if len(parts) != len(self.inputs):
            raise HeadError(f"head {self.path} takes {len(self.inputs)} inputs ({', '.join(self.inputs)}), got {len(parts)}")
        feeds = {}
        for i, part in enumerate(parts):
            part = np.ascontiguousarray(part, dtype=np.float32)
            if part.ndim != 2 or part.shape[1] != EMBEDDING_DIM:
                raise HeadError(f"head {self.path}: input_{i} ({self.inputs[i]}) must be (B, {EMBEDDING_DIM}), got {part.shape}")
            feeds[graph_input_name(i)] = part
        return self.session.run([OUTPUT_NAME], feeds)[0]


def open_verified_graph(graph: pathlib.Path, manifest_path: pathlib.Path, sha256: str, *, threads: int, error=HeadError,
                        made_by: str = "training"):
    """An ONNX Runtime CPU session on ``graph`` once its bytes match ``sha256`` (from ``manifest_path``); ``error``
    (a HeadError class) naming the file when it is missing, changed since ``made_by``, or unloadable."""
    from biomoe_edge.manifest import sha256_file
    from biomoe_edge.runtime.engines.onnxruntime_engine import cpu_session

    if not graph.is_file():
        raise error(f"{graph.parent}: no {graph.name} beside {manifest_path.name}")
    if sha256_file(graph) != sha256:
        raise error(f"{graph} does not match the sha256 in {manifest_path} (the graph was changed or replaced after "
                    f"{made_by})")
    try:
        return cpu_session(graph, intra_op_threads=threads, inter_op_threads=1)
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad graph
        raise error(f"{graph}: ONNX Runtime cannot load it ({type(exc).__name__}: {exc})") from None


def load_head(path, *, threads: int = 1) -> Head:
    """Load and check the head at ``path`` (its folder, head.json or head.onnx) on ONNX Runtime's CPU provider.

    ``threads``: ONNX Runtime intra-op threads. One is plenty for a Gemm of (B, 192 k) and leaves the cores to
    the backbone."""
    manifest = read_head_manifest(path)
    folder = head_folder(path)
    graph = folder / GRAPH_NAME
    session = open_verified_graph(graph, folder / MANIFEST_NAME, manifest["sha256"], threads=threads, error=HeadError,
                                  made_by="training")
    k, classes = len(manifest["inputs"]), manifest["classes"]
    names = [i.name for i in session.get_inputs()]
    if names != [graph_input_name(i) for i in range(k)]:
        raise HeadError(f"{graph}: graph inputs {names} do not match the {k} inputs of {MANIFEST_NAME} "
                        f"(expected input_0..input_{k - 1})")
    for i, node in enumerate(session.get_inputs()):
        if node.type != "tensor(float)" or len(node.shape) != 2 or node.shape[1] != EMBEDDING_DIM:
            raise HeadError(f"{graph}: input_{i} is {node.type} {node.shape}, expected float32 (B, {EMBEDDING_DIM})")
    outputs = [o.name for o in session.get_outputs()]
    if outputs != [OUTPUT_NAME]:
        raise HeadError(f"{graph}: graph outputs {outputs}, expected [{OUTPUT_NAME!r}]")
    head = Head(folder.resolve(), manifest, session)
    probe = head.predict([np.zeros((1, EMBEDDING_DIM), np.float32)] * k)
    if probe.shape != (1, len(classes)):
        raise HeadError(f"{graph}: gives {probe.shape[1:]} probabilities per window, but {MANIFEST_NAME} names "
                        f"{len(classes)} classes {classes}")
    check_binding(manifest, session, folder / MANIFEST_NAME, graph, HeadError)
    return head
