"""Tiny-BioMoE -> ONNX in fp32, fp16 or int8 (Q/DQ), checked against PyTorch, with a manifest beside it.

Pipeline (every precision starts from the same fp32 graph):

1. A copy of the model is prepared for export: BatchNorm folded into the preceding convolutions, and the
   spectral gates switched to their DFT-matrix form (TensorRT's ONNX parser has no DFT operator).
2. ``torch.onnx.export(..., dynamo=True)`` writes an opset-18 graph (the lowest the exporter implements natively; TensorRT 10 parses opsets up to 20) with a dynamic batch axis; the
   exporter's optimiser folds constants. Why dynamo and not the TorchScript exporter: in torch 2.13 the
   TorchScript path (``dynamo=False``, deprecated) traces every ``x.shape`` access into Shape/Gather/
   Unsqueeze/Concat chains (about 300 shape nodes for this model) feeding each Reshape, whereas
   ``torch.export`` knows which dimensions are static and leaves one symbolic batch dimension: a graph of
   ~530 compute nodes and no shape arithmetic, which TensorRT fuses better and ModelOpt places Q/DQ in
   cleanly. It costs ~20 s of export time instead of ~3 s.
3. fp16: :mod:`.fp16`; int8: :mod:`.int8`.
4. ONNX Runtime (CPU) runs the written graph on fidelity images and compares it with the PyTorch model
   (its torch.fft form); the figures go into the manifest.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pathlib
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from biomoe_edge.manifest import write_manifest
from biomoe_edge.runtime.engines.taps import tap_output_name

from .graph_info import EXPORT_FORMAT
from .model import EMBEDDING_DIM, IMAGE_SHAPE, SpectralGatingNetwork
from .model.spectformer import ConvFFN, GeluErf

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
PRECISIONS = ("fp32", "fp16", "int8")
#: how many images the fidelity check runs when none are given
FIDELITY_IMAGES = 8


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d (in module order) into that conv, in place."""
    for parent in model.modules():
        names = list(parent._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = parent._modules[first], parent._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                parent._modules[first] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                parent._modules[second] = nn.Identity()
    leftover = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if leftover:
        raise RuntimeError(f"BatchNorm layers not preceded by a conv, cannot fold: {leftover[:5]}")
    return model


def prepare_for_export(model: nn.Module) -> nn.Module:
    """An eval-mode copy with BatchNorm folded, the spectral gates in their DFT-matrix (MatMul) form, the
    SpectFormer feed-forwards in their channels-first 1x1-convolution form (:class:`.model.spectformer.ConvFFN`)
    and exact GELUs written in the order ONNX Runtime fuses (:func:`.model.spectformer.gelu_erf`)."""
    export_model = copy.deepcopy(model).eval()
    for module in export_model.modules():
        if isinstance(module, SpectralGatingNetwork):
            module.use_dft_matmul = True
            module.freeze_gate()
        elif isinstance(module, ConvFFN):
            module.use_pointwise_conv_form()
    for parent in export_model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.GELU) and child.approximate == "none":
                setattr(parent, name, GeluErf())
    return fold_batchnorm(export_model)


class _DropTorchvisionNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "torchvision is not installed" not in record.getMessage()


@contextlib.contextmanager
def _quiet_torchvision_notices():
    """torch's exporter logs "torchvision is not installed. Skipping torchvision::nms" (and three more) through its
    own handler while it builds its operator registry; Tiny-BioMoE uses no torchvision operator."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    notice_filter = _DropTorchvisionNotice()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


class TappedModel(nn.Module):
    """Tiny-BioMoE returning, beside its embedding, the pooled features at ``taps`` (export/model/taps.py) from
    the same run: forward(x) -> (embedding, *features). The walk calls the model's own modules in forward's
    order, so the embedding is forward's."""

    def __init__(self, model: nn.Module, taps):
        super().__init__()
        self.model = model
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor):
        from .model.taps import capture

        pooled, _ = capture(self.model, x, inputs=(*self.taps, "embedding"))
        return (pooled["embedding"], *(pooled[t] for t in self.taps))


def check_taps(taps) -> tuple[str, ...]:
    """``taps`` as a tuple of distinct input-tap names; ValueError naming an unknown one."""
    from .model.taps import INPUT_TAPS, check_tap_names

    taps = tuple(dict.fromkeys(taps or ()))
    check_tap_names(inputs=taps)
    if "embedding" in taps:
        raise ValueError(f"tap 'embedding' is the graph's output {OUTPUT_NAME!r} already; other taps: "
                         f"{[t for t in INPUT_TAPS if t != 'embedding']}")
    return taps


