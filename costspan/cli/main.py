"""``costspan`` command line: one subcommand per module, each registering its own parser.

Configuration errors end the command with exit status 2 and the message that names the file,
key and problem; nothing is half-done silently.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from costspan import __version__
from costspan.errors import ConfigError

COMMAND_MODULES = (
    "costspan.cli.demo",
    "costspan.cli.status",
    "costspan.cli.prices",
    "costspan.cli.report",
    "costspan.cli.export",
    "costspan.cli.prune",
    "costspan.cli.advise",
    "costspan.cli.dashboards",
    "costspan.cli.gateway",
)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="costspan", description="What your LLM calls cost, while they run.")
    root.add_argument("--version", action="version", version=f"costspan {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = getattr(args, "func", None)
    if handler is None:
        parser().print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except ConfigError as exc:
        print(f"costspan: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
