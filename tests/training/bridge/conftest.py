"""Fixtures of the bridge tests: the stand-in backbone (the reference checkpoint, read in place), a small SIMULATED
paired recording, an old head trained on it by the SDK's train_head, and one fit shared by the test files of a
session. Every bridge test needs PyTorch (its modules are marked ``torch``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bridge_helpers import make_head


@pytest.fixture(scope="session")
def stand_in_model(reference_dir):
    from biomoe_edge.export import load_tiny_biomoe

    return load_tiny_biomoe(reference_dir / "tiny_biomoe_seed11.pth")


@pytest.fixture(scope="session")
def stand_in_backbone(stand_in_model):
    from biomoe_edge.training.bridge import torch_backbone

    return torch_backbone(stand_in_model)


@pytest.fixture(scope="session")
def small_recording(tmp_path_factory):
    """SIMULATED: one subject's 7-minute paired session (a Polar H10's ECG and a Verity Sense's PPG of one beat
    train) as an SDK recording folder with 10 s windows every 8 s, and its states as a labels CSV."""
    from biomoe_edge.training.bridge.simulation import simulate_streams, write_simulated_recording, write_state_labels

    folder = tmp_path_factory.mktemp("recording")
    simulated = simulate_streams(3, 420.0)
    return (write_simulated_recording(folder / "session", [simulated], hop_s=8.0),
            write_state_labels(folder / "labels.csv", [simulated]), simulated)


@pytest.fixture(scope="session")
def small_paired(small_recording):
    """The paired windows of the small recording (52), labelled with the simulated state at their middle."""
    from biomoe_edge.training.bridge import load_paired_windows

    folder, _, simulated = small_recording
    paired = load_paired_windows([folder], None, "ecg", "bvp")
    paired.label = simulated.state_at((paired.start_s + paired.end_s) / 2 - 1000.0)
    return paired


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
    """An old head (train_head, ELU -> Linear) on the simulated ECG embeddings of the small session and their
    true states."""
    return make_head(tmp_path_factory.mktemp("head"), small_features.old_embedding, small_paired.label,
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
