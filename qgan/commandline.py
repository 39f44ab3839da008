"""The machinery every layer's command line shares: one parser built from command modules,
one exit-status policy.

A command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`;
a package lists its modules in `<package>.commands.COMMANDS`. User mistakes (bad config, bad
path) are reported as one clear message and exit status 2, never as a traceback. Every
message and log line goes through the one sanitiser (`qgan.sanitise`): untrusted names cannot
drive the terminal or forge lines. A reader that goes away (`qgan diagnose RUN --json | head`)
ends the command quietly with status 141 (128 + SIGPIPE, what a shell shows for a process
killed by SIGPIPE), handled here once for every command.

The `qgan` entry point (jobs/cli.py) stacks every layer's commands; `python -m qgan` and
`python -m reports` offer their own layers' commands only, so a subprocess the job layer
starts loads no layer above the one it needs.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from types import ModuleType
from typing import Sequence

from qgan import __version__
from qgan.errors import UserError
from qgan.sanitise import clean, install_safe_logging, install_safe_streams

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away
DESCRIPTION = "Train quantum GANs that survive a cluster, and read what happened to them."


def command_modules(packages: Sequence[str]) -> list[ModuleType]:
    """The command modules of `packages` (e.g. "qgan", "analysis"), in their listed order."""
    modules = []
    for package in packages:
        listed = importlib.import_module(f"{package}.commands").COMMANDS
        modules.extend(importlib.import_module(f"{package}.commands.{name}") for name in listed)
    return modules


def build_parser(packages: Sequence[str], prog: str = "qgan"
                 ) -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for module in command_modules(packages):
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        modules[module.NAME] = module
    return parser, modules


def main(packages: Sequence[str], argv: list[str] | None = None, prog: str = "qgan") -> int:
    """Parse `argv`, run the command, map the outcome to an exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TF's C++ start-up chatter
    install_safe_streams()
    parser, modules = build_parser(packages, prog)
    args = parser.parse_args(argv)
    install_safe_logging(logging.DEBUG if args.verbose else logging.INFO,
                         "%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF checkpoint chatter
    for chatty in ("fontTools", "matplotlib"):  # font subsetting, writer commands (figures)
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status = int(modules[args.command].run(args))
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except UserError as exc:
        print(f"{prog} {args.command}: error: {clean(exc, keep_newlines=True)}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return _reader_gone()
        raise


def _reader_gone() -> int:
    """stdout's reader closed the pipe: point stdout at /dev/null so that the interpreter's
    final flush does not fail again ("Exception ignored ... BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
