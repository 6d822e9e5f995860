"""``embed --overwrite`` replaces a dataset, never anything else: before, it deleted every file in the --out folder
(and a sibling ``<out>.partial`` / ``<out>.old`` of the user's), whoever wrote them."""

import numpy as np
import pandas as pd
import pytest

from biomoe_edge.dataset import DATASET_COLUMNS, DatasetError, load_dataset, write_dataset


def _frame(rows=3):
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "subject": ["S1"] * rows, "device": ["wrist"] * rows, "modality": ["bvp"] * rows,
        "representation": ["waveform"] * rows, "window_start_s": np.arange(rows, dtype=float),
        "window_end_s": np.arange(rows, dtype=float) + 10, "quality": [()] * rows, "label": [None] * rows,
        "embedding": list(rng.standard_normal((rows, 192)).astype(np.float32)),
        "model_sha256": ["ab" * 32] * rows, "checkpoint_sha256": [None] * rows, "precision": ["fp32"] * rows,
        "random_weights": [True] * rows, "seed": [0] * rows, "engine": ["onnxruntime"] * rows,
    })[list(DATASET_COLUMNS)]


def test_overwrite_refuses_a_dataset_folder_holding_files_it_did_not_write(tmp_path):
    out = tmp_path / "ds"
    write_dataset(_frame(), out)
    (out / "notes.txt").write_text("three weeks of annotations")
    with pytest.raises(DatasetError, match="notes.txt, which embed did not write"):
        write_dataset(_frame(5), out, overwrite=True)
    assert (out / "notes.txt").read_text() == "three weeks of annotations" and len(load_dataset(out)) == 3


@pytest.mark.parametrize("suffix", [".partial", ".old"])
def test_overwrite_never_deletes_a_sibling_folder_of_the_users(tmp_path, suffix):
    out = tmp_path / "ds"
    write_dataset(_frame(), out)
    theirs = tmp_path / f"ds{suffix}"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("chapter 1")
    with pytest.raises(DatasetError, match="not one this SDK left"):
        write_dataset(_frame(5), out, overwrite=True)
    assert (theirs / "thesis.tex").read_text() == "chapter 1" and len(load_dataset(out)) == 3


def test_overwrite_replaces_a_dataset_of_its_own(tmp_path):
    out = tmp_path / "ds"
    write_dataset(_frame(), out)
    write_dataset(_frame(5), out, overwrite=True)
    assert len(load_dataset(out)) == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
