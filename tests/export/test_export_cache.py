"""The export cache reuses a graph only when its manifest states its provenance."""

import json
import shutil

import pytest

pytestmark = pytest.mark.torch  # the cached graph is the session's export of the reference checkpoint


class ExportCalled(Exception):
    pass


def _cache_with(fp32_onnx, checkpoint, tmp_path, monkeypatch, *, drop_provenance: bool):
    from biomoe_edge.export.cache import cached_onnx_path

    monkeypatch.setenv("BIOMOE_EDGE_CACHE_DIR", str(tmp_path))
    path = cached_onnx_path(checkpoint)
    shutil.copyfile(fp32_onnx, path)
    manifest = json.loads(fp32_onnx.with_suffix(".json").read_text())
    if drop_provenance:  # as an SDK from before manifests said whether weights are random wrote it
        manifest.pop("random_weights")
        manifest.pop("seed", None)
    path.with_suffix(".json").write_text(json.dumps(manifest))
    return path


def test_a_cached_graph_that_states_its_provenance_is_reused(fp32_onnx, reference_pairs, tmp_path, monkeypatch):
    from biomoe_edge.export.cache import cached_onnx

    checkpoint = reference_pairs[11][0]
    path = _cache_with(fp32_onnx, checkpoint, tmp_path, monkeypatch, drop_provenance=False)
    before = path.read_bytes()
    assert cached_onnx(checkpoint) == path
    assert path.read_bytes() == before


def test_a_cached_graph_without_provenance_is_exported_again(fp32_onnx, reference_pairs, tmp_path, monkeypatch):
    import biomoe_edge.export as export
    from biomoe_edge.export.cache import cached_onnx

    checkpoint = reference_pairs[11][0]
    _cache_with(fp32_onnx, checkpoint, tmp_path, monkeypatch, drop_provenance=True)

    def export_onnx(*args, **kwargs):
        raise ExportCalled

    monkeypatch.setattr(export, "export_onnx", export_onnx)
    with pytest.raises(ExportCalled):
        cached_onnx(checkpoint)
