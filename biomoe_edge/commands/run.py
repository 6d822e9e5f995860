"""``biomoe-edge run gateway.toml``: run the gateway on real wearables until Ctrl-C (or ``--duration``).

At start-up it says which engine and model file it runs and whether the weights are random; at the end it
prints a closing summary like the demo's (streams, drops by reason, every device's connections and the last
reason it could not connect, every warning), drawn from one snapshot taken after the gateway closed.
"""

from __future__ import annotations

import dataclasses
import logging

HELP = "run the gateway described by a TOML file (see examples/gateway.toml) until Ctrl-C"

log = logging.getLogger("biomoe_edge.run")


def add_arguments(parser) -> None:
    parser.add_argument("config", help="gateway TOML file")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    parser.add_argument("--quiet", action="store_true", help="no live view, only log lines and the closing summary")
    parser.add_argument("--random-weights", action="store_true",
                        help="run Tiny-BioMoE with seeded random weights instead of engine.path (meaningless "
                             "embeddings, for trying the plumbing; every record says random_weights: true)")
    parser.add_argument("--strict", action="store_true",
                        help="a .pth engine.path: refuse entries that are not part of Tiny-BioMoE instead of "
                             "ignoring them; refuse a password others can read or one sent without TLS instead of "
                             "warning")
    parser.add_argument("--report", default=None, metavar="FILE", help="write the closing summary as JSON here")
    parser.add_argument("--web", default=None, metavar="HOST:PORT",
                        help="serve the live page (/), Prometheus metrics (/metrics) and /healthz here (overrides "
                             "[web] listen); off loopback a token is required ([web] token_file or $BIOMOE_WEB_TOKEN)")


def with_random_weights(config, source):
    """``config`` with ``engine.random_weights = true`` (``--random-weights``): engine.path is then not used."""
    engine = config.engine
    if engine.path is not None:
        log.warning("--random-weights: engine.path %s in %s is not used", engine.path, source)
    kind = engine.kind if engine.kind in ("auto", "pytorch") else "pytorch"
    return dataclasses.replace(config, engine=dataclasses.replace(engine, path=None, random_weights=True, kind=kind))


def devices_summary(config, connection_stats: dict) -> list[dict]:
    """Per allow-listed device: how often it connected, failed attempts, and the last failure's reason."""
    out = []
    for device in config.devices:
        stats = connection_stats.get(device.label)
        out.append({"device": device.label, "profile": device.profile,
                    "connects": stats.connects if stats else 0,
                    "failed_attempts": stats.failed_attempts if stats else 0,
                    "last_error": stats.last_error if stats else None})
    return out


def devices_lines(devices: list[dict]) -> list[str]:
    lines = []
    for d in devices:
        if d["connects"]:
            lines.append(f"{d['device']}: connected {d['connects']} time(s), {d['failed_attempts']} failed attempts")
        else:
            reason = d["last_error"] or "no attempt finished"
            lines.append(f"{d['device']}: NEVER CONNECTED ({d['failed_attempts']} failed attempts): {reason}")
    return lines


def idle_reason(devices: list[dict]) -> dict:
    """``{"idle_reason": ...}`` when no allow-listed wearable ever connected: why (the last failure of each), which
    the closing summary says instead of blaming the run's length; else nothing."""
    if any(d["connects"] for d in devices):
        return {}
    if not devices:
        return {"idle_reason": "no [[devices]] in the allow-list"}
    reasons = list(dict.fromkeys(d["last_error"] or "no connection attempt finished" for d in devices))
    return {"idle_reason": "no wearable connected: " + "; ".join(reasons)}


def with_web(config, listen: str | None):
    """``config`` with ``[web] listen`` set from ``--web`` (the other [web] keys kept)."""
    from biomoe_edge.runtime.gateway_config import WebConfig, parse_listen

    if listen is None:
        return config
    host, port = parse_listen(listen, "--web")
    return dataclasses.replace(config, web=dataclasses.replace(config.web or WebConfig(), host=host, port=port))


def with_default_outbox(config):
    """MQTT sinks of ``config`` keep an outbox on disk under the state directory unless they name one (``outbox_dir``)
    or turn it off (``outbox_max_mb = 0``): ``run`` is the deployed gateway, whose uplink must not drop."""
    from biomoe_edge.runtime.sinks.outbox import default_outbox_dir

    sinks = []
    for position, sink in enumerate(config.sinks):
        if (sink.kind == "mqtt" and sink.options.get("outbox_dir") is None and sink.options.get("outbox_max_mb", 1)
                and sink.options.get("qos", 1) > 0):  # QoS 0 is never acknowledged: no outbox
            options = dict(sink.options, outbox_dir=default_outbox_dir(config.transport.state_dir, position))
            sink = dataclasses.replace(sink, options=options)
        sinks.append(sink)
    return dataclasses.replace(config, sinks=tuple(sinks))


