"""`qgan sample RUN -n N -o FILE.parquet`: draw samples from a trained generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from qgan.errors import UserError, checked_path
from qgan.sanitise import clean

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
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the latent draws, a whole number >= 0 (default 0)")
    p.add_argument("--interpolate", action="store_true",
                   help="map N points of the latent diagonal (corner to corner) instead of "
                        "random latents: columns t, z*, x*, trace, step")


def _seed(text: str) -> int:
    """A seed numpy's generator takes: a whole number >= 0 (checked before TensorFlow
    starts, not after the restore)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if seed < 0 or seed >= 2**128:
        raise argparse.ArgumentTypeError(f"{seed} is out of range: give 0 to 2**128 - 1")
    return seed


def run(args: argparse.Namespace) -> int:
    from qgan.safewrite import OutputRefused, check_output
    from qgan.sampling import SampleError, check_request

    checked_path(args.run, "RUN")
    try:  # every mistake in the command line before any work (and before TensorFlow)
        check_output(args.output, suffix=".parquet")
        check_request(args.run, args.checkpoint)
        return _sample(args)
    except (SampleError, OutputRefused) as exc:
        raise UserError(str(exc)) from None


def _sample(args: argparse.Namespace) -> int:
    from qgan.metrics import parquet_bytes
    from qgan.safewrite import write_output
    from qgan.sampling import draw, interpolation, load_generator, metadata

    loaded = load_generator(args.run, args.checkpoint)
    if args.interpolate:
        columns = interpolation(loaded.cfg, loaded.models.sampling, loaded.step, args.n)
        meta = metadata(loaded, args.run, kind="interpolation")
    else:
        columns = draw(loaded, args.n, args.seed)
        meta = metadata(loaded, args.run, kind="samples", seed=args.seed)
    write_output(args.output, parquet_bytes(columns, meta), suffix=".parquet")
    print(f"{clean(args.output)}: {args.n} {'points' if args.interpolate else 'samples'} from "
          f"{clean(loaded.checkpoint)} (step {loaded.step})")
    return 0
