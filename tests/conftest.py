"""Fixtures every test folder shares."""

from __future__ import annotations

import logging
import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
#: ../shared/reference beside the checkout (CI has it there too); BIOMOE_REFERENCE_DIR overrides.
REFERENCE_DIR = pathlib.Path(os.environ.get("BIOMOE_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference fixtures not found at {REFERENCE_DIR} (set BIOMOE_REFERENCE_DIR; README.md, "
                    "'Reference fixtures')")
    return REFERENCE_DIR


@pytest.fixture
def quiet_bumble_controller():
    """Silence Bumble's virtual controller, which warns about ACL data crossing a disconnection (not our concern)."""
    logger = logging.getLogger("bumble.controller")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="session")
def seed11_fp32_onnx(reference_dir, tmp_path_factory) -> pathlib.Path:
    """The seed-11 reference checkpoint exported to fp32 ONNX (max batch 16) once per session, by
    ``biomoe-edge export`` as a user runs it: the graph every test that needs the checkpoint's graph shares (the
    export and engine tests; about 30 s). Needs torch: the tests using it are marked torch. It sets no
    ``$BIOMOE_EDGE_CACHE_DIR`` (the recording tests keep a cache folder of their own per test)."""
    pytest.importorskip("torch", reason="exporting needs PyTorch (the export extra)")
    from biomoe_edge.cli import main

    out = tmp_path_factory.mktemp("seed11-fp32")
    assert main(["export", "--checkpoint", str(reference_dir / "tiny_biomoe_seed11.pth"), "--precision", "fp32",
                 "--out", str(out), "--max-batch", "16"]) == 0
    return out / "model.onnx"
