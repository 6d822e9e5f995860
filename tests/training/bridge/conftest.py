"""Fixtures of the bridge tests: the stand-in backbone (the reference checkpoint, read in place), a small SIMULATED
paired session, a FIXTURE head folder, and one fit shared by the test files of a session."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bridge_helpers import make_fixture_head


@pytest.fixture(scope="session")
def stand_in_model(reference_dir):
    from biomoe_edge.export import load_tiny_biomoe

    return load_tiny_biomoe(reference_dir / "tiny_biomoe_seed11.pth")


@pytest.fixture(scope="session")
def stand_in_backbone(stand_in_model):
    from biomoe_edge.training.bridge import torch_backbone

    return torch_backbone(stand_in_model)


@pytest.fixture(scope="session")
def small_paired():
    """SIMULATED: one subject, 7 minutes of paired ECG + PPG, a 10 s window every 8 s (52 windows)."""
    from biomoe_edge.training.bridge.simulation import simulate_paired_session

    return simulate_paired_session(3, 420.0, hop_s=8.0)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bridge-cache")


@pytest.fixture(scope="session")
def small_features(small_paired, stand_in_model, cache_dir):
    from biomoe_edge.training.bridge import extract_features

    return extract_features(small_paired, stand_in_model, old_representation="spectrogram_psd",
                            new_representation="spectrogram_psd", cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="session")
def fixture_head(tmp_path_factory, small_features, small_paired, stand_in_backbone):
    """FIXTURE head trained on the simulated ECG embeddings of the small session and their true states."""
    return make_fixture_head(tmp_path_factory.mktemp("head"), small_features.old_embedding, small_paired.label,
                             stand_in_backbone)


@pytest.fixture(scope="session")
def small_fit(small_paired, fixture_head, stand_in_model, stand_in_backbone, small_features):
    """One fit (auto positions, 40 epochs) on the small session, from the cached features."""
    from biomoe_edge.training.bridge import fit_bridge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_bridge(small_paired, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                          backbone=stand_in_backbone, features=small_features, epochs=40, progress=False)


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)
