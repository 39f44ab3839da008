"""The `qgan` command line: one subcommand per module in jobs/commands.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
User mistakes (bad config, bad path) are reported as one clear message and exit status 2,
never as a traceback. Every message and log line goes through the one sanitiser
(`qgan.sanitise`): untrusted names cannot drive the terminal or forge lines. A reader that
goes away (`qgan diagnose RUN --json | head`) ends the command quietly with status 141 (128 +
SIGPIPE, what a shell shows for a process killed by SIGPIPE), handled here once for every
command.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from jobs.errors import UserError
from qgan import __version__
from qgan.sanitise import clean, install_safe_logging, install_safe_streams

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away

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
    install_safe_streams()
    parser, modules = build_parser()
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
        print(f"qgan {args.command}: error: {clean(exc, keep_newlines=True)}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
