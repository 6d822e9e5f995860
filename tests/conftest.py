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
