"""The ``biomoe-edge`` command line.

Each subcommand lives in its own module under ``biomoe_edge.commands`` and defines ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their command runs
(or when the parser is built), so ``biomoe-edge demo`` never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from biomoe_edge._version import __version__

# command name -> module in biomoe_edge.commands
COMMANDS = {
    "demo": "demo",
    "run": "run",
    "emulate": "emulate",
    "export": "export",
    "build-engine": "build_engine",
    "inspect": "inspect",
    "inspect-signal": "inspect_signal",
    "recording": "recording",
    "mark": "mark",
    "embed": "embed",
    "train-head": "train_head",
    "evaluate-head": "evaluate_head",
    "bridge": "bridge",
}


def _command_module(name: str):
    return importlib.import_module(f"biomoe_edge.commands.{COMMANDS[name]}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="biomoe-edge", description="Tiny-BioMoE biosignal embeddings at the edge.")
    parser.add_argument("--version", action="version", version=f"biomoe-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            # Keep `--help` listing every command without importing every module.
            sub.add_parser(name)
            continue
        module = _command_module(name)
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    chosen = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(only=chosen) if chosen else build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    try:
        from biomoe_edge.commands.weights import check_checkpoint_file

        check_checkpoint_file(getattr(args, "checkpoint", None))  # before any work, for every command taking it
        return int(_command_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        # Typed, expected failures (bad file, bad config, missing TensorRT...): one clear line, no traceback.
        if args.verbose:
            raise
        print(f"biomoe-edge {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
