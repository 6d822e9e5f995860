"""A refreshing text table of what the gateway is doing (the demo's and ``biomoe-edge run``'s view)."""

from __future__ import annotations

import asyncio
import collections
import math
import sys
import time


def format_table(stats: dict, *, elapsed_s: float, per_stream_embeddings: dict) -> str:
    lat = stats["latency_ms"]

    def ms(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0f}"

    lines = [
        f"biomoe-edge gateway  t={elapsed_s:6.1f} s  embeddings={stats['embeddings']}  "
        f"latency ms p50={ms(lat['p50'])} p95={ms(lat['p95'])} p99={ms(lat['p99'])}  "
        f"queued={stats['scheduler']['jobs_queued']}",
        f"{'device':<18}{'modality':<9}{'pkts':>8}{'lost':>6}{'samples':>10}{'windowed':>10}{'pending':>9}"
        f"{'dropped':>9}{'embeds':>8}",
    ]
    for s in stats["streams"]:
        dropped = sum(s["samples_dropped"].values())
        embeds = per_stream_embeddings.get((s["device"], s["modality"]), 0)
        lines.append(f"{s['device'][:17]:<18}{s['modality']:<9}{s['packets_received']:>8}{s['packets_lost']:>6}"
                     f"{s['samples_received']:>10}{s['samples_windowed']:>10}{s['samples_pending']:>9}"
                     f"{dropped:>9}{embeds:>8}")
    if stats["garbage"]:
        lines.append("garbage notifications: " + "; ".join(
            f"{d}: " + ", ".join(f"{k}={v}" for k, v in reasons.items()) for d, reasons in stats["garbage"].items()))
    return "\n".join(lines)


async def run_with_console(gateway, *, duration_s: float | None = None, quiet: bool = False,
                           refresh_s: float = 1.0, out=None, on_tick=None) -> None:
    """Show the table every ``refresh_s`` until ``duration_s`` passed (None: until cancelled / Ctrl-C).

    ``on_tick()``, if given, is called from the event loop every ``refresh_s`` (the systemd watchdog)."""
    out = out or sys.stdout
    tty = hasattr(out, "isatty") and out.isatty()
    counts: collections.Counter = collections.Counter()
    gateway.on_embedding(lambda record: counts.update([(record.device, record.modality)]))
    start = time.monotonic()
    while duration_s is None or time.monotonic() - start < duration_s:
        remaining = refresh_s if duration_s is None else min(refresh_s, duration_s - (time.monotonic() - start))
        await asyncio.sleep(max(0.0, remaining))
        if on_tick is not None:
            on_tick()
        if quiet:
            continue
        table = format_table(gateway.stats(), elapsed_s=time.monotonic() - start, per_stream_embeddings=counts)
        out.write(("\x1b[H\x1b[2J" if tty else "\n") + table + "\n")
        out.flush()
