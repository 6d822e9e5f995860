"""Every exception the engines raise, in one place (bleak keeps its exceptions in ``exc.py`` too).

The base classes are the built-in ones the ``biomoe-edge`` command line prints as one clean line:
bad images are a ``ValueError``; a missing backend or an engine that does not fit this machine is a
``RuntimeError``.
"""

from __future__ import annotations

#: How to get TensorRT's Python package where it is missing; shared by the builder and the loader.
TENSORRT_INSTALL_HINT = (
    "tensorrt is not installed: it ships with JetPack, not pip. On a Jetson run "
    "`sudo apt-get install python3-libnvinfer` (JetPack 6: TensorRT 10.3, Python 3.10; JetPack 7: "
    "TensorRT 10.13), and create the virtual environment with `python3 -m venv --system-site-packages .venv` "
    "so that it sees the system's tensorrt module. On an x86-64 machine with an NVIDIA GPU, "
    "`pip install tensorrt` works. Without TensorRT, use the onnxruntime or pytorch engine."
)


class EngineError(RuntimeError):
    """Base class of the engines' runtime errors."""


class BackendUnavailableError(EngineError):
    """The package a backend needs (tensorrt, onnxruntime, torch, cupy) cannot be imported."""


class TensorRTUnavailableError(BackendUnavailableError):
    """The ``tensorrt`` Python package is missing; the message says how to get it on a Jetson."""

    def __init__(self, detail: str = ""):
        super().__init__(TENSORRT_INSTALL_HINT + (f" ({detail})" if detail else ""))


class EngineBuildError(EngineError):
    """TensorRT could not parse the ONNX graph or build the engine; the message carries its errors."""


class EngineCompatibilityError(EngineError):
    """A serialized engine does not fit this machine (TensorRT version, GPU) or its bytes fail their checksum."""


class EngineInputError(ValueError):
    """Images handed to ``Engine.infer`` have the wrong shape or dtype, or hold NaN / infinity."""


class ModelIntegrityError(EngineError):
    """A model file's bytes do not match the sha256 its manifest records: it was changed or replaced after it
    was written, so the manifest (precision, checkpoint, random weights) no longer describes it."""
