"""Many wearables at once: one ``DeviceConnection`` per allow-listed target, run concurrently."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from biomoe_edge.runtime.transport.allow_list import AllowList, DeviceTarget
from biomoe_edge.runtime.transport.backend import TransportBackend
from biomoe_edge.runtime.transport.backoff import Backoff
from biomoe_edge.runtime.transport.connection import (ConnectionStats, DeviceConnection, PacketCallback,
                                                      RefusedCallback, StateCallback)
from biomoe_edge.runtime.transport.security import IdentityPins, SecurityLevel

logger = logging.getLogger(__name__)


class ConnectionManager:
    """Connects to every target of the allow-list and keeps them connected. ``async with`` or start/stop.

    ``seed`` makes the backoff jitter reproducible (device ``i`` uses ``seed + i``); ``backoff_initial_s`` /
    ``backoff_max_s`` shape it; ``pins`` (``IdentityPins``, default in memory) holds the names pinned to bonded
    identities, shared by every connection; other keyword arguments go to each ``DeviceConnection``. Each device's
    security level is logged here, once.
    """

    def __init__(
        self,
        targets: AllowList | Iterable[DeviceTarget],
        *,
        on_packet: PacketCallback,
        on_state: StateCallback | None = None,
        backend: TransportBackend | None = None,
        seed: int | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        pins: IdentityPins | None = None,
        on_refused: RefusedCallback | None = None,
        **connection_options,
    ) -> None:
        self.allow_list = targets if isinstance(targets, AllowList) else AllowList(targets)
        self.backend = backend or TransportBackend.platform()
        self.pins = pins if pins is not None else IdentityPins(None)
        self.connections: dict[str, DeviceConnection] = {}
        #: labels of connections that did not stop within stop()'s bound (should stay empty)
        self.stop_overruns: list[str] = []
        for index, target in enumerate(self.allow_list):
            backoff = Backoff(backoff_initial_s, backoff_max_s, seed=None if seed is None else seed + index)
            self.connections[target.label] = DeviceConnection(
                target, on_packet=on_packet, on_state=on_state, backend=self.backend, backoff=backoff, pins=self.pins,
                on_refused=on_refused, **connection_options
            )
            _log_security(target, self.pins)

    async def start(self) -> None:
        for connection in self.connections.values():
            await connection.start()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop every connection, within about ``timeout_s`` whatever the stack does.

        A connection normally stops at once (its attempt is cancelled, its link closed in bounded steps). One whose
        attempt swallows the cancellation (a backend that turns it into an error and retries, which would keep it
        scanning after the gateway stopped) is cancelled again until it ends, up to the same bound again, then
        left and logged (``stop_overruns``)."""
        stops = {asyncio.ensure_future(c.stop()): c for c in self.connections.values()}
        if not stops:
            return
        _, pending = await asyncio.wait(stops, timeout=timeout_s)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while pending and asyncio.get_running_loop().time() < deadline:
            for stop in pending:
                task = stops[stop]._task
                if task is not None:
                    task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        for stop in pending:
            self.stop_overruns.append(stops[stop].label)
            logger.error("%s: the connection did not stop within %g s; left behind", stops[stop].label, 2 * timeout_s)

    def stats(self) -> dict[str, ConnectionStats]:
        return {label: connection.stats for label, connection in self.connections.items()}

    async def __aenter__(self) -> ConnectionManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()


def _log_security(target: DeviceTarget, pins: IdentityPins) -> None:
    level = SecurityLevel.parse(target.security)
    if level is SecurityLevel.NONE:
        logger.warning("%s (%s): security none: the link is not encrypted and any device that %s is taken for it",
                       target.label, target.profile,
                       "advertises this name" if target.address is None else "uses this address")
    elif level is SecurityLevel.ENCRYPTED:
        logger.info("%s (%s): security encrypted: paired and encrypted before anything is read; the device is not "
                    "identified (any device that matches the allow-list is taken)", target.label, target.profile)
    else:
        pin = pins.get(target.name) if target.address is None else None
        identity = target.address or (pin.identity_address if pin is not None else None)
        logger.info("%s (%s): security bonded: LE Secure Connections bond, identity %s", target.label, target.profile,
                    identity or "pinned at the first bond under this name")
