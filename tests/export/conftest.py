"""Shared fixtures for the export tests: the reference model and its exported graphs, built once per session."""

from __future__ import annotations

import numpy as np
import pytest

SEEDS = (11, 29)


@pytest.fixture(scope="session")
def reference_pairs(reference_dir):
    """{seed: (checkpoint path, images (N,3,224,224), embeddings (N,192))} for both reference pairs."""
    pairs = {}
    for seed in SEEDS:
        io = np.load(reference_dir / f"tiny_biomoe_seed{seed}_io.npz")
        pairs[seed] = (reference_dir / f"tiny_biomoe_seed{seed}.pth", io["images"], io["embeddings"])
    return pairs


@pytest.fixture(scope="session")
def reference_images(reference_pairs):
    """All 7 reference images."""
    return np.concatenate([images for _, images, _ in reference_pairs.values()])


@pytest.fixture(scope="session")
def model11(reference_pairs):
    from biomoe_edge.export import load_tiny_biomoe

    return load_tiny_biomoe(reference_pairs[11][0])
