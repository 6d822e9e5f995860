"""What a Jetson gateway imports: no torch outside the PyTorch engine, not even to build an engine."""

import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys
    class BlockTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is not installed on this gateway")
    sys.meta_path.insert(0, BlockTorch())
    """
)


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], capture_output=True, text=True)


def test_build_engine_and_its_command_import_without_torch():
    result = run_without_torch(
        """
        from biomoe_edge.export import build_engine
        import biomoe_edge.export.tensorrt_builder
        from biomoe_edge.cli import build_parser
        build_parser(only="build-engine").parse_args(["build-engine", "model.onnx"])
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_export_names_need_torch_only_when_used():
    result = run_without_torch(
        """
        import biomoe_edge.export as export
        try:
            export.load_tiny_biomoe
        except ImportError as exc:
            print("needs torch:", exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "needs torch" in result.stdout
