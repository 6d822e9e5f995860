"""Fixtures every test folder shares."""

from __future__ import annotations

import logging
import os
import pathlib
import subprocess

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


@pytest.fixture
def small_disk(tmp_path):
    """A 256 kB tmpfs mounted for this test (needs CAP_SYS_ADMIN: root on CI and here; skipped elsewhere)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", str(mount_point)],
                                capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a small real file system to fill")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)
