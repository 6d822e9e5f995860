"""Hold-out across the whole paired set: six two-minute SIMULATED paired sessions (666 windows, 12 minutes) give
held-out windows, as one twelve-minute session does. Before, blocks were counted per session, and a two-minute
session has only two 60 s blocks, so none was ever the 5th: 666 to train on, 0 held out, no fit."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")
from bridge_helpers import make_head  # noqa: E402

from biomoe_edge.training.bridge import held_out_split, load_paired_windows  # noqa: E402
from biomoe_edge.training.bridge.simulation import simulate_streams, write_simulated_recording  # noqa: E402

SESSIONS = 6
SESSION_S = 120.0


@pytest.fixture(scope="module")
def six_sessions(tmp_path_factory):
    """Six two-minute SIMULATED paired recordings of one subject (each its own recording, times from t0 = 1000 s
    like every recording of the simulator), 10 s windows every second."""
    folder = tmp_path_factory.mktemp("six")
    return [write_simulated_recording(folder / f"session{i}", [simulate_streams(20 + i, SESSION_S, subject="p1")])
            for i in range(SESSIONS)]


@pytest.fixture(scope="module")
def six_paired(six_sessions):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_paired_windows(six_sessions, None, "ecg", "bvp")


def test_six_two_minute_sessions_are_held_out_from_across_sessions(six_paired, six_sessions):
    paired = six_paired
    sessions = list(dict.fromkeys(paired.session))
    assert len(sessions) == SESSIONS and set(paired.subject) == {"p1"}
    split = held_out_split(paired, fraction=0.2, block_s=60.0)
    # Two 60 s blocks a session, twelve in all, counted session after session; every 5th is held out: the 5th
    # (session 3, first minute) and the 10th (session 5, second minute).
    assert split.block_count == 12
    assert split.held_out_blocks == (f"{sessions[2]} 0-60 s", f"{sessions[4]} 60-120 s")
    offset = np.array([paired.start_s[i] - paired.start_s[paired.session == paired.session[i]].min()
                       for i in range(len(paired))])
    expected_held = ((paired.session == sessions[2]) & (offset < 60)) | ((paired.session == sessions[4]) & (offset >= 60))
    assert sorted(split.held_out) == sorted(np.flatnonzero(expected_held))
    # No training window shares a second of signal with a held-out window of its session; the other sessions
    # keep every window.
    for i in split.train:
        same = np.flatnonzero(expected_held & (paired.session == paired.session[i]))
        assert not ((paired.start_s[same] < paired.end_s[i]) & (paired.end_s[same] > paired.start_s[i])).any()
    untouched = ~np.isin(paired.session, [sessions[2], sessions[4]])
    assert set(np.flatnonzero(untouched)) <= set(split.train)
    # 111 windows a session (10 s windows every second over 120 s); held out: 60 + 51; dropped from training: the
    # 9 windows of each of those two sessions that overlap the held-out minute.
    assert len(paired) == 666 and len(split.held_out) == 111 and len(split.train) == 666 - 111 - 2 * 9


def test_six_two_minute_sessions_fit_with_held_out_figures(six_sessions, stand_in_model, stand_in_backbone,
                                                           reference_dir, tmp_path, capsys):
    """The command path: ``bridge fit --paired`` the six recordings fits and says what it held out. Windows every
    8 s here (``--hop-s``), to keep the backbone's work small: 14 a session, 84 in all; the split is the same rule."""
    from biomoe_edge.cli import main
    from biomoe_edge.training.bridge import extract_features

    # An old head on these sessions' ECG embeddings and their simulated states (the features are cached under the
    # key the command computes too, so the backbone runs once).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paired = load_paired_windows(six_sessions, None, "ecg", "bvp", hop_s=8.0)
    features = extract_features(paired, stand_in_model, old_representation="spectrogram_psd",
                                new_representation="spectrogram_psd", cache_dir=tmp_path / "cache", progress=False)
    sims = {f"{folder.name}:p1": simulate_streams(20 + i, SESSION_S, subject="p1") for i, folder in enumerate(six_sessions)}
    states = [sims[s].state_at(np.array([(a + b) / 2 - 1000.0]))[0]
              for s, a, b in zip(paired.session, paired.start_s, paired.end_s)]
    head = make_head(tmp_path / "head", features.old_embedding, np.asarray(states, dtype=object), stand_in_backbone)
    out = tmp_path / "bridge"
    argv = ["bridge", "fit", "--paired", *map(str, six_sessions), "--new", "bvp:spectrogram_psd", "--head", str(head),
            "--out", str(out), "--checkpoint", str(reference_dir / "tiny_biomoe_seed11.pth"), "--hop-s", "8",
            "--epochs", "2", "--input-position", "enc1.stage2", "--output-position", "fused", "--precision", "fp32",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    sessions = [f"{folder.name}:p1" for folder in six_sessions]
    assert f"held out: {sessions[2]} 0-60 s, {sessions[4]} 60-120 s (2 of 12 blocks of 6 session(s))" in printed
    manifest = json.loads((out / "bridge.json").read_text())
    # Held out: the 8 windows starting in session 3's first minute and the 6 in session 5's second; dropped from
    # training: the one window of each of those sessions that overlaps them.
    assert manifest["data"]["windows"] == 84
    assert manifest["held_out"]["windows"] == 14 and manifest["training"]["train_windows"] == 84 - 14 - 2
    assert manifest["training"]["held_out_blocks"] == [f"{sessions[2]} 0-60 s", f"{sessions[4]} 60-120 s"]
    assert 0.0 <= manifest["held_out"]["agreement_with_old_head"] <= 1.0
