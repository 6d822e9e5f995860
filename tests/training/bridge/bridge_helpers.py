"""Helpers of the bridge tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

import warnings

CLASSES = ["rest", "moderate", "high"]


def make_fixture_head(directory, embeddings, labels, backbone, *, inputs="ecg:spectrogram_psd"):
    """FIXTURE head folder: an ELU -> Linear torch head exported to head.onnx + head.json in the heads issue's
    format (written by the bridge's stand-in writer; not a head of ``biomoe-edge train-head``)."""
    from biomoe_edge.training.bridge.simulation import write_stand_in_head

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return write_stand_in_head(directory, embeddings, labels, inputs=inputs, backbone=backbone, classes=CLASSES,
                                   epochs=200)
