"""Task heads served by the gateway: load a head folder (``head.json`` + ``head.onnx``, ONNX Runtime, no torch)
and fuse the embeddings of one subject's wearables by window time into predictions (``FusionStage``).

Heads are trained at build time by ``biomoe-edge train-head`` (``biomoe_edge.training``); docs/heads.md
describes the folder and the stage.
"""

from .fusion import DEFAULT_DEADLINE_S, DEFAULT_TOLERANCE_S, DROP_REASONS, FusionStage
from .head import GRAPH_NAME, MANIFEST_NAME, Head, HeadError, load_head, parse_input, read_head_manifest

__all__ = ["DEFAULT_DEADLINE_S", "DEFAULT_TOLERANCE_S", "DROP_REASONS", "FusionStage", "GRAPH_NAME", "MANIFEST_NAME",
           "Head", "HeadError", "load_head", "parse_input", "read_head_manifest"]
