"""``biomoe-edge export``: Tiny-BioMoE checkpoint -> DIR/model.onnx (fp32 | fp16 | int8) + DIR/model.json."""

from __future__ import annotations

import argparse
import logging
import pathlib

HELP = "export a Tiny-BioMoE checkpoint to ONNX (fp32, fp16 or int8 Q/DQ) with a manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=pathlib.Path, metavar="PATH",
                        help="Tiny-BioMoE .pth ({'model_state_dict': ...}, bare or 'module.'-prefixed state dict)")
    source.add_argument("--random-weights", type=int, metavar="SEED",
                        help="export deterministic random weights instead (meaningless embeddings; for testing)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16",
                        help="graph precision (default fp16); int8 runs ModelOpt PTQ calibration on the CPU")
    parser.add_argument("--out", type=pathlib.Path, required=True, metavar="DIR",
                        help="output folder: DIR/model.onnx and its manifest DIR/model.json")
    parser.add_argument("--max-batch", type=int, default=32, metavar="N",
                        help="largest batch the engine will be built for (default 32)")
    parser.add_argument("--calibration", type=pathlib.Path, metavar="NPY",
                        help="int8: .npy of (N, 3, 224, 224) float32 images in [0, 1] (default: the SDK renders "
                             "real signal windows)")
    parser.add_argument("--cache-dir", type=pathlib.Path, metavar="DIR",
                        help="int8 calibration cache (default $BIOMOE_EDGE_CACHE_DIR or ~/.cache/biomoe-edge)")


def run(args) -> int:
    import warnings

    import numpy as np

    from biomoe_edge.export import export_onnx, load_tiny_biomoe
    from biomoe_edge.manifest import read_manifest

    if args.max_batch < 1:
        raise ValueError(f"--max-batch must be at least 1, got {args.max_batch}")
    if args.calibration is not None and args.precision != "int8":
        raise ValueError("--calibration only applies to --precision int8")
    # progress of the export and of INT8 calibration is worth seeing without -v
    export_log = logging.getLogger("biomoe_edge.export")
    if export_log.getEffectiveLevel() > logging.INFO:
        export_log.setLevel(logging.INFO)
    calibration = None
    if args.calibration is not None:
        calibration = np.load(args.calibration, allow_pickle=False)
    if args.checkpoint is not None:
        model = load_tiny_biomoe(args.checkpoint)
    else:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_tiny_biomoe(seed=args.random_weights)
        for warning in caught:
            logging.getLogger(__name__).warning("%s", warning.message)
    path = export_onnx(model, args.out / "model.onnx", precision=args.precision, calibration=calibration,
                       max_batch=args.max_batch, cache_dir=args.cache_dir)
    fidelity = read_manifest(path)["fidelity"]
    print(f"wrote {path} and {path.with_suffix('.json')} ({args.precision}); ONNX Runtime vs PyTorch on "
          f"{fidelity['n_images']} images ({fidelity['images']}): max abs {fidelity['max_abs']:.3g}, "
          f"cosine min {fidelity['cosine_min']:.6f}")
    return 0
