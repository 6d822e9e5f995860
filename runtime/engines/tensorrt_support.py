"""What building, loading and checking TensorRT engines share, as a public module for the layers above the engines
(``export.tensorrt_builder`` builds them, ``jetson/engine_check.py`` checks them against the board): the guarded
imports of TensorRT and CuPy, TensorRT's log routed to Python ``logging``, and the GPU's identity.

The code lives in the engines' private ``_tensorrt`` and ``_cuda`` modules, which the engines themselves import;
this module is the name the other layers import (as pyts re-exports its private modules' classes).
"""

from __future__ import annotations

from biomoe_edge.runtime.engines._cuda import CUPY_INSTALL_HINT, cuda_device_identity, import_cupy
from biomoe_edge.runtime.engines._tensorrt import import_tensorrt, make_logger, tensorrt_major

__all__ = ["CUPY_INSTALL_HINT", "cuda_device_identity", "import_cupy", "import_tensorrt", "make_logger", "tensorrt_major"]
