"""The old modality's head: a head folder (``head.onnx`` + ``head.json``, as ``biomoe-edge train-head`` writes it),
loaded and checked by the gateway's own loader (``runtime.heads.head.load_head``) and run with ONNX Runtime. It
gives the pseudo-labels the bridge's input position is chosen by, and it ends the bridged graph."""

from __future__ import annotations

import pathlib
import warnings
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.identity import backbone_mismatch, describe_backbone
from biomoe_edge.runtime.heads.head import GRAPH_NAME, MANIFEST_NAME, HeadError, head_folder, load_head, read_head_manifest


@dataclass
class OldHead:
    """A single-input head on the old modality's 192-D embeddings (wraps ``runtime.heads.head.Head``)."""

    head: object = field(repr=False)

    @property
    def directory(self) -> pathlib.Path:
        return pathlib.Path(self.head.path)

    @property
    def onnx_path(self) -> pathlib.Path:
        return self.directory / GRAPH_NAME

    @property
    def manifest(self) -> dict:
        return self.head.manifest

    @property
    def inputs(self) -> list[str]:
        return list(self.head.inputs)

    @property
    def modality(self) -> str:
        return self.head.input_types[0].modality.value

    @property
    def representation(self) -> str:
        return self.head.input_types[0].representation.value

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.head.classes)

    @property
    def backbone(self) -> dict:
        return self.head.backbone

    @property
    def sha256(self) -> str:
        return self.head.sha256

    def predict_proba(self, embeddings: np.ndarray, *, batch: int = 1024) -> np.ndarray:
        """(N, 192) float32 embeddings -> (N, C) class probabilities."""
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if len(embeddings) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return np.concatenate([self.head.predict([embeddings[i:i + batch]])
                               for i in range(0, len(embeddings), batch)]).astype(np.float32)


def read_head(directory) -> OldHead:
    """Load a head folder with the gateway's loader (form of head.json, graph I/O, sha256, class count) and check
    that a bridge can carry it (one input); raises HeadError naming the file and field at fault."""
    manifest = read_head_manifest(directory)
    # One input, checked on the manifest before the graph: the form is what a user must change.
    if len(manifest["inputs"]) != 1:
        raise HeadError(f"{head_folder(directory) / MANIFEST_NAME}: inputs {manifest['inputs']}: a bridge carries a "
                        "head of ONE old-modality input; a fusion head of several inputs needs all of them")
    return OldHead(load_head(directory))


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
