"""Where an engine's weights came from, checked when it opens.

Every model file an engine loads is hashed and, where a manifest sits beside it (``model.onnx`` ->
``model.json``, ``model.trt.engine`` -> ``model.trt.json``, ``Tiny-BioMoE.pth`` -> ``Tiny-BioMoE.json``),
compared with the manifest's ``sha256``: a mismatch is a :class:`ModelIntegrityError` naming both values, since
the manifest's precision and checkpoint would then describe another file. The manifest's provenance fields
become the engine identity's ``checkpoint_sha256``, ``random_weights`` and ``seed``, which every record carries
(``biomoe_edge.identity.model_identity``).
"""

from __future__ import annotations

import pathlib

from biomoe_edge.manifest import manifest_path, read_manifest, sha256_file
from biomoe_edge.runtime.engines.exc import ModelIntegrityError


def integrity_problem(path, manifest: dict, *, digest: str | None = None) -> str | None:
    """Why ``path``'s bytes do not match ``manifest["sha256"]`` (both values named), or None when they do."""
    expected = manifest.get("sha256")
    actual = digest or sha256_file(path)
    if expected is None:
        return f"its manifest {manifest_path(path)} records no sha256, so nothing vouches for {path}"
    if actual != expected:
        return (f"{path} has sha256 {actual}, but its manifest {manifest_path(path)} says {expected}: the file was "
                f"changed or replaced after it was written. Export it again (or restore the file its manifest "
                f"describes)")
    return None


def verified_manifest(path, *, required: bool = False, only_with_sha256: bool = False) -> tuple[dict, str]:
    """``(manifest, sha256)`` of a model file, once its bytes match its manifest's sha256.

    No manifest beside it: ``({}, sha256)``, or ValueError when ``required``. ``only_with_sha256``: a JSON file
    beside it that records no sha256 is not its manifest (a checkpoint's neighbour), ``({}, sha256)``. Raises
    ModelIntegrityError naming both hashes on a mismatch (or when the manifest records none)."""
    path = pathlib.Path(path)
    digest = sha256_file(path)
    if not manifest_path(path).is_file():
        if required:
            raise ValueError(f"no manifest beside {path}: expected {manifest_path(path)}")
        return {}, digest
    manifest = read_manifest(path)
    if only_with_sha256 and (not isinstance(manifest, dict) or "sha256" not in manifest):
        return {}, digest
    problem = integrity_problem(path, manifest, digest=digest)
    if problem is not None:
        raise ModelIntegrityError(problem)
    return manifest, digest


def weights_provenance(manifest: dict) -> dict:
    """``checkpoint_sha256``, ``random_weights`` and ``seed`` from an export or engine manifest.

    Weights no manifest vouches for (no manifest, or no checkpoint recorded) count as random weights."""
    checkpoint = manifest.get("checkpoint_sha256") or None
    random_weights = bool(manifest.get("random_weights", checkpoint is None))
    return {"checkpoint_sha256": None if random_weights else checkpoint, "random_weights": random_weights,
            "seed": manifest.get("seed") if random_weights else None}


def describe_identity(identity: dict) -> str:
    """One line for start-up logs: kind, precision, device, file, checkpoint and ``random_weights``."""
    if identity.get("random_weights"):
        weights = f"RANDOM WEIGHTS (seed {identity.get('seed')}): the embeddings are meaningless"
    else:
        weights = f"checkpoint sha256 {str(identity.get('checkpoint_sha256'))[:16]}..."
    source = identity.get("source") or "weights built in memory"
    sha = identity.get("model_sha256")
    return (f"{identity.get('kind')} {identity.get('precision')} on {identity.get('device')}, {source}"
            + (f" (sha256 {sha[:16]}...)" if sha else "") + f"; {weights}; random_weights: "
            + ("true" if identity.get("random_weights") else "false"))
