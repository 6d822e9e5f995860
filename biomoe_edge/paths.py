"""Where biomoe-edge keeps files it can rebuild: the demo's exported model, INT8 calibration results."""

from __future__ import annotations

import os
import pathlib

CACHE_ENV = "BIOMOE_EDGE_CACHE_DIR"


def cache_dir() -> pathlib.Path:
    """``$BIOMOE_EDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/biomoe-edge``, else ``~/.cache/biomoe-edge`` (not created)."""
    if os.environ.get(CACHE_ENV):
        return pathlib.Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "biomoe-edge"
