"""Shared fixtures of the recording tests (their helpers live in recording_helpers.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """``biomoe-edge mark`` finds running recordings in the cache folder: one per test, nobody else's."""
    monkeypatch.setenv("BIOMOE_EDGE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
