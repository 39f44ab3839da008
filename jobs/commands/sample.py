"""`qgan sample RUN -n N -o FILE.parquet`: draw samples from a trained generator."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from jobs.errors import UserError

NAME = "sample"
HELP = ("draw N samples from a run's trained generator (its best checkpoint by default) into "
        "a Parquet file (columns x0..x{d-1}, step); --interpolate maps a straight latent line "
        "instead")


def _count(text: str) -> int:
    from qgan.sampling import MAX_SAMPLES

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= MAX_SAMPLES:
        raise argparse.ArgumentTypeError(f"{n} is out of range: give 1 to {MAX_SAMPLES}")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, metavar="RUN", help="a run directory")
    p.add_argument("--checkpoint", default="best", metavar="best|latest|PATH",
                   help="which state: 'best' (default; checkpoint.keep_best), 'latest', or a "
                        "checkpoint folder inside RUN/checkpoints (a path, or just its name, "
                        "e.g. ckpt-000012)")
    p.add_argument("-n", type=_count, required=True, metavar="N",
                   help="how many samples (with --interpolate: points on the line)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="FILE.parquet",
                   help="output file, written atomically (replaced if it exists)")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent draws (default 0)")
    p.add_argument("--interpolate", action="store_true",
                   help="map N points of the latent diagonal (corner to corner) instead of "
                        "random latents: columns t, z*, x*, trace, step")


def _check_output(out: Path, run: Path) -> None:
    """Every output problem before any work (and before TensorFlow loads)."""
    if out.suffix != ".parquet":
        raise UserError(f"-o {out}: the output must end in .parquet")
    if out.is_dir():
        raise UserError(f"-o {out}: is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"-o {out}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"-o {out}: folder {parent} is not writable; choose another -o")
    from qgan import schema
    try:
        out.resolve().relative_to((run / schema.CHECKPOINT_DIR).resolve())
    except ValueError:
        return
    raise UserError(f"-o {out}: do not write into the run's checkpoints folder")


def run(args: argparse.Namespace) -> int:
    from qgan.sampling import SampleError

    _check_output(args.output, args.run)
    try:
        return _sample(args)
    except SampleError as exc:
        raise UserError(str(exc)) from None


def _sample(args: argparse.Namespace) -> int:
    from qgan.metrics import write_parquet
    from qgan.sampling import draw, interpolation, load_generator, metadata

    loaded = load_generator(args.run, args.checkpoint)
    if args.interpolate:
        columns = interpolation(loaded.cfg, loaded.models.sampling, loaded.step, args.n)
        meta = metadata(loaded, args.run, kind="interpolation")
    else:
        columns = draw(loaded, args.n, args.seed)
        meta = metadata(loaded, args.run, kind="samples", seed=args.seed)
    try:
        write_parquet(args.output, columns, meta)
    except OSError as exc:
        raise UserError(f"-o {args.output}: cannot write it ({exc.strerror or exc}); nothing "
                        "was written") from None
    print(f"{args.output}: {args.n} {'points' if args.interpolate else 'samples'} from "
          f"{loaded.checkpoint} (step {loaded.step})")
    return 0
