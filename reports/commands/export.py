"""`qgan export PATH --tensorboard -o DIR`: a run or an experiment as TensorBoard logs."""

from __future__ import annotations

import argparse
from pathlib import Path

from reports.commands.outputs import output_dir, pick_runs, printable
from qgan.errors import UserError

NAME = "export"
HELP = ("convert a run or an experiment for other tools: --tensorboard writes TensorBoard "
        "logs (one folder per run, the swept values as HParams)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH", help="a run directory or an experiment")
    p.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard event files: `tensorboard --logdir DIR`")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="output folder (created if missing; an export again replaces its "
                        "files)")
    p.add_argument("--runs", nargs="+", metavar="NAME", help="only these runs (run or "
                   "folder names)")


def run(args: argparse.Namespace) -> int:
    from analysis import NotARunError, load
    from qgan.tbevents import MissingTensorBoard
    from reports.tensorboard import export_tensorboard

    if not args.tensorboard:
        raise UserError("say what to export: --tensorboard (the only format so far)")
    try:
        exp = load(args.path)
    except NotARunError as exc:
        raise UserError(f"{exc}. Give a run directory or an experiment folder.") from None
    picked = pick_runs(exp.runs, [(r.name, r.path.name) for r in exp.runs], args.runs)
    out = output_dir(args.output)
    exp.runs = picked
    try:
        done = export_tensorboard(exp, out)
    except MissingTensorBoard as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"-o {out}: cannot write ({exc.strerror or exc})") from None
    for e in done:
        swept = printable(", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                    for k, v in e.hparams.items()))
        print(f"{e.folder}: {e.points} values" + (f"; HParams {swept}" if swept else ""))
    print(f"view: tensorboard --logdir {out}")
    return 0
