"""Is the TensorRT engine on this Jetson present and still valid? Rebuild it with `biomoe-edge build-engine` if not.

Run by biomoe-edge-engine.service before every gateway start (installed as /opt/biomoe-edge/libexec/engine_check.py
and run with the SDK's Python). An engine must be rebuilt when:
  - it does not exist yet (first boot),
  - its manifest (the JSON beside it) is missing or unreadable,
  - the manifest's tensorrt_version, gpu_name or compute_capability differ from this machine (JetPack upgrade,
    card moved to another module), or the engine's bytes fail their sha256,
  - the ONNX model it was built from has changed (its sha256 differs from the manifest's source_onnx_sha256).

Paths come from --engine / --onnx or from BIOMOE_ENGINE / BIOMOE_ONNX (/etc/biomoe-edge/engine.env); extra
build-engine options from BIOMOE_BUILD_ARGS. --tensorrt-version, --gpu-name and --compute-capability replace
what this machine reports (for checking a manifest on another machine, and for the tests).

Exit status: 0 up to date (or rebuilt, with --build); 1 a rebuild is needed (without --build); 2 error.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import subprocess
import sys

from biomoe_edge.manifest import read_manifest, sha256_file
from biomoe_edge.runtime.engines.compatibility import engine_manifest_problems

EXIT_OK, EXIT_REBUILD_NEEDED, EXIT_ERROR = 0, 1, 2


def installed_platform(args) -> dict:
    """TensorRT version, GPU name and compute capability of this machine (each overridable on the command line)."""
    platform = {
        "tensorrt_version": args.tensorrt_version,
        "gpu_name": args.gpu_name,
        "compute_capability": args.compute_capability,
    }
    if platform["tensorrt_version"] is None:
        from biomoe_edge.runtime.engines.tensorrt_support import import_tensorrt

        platform["tensorrt_version"] = import_tensorrt().__version__
    if platform["gpu_name"] is None or platform["compute_capability"] is None:
        from biomoe_edge.runtime.engines.tensorrt_support import cuda_device_identity

        name, capability = cuda_device_identity(0)
        platform["gpu_name"] = platform["gpu_name"] or name
        platform["compute_capability"] = platform["compute_capability"] or capability
    return platform


def rebuild_reasons(engine: pathlib.Path, onnx: pathlib.Path | None, platform: dict) -> list[str]:
    """Every reason to rebuild ``engine`` on ``platform``; empty when it is up to date."""
    if not engine.is_file():
        return [f"no engine at {engine}"]
    try:
        manifest = read_manifest(engine)
    except ValueError as exc:
        return [str(exc)]
    reasons = engine_manifest_problems(manifest, engine_sha256=sha256_file(engine), **platform)
    if onnx is not None and onnx.is_file():
        built_from = manifest.get("source_onnx_sha256")
        if built_from and built_from != sha256_file(onnx):
            reasons.append(f"the model {onnx} changed since the engine was built from it")
    return reasons


def build_arguments(engine: pathlib.Path, onnx: pathlib.Path, extra_args: list[str]) -> list[str]:
    """The `biomoe-edge` arguments that build ``engine`` from ``onnx``."""
    return ["build-engine", str(onnx), "--engine", str(engine), *extra_args]


def build(engine: pathlib.Path, onnx: pathlib.Path, extra_args: list[str]) -> int:
    command = [sys.executable, "-m", "biomoe_edge", *build_arguments(engine, onnx, extra_args)]
    print("running: " + shlex.join(command), flush=True)
    return subprocess.run(command, check=False).returncode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", type=pathlib.Path, default=os.environ.get("BIOMOE_ENGINE"))
    parser.add_argument("--onnx", type=pathlib.Path, default=os.environ.get("BIOMOE_ONNX"))
    parser.add_argument("--build", action="store_true", help="run `biomoe-edge build-engine` when a rebuild is needed")
    parser.add_argument("--tensorrt-version")
    parser.add_argument("--gpu-name")
    parser.add_argument("--compute-capability")
    args = parser.parse_args(argv)
    if args.engine is None:
        print("engine_check: no engine path: pass --engine or set BIOMOE_ENGINE (/etc/biomoe-edge/engine.env)", file=sys.stderr)
        return EXIT_ERROR
    try:
        platform = installed_platform(args)
    except (ImportError, RuntimeError, OSError) as exc:
        print(f"engine_check: cannot tell this machine's TensorRT / GPU: {exc}", file=sys.stderr)
        return EXIT_ERROR

    reasons = rebuild_reasons(args.engine, args.onnx, platform)
    where = f"TensorRT {platform['tensorrt_version']} on {platform['gpu_name']} (sm {platform['compute_capability']})"
    if not reasons:
        print(f"engine {args.engine} is up to date for {where}")
        return EXIT_OK
    print(f"engine {args.engine} must be (re)built for {where}: " + "; ".join(reasons), flush=True)
    if not args.build:
        return EXIT_REBUILD_NEEDED
    if args.onnx is None or not args.onnx.is_file():
        print(f"engine_check: cannot build: no ONNX model at {args.onnx} (set BIOMOE_ONNX; export one on a "
              "workstation with `biomoe-edge export` and copy it to the board)", file=sys.stderr)
        return EXIT_ERROR
    status = build(args.engine, args.onnx, shlex.split(os.environ.get("BIOMOE_BUILD_ARGS", "")))
    if status != 0:
        print(f"engine_check: `biomoe-edge build-engine` failed (exit status {status}); see its messages above",
              file=sys.stderr)
        return EXIT_ERROR
    remaining = rebuild_reasons(args.engine, args.onnx, platform)
    if remaining:
        print("engine_check: the new engine still does not fit: " + "; ".join(remaining), file=sys.stderr)
        return EXIT_ERROR
    print(f"engine {args.engine} built for {where}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
