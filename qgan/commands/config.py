"""`qgan config`: print the default config, or validate one."""

from __future__ import annotations

import argparse
from pathlib import Path

from qgan.errors import UserError

NAME = "config"
HELP = "print the complete, commented default config, or check a config file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--default", action="store_true", help="print the default config (TOML)")
    g.add_argument("--check", metavar="CONFIG", type=Path, help="validate CONFIG and print it "
                   "resolved")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key (dotted path), with --check")


def run(args: argparse.Namespace) -> int:
    from qgan.config import ConfigInvalid, default_config_text, dumps, load_config

    if args.default:
        print(default_config_text(), end="")
        return 0
    try:
        cfg = load_config(args.check, args.overrides)
    except ConfigInvalid as exc:
        raise UserError(str(exc)) from None
    print(dumps(cfg), end="")
    return 0
