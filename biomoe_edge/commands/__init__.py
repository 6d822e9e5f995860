"""One module per ``biomoe-edge`` subcommand: ``HELP``, ``add_arguments(parser)``, ``run(args) -> int``."""
