"""Manifests: the JSON file written beside every exported artefact (``path.with_suffix(".json")``)."""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib

from biomoe_edge._version import __version__


def sha256_file(path, *, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (engines and checkpoints are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_path(artefact_path) -> pathlib.Path:
    return pathlib.Path(artefact_path).with_suffix(".json")


def write_manifest(artefact_path, fields: dict) -> pathlib.Path:
    """Write ``fields`` plus the SDK version, creation time and the artefact's sha256 beside the artefact."""
    artefact_path = pathlib.Path(artefact_path)
    manifest = {
        "sdk_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "file": artefact_path.name,
        "sha256": sha256_file(artefact_path),
        **fields,
    }
    path = manifest_path(artefact_path)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return path


def read_manifest(artefact_path) -> dict:
    """Read the manifest beside ``artefact_path``; ValueError names the file when it is missing or not JSON."""
    path = manifest_path(artefact_path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"no manifest beside {artefact_path}: expected {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
