"""``train-head``: a dataset of embeddings -> a head folder (``head.onnx``, ``head.json``, ``head.pt``,
``confusion_matrix.png``), with cross-validation grouped by subject.

1. The dataset's windows of the requested inputs are fused by window time per subject
   (:func:`.datasets.training_windows`); the classes are the sorted labels, or the order given.
2. Cross-validation: leave-one-subject-out (``cv="loso"``) or k folds of subjects (``cv=k``, scikit-learn's
   ``GroupKFold``); a fresh head per fold, trained on the training subjects only, scored on the held-out
   subjects' windows. Per fold and pooled: balanced accuracy, macro F1, per-class recall, confusion matrix.
3. The served head is then trained on every window, exported to ONNX and checked against PyTorch with ONNX
   Runtime; the manifest records inputs, classes, fusion, classifier and hyper-parameters, the dataset's hash
   and the backbone its embeddings came from.
"""

from __future__ import annotations

import json
import logging
import pathlib
import time

import numpy as np

from biomoe_edge.identity import describe_backbone
from biomoe_edge.manifest import write_manifest

from .classifiers import HeadOptions, fit_head, predict_probabilities, save_head_model
from .datasets import (DEFAULT_TOLERANCE_S, DatasetError, dataset_backbone, keep_devices, read_dataset,
                       rows_of_inputs, training_windows)
from .head_export import check_head_onnx, export_head_onnx
from .metrics import classification_metrics, write_confusion_png

log = logging.getLogger(__name__)

HEAD_FORMAT = 1
CONFUSION_PNG = "confusion_matrix.png"


def parse_cv(value) -> str | int:
    """``"loso"``, ``"none"`` or a number of folds (at least 2)."""
    text = str(value).strip().lower()
    if text in ("loso", "none"):
        return text
    try:
        folds = int(text)
    except ValueError:
        raise ValueError(f"cv must be loso, none or a number of subject folds (>= 2), got {value!r}") from None
    if folds < 2:
        raise ValueError(f"cv needs at least 2 subject folds, got {folds}")
    return folds


def subject_splits(subjects: np.ndarray, cv) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) per fold, grouped by subject: leave-one-subject-out or ``GroupKFold``.
    RuntimeError if a split ever put a test subject's window in its training fold (it must not)."""
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    groups = np.asarray(subjects).astype(str)
    n_subjects = len(set(groups))
    if cv == "loso":
        splitter = LeaveOneGroupOut()
    else:
        if cv > n_subjects:
            raise DatasetError(f"{cv} subject folds asked for, but the labelled windows come from {n_subjects} "
                               "subjects; use fewer folds or loso")
        splitter = GroupKFold(n_splits=cv)
    splits = []
    for train, test in splitter.split(np.zeros(len(groups)), groups=groups):
        leaked = set(groups[train]) & set(groups[test])
        if leaked:
            raise RuntimeError(f"subject(s) {sorted(leaked)} in both the training and the test fold")
        splits.append((train, test))
    return splits


def cross_validate(fused, classes, options: HeadOptions, cv) -> dict:
    """Per-fold and pooled metrics of heads trained on each fold's training subjects and scored on its test
    subjects (see :func:`subject_splits`)."""
    y = np.array([classes.index(label) for label in fused.labels], dtype=np.int64)
    folds, true_all, pred_all = [], [], []
    for number, (train, test) in enumerate(subject_splits(fused.subjects, cv)):
        model = fit_head(fused.embeddings[train], y[train], len(classes), options)
        predicted = predict_probabilities(model, fused.embeddings[test]).argmax(axis=1)
        truth = [classes[i] for i in y[test]]
        guess = [classes[i] for i in predicted]
        folds.append({
            "fold": number,
            "test_subjects": sorted(set(fused.subjects[test].astype(str))),
            "train_subjects": sorted(set(fused.subjects[train].astype(str))),
            "train_windows": int(len(train)),
            **classification_metrics(truth, guess, classes),
        })
        true_all.extend(truth)
        pred_all.extend(guess)
    return {
        "scheme": "leave-one-subject-out" if cv == "loso" else f"{cv}-fold grouped by subject",
        "folds": folds,
        "pooled": classification_metrics(true_all, pred_all, classes),
        "fold_balanced_accuracy_mean": float(np.mean([f["balanced_accuracy"] for f in folds])),
        "fold_balanced_accuracy_std": float(np.std([f["balanced_accuracy"] for f in folds])),
    }


