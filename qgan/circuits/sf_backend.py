"""Strawberry Fields' TF backend: the reference simulator of a CircuitSpec.

One batched engine run per call (`sf.Engine("tf", batch_size=B)`): the per-sample inputs are
passed as [B] tensors, the shared weights as scalars. Eager only: SF's TF backend calls
`.numpy()` inside its gate builders, so it cannot be traced by `tf.function` (FACTS.md).
Importing this module imports SF's TF backend, which replaces `tf.einsum` process-wide.
"""

from __future__ import annotations

import numpy as np
from qgan.tflib import tf

from qgan import _env  # noqa: F401 - checks the pinned environment first
import strawberryfields as sf
from strawberryfields import ops

from .program import Const, Input, Param, program
from .spec import CircuitOutput, CircuitSpec

# One SF operation per instruction kind (qgan/circuits/program.py's KINDS)
OPERATIONS = {
    "beamsplitter": ops.BSgate,
    "rotation": ops.Rgate,
    "squeeze": lambda r: ops.Sgate(r, 0.0),
    "displace": lambda r: ops.Dgate(r, 0.0),
    "kerr": ops.Kgate,
}


class SFBackend:
    """Builds the SF program once; each call runs it on a fresh batched engine."""

    name = "sf"

    def __init__(self, spec: CircuitSpec):
        self.spec = spec
        self._prog = self._build_program()

    def _build_program(self) -> sf.Program:
        """`program(spec)` as an SF program: one operation per instruction, its weights and
        inputs as free parameters (`{name}_{row}_{col}`, `in_{i}`)."""
        prog = sf.Program(self.spec.modes)
        names: dict[str, object] = {}

        def param(p: Param) -> object:
            if isinstance(p, Const):
                return p.value
            name = f"in_{p.index}" if isinstance(p, Input) else f"{p.name}_{p.row}_{p.col}"
            if name not in names:
                names[name] = prog.params(name)
            return names[name]

        with prog.context as q:
            for gate in program(self.spec):
                op = OPERATIONS[gate.kind](*(param(p) for p in gate.params))
                op | tuple(q[m] for m in gate.modes)
        return prog

    def __call__(self, weights: dict, inputs: tf.Tensor) -> CircuitOutput:
        if int(inputs.shape[0]) == 1:  # SF's batch mode refuses batch_size=1: run two, keep one
            out = self(weights, tf.concat([inputs, inputs], axis=0))
            return CircuitOutput(out.quads[:1], out.trace[:1])
        s = self.spec
        batch = int(inputs.shape[0])
        args: dict[str, tf.Tensor] = {}
        for i in range(s.n_inputs):
            args[f"in_{i}"] = inputs[:, i]
        for name, var in weights.items():
            for layer in range(var.shape[0]):
                for j in range(var.shape[1]):
                    args[f"{name}_{layer}_{j}"] = var[layer, j]
        eng = sf.Engine("tf", backend_options={"cutoff_dim": s.cutoff, "batch_size": batch})
        state = eng.run(self._prog, args=args).state
        if s.readout == "x":
            features = [state.quad_expectation(m, 0.0)[0] for m in range(s.n_outputs)]
        else:  # <x>, <p>, <n> of every mode
            features = ([state.quad_expectation(m, 0.0)[0] for m in range(s.modes)]
                        + [state.quad_expectation(m, np.pi / 2)[0] for m in range(s.modes)]
                        + [state.mean_photon(m)[0] for m in range(s.modes)])
        quads = tf.stack([tf.math.real(f) for f in features], axis=1)
        trace = tf.math.real(state.trace()) if callable(getattr(state, "trace", None)) else None
        return CircuitOutput(tf.cast(tf.math.real(quads), tf.float32),
                             tf.reshape(tf.cast(trace, tf.float32), [batch]))
