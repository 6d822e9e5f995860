"""bleak's ``BleakClient`` whose every ``connect()`` lasts at most the timeout it was built with.

bleak-retry-connector's ``establish_connection`` builds the client with our keyword arguments (``timeout``
included) but calls ``connect(timeout=20.0)`` (its ``BLEAK_TIMEOUT``) inside a 60 s safety timeout of its own, so
the connection's ``connect_timeout_s`` bounded nothing: one attempt could take 60 s. This client overrides the
timeout of each ``connect()`` and enforces it, whatever the backend does with it; an attempt that runs out raises
``asyncio.TimeoutError``, which establish_connection counts as one attempt and retries up to ``max_attempts``.
Imported when a connection runs (it imports bleak).
"""

from __future__ import annotations

import asyncio
from typing import Any

from bleak import BleakClient


class AttemptBoundedClient(BleakClient):
    """``BleakClient(..., timeout=T)``: each ``connect()`` within T seconds (``asyncio.TimeoutError`` after)."""

    def __init__(self, *args: Any, timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, timeout=timeout, **kwargs)
        self.attempt_timeout_s = float(timeout)

    async def connect(self, **kwargs: Any) -> None:
        kwargs["timeout"] = self.attempt_timeout_s  # what the backend bounds its own steps with
        await asyncio.wait_for(super().connect(**kwargs), self.attempt_timeout_s)
