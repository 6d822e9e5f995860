"""Helpers of the bridge tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import warnings

import numpy as np

CLASSES = ["rest", "moderate", "high"]


def make_head(directory, embeddings, labels, backbone, *, inputs="ecg:spectrogram_psd", subjects=None):
    """A head folder made by the SDK's own train_head (ELU -> Linear, as ``biomoe-edge train-head`` trains it) on
    ``embeddings`` and ``labels``; returns the folder."""
    from biomoe_edge.training.bridge.simulation import write_head

    n = len(embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_head(directory, embeddings, labels, inputs=inputs, backbone=backbone, classes=CLASSES,
                   subjects=subjects if subjects is not None else ["s1"] * n,
                   window_end_s=10.0 + 2.0 * np.arange(n))
    return directory
