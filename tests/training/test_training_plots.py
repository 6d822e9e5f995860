"""The pictures beside the JSON: a dataset's 2-D projection (by label and by subject) and a bridge fit's scores and
curve are written as PNGs; too little to draw is said, not drawn."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from training_helpers import class_frame  # noqa: E402

from biomoe_edge.training.plots import write_bridge_fit_png, write_embedding_projection_png  # noqa: E402


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_a_dataset_projection_is_drawn_per_input_and_an_empty_one_is_not(tmp_path):
    frame = class_frame(subjects=3, windows=12, inputs=("eda:scalogram", "bvp:spectrogram_psd"))
    frame.loc[frame.index[:5], "label"] = None  # unlabelled windows are drawn too
    assert _png(write_embedding_projection_png(frame, tmp_path / "ds" / "projection.png", title="ds"))
    assert write_embedding_projection_png(frame.iloc[:2], tmp_path / "two.png") is None
    assert not (tmp_path / "two.png").exists()


def test_a_bridge_fit_is_drawn_from_what_bridge_json_holds(tmp_path):
    positions = {"input": {"name": "enc2.stage2"}, "output": {"name": "fused", "entry_points": ["fused"]},
                 "input_candidates": [{"name": "enc1.stage2", "probe_macro_f1": 0.6, "probe_macro_f1_fold_std": 0.1},
                                      {"name": "enc2.stage2", "probe_macro_f1": 0.8, "probe_macro_f1_fold_std": None}],
                 "entry_point_cka": [{"name": "fused", "cka": 0.4}, {"name": "experts", "cka": 0.3}]}
    curve = [{"epoch": e, "train_loss": float(np.exp(-e)), "held_out_loss": float(np.exp(-e) + 0.1)} for e in range(1, 6)]
    assert _png(write_bridge_fit_png(positions, curve, tmp_path / "bridge_fit.png", title="bridge"))
