"""Does a serialized TensorRT engine fit this machine? Pure checks of its manifest, testable without TensorRT.

A TensorRT engine is only valid for the TensorRT version and the GPU it was built on. ``build_engine``
writes both, and the engine's sha256, into the manifest beside the engine (``model.engine`` ->
``model.json``); the loader refuses anything that does not match, before TensorRT sees the bytes.
"""

from __future__ import annotations

import hashlib
import pathlib

from biomoe_edge.manifest import read_manifest
from biomoe_edge.runtime.engines.exc import EngineCompatibilityError

#: ``kind`` of an engine manifest.
ENGINE_MANIFEST_KIND = "tensorrt_engine"
#: ``build_engine`` writes ``DIR/model.onnx``'s engine to ``DIR/model.trt.engine``: its manifest
#: (``model.trt.json``) then stays apart from the graph's (``model.json``).
ENGINE_SUFFIX = ".trt.engine"
#: Fields an engine manifest must carry for the loader to trust it.
REQUIRED_FIELDS = ("tensorrt_version", "gpu_name", "compute_capability", "sha256")


def normalize_compute_capability(value) -> str:
    """``(8, 7)``, ``"8.7"`` or ``8.7`` -> ``"8.7"``."""
    if isinstance(value, (tuple, list)):
        major, minor = value
        return f"{int(major)}.{int(minor)}"
    return str(value).strip()


def engine_manifest_problems(
    manifest: dict, *, tensorrt_version: str, gpu_name: str, compute_capability, engine_sha256: str
) -> list[str]:
    """Every way ``manifest`` disagrees with this machine and these engine bytes; empty when it fits."""
    missing = [field for field in REQUIRED_FIELDS if not manifest.get(field)]
    if missing:
        return [f"its manifest lacks {', '.join(repr(f) for f in missing)} (not written by build_engine?)"]
    problems = []
    if str(manifest["tensorrt_version"]) != str(tensorrt_version):
        problems.append(
            f"it was built with TensorRT {manifest['tensorrt_version']}, this machine runs TensorRT {tensorrt_version}"
        )
    built_cc = normalize_compute_capability(manifest["compute_capability"])
    here_cc = normalize_compute_capability(compute_capability)
    if built_cc != here_cc or str(manifest["gpu_name"]).strip() != str(gpu_name).strip():
        problems.append(
            f"it was built for {manifest['gpu_name']} (compute capability {built_cc}), "
            f"this GPU is {gpu_name} (compute capability {here_cc})"
        )
    if manifest["sha256"] != engine_sha256:
        problems.append(
            f"its bytes fail their checksum (sha256 {engine_sha256}, manifest says {manifest['sha256']}): "
            f"the file is corrupt or was replaced"
        )
    return problems


def check_engine_manifest(
    manifest: dict, *, tensorrt_version: str, gpu_name: str, compute_capability, engine_sha256: str, engine_path=None
) -> None:
    """Raise EngineCompatibilityError naming every mismatch between ``manifest`` and this machine."""
    problems = engine_manifest_problems(
        manifest,
        tensorrt_version=tensorrt_version,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        engine_sha256=engine_sha256,
    )
    if problems:
        what = f"engine {engine_path}" if engine_path is not None else "this engine"
        source = manifest.get("source_onnx")
        rebuild = f"biomoe-edge build-engine {source}" if source else "biomoe-edge build-engine DIR/model.onnx"
        raise EngineCompatibilityError(f"refusing {what}: " + "; ".join(problems) + f". Rebuild it on this machine: {rebuild}")


def read_verified_engine(path, *, tensorrt_version: str, gpu_name: str, compute_capability) -> tuple[bytes, dict]:
    """Read an engine file and its manifest; return (bytes, manifest) once the manifest fits this machine."""
    path = pathlib.Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no TensorRT engine at {path}: build one with `biomoe-edge build-engine DIR/model.onnx`") from None
    manifest = read_manifest(path)
    check_engine_manifest(
        manifest,
        tensorrt_version=tensorrt_version,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        engine_sha256=hashlib.sha256(data).hexdigest(),
        engine_path=path,
    )
    return data, manifest
