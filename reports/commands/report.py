"""`qgan report`: one self-contained HTML postmortem of a run or an experiment."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.commands.diagnose import load_diagnosis
from qgan.errors import UserError, checked_path
from qgan.sanitise import clean
from qgan.schema import REPORT_FILE

NAME = "report"
HELP = ("write a self-contained HTML postmortem of a run or an experiment (no server, no "
        "network) and print its path")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH", help="a run directory or an experiment")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="where to write the report (default: PATH/report.html)")
    p.add_argument("--thresholds", type=Path, metavar="TOML",
                   help="override thresholds (names in analysis/thresholds.py)")


def run(args: argparse.Namespace) -> int:
    from qgan.safewrite import OutputRefused, check_output
    from reports import write_report
    from reports.runpart import RUN_PART

    checked_path(args.path, "PATH")
    out = args.output or args.path / REPORT_FILE
    try:
        check_output(out, make_parents=True)  # before the work: a refused -o costs nothing
        d = load_diagnosis(args.path, args.thresholds, (RUN_PART,))
        print(clean(write_report(d, out)))
    except OutputRefused as exc:
        raise UserError(str(exc)) from None
    return 0
