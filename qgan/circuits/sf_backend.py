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

from .spec import CircuitOutput, CircuitSpec


class SFBackend:
    """Builds the SF program once; each call runs it on a fresh batched engine."""

    name = "sf"

    def __init__(self, spec: CircuitSpec):
        self.spec = spec
        self._prog, self._arg_names = self._build_program()

    def _build_program(self) -> tuple[sf.Program, list[str]]:
        s = self.spec
        prog = sf.Program(s.modes)
        names: list[str] = []

        def p(name: str) -> object:
            names.append(name)
            return prog.params(name)

        pairs = s.beamsplitter_pairs
        with prog.context as q:
            inputs = [p(f"in_{i}") for i in range(s.n_inputs)]
            for layer in range(s.layers):
                for i in range(s.n_inputs if layer < s.uploads else 0):
                    if s.encoding == "phase":  # R(z) D(a_layer)
                        ops.Dgate(p(f"encode_{layer}_{i}"), 0.0) | q[i]
                        ops.Rgate(inputs[i]) | q[i]
                    else:
                        ops.Dgate(inputs[i], 0.0) | q[i]
                for tag in ("1", "2"):
                    for j, (a, b) in enumerate(pairs):
                        ops.BSgate(p(f"bs{tag}_theta_{layer}_{j}"),
                                   p(f"bs{tag}_phi_{layer}_{j}")) | (q[a], q[b])
                    for m in range(s.modes):
                        ops.Rgate(p(f"rot{tag}_{layer}_{m}")) | q[m]
                    if tag == "1":
                        for m in range(s.modes):
                            ops.Sgate(p(f"squeeze_{layer}_{m}"), 0.0) | q[m]
                for m in range(s.modes):
                    ops.Dgate(p(f"displace_{layer}_{m}"), 0.0) | q[m]
                for m in range(s.modes):
                    ops.Kgate(p(f"kerr_{layer}_{m}")) | q[m]
        assert len(set(names)) == len(names)
        return prog, names

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
