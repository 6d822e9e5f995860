"""An engine graph exported with taps (``export_onnx(..., taps=...)``): beside ``embeddings``, the pooled features
at the named taps from the same run, as the outputs ``tap.<name>``. Embeddings checked against the reference
fixture (the stand-in weights' own I/O pair), taps against forward hooks on the model's modules (not the walk in
export/model/taps.py that the export uses); TensorRT-parsable operators only; the ONNX Runtime engine returns the
taps and names a tap it lacks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="export needs PyTorch")
pytest.importorskip("onnxruntime", reason="the exported graph runs on ONNX Runtime")

from onnx_tensorrt import tensorrt_problems  # noqa: E402

TAPS = ("enc1.stage3", "enc2.embedding")


@pytest.fixture(scope="module")
def tapped(model11, reference_pairs, tmp_path_factory):
    _, images, _ = reference_pairs[11]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from biomoe_edge.export import export_onnx

        return export_onnx(model11, tmp_path_factory.mktemp("tapped") / "model.onnx", max_batch=4,
                           fidelity_images=images[:2], taps=TAPS)


def hooked_features(model, images) -> dict:
    """The taps' pooled features from forward hooks on the modules whose outputs they are."""
    seen = {}
    hooks = [model.enc1.norm3.register_forward_hook(lambda m, i, o: seen.__setitem__("enc1.stage3", o.mean(dim=1))),
             model.enc2.blocks3.register_forward_hook(
                 lambda m, i, o: seen.__setitem__("enc2.embedding", o.mean((2, 3))))]
    try:
        with torch.no_grad():
            model(torch.from_numpy(images))
    finally:
        for hook in hooks:
            hook.remove()
    return {name: value.numpy() for name, value in seen.items()}


def test_the_engine_returns_reference_embeddings_and_the_taps_of_the_same_run(tapped, model11, reference_pairs):
    from biomoe_edge.runtime.engines import open_engine

    _, images, embeddings = reference_pairs[11]
    engine = open_engine("onnxruntime", tapped, max_batch=4)
    assert engine.taps == TAPS
    got, taps = engine.infer_tapped(images, TAPS)
    assert engine.runs == 1
    assert np.abs(got - embeddings).max() < 1e-4
    np.testing.assert_array_equal(engine.infer(images), got)
    expected = hooked_features(model11, images)
    for name in TAPS:
        assert taps[name].shape == expected[name].shape
        assert np.abs(taps[name] - expected[name]).max() < 1e-4, name
    only_one = engine.infer_tapped(images[:1], ("enc2.embedding",))[1]
    assert list(only_one) == ["enc2.embedding"]


def test_the_manifest_lists_the_taps_and_the_graph_parses_in_tensorrt(tapped, reference_dir):
    import onnx

    manifest = json.loads(tapped.with_suffix(".json").read_text())
    assert manifest["taps"] == {"enc1.stage3": {"output": "tap.enc1.stage3", "dim": 320},
                                "enc2.embedding": {"output": "tap.enc2.embedding", "dim": 96}}
    assert [o["name"] for o in manifest["outputs"]] == ["embeddings", "tap.enc1.stage3", "tap.enc2.embedding"]
    assert all(figures["max_abs"] < 1e-4 for figures in manifest["fidelity"]["taps"].values())
    assert [o.name for o in onnx.load(str(tapped)).graph.output] == ["embeddings", *(f"tap.{t}" for t in TAPS)]
    assert tensorrt_problems(tapped, reference_dir) == []


def test_an_engine_names_a_tap_it_does_not_return(tapped, reference_pairs):
    from biomoe_edge.runtime.engines import EngineError, open_engine

    engine = open_engine("onnxruntime", tapped, max_batch=4)
    with pytest.raises(EngineError, match=r"provides taps \['enc1.stage3', 'enc2.embedding'\], not \['gated'\] "
                                          r"\(export the graph with `biomoe-edge export --taps gated`\)"):
        engine.infer_tapped(reference_pairs[11][1][:1], ("gated",))


@pytest.mark.parametrize("taps, message", [
    (("enc1.stage9",), "unknown Tiny-BioMoE tap"),
    (("embedding",), "tap 'embedding' is the graph's output 'embeddings' already"),
])
def test_export_refuses_unknown_taps(model11, tmp_path, taps, message):
    from biomoe_edge.export import export_onnx

    with pytest.raises(ValueError, match=message):
        export_onnx(model11, tmp_path / "model.onnx", taps=taps)
    assert not (tmp_path / "model.onnx").exists()


def test_a_tensorrt_engine_built_from_the_tapped_graph_returns_its_taps(reference_pairs, tmp_path, request):
    pytest.importorskip("tensorrt", reason="TensorRT is not installable here (JetPack ships it); runs on a board")
    pytest.importorskip("cupy", reason="the TensorRT engine keeps its buffers in CuPy")
    tapped = request.getfixturevalue("tapped")
    from biomoe_edge.export import build_engine
    from biomoe_edge.runtime.engines import open_engine

    engine_path = build_engine(tapped, tmp_path / "model.trt.engine", max_batch=4, tf32=False)
    assert json.loads(engine_path.with_suffix(".json").read_text())["taps"]["enc1.stage3"]["dim"] == 320
    images = reference_pairs[11][1]
    reference = open_engine("onnxruntime", tapped, max_batch=4, providers=["CPUExecutionProvider"])
    expected_embeddings, expected = reference.infer_tapped(images, TAPS)
    with open_engine("tensorrt", engine_path) as engine:
        assert engine.taps == TAPS
        got_embeddings, got = engine.infer_tapped(images, TAPS)
    assert np.abs(got_embeddings - expected_embeddings).max() < 1e-3
    for name in TAPS:
        assert np.abs(got[name] - expected[name]).max() < 1e-3, name
