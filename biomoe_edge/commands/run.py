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

    from biomoe_edge.runtime.console import run_with_console
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import load_config

    config = load_config(args.config)
    if not config.devices:
        # A fresh Jetson install starts with an empty allow-list: stay up (the service must not crash-loop).
        logging.getLogger("biomoe_edge.run").warning(
            "%s lists no [[devices]]: the gateway connects only to allow-listed wearables; idle until you add some",
            args.config)

    async def main():
        async with Gateway(config) as gateway:
            await run_with_console(gateway, duration_s=args.duration, quiet=args.quiet)
        return 0

    return asyncio.run(main())
