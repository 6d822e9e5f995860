"""What the gateway is doing, on screen: a live view while it runs and a closing summary (``biomoe-edge demo``
and ``biomoe-edge run``), drawn with rich.

The live view is a status panel (the model and whether its weights are random; every warning logged during the
run, counted, kept on screen instead of being scrolled away) above a table of streams whose ``dropped`` column
says why samples were dropped. It is drawn only on a terminal; the closing summary is printed everywhere and is
rendered from one snapshot of the counters, the same one the demo's JSON report is built from
(:func:`stream_entries` gives both their rows).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import sys
import threading
import time

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

#: Why samples are dropped, for reasons the ingest does not describe itself (reassembly and profile streams).
STREAM_DROP_REASONS = {
    "duplicate": "a packet the gateway had already received (sent again by the device)",
    "late_packet": "a packet that arrived after the gateway had counted it lost and moved past it",
    "rejected_packet": "a packet whose content the reassembler refused (see rejected_reasons)",
    "not_a_model_modality": "the device measures nothing the model takes (heart rate in bpm): counted, not windowed",
}
#: Drops that happen by design on healthy, loss-free links.
ROUTINE_DROPS = frozenset({"alignment"})


def drop_reasons() -> dict[str, str]:
    """Every reason a received sample can be dropped, with what it means (docs/ingest.md says more)."""
    from biomoe_edge.runtime.ingest.ingest import DROP_REASONS

    return {**DROP_REASONS, **STREAM_DROP_REASONS}


def stream_entries(stats: dict, per_stream_embeddings: dict) -> list[dict]:
    """The streams of ``gateway.stats()``, each with its embeddings count: the rows of the table and the report."""
    fields = ("device", "modality", "packets_received", "packets_lost", "samples_received", "samples_windowed",
              "samples_pending", "samples_dropped")
    return [{**{k: entry[k] for k in fields},
             "embeddings": int(per_stream_embeddings.get((entry["device"], entry["modality"]), 0))}
            for entry in stats["streams"]]


def format_drops(dropped: dict) -> str:
    """``{"alignment": 63, "late": 2}`` -> ``"63 alignment, 2 late"`` (``"0"`` when nothing was dropped)."""
    parts = [f"{count} {reason}" for reason, count in sorted(dropped.items(), key=lambda item: -item[1]) if count]
    return ", ".join(parts) or "0"


def _ms(value) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.1f}"


def stream_table(entries: list[dict]) -> Table:
    """One row per device and modality; ``dropped`` names its reasons."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, justify in (("device", "left"), ("modality", "left"), ("pkts", "right"), ("lost", "right"),
                          ("samples", "right"), ("windowed", "right"), ("pending", "right"), ("dropped", "left"),
                          ("embeds", "right")):
        table.add_column(name, justify=justify, no_wrap=name != "dropped")
    for s in entries:
        table.add_row(s["device"], s["modality"], str(s["packets_received"]), str(s["packets_lost"]),
                      str(s["samples_received"]), str(s["samples_windowed"]), str(s["samples_pending"]),
                      format_drops(s["samples_dropped"]), str(s["embeddings"]))
    return table


def drop_legend(entries: list[dict]) -> Text | None:
    """What each drop reason in the table means (only those that occur)."""
    seen = sorted({reason for s in entries for reason, n in s["samples_dropped"].items() if n})
    if not seen:
        return None
    known = drop_reasons()
    text = Text("dropped: ", style="bold")
    for i, reason in enumerate(seen):
        routine = " (by design, not a loss)" if reason in ROUTINE_DROPS else ""
        text.append(("\n  " if i else "") + f"{reason}: {known.get(reason, 'see docs/ingest.md')}{routine}")
    return text


