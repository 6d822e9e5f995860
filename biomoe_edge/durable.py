"""Making file-system changes survive a power cut: what the file sinks and the recordings share."""

from __future__ import annotations

import os
import pathlib


def fsync_directory(path: pathlib.Path) -> None:
    """Make a rename or a new entry in the directory ``path`` durable (where the platform allows opening one)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
