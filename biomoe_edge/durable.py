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


def _fsync_file(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(partial, path) -> pathlib.Path:
    """Put the finished file ``partial`` (written by a library: NumPy, ONNX, pyEDFlib) at ``path`` so that a crash
    leaves the old ``path`` or the new one, never a part: its bytes are made durable, it is renamed over ``path``
    (same folder), and the rename is made durable."""
    partial, path = pathlib.Path(partial), pathlib.Path(path)
    _fsync_file(partial)
    os.replace(partial, path)
    fsync_directory(path.parent)
    return path


def atomic_write_bytes(path, data, *, mode: int | None = None) -> pathlib.Path:
    """``path`` holds ``data`` (bytes or a buffer) or keeps what it held, never a part of it: written beside it to
    ``NAME.partial`` (created with permissions ``mode`` when given, e.g. 0o600 for secrets), fsynced, renamed
    over it, and the rename fsynced. A failure removes the partial file and raises."""
    path = pathlib.Path(path)
    partial = path.with_name(path.name + ".partial")
    # A partial file left by a crash is replaced; a link planted at its name is removed, never followed.
    partial.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(partial, flags, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as f:
            f.write(memoryview(data))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def atomic_write_text(path, text: str, *, encoding: str = "utf-8", mode: int | None = None) -> pathlib.Path:
    """:func:`atomic_write_bytes` of ``text`` encoded."""
    return atomic_write_bytes(path, text.encode(encoding), mode=mode)