def _export_fp32(model: nn.Module, path: pathlib.Path, max_batch: int, taps=()) -> pathlib.Path:
    export_model = prepare_for_export(model)
    if taps:
        export_model = TappedModel(export_model, taps)
    example = torch.zeros((2, *IMAGE_SHAPE), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    log.info("exporting fp32 ONNX (opset %d, dynamic batch 1..%d%s) to %s", OPSET, max_batch,
             f", taps {', '.join(taps)}" if taps else "", path)
    with warnings.catch_warnings(), torch.no_grad(), _quiet_torchvision_notices():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            export_model, (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, *map(tap_output_name, taps)], dynamic_shapes={"x": {0: batch}},
            optimize=True, verbose=False, report=False)
    program.save(str(path))
    return path


def check_onnx(path) -> None:
    """onnx.checker with full shape inference; raises onnx's ValidationError/InferenceError on failure."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)


def run_onnxruntime(path, images: np.ndarray, *, batch: int = 8, output: str = OUTPUT_NAME) -> np.ndarray:
    """Embeddings (or another ``output``) of ``images`` (N, 3, 224, 224) float32 by the graph at ``path`` on ONNX
    Runtime's CPU EP."""
    from biomoe_edge.runtime.engines.onnxruntime_engine import cpu_session

    session = cpu_session(path)
    outputs = [session.run([output], {INPUT_NAME: np.ascontiguousarray(images[i:i + batch], np.float32)})[0]
               for i in range(0, len(images), batch)]
    return np.concatenate(outputs).astype(np.float32)


def run_pytorch(model: nn.Module, images: np.ndarray, *, batch: int = 8) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch], np.float32))).numpy()
                               for i in range(0, len(images), batch)])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """max abs difference and cosine similarity (min, mean) of ``candidate`` rows to ``reference`` rows."""
    cos = cosine_rows(reference, candidate)
    return {"max_abs": float(np.abs(reference - candidate).max()), "cosine_min": float(cos.min()),
            "cosine_mean": float(cos.mean()), "n_images": int(len(reference))}