def train_head(dataset, inputs, out_dir, *, options: HeadOptions = HeadOptions(), cv="loso",
               tolerance_s: float = DEFAULT_TOLERANCE_S, classes=None, frame=None,
               dataset_sha256: str | None = None, devices: dict | None = None) -> dict:
    """Train, cross-validate, export and describe a head; returns the manifest written to ``out_dir/head.json``.

    ``classes``: the output order (default: the sorted labels); every class needs labelled windows.
    ``devices``: {input: device} where a subject wears two devices measuring one input (``keep_devices``).

    ``dataset``: a dataset path (read with ``biomoe_edge.dataset.load_dataset``), or a name for messages when
    ``frame`` (the DataFrame) and ``dataset_sha256`` are given directly."""
    t_start = time.perf_counter()
    options = options.resolved()
    cv = parse_cv(cv)
    if frame is None:
        frame, dataset_sha256 = read_dataset(dataset)
    source = str(dataset)
    frame = keep_devices(frame, devices or {}, source)
    fused, classes = training_windows(frame, inputs, tolerance_s=tolerance_s, source=source, classes=classes)
    empty = [c for c in classes if not np.any(fused.labels == c)]
    if empty:
        raise DatasetError(f"{source}: no labelled window of class(es) {empty} has every input {list(fused.inputs)}")
    backbone = dataset_backbone(rows_of_inputs(frame, fused.inputs), source)
    subjects = sorted(set(fused.subjects.astype(str)))
    if cv != "none" and len(subjects) < 2:
        raise DatasetError(f"{source}: the labelled windows of {list(fused.inputs)} come from one subject "
                           f"({subjects[0]}); cross-validation grouped by subject needs at least two (or cv none): embed "
                           "recordings of several people (each recording's [[subjects]], embed --subject NAME per "
                           "input, or demo --subjects N), docs/heads.md 'A dataset of several subjects'")
    counts = {c: int(np.sum(fused.labels == c)) for c in classes}
    log.info("training a %s head on %d windows of %d subjects (%s), classes %s", options.classifier, len(fused),
             len(subjects), ", ".join(fused.inputs), counts)

    t_cv = time.perf_counter()
    metrics = {"cross_validation": cross_validate(fused, classes, options, cv) if cv != "none" else None}
    cv_seconds = time.perf_counter() - t_cv

    t_fit = time.perf_counter()
    y = np.array([classes.index(label) for label in fused.labels], dtype=np.int64)
    model = fit_head(fused.embeddings, y, len(classes), options)
    fit_seconds = time.perf_counter() - t_fit
    training_predictions = predict_probabilities(model, fused.embeddings).argmax(axis=1)
    metrics["training_set"] = classification_metrics(fused.labels, [classes[i] for i in training_predictions], classes)
    metrics["note"] = ("cross_validation scores heads trained without the test subjects (the honest estimate); "
                       "training_set scores the served head on the windows it was trained on (optimistic)")

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    graph_path = out / "head.onnx"
    graph = export_head_onnx(model, graph_path)
    onnx_check = check_head_onnx(graph_path, model, fused.embeddings, seed=options.seed)
    save_head_model(model, out / "head.pt")
    png = None
    caveat = ("random weights: not the published model's accuracy" if backbone["random_weights"] else describe_backbone(backbone))
    if metrics["cross_validation"] is not None:
        png = write_confusion_png(metrics["cross_validation"]["pooled"], out / CONFUSION_PNG,
                                  title=f"{', '.join(fused.inputs)} ({options.fusion}, {options.classifier}), "
                                        f"{metrics['cross_validation']['scheme']}; backbone {caveat}")
    weights = model.fusion_weights()
    manifest = write_manifest(graph_path, {
        "kind": "head",
        "head_format": HEAD_FORMAT,
        "inputs": list(fused.inputs),
        "input_names": graph["input_names"],
        "output_name": graph["output_name"],
        "classes": list(classes),
        "fusion": options.fusion,
        "fusion_weights": None if weights is None else {n: float(w) for n, w in zip(fused.inputs, weights.tolist())},
        "classifier": options.classifier,
        "hyperparameters": options.as_dict(),
        "window_length_s": fused.window_length_s,
        "tolerance_s": float(tolerance_s),
        "dataset_sha256": dataset_sha256,
        "dataset": {
            "path": source,
            "windows": int(len(fused)),
            "windows_per_class": counts,
            "subjects": subjects,
            "windows_without_every_input": fused.incomplete,
            "windows_with_conflicting_labels": fused.label_conflicts,
        },
        "metrics": metrics,
        "confusion_matrix_png": png.name if png else None,
        "backbone": backbone,
        "onnx": {"opset": graph["opset"], "operators": graph["operators"]},
        "onnx_check": onnx_check,
        "pytorch_file": "head.pt",
        "timing_s": {"cross_validation": round(cv_seconds, 3), "final_fit": round(fit_seconds, 3),
                     "total": round(time.perf_counter() - t_start, 3)},
    })
    return json.loads(manifest.read_text())
