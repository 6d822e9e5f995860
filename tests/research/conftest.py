"""Shared fixtures of the research-workflow tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """A cache folder per test (``biomoe-edge mark`` finds running recordings there; exports are cached there)."""
    monkeypatch.setenv("BIOMOE_EDGE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
