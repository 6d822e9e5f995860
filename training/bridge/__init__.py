"""BioX-Bridge for Tiny-BioMoE (Li et al., 2025): a low-rank prototype bridge from a new modality's features into
the old modality's model, so that a head trained on the old modality runs on the new one (docs/bridge.md).

    paired = PairedWindows(...)                       # or pair_streams(...) / load_paired_windows(...)
    fit = fit_bridge(paired, "heads/ecg", load_tiny_biomoe(ckpt), new_representation="spectrogram_psd",
                     backbone=torch_backbone(model))
    export_bridge(fit, "bridges/ecg-from-bvp", precision="fp16")     # bridge.onnx + bridge.json
"""

from .baselines import compare_baselines
from .data import PairedWindows, Split, held_out_split, load_labelled_windows, load_paired_windows, pair_streams
from .evaluate import evaluate_bridge, predict_bridge
from .exc import (BridgeConfigError, BridgeError, BridgeFolderError, HeadError, PairingError,
                  PositionSelectionError)
from .export import export_bridge, verify_bridge_folder
from .features import FeatureSet, extract_features, render_images
from .fit import BridgeFit, fit_bridge, torch_backbone
from .head import OldHead, read_head
from .protolrfc import Bridge, BridgedModel, ProtoLRFC
from .selection import linear_cka, output_candidates, score_entry_points, score_input_positions, \
    select_input_position

__all__ = [
    "Bridge", "BridgeConfigError", "BridgeError", "BridgeFit", "BridgeFolderError", "BridgedModel", "FeatureSet",
    "HeadError", "OldHead", "PairedWindows", "PairingError", "PositionSelectionError", "ProtoLRFC", "Split",
    "compare_baselines", "evaluate_bridge", "export_bridge", "extract_features", "fit_bridge", "held_out_split",
    "linear_cka", "load_labelled_windows", "load_paired_windows", "output_candidates", "pair_streams",
    "predict_bridge", "read_head", "render_images", "score_entry_points", "score_input_positions", "select_input_position", "torch_backbone",
    "verify_bridge_folder",
]
