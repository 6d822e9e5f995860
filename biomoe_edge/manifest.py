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
    """Write ``fields`` plus the SDK version, creation time and the artefact's sha256 beside the artefact. A head's
    or bridge's graph first gets its meaning bound into it (``bind_meaning``)."""
    artefact_path = pathlib.Path(artefact_path)
    if fields.get("kind") in SERVED_KINDS:  # before its sha256: the graph carries what the manifest says it means
        bind_meaning(artefact_path, fields)
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


#: The key, in a head's or bridge's ONNX graph (``metadata_props``), of the meaning its manifest gives it.
MEANING_KEY = "biomoe_edge.meaning"
#: Manifests whose graph carries its meaning (``write_manifest`` binds it).
SERVED_KINDS = ("head", "bridge")
_MEANING_BACKBONE_KEYS = ("checkpoint_sha256", "random_weights", "seed", "precision")


def meaning_of(manifest: dict) -> dict:
    """What changes a prediction's meaning, as a head.json or bridge.json states it: kind, inputs, classes and their
    order, backbone identity, window settings."""
    backbone = manifest.get("backbone") if isinstance(manifest.get("backbone"), dict) else {}
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    return {"kind": manifest.get("kind"), "inputs": manifest.get("inputs"), "classes": manifest.get("classes"),
            "backbone": {key: backbone.get(key) for key in _MEANING_BACKBONE_KEYS},
            "window_length_s": manifest.get("window_length_s"), "window_s": data.get("window_s")}


def bind_meaning(graph_path, manifest: dict) -> None:
    """Write ``meaning_of(manifest)`` into the ONNX graph at ``graph_path`` (its ``metadata_props``), so that the
    graph's sha256 covers it and a manifest edited afterwards no longer matches its graph. Needs ``onnx``."""
    import onnx

    model = onnx.load(str(graph_path))
    kept = [p for p in model.metadata_props if p.key != MEANING_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=MEANING_KEY, value=json.dumps(meaning_of(manifest), sort_keys=True, allow_nan=False))
    onnx.save(model, str(graph_path))


def meaning_mismatch(manifest: dict, graph_metadata: dict, *, normalise_inputs=None) -> str | None:
    """None when the graph's bound meaning (``graph_metadata``: its metadata_props as a dict, e.g. ONNX Runtime's
    ``custom_metadata_map``) equals the manifest's; otherwise what differs, naming the field."""
    text = graph_metadata.get(MEANING_KEY)
    if text is None:
        return (f"the graph carries no {MEANING_KEY} (classes, inputs, backbone and windows bound at export); "
                "it was written by an older SDK or by hand: export it again")
    try:
        bound = json.loads(text)
        if not isinstance(bound, dict):
            raise ValueError("not an object")
        if normalise_inputs is not None and isinstance(bound.get("inputs"), list):
            bound["inputs"] = normalise_inputs(bound["inputs"])
    except ValueError as exc:
        return f"the graph's {MEANING_KEY} is not readable ({exc})"
    for key, value in meaning_of(manifest).items():
        if bound.get(key) != value:
            return f"{key} is {value!r} in the manifest, but the graph was exported with {bound.get(key)!r}"
    return None
