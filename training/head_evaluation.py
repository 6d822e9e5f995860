"""``evaluate-head``: a trained head on another dataset (held-out subjects, another session), with ONNX Runtime
(the graph the gateway serves, not the PyTorch model). No torch: it runs wherever the gateway does, plus
pandas and scikit-learn."""

from __future__ import annotations

import pathlib

import numpy as np

from biomoe_edge.identity import backbone_mismatch, describe_backbone
from biomoe_edge.runtime.heads import DEFAULT_TOLERANCE_S, load_head

from .datasets import DatasetError, dataset_backbone, read_dataset, rows_of_inputs, training_windows
from .metrics import classification_metrics, write_confusion_png


def check_windows_match(head, fused, source) -> None:
    """DatasetError, naming both sides, when the head's manifest names other inputs than those its window lengths
    were measured on (an edited head.json), or when the dataset's windows of an input are not as long as the
    head's were in training (the gateway refuses both, ``[[heads]]``; a score would be meaningless)."""
    trained = head.window_length_s
    if trained and set(trained) != set(head.inputs):
        raise DatasetError(f"head {head.path}: head.json names the inputs {list(head.inputs)}, but its window lengths "
                           f"were measured on {sorted(trained)} in training: the manifest was edited; train the head "
                           "again on the inputs it should take")
    for name in head.inputs:
        if name in trained and name in fused.window_length_s:
            want, have = float(trained[name]), float(fused.window_length_s[name])
            if abs(want - have) > 1e-6:
                raise DatasetError(f"{source}: its {name} windows are {have:g} s long, but head {head.path} was "
                                   f"trained on {want:g} s ones: embed the data with --window {want:g} (as the "
                                   "gateway refuses to serve it on other windows)")


def evaluate_head(head_path, dataset, *, png=None, tolerance_s: float | None = None, frame=None,
                  dataset_sha256: str | None = None) -> dict:
    """Metrics of the head at ``head_path`` on the labelled windows of ``dataset`` that have every input.

    The dataset's embeddings must come from the backbone the head was trained on (DatasetError names both
    otherwise). ``tolerance_s``: window-time matching (default: the head's, from training). ``png``: where
    to draw the confusion matrix (None: no picture)."""
    head = load_head(head_path)
    if frame is None:
        frame, dataset_sha256 = read_dataset(dataset)
    source = str(dataset)
    tolerance = float(head.manifest.get("tolerance_s", DEFAULT_TOLERANCE_S) if tolerance_s is None else tolerance_s)
    fused, classes = training_windows(frame, head.inputs, tolerance_s=tolerance, source=source, classes=head.classes)
    check_windows_match(head, fused, source)
    backbone = dataset_backbone(rows_of_inputs(frame, head.inputs), source)
    why = backbone_mismatch(head.backbone, backbone)
    if why is not None:
        raise DatasetError(f"{source}: its embeddings come from {describe_backbone(backbone)}, but head {head.path} was "
                           f"trained on {describe_backbone(head.backbone)}: re-embed the data with the head's model")
    probabilities = head.predict(fused.embeddings)
    predicted = [classes[i] for i in np.argmax(probabilities, axis=1)]
    metrics = classification_metrics(fused.labels, predicted, classes)
    per_subject = {}
    for subject in sorted(set(fused.subjects.astype(str))):
        mask = fused.subjects.astype(str) == subject
        per_subject[subject] = classification_metrics(fused.labels[mask], np.asarray(predicted, dtype=object)[mask],
                                                      classes)["balanced_accuracy"]
    result = {
        **metrics,
        "per_subject_balanced_accuracy": per_subject,
        "head": head.identity,
        "inputs": list(head.inputs),
        "dataset": {"path": source, "sha256": dataset_sha256, "subjects": sorted(per_subject),
                    "windows_without_every_input": fused.incomplete},
        "backbone": head.backbone,
        "random_weights": bool(head.backbone.get("random_weights")),
        "overlaps_training_subjects": sorted(set(per_subject) & set(head.manifest.get("dataset", {}).get("subjects", []))),
    }
    if png is not None:
        caveat = "random weights: not the published model's accuracy" if result["random_weights"] else \
            describe_backbone(head.backbone)
        result["confusion_matrix_png"] = str(write_confusion_png(
            metrics, pathlib.Path(png), title=f"{', '.join(head.inputs)} on {pathlib.Path(source).name}; backbone {caveat}"))
    return result
