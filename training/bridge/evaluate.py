"""A bridge folder's metrics on labelled new-modality windows: the bridged head as the gateway would serve it
(``bridge.onnx`` on ONNX Runtime, images drawn by the SDK's transforms)."""

from __future__ import annotations

import pathlib

import numpy as np

from .export import INPUT_NAME, verify_bridge_folder
from .features import render_images
from .head import OUTPUT_NAME, parse_input


def predict_bridge(directory, windows: np.ndarray, fs: float, *, batch: int = 16) -> tuple[np.ndarray, dict]:
    """Class probabilities (N, C) of new-modality ``windows`` (N, n) at ``fs`` Hz through the bridge folder
    ``directory``; and its manifest."""
    import onnxruntime as ort

    manifest = verify_bridge_folder(directory)
    modality, representation = parse_input(manifest["inputs"][0], f"{directory}/bridge.json: inputs[0]")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(pathlib.Path(directory) / "bridge.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    windows = np.asarray(windows, dtype=np.float32)
    out = [session.run([OUTPUT_NAME],
                       {INPUT_NAME: render_images(windows[i:i + batch], fs, modality, representation)})[0]
           for i in range(0, len(windows), batch)]
    return np.concatenate(out), manifest


def evaluate_bridge(directory, windows: np.ndarray, fs: float, labels) -> dict:
    """The bridged head's metrics on ``windows`` with true ``labels`` (class names), in ``evaluate-head``'s fields
    (``training.metrics.classification_metrics``: windows, accuracy, balanced_accuracy, macro_f1,
    per_class_recall, confusion_matrix, classes; ``head`` identity with kind "bridge", ``inputs``, ``backbone``,
    ``random_weights``), plus ``per_class_f1`` and the bridge's ``old_inputs``."""
    from sklearn.metrics import f1_score

    from biomoe_edge.manifest import sha256_file
    from biomoe_edge.training.metrics import classification_metrics

    labels = np.asarray(labels, dtype=object)
    if len(labels) != len(windows):
        raise ValueError(f"{len(labels)} labels for {len(windows)} windows")
    probabilities, manifest = predict_bridge(directory, windows, fs)
    classes = list(manifest["classes"])
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the bridged head's classes {classes}")
    predicted = np.asarray(classes, dtype=object)[probabilities.argmax(1)]
    folder = pathlib.Path(directory).resolve()
    return {
        **classification_metrics(labels, predicted, classes),
        "per_class_f1": dict(zip(classes, map(float, f1_score(labels, predicted, labels=classes, average=None,
                                                                  zero_division=0)))),
        "head": {"path": str(folder), "sha256": sha256_file(folder / "bridge.onnx"), "kind": "bridge"},
        "inputs": list(manifest["inputs"]),
        "old_inputs": list(manifest.get("old_inputs") or []),
        "backbone": manifest["backbone"],
        "random_weights": bool(manifest["backbone"].get("random_weights")),
    }