class WarningCollector(logging.Handler):
    """Keeps every warning (and error) logged while the console runs, counted by message, in order of first
    appearance, so that the live view and the closing summary show them instead of letting them scroll away."""

    def __init__(self, level: int = logging.WARNING):
        super().__init__(level)
        self.counts: collections.Counter = collections.Counter()
        self.levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call must not break the console
            message = str(record.msg)
        self.counts[message] += 1
        self.levels.setdefault(message, record.levelno)

    def items(self) -> list[dict]:
        """``[{"level", "message", "count"}]`` in order of first appearance (what the JSON report records)."""
        return [{"level": logging.getLevelName(self.levels[m]).lower(), "message": m, "count": n}
                for m, n in self.counts.items()]


def status_panel(model_line: str | None, notices=(), warnings=()) -> Panel:
    """The model (random weights in bold), notices the command gives, and every warning of the run."""
    lines = []
    if model_line:
        random = "RANDOM WEIGHTS" in model_line
        lines.append(Text(model_line, style="bold red" if random else "green"))
    for notice in notices:
        lines.append(Text(notice, style="yellow"))
    for item in warnings:
        count = f" (x{item['count']})" if item["count"] > 1 else ""
        lines.append(Text(f"{item['level']}: {item['message']}{count}", style="red" if item["level"] != "warning"
                          else "yellow"))
    if not warnings:
        lines.append(Text("no warnings", style="dim"))
    return Panel(Group(*lines), title="status", title_align="left", border_style="red" if warnings else "blue")


def live_view(stats: dict, entries: list[dict], *, elapsed_s: float, model_line, notices, warnings):
    lat = stats["latency_ms"]
    header = Text(f"biomoe-edge gateway  t={elapsed_s:6.1f} s  embeddings={stats['embeddings']}  latency ms "
                  f"p50={_ms(lat['p50'])} p95={_ms(lat['p95'])} p99={_ms(lat['p99'])}  "
                  f"queued={stats['scheduler']['jobs_queued']}", style="bold")
    parts = [status_panel(model_line, notices, warnings), header, stream_table(entries)]
    legend = drop_legend(entries)
    if legend is not None:
        parts.append(legend)
    if stats.get("garbage"):
        parts.append(Text("garbage notifications: " + "; ".join(
            f"{d}: " + ", ".join(f"{k}={v}" for k, v in reasons.items()) for d, reasons in stats["garbage"].items())))
    return Group(*parts)


def make_console(out=None) -> Console:
    """A rich console on ``out`` (default stdout); off a terminal, wide enough that tables do not wrap in logs."""
    out = out or sys.stdout
    terminal = hasattr(out, "isatty") and out.isatty()
    return Console(file=out, highlight=False, width=None if terminal else 160, soft_wrap=False)


