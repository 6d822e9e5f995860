"""Datasets of embeddings for the training tests, in the documented ``load_dataset`` columns, with class
structure the tests control (so what a head can and cannot learn from them is known in advance)."""

from __future__ import annotations

import numpy as np
import pandas as pd

MODEL_COLUMNS = {"model_sha256": "2" * 64, "checkpoint_sha256": None, "precision": "fp32", "random_weights": True,
                 "seed": 0, "engine": "pytorch"}


def frame_from(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["label"] = pd.Series(list(frame["label"]), dtype=object)
    return frame


def class_frame(*, subjects=6, windows=30, classes=("rest", "mild", "strong"), inputs=("eda:scalogram",),
                separation=3.0, informative=None, seed=0, hop_s=2.0, device_offset_s=None, noise=1.0):
    """Per subject ``windows`` window times cycling through ``classes``; each input's embedding is Gaussian noise
    (``noise`` per dimension) plus ``separation`` times a unit class direction shared by all subjects, when the
    input is informative (``informative``: the inputs that carry the class, default all). Modalities are worn on devices named
    ``{subject}-{modality}``; ``device_offset_s`` shifts each device's window times (cross-device matching)."""
    rng = np.random.default_rng(seed)
    directions = {c: rng.standard_normal(192) for c in classes}
    directions = {c: d / np.linalg.norm(d) for c, d in directions.items()}
    informative = set(inputs if informative is None else informative)
    rows = []
    for s in range(subjects):
        subject = f"s{s:02d}"
        for w in range(windows):
            label = classes[w % len(classes)]
            for i, name in enumerate(inputs):
                modality, representation = name.split(":")
                offset = 0.0 if device_offset_s is None else device_offset_s * i
                end = 10.0 + w * hop_s + offset
                vector = noise * rng.standard_normal(192)
                if name in informative:
                    vector += separation * directions[label]
                rows.append({"subject": subject, "device": f"{subject}-{modality}", "modality": modality,
                             "representation": representation, "window_start_s": end - 10.0, "window_end_s": end,
                             "quality": [], "label": label, "embedding": vector.astype(np.float32),
                             **MODEL_COLUMNS})
    return frame_from(rows)


def subject_signature_frame(*, subjects=8, windows=40, seed=0):
    """Labels a head can only learn by remembering subjects: each subject has its own random direction per class,
    unrelated across subjects. Within a subject the classes are easy; across subjects there is nothing to learn.
    A cross-validation that let a test subject's windows into training would score far above chance."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(subjects):
        directions = {c: rng.standard_normal(192) * 2.0 for c in ("a", "b")}
        for w in range(windows):
            label = ("a", "b")[w % 2]
            vector = directions[label] + 0.3 * rng.standard_normal(192)
            rows.append({"subject": f"s{s:02d}", "device": f"s{s:02d}-wrist", "modality": "eda",
                         "representation": "scalogram", "window_start_s": w * 2.0, "window_end_s": w * 2.0 + 10.0,
                         "quality": [], "label": label, "embedding": vector.astype(np.float32), **MODEL_COLUMNS})
    return frame_from(rows)
