"""The old modality's head, read from its folder (``head.onnx`` + ``head.json``, the heads issue's format) and run
with ONNX Runtime: it gives the pseudo-labels the bridge's input position is chosen by, and it ends the bridged
graph."""

from __future__ import annotations

import json
import pathlib
import warnings
from dataclasses import dataclass

import numpy as np

from biomoe_edge.identity import backbone_mismatch, describe_backbone
from biomoe_edge.manifest import sha256_file
from biomoe_edge.vocabulary import EMBEDDING_DIM, Modality, check_representations

from .exc import HeadError

#: head.json keys the bridge reads
REQUIRED_KEYS = ("kind", "inputs", "classes", "backbone")
INPUT_NAME = "input_0"
OUTPUT_NAME = "probabilities"


def parse_input(spec: str, what: str) -> tuple[str, str]:
    """``"modality:representation"`` -> (modality, representation), ValueError naming ``what`` otherwise."""
    modality, sep, representation = str(spec).partition(":")
    if not sep:
        raise ValueError(f"{what}: expected MODALITY:REPRESENTATION (e.g. bvp:spectrogram_psd), got {spec!r}")
    try:
        return Modality.parse(modality).value, check_representations(representation)[0]
    except ValueError as exc:
        raise ValueError(f"{what} {spec!r}: {exc}") from None


@dataclass
class OldHead:
    """A single-input head on the old modality's 192-D embeddings."""

    directory: pathlib.Path
    manifest: dict
    modality: str
    representation: str
    classes: tuple[str, ...]
    sha256: str

    @property
    def onnx_path(self) -> pathlib.Path:
        return self.directory / "head.onnx"

    @property
    def backbone(self) -> dict:
        return dict(self.manifest["backbone"])

    @property
    def inputs(self) -> list[str]:
        return list(self.manifest["inputs"])

    def predict_proba(self, embeddings: np.ndarray, *, batch: int = 256) -> np.ndarray:
        """(N, 192) float32 embeddings -> (N, C) class probabilities (ONNX Runtime, CPU)."""
        import onnxruntime as ort

        if not hasattr(self, "_session"):
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"head input must be (N, {EMBEDDING_DIM}) embeddings, got {embeddings.shape}")
        outputs = [self._session.run([OUTPUT_NAME], {INPUT_NAME: embeddings[i:i + batch]})[0]
                   for i in range(0, len(embeddings), batch)]
        return np.concatenate(outputs).astype(np.float32) if outputs else np.zeros((0, len(self.classes)), np.float32)


def read_head(directory) -> OldHead:
    """Read and check a head folder; raises HeadError naming the file and field at fault."""
    directory = pathlib.Path(directory)
    manifest_path, onnx_path = directory / "head.json", directory / "head.onnx"
    for path in (manifest_path, onnx_path):
        if not path.is_file():
            raise HeadError(f"{directory} is not a head folder: {path.name} is missing")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise HeadError(f"{manifest_path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise HeadError(f"{manifest_path}: expected a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise HeadError(f"{manifest_path}: missing key(s) {missing}")
    if manifest["kind"] != "head":
        raise HeadError(f"{manifest_path}: kind is {manifest['kind']!r}, expected 'head' (a bridge cannot be "
                        "bridged again)")
    inputs = manifest["inputs"]
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise HeadError(f"{manifest_path}: inputs {inputs!r}: a bridge carries a head of ONE old-modality input; "
                        "a fusion head of several inputs needs all of them")
    try:
        modality, representation = parse_input(inputs[0], f"{manifest_path}: inputs[0]")
    except ValueError as exc:
        raise HeadError(str(exc)) from None
    classes = manifest["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(classes):
        raise HeadError(f"{manifest_path}: classes must list at least two distinct class names, got {classes!r}")
    if not isinstance(manifest["backbone"], dict):
        raise HeadError(f"{manifest_path}: backbone must be an object (biomoe_edge.identity.backbone_identity)")
    digest = sha256_file(onnx_path)
    recorded = manifest.get("sha256")
    if recorded is not None and recorded != digest:
        raise HeadError(f"{onnx_path}: sha256 {digest[:16]}... differs from head.json's {str(recorded)[:16]}...: the "
                        "graph was changed after its manifest was written")
    _check_graph(onnx_path, len(classes))
    return OldHead(directory, manifest, modality, representation, tuple(map(str, classes)), digest)


def _check_graph(path: pathlib.Path, n_classes: int) -> None:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem for the user
        raise HeadError(f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}") from None
    inputs = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    outputs = [o.name for o in graph.output]
    if inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
        raise HeadError(f"{path}: graph inputs {inputs} and outputs {outputs}; a one-input head takes "
                        f"{INPUT_NAME!r} (B, {EMBEDDING_DIM}) and gives {OUTPUT_NAME!r} (B, C)")
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 2 or dims[1] != EMBEDDING_DIM:
        raise HeadError(f"{path}: input {INPUT_NAME!r} has shape {dims}, expected (B, {EMBEDDING_DIM})")
    out = next(o for o in graph.output if o.name == OUTPUT_NAME)
    out_dims = [d.dim_value for d in out.type.tensor_type.shape.dim]
    if len(out_dims) == 2 and out_dims[1] not in (0, n_classes):
        raise HeadError(f"{path}: output {OUTPUT_NAME!r} has {out_dims[1]} classes but head.json lists {n_classes}")


def check_head_backbone(head: OldHead, running: dict) -> None:
    """Refuse a head trained on the embeddings of other weights (HeadError); warn when only the precision
    differs (the bridge's old path runs in FP32 while the head may have been trained on FP16 embeddings, which
    differ by ~1e-3)."""
    trained = head.backbone
    weights = {k: trained.get(k) for k in ("random_weights", "checkpoint_sha256", "seed")}
    if backbone_mismatch({**weights, "precision": None}, {**running, "precision": None}) is not None:
        raise HeadError(f"{head.directory}: the head is {backbone_mismatch(trained, running)}; the bridge would feed "
                        f"it features of other weights. Fit with the backbone it was trained on "
                        f"({describe_backbone(trained)})")
    if trained.get("precision") != running.get("precision"):
        warnings.warn(f"{head.directory}: head trained on {trained.get('precision')} embeddings, the bridge's old "
                      f"path runs in {running.get('precision')}; same weights, so only rounding differs",
                      stacklevel=2)
