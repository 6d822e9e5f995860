"""Ray is optional: the gateway and the serial ``embed`` never import it (they run where Ray is not installed), and
``embed --ray`` without it is one clear error naming the extra to install. Runs without Ray (every Python)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

BLOCK_RAY = textwrap.dedent(
    """
    import importlib.abc, sys
    class BlockRay(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "ray" or name.startswith("ray."):
                raise ImportError("ray is not installed here")
    sys.meta_path.insert(0, BlockRay())
    """
)


def run_without_ray(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_RAY + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_the_gateway_and_serial_embed_never_import_ray(tmp_path):
    pytest.importorskip("onnx", reason="building the test graph needs the onnx package")
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 192)).astype(np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weights"], ["embeddings"])],
        "channel_means", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 192])], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (tmp_path / "model.onnx").write_bytes(model.SerializeToString())
    t = np.arange(32 * 30) / 32.0
    pd.DataFrame({"EDA": 2 + 0.1 * np.sin(t)}).to_csv(tmp_path / "s1.csv", index=False)
    arguments = ["embed", "s1.csv", "--map", "EDA:eda", "--rate", "32", "--engine", "onnxruntime", "--model",
                 "model.onnx", "--representations", "waveform", "--quiet"]
    result = run_without_ray(f"""
        import sys
        import biomoe_edge.runtime.gateway, biomoe_edge.runtime.recording.distributed
        from biomoe_edge.cli import main
        assert main({arguments + ["--out", "serial"]!r}) == 0
        assert main({arguments + ["--out", "on-ray", "--ray"]!r}) == 1
        print("ray imported:", sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")))
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ray imported: []" in result.stdout
    assert (tmp_path / "serial" / "data.parquet").is_file() and not (tmp_path / "on-ray").exists()
    assert "--ray needs Ray Data" in result.stderr and "pip install 'biomoe-edge[cluster]'" in result.stderr
