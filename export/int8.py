"""FP32 ONNX -> INT8 ONNX with explicit Q/DQ, by NVIDIA ModelOpt's ONNX post-training quantisation.

``modelopt.onnx.quantization.quantize`` places QuantizeLinear/DequantizeLinear pairs where TensorRT fuses
them (Conv, MatMul/Gemm inputs and weights): symmetric INT8, zero point 0, per-output-channel weight
scales, per-tensor activation scales from entropy calibration. Weights are stored as INT8 initializers
read through DequantizeLinear (``dq_only``): an 11 MB file instead of 31 MB of FP32 weights behind
Q/DQ pairs, and nothing for TensorRT to fold. It calibrates with ONNX Runtime on the CPU
(``calibration_eps=["cpu"]``); everything not quantised stays FP32 (``high_precision_dtype="fp32"``), so
the graph runs on ONNX Runtime's CPU EP for checking and builds strongly typed in TensorRT without flags.

Calibration is slow (an ONNX Runtime pass per batch plus histograms), so its result is cached: the key is
the sha256 of the fp32 graph's bytes, of the calibration images (dtype, shape, bytes) and of the settings
below. The cache lives in ``default_cache_dir()/int8/<key>.onnx``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib
import re
import shutil
import tempfile
import time

import numpy as np

from biomoe_edge.paths import cache_dir as default_cache_dir  # $BIOMOE_EDGE_CACHE_DIR or ~/.cache

from biomoe_edge.durable import move_into_place
from biomoe_edge.manifest import sha256_file

log = logging.getLogger(__name__)

#: what decides the quantised graph besides the fp32 graph and the images; part of the cache key
SETTINGS = {"quantize_mode": "int8", "calibration_method": "entropy", "high_precision_dtype": "fp32",
            "dq_only": True, "calibration_batch": 4, "excluded": "spectral-gate DFT MatMuls"}


def spectral_gate_matmuls(onnx_path) -> list[str]:
    """Names of the MatMuls that apply SpectFormer's DFT matrices (initializers named ``*.dft_*``).

    They stay in high precision: quantized, the left-hand (H-axis) DFT matrices would get one scale per
    reduction column, which an INT8 matrix product cannot factor out (TensorRT would dequantize them, or
    refuse), and the gate would no longer be the exact DFT it stands for."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type == "MatMul" and any(".dft_" in name and name in initializers for name in node.input)]


def calibration_key(fp32_path, images: np.ndarray) -> str:
    import modelopt

    digest = hashlib.sha256()
    digest.update(sha256_file(fp32_path).encode())
    digest.update(f"{images.dtype.str}{images.shape}".encode())
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(json.dumps({**SETTINGS, "modelopt": modelopt.__version__}, sort_keys=True).encode())
    return digest.hexdigest()


class _ProgressReader:
    """An onnxruntime CalibrationDataReader over image batches that logs its progress."""

    def __init__(self, input_name: str, images: np.ndarray, batch: int):
        self.input_name = input_name
        self.batches = [images[i:i + batch] for i in range(0, len(images), batch)]
        self.position = 0
        self.started = time.monotonic()

    def get_next(self):
        if self.position >= len(self.batches):
            return None
        batch = self.batches[self.position]
        self.position += 1
        log.info("INT8 calibration batch %d/%d (%d images, %.1f s)", self.position, len(self.batches),
                 len(batch), time.monotonic() - self.started)
        return {self.input_name: np.ascontiguousarray(batch, np.float32)}

    def get_first(self):  # ModelOpt peeks at one batch to size its session
        return {self.input_name: np.ascontiguousarray(self.batches[0], np.float32)}

    def rewind(self):
        self.position = 0

    def __len__(self):
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int):  # part of the ORT reader protocol
        self.batches = self.batches[start_index:end_index]


def quantize_int8(fp32_path, int8_path, *, calibration=None, cache_dir=None, input_name: str = "images") -> dict:
    """Write the INT8 Q/DQ graph of ``fp32_path`` to ``int8_path``; returns the manifest's calibration record.

    ``calibration``: (N, 3, 224, 224) images in [0, 1]; None renders them from real signal windows with the
    SDK's transforms (:func:`.calibration.real_signal_images`).
    """
    from onnxruntime.quantization.calibrate import CalibrationDataReader

    from .calibration import real_signal_images

    if calibration is None:
        images, source = real_signal_images(), "images rendered by the SDK from real signal windows"
    else:
        images, source = np.asarray(calibration, dtype=np.float32), "given calibration array"
    if images.ndim != 4 or images.shape[1:] != (3, 224, 224) or len(images) == 0:
        raise ValueError(f"calibration must be an (N, 3, 224, 224) image array with N >= 1, got {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError("calibration contains NaN or infinite values")
    key = calibration_key(fp32_path, images)
    record = {"calibration_source": source, "calibration_images": int(len(images)),
              "calibration_sha256": hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest(),
              "cache_key": key, **SETTINGS, "quantizer": "modelopt.onnx.quantization.quantize"}
    cached = pathlib.Path(cache_dir or default_cache_dir()) / "int8" / f"{key}.onnx"
    if cached.is_file():
        log.info("INT8 calibration cache hit: %s", cached)
        shutil.copyfile(cached, int8_path)
        return {**record, "cache": "hit"}

    import modelopt.onnx.quantization as mq

    class Reader(_ProgressReader, CalibrationDataReader):
        pass

    reader = Reader(input_name, images, SETTINGS["calibration_batch"])
    log.info("INT8 calibration on %d images (%s), %d batches; ModelOpt on ONNX Runtime CPU", len(images), source,
             len(reader))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="biomoe-int8-") as tmp:
        out = pathlib.Path(tmp) / "model_int8.onnx"
        mq.quantize(str(fp32_path), quantize_mode=SETTINGS["quantize_mode"],
                    calibration_method=SETTINGS["calibration_method"], calibration_data_reader=reader,
                    calibration_eps=["cpu"], high_precision_dtype=SETTINGS["high_precision_dtype"],
                    dq_only=SETTINGS["dq_only"],
                    # ModelOpt matches these as regular expressions: anchor them (node_matmul vs node_matmul_10).
                    nodes_to_exclude=[f"^{re.escape(name)}$" for name in spectral_gate_matmuls(fp32_path)],
                    output_path=str(out), log_level="WARNING")
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".partial")
        shutil.copyfile(out, partial)
        move_into_place(partial, cached)  # a crash never leaves a truncated cache entry
        shutil.copyfile(out, int8_path)
    log.info("INT8 calibration done in %.1f s; cached at %s", time.monotonic() - started, cached)
    return {**record, "cache": "miss"}
