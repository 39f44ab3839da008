"""The compiled backend against an earlier revision of itself, side by side in one process.

For a before/after of a change to qgan/circuits/compiled.py: the file at git revision REV is
loaded as a second module, and forward + gradient steps of both (same weights, inputs and
loss as benchmarks/step_speed.py) alternate at the step_speed.SIDE_BY_SIDE sizes under
tf.function (or XLA with --xla); medians of --reps rounds, and the largest difference of the
loss and gradients between the two (they must agree to rounding).

    nice -n 5 python benchmarks/circuit_versions.py --against 1d3b8b9 [--reps 20] [--xla]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from qgan.circuits import CircuitSpec  # noqa: E402
from qgan.circuits.compiled import CompiledBackend  # noqa: E402
from step_speed import SIDE_BY_SIDE, _loss, _problem, alternating  # noqa: E402


def load_revision(rev: str, folder: Path):
    """qgan/circuits/compiled.py at `rev`, imported as a module of its own."""
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:qgan/circuits/compiled.py"],
                          capture_output=True, text=True, check=True).stdout
    path = folder / "compiled_at_rev.py"
    path.write_text(text.replace("from .spec import", "from qgan.circuits.spec import"))
    spec = importlib.util.spec_from_file_location("compiled_at_rev", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step(backend, spec: CircuitSpec, batch: int, jit: bool):
    weights, x = _problem(spec, batch)
    variables = list(weights.values())

    @tf.function(jit_compile=jit)
    def fn(inputs):
        with tf.GradientTape() as tape:
            loss = _loss(backend(weights, inputs))
        return [loss] + tape.gradient(loss, variables)

    return lambda: [t.numpy() for t in fn(x)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, metavar="REV")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--xla", action="store_true")
    args = ap.parse_args()
    tf.get_logger().setLevel("ERROR")
    with tempfile.TemporaryDirectory() as tmp:
        old = load_revision(args.against, Path(tmp))
        for n, layers, c, batch in SIDE_BY_SIDE:
            spec = CircuitSpec(n, layers, c, min(2, n), n)
            fns = {args.against: step(old.CompiledBackend(spec), spec, batch, args.xla),
                   "this tree": step(CompiledBackend(spec), spec, batch, args.xla)}
            diff = max(float(np.abs(a - b).max()) for a, b in
                       zip(fns[args.against](), fns["this tree"]()))
            med = alternating(fns, args.reps)
            print(f"({n}, {layers}, {c}, {batch}) {'XLA' if args.xla else 'tf.function'}: "
                  + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items())
                  + f"; {med[args.against] / med['this tree']:.2f}x; max |difference| of loss "
                  f"and gradients {diff:.1e}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
