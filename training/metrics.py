"""Classification metrics of a head (scikit-learn) and the confusion-matrix picture (matplotlib). No torch."""

from __future__ import annotations

import math
import pathlib
import textwrap
import warnings

import numpy as np


def classification_metrics(y_true, y_pred, classes) -> dict:
    """Balanced accuracy, macro F1, accuracy, per-class recall and the confusion matrix of labels ``y_true``
    against predictions ``y_pred`` (class names), with ``classes`` as the row/column order.

    ``per_class_recall[c]`` is None for a class with no true window (its recall is undefined); balanced accuracy
    is the mean recall over the classes present (scikit-learn's definition); macro F1 averages over the classes
    that are present or predicted."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

    y_true = np.asarray([str(v) for v in y_true], dtype=object)
    y_pred = np.asarray([str(v) for v in y_pred], dtype=object)
    classes = [str(c) for c in classes]
    if len(y_true) == 0:
        raise ValueError("no windows to score")
    with warnings.catch_warnings():
        # A fold may lack a class (a subject who never reached "strong"): scikit-learn warns, the figures stand.
        warnings.simplefilter("ignore")
        recall = recall_score(y_true, y_pred, labels=classes, average=None, zero_division=np.nan)
        balanced = balanced_accuracy_score(y_true, y_pred)
        macro_f1 = f1_score(y_true, y_pred, average="macro", zero_division=0.0)
    present = set(y_true)
    return {
        "windows": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced),
        "macro_f1": float(macro_f1),
        "per_class_recall": {c: (None if c not in present or math.isnan(r) else float(r)) for c, r in zip(classes, recall)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).astype(int).tolist(),
        "classes": classes,
    }


def write_confusion_png(metrics: dict, path, *, title: str) -> pathlib.Path:
    """The confusion matrix of ``metrics`` (rows: true class, columns: predicted) as a PNG, counts and row
    shares in each cell; ``title`` says what was evaluated (and, for stand-in weights, that it is not the paper's)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    from biomoe_edge.training.plots import pyplot, save_figure

    plt = pyplot()

    matrix = np.asarray(metrics["confusion_matrix"], dtype=np.int64)
    classes = metrics["classes"]
    figure, axes = plt.subplots(figsize=(1.6 + 1.1 * len(classes), 1.4 + 1.0 * len(classes)), dpi=120)
    display = ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=axes, cmap="Blues", colorbar=False,
                                                                          values_format="d")
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    for (i, j), count in np.ndenumerate(matrix):
        display.text_[i, j].set_text(f"{count}\n{shares[i, j]:.0%}")
    width = max(40, int(12 * (1.6 + 1.1 * len(classes))))  # characters per title line at this figure width
    axes.set_title("\n".join(textwrap.wrap(title, width)) + f"\nbalanced accuracy {metrics['balanced_accuracy']:.1%}, "
                   f"macro F1 {metrics['macro_f1']:.3f}", fontsize=7)
    return save_figure(figure, path)