def graph_io(path) -> tuple[list[dict], list[dict], int]:
    """Inputs and outputs (name, shape with symbolic dims as strings, element type) and the ONNX opset."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
            out.append({"name": v.name, "shape": shape,
                        "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name})
        return out

    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return describe(model.graph.input), describe(model.graph.output), opset


#: Fidelity images start this many PPG windows (5 s hop) into HeartPy's recordings: past every calibration window.
HELD_OUT_PPG_OFFSET = 20


def _tap_dim(tap: str) -> int:
    from .model.taps import INPUT_TAPS

    return INPUT_TAPS[tap].dim


def _tap_fidelity(model: nn.Module, path, images: np.ndarray, taps) -> dict:
    """Per tap: the graph's output against the PyTorch walk's pooled features (max abs, cosine)."""
    from .model.taps import capture

    figures = {}
    for tap in taps:
        with torch.no_grad():
            reference = capture(model, torch.from_numpy(np.ascontiguousarray(images, np.float32)),
                                inputs=(tap,))[0][tap].numpy()
        figures[tap] = fidelity(reference, run_onnxruntime(path, images, output=tap_output_name(tap)))
    return figures


def _fidelity_images(fidelity_images, calibration) -> tuple[np.ndarray, str]:
    if fidelity_images is not None:
        return _as_images(fidelity_images, "fidelity_images"), "given fidelity_images"
    if calibration is not None:
        images = _as_images(calibration, "calibration")
        return images[:FIDELITY_IMAGES], "first images of the given calibration array"
    from .calibration import real_signal_images

    try:
        # Held out from INT8 calibration (which starts at the first PPG window, simulated seed 0): other
        # PPG windows, other simulated signals, so the manifest's figures are not measured on training data.
        return (real_signal_images(FIDELITY_IMAGES, seed=1000, skip_ppg_windows=HELD_OUT_PPG_OFFSET),
                "images rendered by the SDK from real signal windows held out from calibration")
    except RuntimeError as exc:
        log.warning("fidelity check on seeded uniform-noise images: %s", exc)
        rng = np.random.default_rng(0)
        return rng.random((FIDELITY_IMAGES, *IMAGE_SHAPE), dtype=np.float32), "seeded uniform noise in [0, 1]"


def _as_images(array, what: str) -> np.ndarray:
    images = np.asarray(array, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
        raise ValueError(f"{what} must be an (N, 3, 224, 224) image array with N >= 1, got shape {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return images


def export_onnx(model: nn.Module, path, *, precision: str = "fp32", calibration=None, max_batch: int = 32,
                fidelity_images=None, cache_dir=None, from_fp32=None, taps=()) -> pathlib.Path:
    """Export ``model`` (Tiny-BioMoE, see :func:`load_tiny_biomoe`) to ONNX at ``path``; returns the path.

    precision: ``"fp32"``; ``"fp16"`` (FP16 graph with LayerNorms, Softmax and reductions kept in FP32, I/O
    float32); ``"int8"`` (explicit symmetric Q/DQ with per-channel weight scales, FP32 elsewhere, I/O float32,
    calibrated by ModelOpt on ``calibration`` (N, 3, 224, 224) in [0, 1], or, when it is None, on images the
    SDK renders from real signal windows). The input ``images`` is (batch, 3, 224, 224) float32, the output
    ``embeddings`` (batch, 192) float32; ``max_batch`` bounds the dynamic batch (recorded for the engine
    build's optimisation profile). Writes the manifest ``path.with_suffix(".json")`` with the fidelity of
    the ONNX Runtime CPU result against PyTorch on ``fidelity_images`` (default: the first calibration
    images, else real-signal renderings). INT8 calibration results are cached under ``cache_dir``
    (default :func:`.int8.default_cache_dir`). ``from_fp32``: an fp32 ONNX that ``export_onnx`` already wrote
    for this same model (same ``max_batch``); fp16 / int8 then start from it instead of exporting again
    (the fidelity check against ``model`` still runs). ``taps``: names of Tiny-BioMoE input taps
    (export/model/taps.py) the graph also returns, pooled, as outputs ``tap.<name>`` (B, dim) from the same run:
    what a served bridge reads (docs/bridge.md); the manifest lists them under ``taps``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
    taps = check_taps(taps)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    fid_images, fid_source = _fidelity_images(fidelity_images, calibration)
    extra: dict = {}
    with tempfile.TemporaryDirectory(prefix="biomoe-export-") as tmp:
        if from_fp32 is not None and precision != "fp32":
            fp32_path = pathlib.Path(from_fp32)
        else:
            fp32_path = path if precision == "fp32" else pathlib.Path(tmp) / "model_fp32.onnx"
            _export_fp32(model, fp32_path, max_batch, taps)
        check_onnx(fp32_path)
        if precision == "fp16":
            from .fp16 import BLOCKED_OP_TYPES, convert_fp16

            convert_fp16(fp32_path, path)
            extra["fp16"] = {"kept_in_fp32": list(BLOCKED_OP_TYPES), "io_dtype": "float32"}
        elif precision == "int8":
            from .int8 import quantize_int8

            extra["int8"] = quantize_int8(fp32_path, path, calibration=calibration, cache_dir=cache_dir)
        if precision != "fp32":
            check_onnx(path)
        reference = run_pytorch(model, fid_images)
        candidate = run_onnxruntime(path, fid_images)
        tap_figures = _tap_fidelity(model, path, fid_images, taps)
        fp32_figures = fidelity(reference, run_onnxruntime(fp32_path, fid_images)) if precision != "fp32" else None
    figures = {"reference": "PyTorch fp32 eager (torch.fft spectral gates)", "runtime": "onnxruntime CPU",
               "images": fid_source, **fidelity(reference, candidate)}
    if fp32_figures is not None:
        figures["fp32_graph"] = fp32_figures
    if taps:
        figures["taps"] = tap_figures
        extra["taps"] = {t: {"output": tap_output_name(t), "dim": _tap_dim(t)} for t in taps}
    log.info("%s ONNX vs PyTorch on %d images: max abs %.3g, cosine min %.6f", precision,
             figures["n_images"], figures["max_abs"], figures["cosine_min"])
    inputs, outputs, opset = graph_io(path)
    source = getattr(model, "source_checkpoint", None) or {}
    # A model that does not say where its weights came from counts as random weights (biomoe_edge.identity).
    random_weights = bool(source.get("random_weights", source.get("sha256") is None))
    write_manifest(path, {
        "kind": "onnx",
        "model": "Tiny-BioMoE",
        "precision": precision,
        "opset": opset,
        "inputs": inputs,
        "outputs": outputs,
        "max_batch": max_batch,
        "embedding_dim": EMBEDDING_DIM,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
        "export_format": EXPORT_FORMAT,
        "checkpoint": source.get("path"),
        "checkpoint_sha256": source.get("sha256"),
        "random_weights": random_weights,
        "seed": source.get("seed") if random_weights else None,
        "checkpoint_load": {"ignored": list(source.get("ignored") or []), "cast": dict(source.get("cast") or {})},
        "fidelity": figures,
        **extra,
    })
    return path

