"""CI's gateway-path plugin (.ci/gateway_path.py): it leaves out exactly the tests marked torch and lets nothing else
drop out for want of torch. Run on every Python: where torch is installed (3.11's full run) it must refuse to start."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

TESTS = {
    "test_plain.py": "def test_gateway_thing():\n    assert True\n",
    "test_marked.py": (
        "import pytest\n\n"
        "@pytest.mark.torch\n"
        "def test_needs_the_model():\n    import torch\n"
    ),
    "test_marked_module.py": (
        "import pytest\n\n"
        "pytestmark = pytest.mark.torch\n"
        "torch = pytest.importorskip('torch', reason='exports the model')\n\n"
        "def test_export():\n    assert torch\n"
    ),
    "test_unmarked.py": (
        "import pytest\n\n"
        "def test_forgot_the_marker():\n    pytest.importorskip('torch', reason='uses the PyTorch engine')\n"
    ),
    "test_other_skip.py": (
        "import pytest\n\n"
        "def test_needs_cupy():\n    pytest.importorskip('a_module_that_is_not_there', reason='no such module')\n"
    ),
}


def _run_plugin(tmp_path):
    for name, text in TESTS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    torch: needs PyTorch\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / ".ci")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "gateway_path", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def test_gateway_path_leaves_out_exactly_the_torch_tests(tmp_path):
    result = _run_plugin(tmp_path)
    if importlib.util.find_spec("torch") is not None:
        assert result.returncode == 4, result.stdout + result.stderr  # a usage error: nothing ran
        assert "torch is installed" in result.stderr and "needs an environment without it" in result.stderr
        return
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "gateway path: 1 tests marked torch left out, and 1 test modules marked torch as a whole" in out
    assert "PASSED test_plain.py::test_gateway_thing" in out
    assert "SKIPPED [1] test_marked_module.py:4: exports the model" in out
    assert "SKIPPED [1] test_other_skip.py:4: no such module" in out  # other skips are left alone
    assert "FAILED test_unmarked.py::test_forgot_the_marker" in out
    assert "needs torch but its test is not marked torch: add @pytest.mark.torch" in out
    assert "1 failed, 1 passed, 2 skipped, 1 deselected" in out
