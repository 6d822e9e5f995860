"""A bridge folder's metrics on labelled new-modality windows, through exactly what the gateway serves: the folder
loaded by ``runtime.heads.load_bridge`` (manifest, sha256, graph I/O, class count), its images drawn by the
gateway's transforms, and the features at the bridge's tap from a running engine, as the gateway's engine returns
them (refused as the gateway refuses them). No torch here: ``biomoe-edge bridge evaluate`` runs wherever the
gateway does (plus scikit-learn), given an engine exported with the tap."""

from __future__ import annotations

import numpy as np

from biomoe_edge.identity import model_identity
from biomoe_edge.runtime.heads.bridge import check_engine_taps, load_bridge
from biomoe_edge.runtime.transforms.render import render_windows


def predict_bridge(directory, windows: np.ndarray, fs: float, engine, *,
                   batch: int = 16) -> tuple[np.ndarray, object]:
    """Class probabilities (N, C) of new-modality ``windows`` (N, n) at ``fs`` Hz through the bridge folder
    ``directory``, fed by ``engine`` (a ``runtime.engines.Engine`` of the weights the bridge was fitted on that
    returns its tap: the PyTorch engine, or a graph exported with ``--taps``); and the loaded bridge
    (``runtime.heads.bridge.Bridge``). BridgeError when the engine runs other weights or lacks the tap, as the
    gateway refuses them."""
    bridge = load_bridge(directory)
    bridge.check_backbone(model_identity(engine.identity))
    check_engine_taps([bridge], tuple(getattr(engine, "taps", ())), type(engine).__name__)
    windows = np.asarray(windows, dtype=np.float32)
    out = []
    for i in range(0, len(windows), batch):
        images = render_windows(windows[i:i + batch], fs, bridge.modality, bridge.representation)
        _, taps = engine.infer_tapped(images, (bridge.tap,))
        out.append(bridge.predict(taps[bridge.tap]))
    return (np.concatenate(out) if out else np.zeros((0, len(bridge.classes)), np.float32)), bridge


def evaluate_bridge(directory, windows: np.ndarray, fs: float, labels, engine) -> dict:
    """The bridged head's metrics on ``windows`` with true ``labels`` (class names), in ``evaluate-head``'s fields
    (``training.metrics.classification_metrics``: windows, accuracy, balanced_accuracy, macro_f1,
    per_class_recall, confusion_matrix, classes; ``head`` identity with kind "bridge", ``inputs``, ``backbone``,
    ``random_weights``), plus ``per_class_f1`` and the bridge's ``old_inputs``. ``engine``: as
    :func:`predict_bridge` takes it."""
    from sklearn.metrics import f1_score

    from biomoe_edge.training.metrics import classification_metrics

    labels = np.asarray(labels, dtype=object)
    if len(labels) != len(windows):
        raise ValueError(f"{len(labels)} labels for {len(windows)} windows")
    probabilities, bridge = predict_bridge(directory, windows, fs, engine)
    classes = list(bridge.classes)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the bridged head's classes {classes}")
    predicted = np.asarray(classes, dtype=object)[probabilities.argmax(1)]
    return {
        **classification_metrics(labels, predicted, classes),
        "per_class_f1": dict(zip(classes, map(float, f1_score(labels, predicted, labels=classes, average=None,
                                                                  zero_division=0)))),
        "head": bridge.identity,
        "inputs": list(bridge.inputs),
        "old_inputs": list(bridge.old_inputs),
        "backbone": bridge.backbone,
        "random_weights": bool(bridge.backbone.get("random_weights")),
    }
