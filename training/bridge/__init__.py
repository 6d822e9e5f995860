"""BioX-Bridge for Tiny-BioMoE (Li et al., 2025): a low-rank prototype bridge from a new modality's features into
the old modality's model, so that a head trained on the old modality runs on the new one (docs/bridge.md).

    paired = PairedWindows(...)                       # or pair_streams(...) / load_paired_windows(...)
    fit = fit_bridge(paired, "heads/ecg", load_tiny_biomoe(ckpt), new_representation="spectrogram_psd",
                     backbone=torch_backbone(model))
    export_bridge(fit, "bridges/ecg-from-bvp", precision="fp16")     # bridge.onnx + bridge.json

Fitting needs PyTorch; evaluating a bridge folder (``evaluate``) and reading paired data (``data``) do not. So the
names below are imported on first use (PEP 562), and ``biomoe-edge bridge evaluate`` never imports torch.
"""

import importlib

#: public name -> the module of this package that defines it
_WHERE = {
    "compare_baselines": "baselines",
    "PairedWindows": "data", "Split": "data", "held_out_split": "data", "load_labelled_windows": "data",
    "load_paired_windows": "data", "pair_streams": "data",
    "evaluate_bridge": "evaluate", "predict_bridge": "evaluate",
    "BridgeConfigError": "exc", "BridgeError": "exc", "HeadError": "exc", "PairingError": "exc",
    "PositionSelectionError": "exc",
    "export_bridge": "export",
    "FeatureSet": "features", "extract_features": "features", "render_images": "features",
    "BridgeFit": "fit", "fit_bridge": "fit", "torch_backbone": "fit",
    "OldHead": "head", "read_head": "head",
    "Bridge": "protolrfc", "BridgedModel": "protolrfc", "ProtoLRFC": "protolrfc",
    "linear_cka": "selection", "output_candidates": "selection", "score_entry_points": "selection",
    "score_input_positions": "selection", "select_input_position": "selection",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
