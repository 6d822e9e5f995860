"""``biomoe-edge export``: Tiny-BioMoE checkpoint -> DIR/model.onnx (fp32 | fp16 | int8) + DIR/model.json."""

from __future__ import annotations

import argparse
import logging
import pathlib

from .weights import add_weights_arguments, load_model

HELP = "export a Tiny-BioMoE checkpoint to ONNX (fp32, fp16 or int8 Q/DQ) with a manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_weights_arguments(parser, required=True)
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
    parser.add_argument("--taps", type=lambda text: tuple(t.strip() for t in text.split(",") if t.strip()),
                        default=(), metavar="NAME,...",
                        help="also return Tiny-BioMoE's pooled features at these input taps (outputs tap.NAME), "
                             "as served bridges read them: a bridge's bridge.json names its tap (docs/bridge.md)")


def run(args) -> int:
    import numpy as np

    from biomoe_edge.export import export_onnx
    from biomoe_edge.manifest import read_manifest

    if args.max_batch < 1:
        raise ValueError(f"--max-batch must be at least 1, got {args.max_batch}")
    if args.calibration is not None and args.precision != "int8":
        raise ValueError("--calibration only applies to --precision int8")
    from biomoe_edge.export.onnx_export import check_taps

    check_taps(args.taps)  # before the model loads
    # progress of the export and of INT8 calibration is worth seeing without -v
    export_log = logging.getLogger("biomoe_edge.export")
    if export_log.getEffectiveLevel() > logging.INFO:
        export_log.setLevel(logging.INFO)
    calibration = None
    if args.calibration is not None:
        calibration = np.load(args.calibration, allow_pickle=False)
    model = load_model(args.checkpoint, args.random_weights, strict=args.strict, log=logging.getLogger(__name__))
    path = export_onnx(model, args.out / "model.onnx", precision=args.precision, calibration=calibration,
                       max_batch=args.max_batch, cache_dir=args.cache_dir, taps=args.taps)
    manifest = read_manifest(path)
    fidelity = manifest["fidelity"]
    weights = (f"RANDOM WEIGHTS (seed {manifest['seed']}; the manifest says random_weights: true)"
               if manifest["random_weights"] else f"weights of {args.checkpoint} (sha256 "
               f"{manifest['checkpoint_sha256'][:16]}...)")
    print(f"wrote {path} and {path.with_suffix('.json')} ({args.precision}, {weights}); ONNX Runtime vs PyTorch on "
          f"{fidelity['n_images']} images ({fidelity['images']}): max abs {fidelity['max_abs']:.3g}, "
          f"cosine min {fidelity['cosine_min']:.6f}")
    if manifest.get("taps"):
        print(f"taps (outputs beside the embedding): {', '.join(manifest['taps'])}")
    return 0
