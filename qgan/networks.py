"""The two kinds of network: the quantum circuit model and the classical Keras MLP.

The quantum model holds its circuit weights as a dict of tf.Variables named as in
qgan.circuits.spec, plus a trainable affine readout (scale, bias per output); the circuit
itself is simulated by whichever backend the run selected, so checkpoints are interchangeable
between backends. Kept apart from qgan/models.py (which builds a run's models from its
config) so that variants such as the homodyne generator (qgan/homodyne.py) subclass it
without an import circle.
"""

from __future__ import annotations

import numpy as np
from qgan.tflib import keras, tf

from qgan.circuits import ENCODE_AMPLITUDE, CircuitSpec, initial_weights, make_backend


class QuantumModel(tf.Module):
    """A CV circuit: inputs (times input_scale) are encoded into modes (displacement or phase);
    the measured features go through a trainable readout.

    Readout 'x' (the default): output i = scale_i <x_i> + bias_i (variables readout_scale,
    readout_bias). Readout 'xpn': outputs = features @ readout_matrix + readout_bias, the
    matrix starting as the identity on the output modes' <x> (so step 0 is the 'x' circuit).
    """

    def __init__(self, spec: CircuitSpec, backend: str, seed: int, init_std: float, name: str,
                 output_bias: bool = True, input_scale: float = 1.0,
                 kerr_std: float | None = None, encode_amplitude: float = ENCODE_AMPLITUDE,
                 circuit_init: str = "random", ring_components: int = 8):
        super().__init__(name=name)
        self.spec = spec
        self.input_scale = input_scale  # inputs -> what the circuit encodes (phase: radians)
        self.backend = make_backend(backend, spec)
        self.circuit = {k: tf.Variable(v, name=k)
                        for k, v in initial_weights(spec, seed, init_std, kerr_std,
                                                        encode_amplitude, circuit_init,
                                                        ring_components).items()}
        # Attribute names are checkpoint keys: readout_scale is what checkpoints always held.
        if spec.readout == "x":
            self.readout_scale = tf.Variable(tf.ones([spec.n_outputs]), name="readout_scale")
        else:
            self.readout_matrix = tf.Variable(tf.eye(spec.n_features, spec.n_outputs),
                                              name="readout_matrix")
        self.readout_bias = (tf.Variable(tf.zeros([spec.n_outputs]), name="readout_bias")
                             if output_bias else None)

    @property
    def readout(self) -> tf.Variable:
        return self.readout_scale if self.spec.readout == "x" else self.readout_matrix

    @property
    def weights(self) -> list[tf.Variable]:
        readout = [self.readout] + ([self.readout_bias] if self.readout_bias is not None
                                    else [])
        return [self.circuit[k] for k in sorted(self.circuit)] + readout

    def prepare(self) -> dict | None:
        """What depends only on the weights, for several calls at the same weights (the
        compiled backend's gate matrices, about half of a forward; issue 14); None for SF's
        backend, which builds its gates itself."""
        gates = getattr(self.backend, "gates", None)
        return gates(self.circuit) if gates is not None else None

    def __call__(self, inputs: tf.Tensor, prepared: dict | None = None
                 ) -> tuple[tf.Tensor, tf.Tensor]:
        """(outputs, Fock traces); `prepared`: `self.prepare()` at the current weights."""
        if self.input_scale != 1.0:
            inputs = inputs * self.input_scale
        out = (self.backend(self.circuit, inputs) if prepared is None
               else self.backend(self.circuit, inputs, gates=prepared))
        x = (out.quads * self.readout if self.spec.readout == "x"
             else tf.matmul(out.quads, self.readout))
        return (x if self.readout_bias is None else x + self.readout_bias), out.trace

    def fit_readout(self, z: np.ndarray, data: np.ndarray) -> None:
        """Rescale and shift the readout so that the outputs on the latent batch `z` have the
        data's per-axis mean and std (readout_init = 'data')."""
        y = self(tf.constant(z))[0].numpy()
        if self.readout_bias is not None:
            y = y - self.readout_bias.numpy()
        factor = data.std(axis=0) / np.maximum(y.std(axis=0), 1e-6)
        self.readout.assign(self.readout.numpy() * factor.astype(np.float32))
        if self.readout_bias is not None:
            self.readout_bias.assign((data.mean(axis=0) - factor * y.mean(axis=0))
                                     .astype(np.float32))


class KerasModel(tf.Module):
    """A classical MLP; returns NaN as its Fock trace (there is none)."""

    def __init__(self, n_in: int, n_out: int, hidden: list[int], seed: int, name: str,
                 output_bias: bool = True):
        super().__init__(name=name)
        layers = [keras.Input((n_in,))]
        for i, width in enumerate(hidden):
            layers.append(keras.layers.Dense(
                width, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + i)))
            layers.append(keras.layers.LeakyReLU(negative_slope=0.2))
        layers.append(keras.layers.Dense(
            n_out, use_bias=output_bias,
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1000)))
        self.net = keras.Sequential(layers, name=name)

    @property
    def weights(self) -> list[tf.Variable]:
        return list(self.net.trainable_variables)

    def prepare(self) -> None:
        """Nothing to share between calls (QuantumModel.prepare's counterpart)."""
        return None

    def __call__(self, inputs: tf.Tensor, prepared: None = None) -> tuple[tf.Tensor, tf.Tensor]:
        out = self.net(inputs)
        return out, tf.fill([tf.shape(inputs)[0]], tf.constant(np.nan, tf.float32))
