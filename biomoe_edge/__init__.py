"""biomoe-edge: Tiny-BioMoE biosignal embeddings on NVIDIA Jetson gateways.

The import namespace spans the repository's top-level folders:
``biomoe_edge.export`` (``export/``), ``biomoe_edge.runtime`` (``runtime/``) and
``biomoe_edge.firmware_bridge`` (``firmware_bridge/``). This package holds what they share.
"""

from biomoe_edge._version import __version__
from biomoe_edge.vocabulary import (
    EMBEDDING_DIM,
    IMAGE_SIZE,
    REPRESENTATIONS,
    Modality,
    StreamSpec,
    WindowSpec,
)

__all__ = [
    "__version__",
    "EMBEDDING_DIM",
    "IMAGE_SIZE",
    "REPRESENTATIONS",
    "Modality",
    "StreamSpec",
    "WindowSpec",
]
