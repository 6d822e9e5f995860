"""Task heads served by the gateway: load a head folder (``head.json`` + ``head.onnx``, ONNX Runtime, no torch)
and fuse the embeddings of one subject's wearables by window time into predictions (``FusionStage``); run a
bridge folder (``bridge.json`` + ``bridge.onnx``, ``biomoe-edge bridge fit``) on the new modality's window images
(``BridgeStage``).

Heads are trained at build time by ``biomoe-edge train-head`` (``biomoe_edge.training``); docs/heads.md
describes the folder and the stage.
"""

from .bridge import BridgeError, BridgeStage, load_bridge, read_bridge_manifest
from .fusion import DEFAULT_DEADLINE_S, DEFAULT_TOLERANCE_S, DROP_REASONS, FusionStage
from .head import GRAPH_NAME, MANIFEST_NAME, OUTPUT_NAME, Head, HeadError, graph_input_name, load_head, read_head_manifest

__all__ = ["BridgeError", "BridgeStage", "DEFAULT_DEADLINE_S", "DEFAULT_TOLERANCE_S", "DROP_REASONS", "FusionStage",
           "GRAPH_NAME", "MANIFEST_NAME", "OUTPUT_NAME", "Head", "HeadError", "graph_input_name", "load_bridge", "load_head",
           "read_bridge_manifest", "read_head_manifest"]
