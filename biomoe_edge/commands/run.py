"""``biomoe-edge run gateway.toml``: run the gateway on real wearables until Ctrl-C."""

from __future__ import annotations

HELP = "run the gateway described by a TOML file (see examples/gateway.toml) until Ctrl-C"


def add_arguments(parser) -> None:
    parser.add_argument("config", help="gateway TOML file")
    parser.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (default: run until Ctrl-C)")
    parser.add_argument("--quiet", action="store_true", help="no console table, only log lines")


def run(args) -> int:
    import asyncio
    import logging
    import signal

    from biomoe_edge.runtime.console import run_with_console
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import load_config
    from biomoe_edge.runtime.systemd_notify import sd_notify, watchdog_interval_s

    config = load_config(args.config)
    if not config.devices:
        # A fresh Jetson install starts with an empty allow-list: stay up (the service must not crash-loop).
        logging.getLogger("biomoe_edge.run").warning(
            "%s lists no [[devices]]: the gateway connects only to allow-listed wearables; idle until you add some",
            args.config)

    async def main():
        # `systemctl stop` sends SIGTERM: end like Ctrl-C does, so sinks flush and close and BLE disconnects.
        main_task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, main_task.cancel)
        async with Gateway(config) as gateway:
            # Under systemd (Type=notify): ready once running, then a watchdog ping from the event loop.
            sd_notify("READY=1")
            watchdog_s = watchdog_interval_s()
            try:
                await run_with_console(gateway, duration_s=args.duration, quiet=args.quiet,
                                       refresh_s=min(1.0, watchdog_s or 1.0),
                                       on_tick=(lambda: sd_notify("WATCHDOG=1")) if watchdog_s else None)
            except asyncio.CancelledError:
                logging.getLogger("biomoe_edge.run").info("stopping on a signal")
            finally:
                sd_notify("STOPPING=1")
        return 0

    return asyncio.run(main())
