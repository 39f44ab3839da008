"""The `qgan` command line: one subcommand per module in jobs/commands.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
User mistakes (bad config, bad path) are reported as one clear message and exit status 2,
never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from jobs.errors import UserError
from qgan import __version__

COMMANDS = ("config", "train", "sample", "submit", "status", "cancel", "resubmit", "extend",
            "drill", "diagnose", "report", "figures", "export")


def _load(name: str):
    try:
        return importlib.import_module(f"jobs.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"jobs.commands.{name}":
            return None
        raise


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="qgan", description="Train quantum GANs that survive a cluster, and read what "
        "happened to them.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        modules[module.NAME] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF checkpoint chatter
    for chatty in ("fontTools", "matplotlib"):  # font subsetting, writer commands (figures)
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args))
    except UserError as exc:
        print(f"qgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
