"""CuPy, imported only when a CUDA path runs: CuPy owns CUDA in this SDK (no pycuda)."""

from __future__ import annotations

from biomoe_edge.runtime.engines.exc import BackendUnavailableError

CUPY_INSTALL_HINT = (
    "CuPy is needed for CUDA arrays and the TensorRT engine: `pip install cupy-cuda12x` "
    "(JetPack 6, CUDA 12.6) or `pip install cupy-cuda13x` (JetPack 7, CUDA 13), or the SDK's `gpu` extra"
)


def import_cupy():
    """Import CuPy or raise BackendUnavailableError saying how to install it."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(f"{CUPY_INSTALL_HINT} ({exc})") from None
    return cupy


def cuda_device_identity(device_id: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of a CUDA device, as the CUDA runtime reports them."""
    cupy = import_cupy()
    props = cupy.cuda.runtime.getDeviceProperties(device_id)
    name = props["name"]
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name.rstrip("\x00").strip(), f"{props['major']}.{props['minor']}"
