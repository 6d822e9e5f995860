"""What changes a prediction's meaning (classes and their order, inputs, backbone identity, window settings) is
bound to the graph: ``write_manifest`` writes it into the ONNX graph's metadata at export, so the graph's sha256
covers it; on load the manifest must state the same, or the head or bridge is refused."""

from __future__ import annotations

from biomoe_edge.manifest import meaning_mismatch
from biomoe_edge.vocabulary import InputType


def check_binding(manifest: dict, session, manifest_path, graph, error) -> None:
    """``error`` naming both files when ``manifest`` (read, inputs normalised) says something else than what
    ``graph`` (opened as the ONNX Runtime ``session``) was exported with."""
    def normalise(inputs):
        return [str(InputType.parse(name)) for name in inputs]

    metadata = dict(session.get_modelmeta().custom_metadata_map)
    try:
        why = meaning_mismatch(manifest, metadata, normalise_inputs=normalise)
    except ValueError as exc:
        why = f"the graph's bound inputs are not readable ({exc})"
    if why is not None:
        raise error(f"{manifest_path} does not describe {graph}: {why}")