class GatewayConsole:
    """Counts a gateway's embeddings per stream, shows the live view on a terminal, collects warnings.

    ``model_line``: what the status panel says about the model (``describe_identity``); ``notices``: lines a
    command wants kept on screen (the export it ran first...). Use as a context manager around the run: the
    warning collector is attached to the root logger from ``__enter__`` to ``__exit__``."""

    def __init__(self, gateway, *, out=None, quiet: bool = False, model_line: str | None = None, notices=(),
                 refresh_s: float = 1.0):
        self.gateway = gateway
        self.console = make_console(out)
        self.quiet = quiet
        self.model_line = model_line
        self.notices = list(notices)
        self.refresh_s = refresh_s
        self.warnings = WarningCollector()
        self.per_stream_embeddings: collections.Counter = collections.Counter()
        self._lock = threading.Lock()
        self._muted: list[tuple[logging.Handler, logging.Filter]] = []
        self.started = time.monotonic()
        self.ended: float | None = None
        gateway.on_embedding(self._count)

    def _count(self, record) -> None:
        with self._lock:
            self.per_stream_embeddings[(record.device, record.modality)] += 1

    def __enter__(self) -> "GatewayConsole":
        logging.getLogger().addHandler(self.warnings)
        return self

    def __exit__(self, *exc_info) -> None:
        self._unmute()
        logging.getLogger().removeHandler(self.warnings)

    @property
    def live(self) -> bool:
        return not self.quiet and self.console.is_terminal

    def _mute(self) -> None:
        """While the live view is drawn, log lines would tear it: the collector shows them instead."""
        class _Mute(logging.Filter):
            def filter(self, record):  # noqa: A003 - logging's name
                return False

        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            if handler is not self.warnings and hasattr(stream, "isatty") and stream.isatty():
                mute = _Mute()
                handler.addFilter(mute)
                self._muted.append((handler, mute))

    def _unmute(self) -> None:
        for handler, mute in self._muted:
            handler.removeFilter(mute)
        self._muted.clear()

    def snapshot(self) -> tuple[dict, list[dict]]:
        """``(gateway.stats(), stream entries)`` taken together, under the embeddings counter's lock."""
        with self._lock:
            stats = self.gateway.stats()
            return stats, stream_entries(stats, self.per_stream_embeddings)

    def elapsed_s(self) -> float:
        """How long the run lasted (from :meth:`run`'s start to its end, or to now while it runs)."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def render_live(self):
        stats, entries = self.snapshot()
        return live_view(stats, entries, elapsed_s=time.monotonic() - self.started, model_line=self.model_line,
                         notices=self.notices, warnings=self.warnings.items())

    async def run(self, duration_s: float | None = None, on_tick=None) -> None:
        """Until ``duration_s`` passed (None: until cancelled / Ctrl-C), redraw every ``refresh_s`` on a terminal.

        ``on_tick()``, if given, is called from the event loop every ``refresh_s`` (the systemd watchdog)."""
        self.started = time.monotonic()
        live = None
        if self.live:
            self._mute()
            live = Live(self.render_live(), console=self.console, auto_refresh=False, transient=True)
            live.start()
        try:
            while duration_s is None or time.monotonic() - self.started < duration_s:
                elapsed = time.monotonic() - self.started
                remaining = self.refresh_s if duration_s is None else min(self.refresh_s, duration_s - elapsed)
                await asyncio.sleep(max(0.0, remaining))
                if on_tick is not None:
                    on_tick()
                if live is not None:
                    live.update(self.render_live(), refresh=True)
        finally:
            self.ended = time.monotonic()
            if live is not None:
                live.stop()  # transient: the closing summary takes its place
            self._unmute()


async def run_with_console(gateway, *, duration_s: float | None = None, quiet: bool = False,
                           refresh_s: float = 1.0, out=None, on_tick=None, model_line: str | None = None) -> None:
    """Show the live view every ``refresh_s`` until ``duration_s`` passed (None: until cancelled / Ctrl-C)."""
    with GatewayConsole(gateway, out=out, quiet=quiet, refresh_s=refresh_s, model_line=model_line) as console:
        await console.run(duration_s, on_tick)


# -- the closing summary: one snapshot -> a dict (the demo's JSON report) -> the final screen --------------------

def _rounded_ms(latency_ms: dict) -> dict:
    return {k: (None if v is None else round(float(v), 1)) for k, v in latency_ms.items()}


def not_embedded(stats: dict) -> dict:
    """What gave no embedding, and why: windows withheld by quality gating; images (window x representation)
    the scheduler dropped (by reason), that failed to render, or that were still queued at exit."""
    dropped: collections.Counter = collections.Counter()
    for reasons in stats["scheduler"]["jobs_dropped"].values():
        dropped.update(reasons)
    return {"windows_withheld": int(sum(stats["windows_withheld"].values())),
            "images_dropped": dict(sorted(dropped.items())),
            "images_render_failed": dict(sorted(stats["jobs_failed"].items())),
            "images_unfinished_at_exit": int(stats["jobs_unfinished"])}


def gateway_summary(stats: dict, entries: list[dict], *, duration_s: float, model: dict | None,
                    warnings: list[dict], engine: dict | None = None) -> dict:
    """The closing summary of a run, from one snapshot (``GatewayConsole.snapshot()`` after the gateway closed):
    figures rounded (latency to 0.1 ms, duration to 0.1 s), streams with their embeddings and drops by reason,
    the model identity (``random_weights``) and the engine (kind, device, max_batch), what gave no embedding,
    each sink's state (ok | failed, with its reason and path; written, lost, retries), and every warning of the
    run."""
    from biomoe_edge.vocabulary import EMBEDDING_DIM

    reasons = drop_reasons()
    seen = sorted({r for e in entries for r, n in e["samples_dropped"].items() if n})
    return {
        "embedding_dim": EMBEDDING_DIM,
        "embeddings": int(stats["embeddings"]),
        "latency_ms": _rounded_ms({k: stats["latency_ms"][k] for k in ("p50", "p95", "p99")}),
        "streams": entries,
        "duration_s": round(float(duration_s), 1),
        "model": model,
        "engine": engine,
        "drop_reasons": {r: reasons.get(r, "see docs/ingest.md") for r in seen},
        "not_embedded": not_embedded(stats),
        "sinks": [{key: sink.get(key) for key in ("name", "kind", "state", "reason", "path", "written", "lost",
                                                  "retries")} for sink in stats.get("sinks", ())],
        "warnings": warnings,
    }


def model_line(model: dict | None, engine: dict | None = None) -> str:
    """The status panel's first line, from a record's ``model`` dict (and the engine's kind and device)."""
    if not model:
        return "model: unknown"
    engine = engine or {}
    where = f"{engine.get('kind', '?')} {model.get('precision')} on {engine.get('device', '?')}"
    source = model.get("source") or "built in memory"
    if model.get("random_weights"):
        weights = (f"RANDOM WEIGHTS (seed {model.get('seed')}): the embeddings are meaningless; the pipeline, "
                   "counters and timings are real")
    else:
        weights = f"checkpoint sha256 {str(model.get('checkpoint_sha256'))[:16]}..."
    return f"model: {where}, {source}; {weights}; random_weights: {'true' if model.get('random_weights') else 'false'}"


def summary_view(summary: dict, *, title: str, settings_line: str | None = None, notices=(), footer=()) -> Group:
    """The final screen, drawn from ``summary`` (:func:`gateway_summary`) alone: what the screen says, the
    JSON says."""
    lat = summary["latency_ms"]
    delivered = any(s.get("samples_received") for s in summary["streams"])
    idle = summary.get("idle_reason") or ("the run was shorter than a window" if delivered
                                          else "no wearable delivered data")
    latency = (f"no embedding ({idle})" if lat["p50"] is None else
               f"latency from sample arrival p50 {_ms(lat['p50'])} ms, p95 {_ms(lat['p95'])} ms, "
               f"p99 {_ms(lat['p99'])} ms")
    parts = [status_panel(model_line(summary.get("model"), summary.get("engine")), notices, summary["warnings"]),
             Text(f"{title}: {summary['duration_s']:.1f} s, {summary['embeddings']} embeddings of "
                  f"{summary['embedding_dim']} values; {latency}", style="bold")]
    if settings_line:
        parts.append(Text(settings_line))
    if summary["streams"]:
        parts.append(stream_table(summary["streams"]))
    else:
        parts.append(Text("streams: none (no wearable delivered data)", style="bold red"))
    legend = drop_legend(summary["streams"])
    if legend is not None:
        parts.append(legend)
    missing = summary["not_embedded"]
    images = [f"{reason} {n}" for reason, n in missing["images_dropped"].items()]
    images += [f"render failed ({reason}) {n}" for reason, n in missing["images_render_failed"].items()]
    images.append(f"unfinished at exit {missing['images_unfinished_at_exit']}")
    parts.append(Text(f"not embedded: {missing['windows_withheld']} windows withheld for quality; images: "
                      + ", ".join(images)))
    for sink in summary.get("sinks", ()):
        if sink["state"] != "ok" or sink["lost"]:
            parts.append(Text(f"sink {sink['kind']} ({sink['path'] or 'no path'}): {sink['state']}"
                              f"{': ' + sink['reason'] if sink['reason'] else ''}; written {sink['written']}, lost "
                              f"{sink['lost']}, retries {sink['retries']}", style="bold red"))
    parts.extend(Text(line) for line in footer)
    return Group(*parts)
