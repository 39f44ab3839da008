"""The CV quantum neural network, described once and simulated by interchangeable backends.

A circuit of `modes` modes: the inputs are encoded into modes 0..n_inputs-1 (`encoding`), then
`layers` CV-QNN layers follow (Killoran et al. 2019): interferometer, squeezing on every mode,
interferometer, displacement on every mode, Kerr on every mode. An interferometer is a
rectangular (Clements) mesh of beamsplitters followed by a rotation on every mode. The
outputs are the x-quadrature expectations of modes 0..n_outputs-1, and the state's trace (the
probability that stayed inside the Fock cutoff).

Three options make the map from inputs to outputs less close to affine (a 2-layer circuit with
a small Kerr is nearly linear in its input displacements):
- `reupload`: the inputs are encoded again before every layer after the first
  (data re-uploading, Perez-Salinas et al. 2020): the output becomes a higher-degree
  function of the inputs.
- `encoding = "phase"`: input i is an angle (radians): mode i starts in the coherent state of
  a trainable amplitude (weight `encode`), rotated by the input, R(z) D(a)|0>, so <x> starts
  as 2a cos(z): no longer affine in the input even for a Gaussian circuit, and a uniform
  angle gives the two-peaked arcsine law. With `reupload`, every later layer starts with
  R(z) D(a_l) on the input modes (the displacement first; a_l trainable, starting at 0: a pure
  rotation), so the output is a trigonometric series in the inputs whose higher harmonics
  can make step-like maps. Rotations are diagonal in the Fock basis: cheap.
  `encoding = "displacement"` (this class's default; the run config's is "phase") displaces
  mode i by input i along x.
- `readout = "xpn"`: the measured features are <x>, <p> and <n> of every mode (3 * modes of
  them, ancilla modes included) instead of <x> of the output modes; a trainable linear map
  (in the model) turns them into the outputs. <n> is quadratic in the displacements.

The weights are a dict of named arrays with the shapes below; every backend takes the same
dict, so a checkpoint written by one backend restores into the other. The gate sequence above
is written once, as data, by `program(spec)` (qgan/circuits/program.py), which every backend
interprets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

# Weight name -> (kind of parameter, per-layer length in terms of modes/beamsplitters).
PASSIVE = ("bs1_theta", "bs1_phi", "rot1", "bs2_theta", "bs2_phi", "rot2")
ACTIVE = ("squeeze", "displace", "kerr")
READOUTS = ("x", "xpn")
ENCODINGS = ("displacement", "phase")
TRUNCATIONS = ("mode", "total")
# What the generator outputs: expectation values, or homodyne samples of its state (issue 21)
OUTPUTS = ("expectation", "homodyne", "heterodyne")
# How the weights start: drawn at random, issue 21's two-mode cat, or a cat of K components
# on a circle in mode 0 (`initial_weights`)
CIRCUIT_INITS = ("random", "cat", "ring")
ENCODE_AMPLITUDE = 1.0  # default initial coherent amplitude of the phase encoding: <n> = 1
WEIGHT_NAMES = ("bs1_theta", "bs1_phi", "rot1", "squeeze", "bs2_theta", "bs2_phi", "rot2",
                "displace", "kerr")


@dataclass(frozen=True)
class CircuitSpec:
    modes: int
    layers: int
    cutoff: int
    n_inputs: int
    n_outputs: int
    reupload: bool = False
    readout: str = "x"  # "x": <x> of modes 0..n_outputs-1; "xpn": <x>, <p>, <n> of every mode
    encoding: str = "displacement"  # "displacement": D(z)|0>; "phase": R(z) D(a)|0>
    # "mode": each mode's photon number < cutoff (SF's Fock truncation); "total": the sum of
    # all modes' < cutoff (Piquasso's; qgan/circuits/total.py). Not a weight: checkpoints of
    # either restore into the other.
    truncation: str = "mode"

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding={self.encoding!r}; allowed: {', '.join(ENCODINGS)}")
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"truncation={self.truncation!r}; allowed: {', '.join(TRUNCATIONS)}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout={self.readout!r}; allowed: {', '.join(READOUTS)}")
        if not 1 <= self.n_inputs <= self.modes:
            raise ValueError(f"n_inputs={self.n_inputs} must be in 1..modes={self.modes}")
        # 'x' reads one mode per output; 'xpn' maps all 3 * modes features linearly
        limit = self.modes if self.readout == "x" else 3 * self.modes
        if not 1 <= self.n_outputs <= limit:
            raise ValueError(f"n_outputs={self.n_outputs} must be in 1..{limit} (readout "
                             f"{self.readout!r}, modes={self.modes})")

    @property
    def n_features(self) -> int:
        """Number of measured features per sample (CircuitOutput.quads' width)."""
        return self.n_outputs if self.readout == "x" else 3 * self.modes

    @property
    def beamsplitter_pairs(self) -> list[tuple[int, int]]:
        """Mode pairs of the rectangular mesh, in the order they are applied."""
        pairs = []
        for k in range(self.modes):
            for i in range(k % 2, self.modes - 1, 2):
                pairs.append((i, i + 1))
        return pairs

    @property
    def uploads(self) -> int:
        """How many times the inputs enter the circuit (before the first layer, and before
        every later one with reupload)."""
        return self.layers if self.reupload else 1

    def weight_shapes(self) -> dict[str, tuple[int, int]]:
        """Name -> (rows, per-row length); the layer weights have one row per layer, the phase
        encoding's amplitudes (`encode`) one row per upload of the inputs."""
        n_bs = len(self.beamsplitter_pairs)
        per_layer = {"bs1_theta": n_bs, "bs1_phi": n_bs, "rot1": self.modes,
                     "squeeze": self.modes, "bs2_theta": n_bs, "bs2_phi": n_bs,
                     "rot2": self.modes, "displace": self.modes, "kerr": self.modes}
        shapes = {name: (self.layers, per_layer[name]) for name in WEIGHT_NAMES}
        if self.encoding == "phase":
            shapes["encode"] = (self.uploads, self.n_inputs)
        return shapes


def initial_weights(spec: CircuitSpec, seed: int, active_std: float,
                    kerr_std: float | None = None,
                    encode_amplitude: float = ENCODE_AMPLITUDE,
                    init: str = "random", components: int = 8) -> dict[str, np.ndarray]:
    """Deterministic initial weights: passive angles uniform in [0, 2pi), active ones normal
    with std active_std (the Kerr strengths with kerr_std if given: the same draws, scaled),
    the phase encoding's first amplitudes encode_amplitude and its re-upload ones 0.

    init = "cat" (>= 2 modes and layers): issue 21's two-mode cat. Mode 0's coherent input
    D(encode_amplitude) goes through Kerr pi/2 in layer 1 (a cat: two coherent components at
    +-encode_amplitude), then a 50:50 beamsplitter onto mode 1 in layer 2 (two correlated
    components at +-(1, 1) * encode_amplitude / sqrt(2)); every other passive angle is 0 (the
    identity), every other active weight, Kerr included, normal with std active_std (the same
    draws as "random", scaled).

    init = "ring": mode 0's coherent input D(encode_amplitude) goes through Kerr pi/K in layer
    1 (K = `components`, even): a cat of K coherent components of equal weight on a circle of
    radius encode_amplitude, whose Q function (heterodyne) is K blobs on a ring; passive
    angles and the other weights as for "cat"."""
    if init not in CIRCUIT_INITS:
        raise ValueError(f"init={init!r}; allowed: {', '.join(CIRCUIT_INITS)}")
    if init in ("cat", "ring"):  # identity interferometers, Kerr pi/K on mode 0
        if init == "cat" and (spec.modes < 2 or spec.layers < 2):
            raise ValueError(f"init='cat' needs >= 2 modes and layers, not {spec.modes} and "
                             f"{spec.layers}")
        out = initial_weights(spec, seed, active_std, active_std, encode_amplitude)
        for name in PASSIVE:
            out[name] = np.zeros_like(out[name])
        out["kerr"][0, 0] = np.pi / (2 if init == "cat" else components)
        if init == "cat":
            out["bs1_theta"][1, 0] = np.pi / 4  # (0, 1) is the mesh's first pair
        return out
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in spec.weight_shapes().items():
        if name == "encode":  # last in the dict: the other weights' draws are unchanged
            amp = np.zeros(shape, np.float32)
            amp[0] = encode_amplitude
            out[name] = amp
        elif name in PASSIVE:
            out[name] = rng.uniform(0.0, 2 * np.pi, size=shape).astype(np.float32)
        else:
            std = kerr_std if name == "kerr" and kerr_std is not None else active_std
            out[name] = rng.normal(0.0, std, size=shape).astype(np.float32)
    return out


class CircuitOutput(NamedTuple):
    quads: "object"  # tf.Tensor [B, n_features], float32: the measured features (spec.readout)
    trace: "object"  # tf.Tensor [B], float32: probability inside the cutoff


class CircuitBackend(Protocol):
    """Simulates a CircuitSpec for a batch of inputs, differentiably."""

    spec: CircuitSpec
    name: str

    def __call__(self, weights: dict, inputs: "object") -> CircuitOutput:
        """weights: name -> tf.Variable [layers, k]; inputs: tf.Tensor [B, n_inputs] float32."""
        ...