class StatusPublisher:
    """Every ``every_s``, the gateway's StatusRecord to the sinks that take one (MQTT: ``status_topic``), through
    their guards (a failing sink is counted, never raised)."""

    def __init__(self, gateway, health, every_s: float = 30.0, clock=None):
        import socket
        import time

        self.gateway, self.health, self.every_s = gateway, health, every_s
        self.name = socket.gethostname()
        self.clock = clock or time.monotonic
        self.last = None

    def tick(self) -> None:
        now = self.clock()
        if self.last is not None and now - self.last < self.every_s:
            return
        self.last = now
        sinks = [s for s in self.gateway.sinks if getattr(getattr(s, "sink", s), "takes_status", False)]
        if sinks:
            record = self.health.status_record(self.name)
            for sink in sinks:
                sink.write([record])


def run(args) -> int:
    import asyncio
    import json
    import pathlib
    import signal

    from biomoe_edge.identity import model_identity
    from biomoe_edge.runtime.console import GatewayConsole, gateway_summary, make_console, model_line, summary_view
    from biomoe_edge.runtime.engines import open_configured_engine
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import load_config
    from biomoe_edge.runtime.systemd_notify import sd_notify, watchdog_interval_s
    from biomoe_edge.runtime.web.health import HealthMonitor

    # What engine and file the gateway runs, and random weights, are start-up facts: shown without -v.
    for name in ("biomoe_edge.run", "biomoe_edge.runtime.engines"):
        if logging.getLogger(name).getEffectiveLevel() > logging.INFO:
            logging.getLogger(name).setLevel(logging.INFO)
    config = load_config(args.config, strict=args.strict)
    if args.random_weights:
        config = with_random_weights(config, args.config)
    config = with_default_outbox(with_web(config, args.web))
    if not config.devices:
        # A fresh Jetson install starts with an empty allow-list: stay up (the service must not crash-loop).
        log.warning("%s lists no [[devices]]: the gateway connects only to allow-listed wearables; idle until you "
                    "add some", args.config)
    # Opened before the gateway: a missing model is an error naming engine.path, never random weights.
    engine = open_configured_engine(config.engine, strict=args.strict)
    summary: dict = {}

    async def main():
        # `systemctl stop` sends SIGTERM: end like Ctrl-C does, so sinks flush and close and BLE disconnects.
        main_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, main_task.cancel)
        gateway = Gateway(config, engine=engine)
        model = model_identity(engine.identity)
        watchdog_s = watchdog_interval_s()
        console = GatewayConsole(gateway, quiet=args.quiet, refresh_s=min(1.0, watchdog_s or 1.0),
                                 model_line=model_line(model, engine.identity))
        with console:
            try:
                async with gateway, serve_web(gateway, config.web, console) as server:
                    # The watchdog follows /healthz's judgement: an unhealthy gateway is not pinged, so systemd
                    # restarts it (runtime.web.health).
                    health = server.health if server is not None else HealthMonitor(
                        gateway, **({"no_device_s": config.web.no_device_s, "engine_stall_s": config.web.engine_stall_s}
                                    if config.web else {}))
                    status = StatusPublisher(gateway, health)
                    # Under systemd (Type=notify): ready once running, then a watchdog ping from the event loop.
                    sd_notify("READY=1")

                    def tick():
                        if watchdog_s and health.healthy:
                            sd_notify("WATCHDOG=1")
                        status.tick()

                    try:
                        await console.run(args.duration, tick)
                    except asyncio.CancelledError:
                        log.info("stopping on a signal")
                    finally:
                        sd_notify("STOPPING=1")
            finally:
                if gateway.pipeline is not None:
                    stats, entries = console.snapshot()
                    summary.update(gateway_summary(stats, entries, duration_s=console.elapsed_s(), model=model,
                                                   engine=dict(gateway.pipeline.engine_identity),
                                                   warnings=console.warnings.items()))
                    summary["devices"] = devices_summary(config, gateway.connection_stats())
                    summary.update(idle_reason(summary["devices"]))
        return 0

    def serve_web(gateway, web, console):
        import contextlib

        if web is None:
            return contextlib.nullcontext()
        from biomoe_edge.runtime.web.server import WebServer

        return WebServer(gateway, web, warnings=console.warnings.items, model_line=console.model_line)

    try:
        code = asyncio.run(main())
    finally:
        engine.close()
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    footer = devices_lines(summary["devices"]) + ([f"summary written to {args.report}"] if args.report else [])
    make_console().print(summary_view(summary, title=f"biomoe-edge run {args.config}", footer=footer))
    return code
