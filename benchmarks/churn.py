"""Reconnect churn and shutdown: emulated wearables (Bumble, through the production bleak code) that drop their link
every fraction of a second, a gateway that reconnects each time; RSS, descriptors, threads and asyncio tasks before
and after, then the gateway stopped in the middle of a reconnection, timed, and what is left running counted.

    python benchmarks/churn.py --cycles 500            # ~3 minutes on 2 cores

The engine is a fixed random projection (this measures the transport and the gateway, not the model).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

import numpy as np


def _process_figures() -> dict:
    import psutil

    process = psutil.Process()
    return {"rss_mb": round(process.memory_info().rss / 2**20, 1), "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(), "tasks": len(asyncio.all_tasks())}


def _engine():
    from biomoe_edge.runtime.engines.base import Engine

    class Projection(Engine):
        def __init__(self):
            super().__init__()
            self.max_batch = 8
            self.weights = np.random.default_rng(1).standard_normal((3 * 28 * 28, 192)).astype(np.float32)
            self._identity = {"kind": "projection", "precision": "fp32", "model_sha256": "0" * 64, "source": None,
                              "device": "cpu", "max_batch": 8}

        def _infer_batch(self, images):
            pooled = images.reshape(len(images), 3, 28, 8, 28, 8).mean(axis=(3, 5)).reshape(len(images), -1)
            return pooled.astype(np.float32) @ self.weights

    return Projection()


async def churn(cycles: int, devices: int, every_s: float, stop_delay_s: float) -> dict:
    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import parse_config
    from biomoe_edge.runtime.transport.backend import TransportBackend

    config = parse_config({
        "windows": {"length_s": 2.0, "hop_s": 1.0, "representations": ["waveform"]},
        "devices": [{"name": f"churn-{i}", "modalities": ["bvp"]} for i in range(devices)],
        "engine": {"max_batch": 8, "deadline_ms": 50},
        "transport": {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "connect_timeout_s": 5.0},
    })
    out: dict = {}
    async with VirtualBleNetwork() as network:
        wearables = [await network.add_wearable(f"churn-{i}", modalities=("bvp",), seed=i, disconnect_every=every_s,
                                                 disconnect_jitter=every_s / 4, reconnect_delay_s=0.05)
                     for i in range(devices)]
        central = await network.central()
        gateway = Gateway(config, engine=_engine(), backend=TransportBackend.bumble(central), warmup=False)
        await gateway.__aenter__()
        target = lambda: sum(n for (d, s), n in gateway.connection_events.items() if s == "connected")  # noqa: E731
        while target() < 20:  # settle: imports, first connections
            await asyncio.sleep(0.1)
        out["before"] = _process_figures()
        start_connects, t0 = target(), time.monotonic()
        while target() - start_connects < cycles:
            await asyncio.sleep(0.2)
        out["cycles"] = target() - start_connects
        out["cycles_s"] = round(time.monotonic() - t0, 1)
        out["after"] = _process_figures()
        # Stop in the middle of a reconnection: the first moment some link is down.
        manager = gateway._manager
        while all(c.state.value == "connected" for c in manager.connections.values()):
            await asyncio.sleep(0.005)
        await asyncio.sleep(stop_delay_s)
        out["states_at_stop"] = sorted(c.state.value for c in manager.connections.values())
        t1 = time.monotonic()
        await gateway.close()
        out["close_s"] = round(time.monotonic() - t1, 2)
        for wearable in wearables:
            await wearable.stop()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        out["tasks_left_after_close"] = sorted({t.get_name() for t in others if "ble-connection" in t.get_name()})
        out["scan_listeners_after_close"] = len(central._listeners)
        out["stats"] = {"embeddings": gateway.stats()["embeddings"],
                        "disconnects_injected": sum(w.counters.disconnects_injected for w in wearables)}
    out["end"] = _process_figures()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500, help="reconnections to run (all devices together)")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between a wearable's link drops")
    parser.add_argument("--stop-delay", type=float, default=0.0, help="seconds into a reconnection to stop")
    args = parser.parse_args()
    t0 = time.monotonic()
    result = asyncio.run(churn(args.cycles, args.devices, args.every, args.stop_delay))
    result["exit_s"] = round(time.monotonic() - t0, 1)
    for key, value in result.items():
        print(f"{key:28s} {value}")


if __name__ == "__main__":
    main()
