"""``biomoe-edge build-engine DIR/model.onnx``: build a TensorRT engine (and its manifest) on this machine."""

from __future__ import annotations

import argparse
import pathlib

HELP = "build a TensorRT engine from an exported ONNX graph (needs TensorRT: JetPack's python3-libnvinfer)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", type=pathlib.Path, help="the ONNX graph written by `biomoe-edge export` (DIR/model.onnx)")
    parser.add_argument("--engine", type=pathlib.Path, default=None, help="engine file to write (default: DIR/model.trt.engine beside DIR/model.onnx)")
    parser.add_argument("--max-batch", type=_positive, default=None, help="largest batch (default: the export manifest's, else 32)")
    parser.add_argument("--opt-batch", type=_positive, default=None, help="batch TensorRT tunes kernels for (default: --max-batch)")
    parser.add_argument("--workspace-mb", type=_positive, default=1024, help="workspace memory pool cap in MB (default 1024)")
    parser.add_argument("--dla-core", type=_non_negative, default=None, help="build for this DLA core, GPU fallback, static batch")
    parser.add_argument("--timing-cache", type=pathlib.Path, default=None,
                        help="timing cache file reused across builds (default: tensorrt.timing.cache beside the engine)")
    parser.add_argument("--optimization-level", type=int, choices=range(6), default=None, help="TensorRT builder optimization level")
    parser.add_argument("--no-tf32", dest="tf32", action="store_false", help="keep fp32 layers off TF32 tensor cores")


def run(args) -> int:
    from biomoe_edge.export.tensorrt_builder import build_engine

    engine = build_engine(
        args.onnx,
        args.engine,
        max_batch=args.max_batch,
        opt_batch=args.opt_batch,
        workspace_mb=args.workspace_mb,
        dla_core=args.dla_core,
        timing_cache=args.timing_cache,
        optimization_level=args.optimization_level,
        tf32=args.tf32,
    )
    from biomoe_edge.manifest import read_manifest

    manifest = read_manifest(engine)
    weights = (f"RANDOM WEIGHTS (seed {manifest.get('seed')}): its embeddings are meaningless"
               if manifest.get("random_weights") else f"checkpoint sha256 {str(manifest.get('checkpoint_sha256'))[:16]}...")
    print(f"wrote {engine} and {engine.with_suffix('.json')} ({weights}; random_weights: "
          f"{'true' if manifest.get('random_weights') else 'false'})")
    return 0
