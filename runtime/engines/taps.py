"""Feature taps as graph outputs: an engine graph exported with taps (``export_onnx(..., taps=...)``) returns,
beside ``embeddings``, Tiny-BioMoE's mean-pooled features at named points (``export/model/taps.py`` lists them)
as outputs named ``tap.<name>``. A bridge's graph reads one of them (docs/bridge.md), so a bridged window costs
the bridge and the rest of the backbone after its output position, not a second backbone run.

No torch here: the engines, the bridge stage and the export all name tap outputs through these two functions.
"""

from __future__ import annotations

TAP_OUTPUT_PREFIX = "tap."


def tap_output_name(tap: str) -> str:
    """The graph output (and bridge graph input) that carries ``tap``'s pooled features (B, dim)."""
    return TAP_OUTPUT_PREFIX + tap


def tap_of_output(output: str) -> str | None:
    """The tap a graph output carries, or None for an output that is not a tap (the embedding)."""
    return output[len(TAP_OUTPUT_PREFIX):] if output.startswith(TAP_OUTPUT_PREFIX) else None
