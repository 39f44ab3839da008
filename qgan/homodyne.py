"""The measured generators (generator.output = "homodyne" | "heterodyne"): samples are
measurement outcomes.

A QuantumModel whose samples are x-quadrature outcomes of its output modes (homodyne), or
both quadratures of each (heterodyne: the mode split with a vacuum on a beamsplitter, x
measured on one arm and p on the other, a sample of its Husimi Q function), drawn from the
circuit's exact output state (qgan/circuits/homodyne.py), through the same trainable affine
readout (readout_scale, readout_bias: one pair per outcome) as the expectation generator's
'x' readout, so checkpoints, the moving average, the non-finite guard and the Fock trace
work unchanged. The outcomes' exact density gives the likelihood term
(loss.likelihood_weight, `log_likelihood`).

Its input is the latent followed by one uniform per outcome of every mode
(qgan.models.latent_width; the first data_dim are used): the measurement's randomness
travels with the latent, so every caller that draws latents (the training step from (seed,
step), evals and `qgan sample` from their seeds) draws the outcomes reproducibly without
any new random stream. With generator.latent_dim = 0 the state does not depend on anything
random: a pure Born machine, whose only randomness is the measurement (the circuit then
encodes a constant 0: phase encoding R(0) D(a) = D(a), a trainable coherent input).
"""

from __future__ import annotations

import numpy as np
from qgan.tflib import tf

from qgan.circuits import CircuitSpec, homodyne
from qgan.generator_kinds import KINDS, kind_of
from qgan.config import Config
from qgan.networks import QuantumModel

_BATCH = -1  # CompiledBackend's label of the batch axis

# The uniforms are kept this far inside (0, 1): a latent at exactly -latent_scale would ask
# for the CDF's 0 quantile, the grid's edge.
_U_EPS = 1e-6
# A data point where the model's density underflows keeps a finite log-likelihood (and a
# finite gradient, so the non-finite guard does not skip every update while it is far out).
_P_FLOOR = 1e-20


class HomodyneModel(QuantumModel):
    """x-quadrature outcomes of modes 0..n_outputs-1 (heterodyne: x and p of each), the
    others traced out, scaled and shifted per outcome. Compiled backends only (SF's cannot
    be traced and has no batched state access)."""

    def __init__(self, spec: CircuitSpec, backend: str, seed: int, init_std: float, name: str,
                 latent_dim: int, latent_scale: float, outcomes: int | None = None,
                 heterodyne: bool = False, **kwargs):
        """`outcomes`: the samples' width (default spec.n_outputs, one per measured mode);
        `heterodyne`: modes 0..spec.n_outputs-1 give two outcomes each (x, then p)."""
        super().__init__(spec, backend, seed, init_std, name, **kwargs)
        if not hasattr(self.backend, "states"):
            raise ValueError("generator.output = 'homodyne' needs the compiled backend")
        self.latent_dim = latent_dim
        self.latent_scale = latent_scale
        self.heterodyne = heterodyne
        self.outcomes = outcomes or spec.n_outputs
        if self.outcomes != spec.n_outputs:  # one scale and shift per outcome
            self.readout_scale = tf.Variable(tf.ones([self.outcomes]), name="readout_scale")
            if self.readout_bias is not None:
                self.readout_bias = tf.Variable(tf.zeros([self.outcomes]), name="readout_bias")

    def amplitudes(self, inputs: tf.Tensor, prepared: dict | None = None) -> tf.Tensor:
        """The final states as [B, c, ..., c] (one axis per mode, mode order), complex; with
        latent_dim = 0 one state, [1, c, ..., c], which every sample measures (simulated once,
        not B times: the Born machine's step costs one circuit, BENCHMARKS.md 'Homodyne')."""
        s = self.spec
        if self.latent_dim:
            z = inputs[:, :self.latent_dim] * self.input_scale
        else:
            z = tf.zeros([1, s.n_inputs], inputs.dtype)
        batch = tf.shape(z)[0]
        out = self.backend.states(self.circuit, z, gates=prepared)
        if s.truncation == "total":  # [D, B] over the occupations -> dense, zeros outside
            occ = self.backend.occupations()
            dense = tf.scatter_nd(tf.constant(occ, tf.int32), out,
                                  [s.cutoff] * s.modes + [batch])
            return tf.transpose(dense, [s.modes] + list(range(s.modes)))
        psi, axes = out
        return tf.transpose(psi, [axes.index(_BATCH)] + [axes.index(m) for m in range(s.modes)])

    def _measured(self, inputs: tf.Tensor, prepared: dict | None) -> tuple[tf.Tensor,
                                                                          tf.Tensor]:
        """(amplitudes as [B or 1, c, ..., c (measured outcomes), R (the others)], traces
        [B]); heterodyne: of the beamsplitter arms (homodyne.heterodyne_arms)."""
        s = self.spec
        amp = self.amplitudes(inputs, prepared)
        prob = tf.square(tf.math.real(amp)) + tf.square(tf.math.imag(amp))
        trace = tf.broadcast_to(tf.reduce_sum(prob, axis=list(range(1, s.modes + 1))),
                                [tf.shape(inputs)[0]])
        axes = s.modes
        if self.heterodyne:
            amp = homodyne.heterodyne_arms(amp, s.n_outputs, s.cutoff)
            axes += s.n_outputs
        rest = s.cutoff ** (axes - self.outcomes)  # unmeasured axes, traced out
        amp = tf.reshape(amp, [-1] + [s.cutoff] * self.outcomes + [rest])
        return amp, tf.cast(trace, tf.float32)

    def _outcomes(self, amp: tf.Tensor, inputs: tf.Tensor) -> tf.Tensor:
        s = self.spec
        ls = self.latent_scale
        u = (inputs[:, self.latent_dim:self.latent_dim + self.outcomes] + ls) / (2.0 * ls)
        u = tf.clip_by_value(u, _U_EPS, 1.0 - _U_EPS)
        x = homodyne.sample_quadratures(amp, self.outcomes, u, s.cutoff)
        x = tf.cast(x, tf.float32) * self.readout_scale
        return x if self.readout_bias is None else x + self.readout_bias

    def _log_likelihood(self, amp: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        s = self.spec
        scale = self.readout_scale
        x = (y - self.readout_bias if self.readout_bias is not None else y) / scale
        p = tf.cast(homodyne.joint_density(amp, x, self.outcomes, s.cutoff), tf.float32)
        p = tf.reduce_mean(p, axis=0)  # the mixture over the states: [N]
        return tf.math.log(p + _P_FLOOR) - tf.reduce_sum(tf.math.log(tf.abs(scale)))

    def __call__(self, inputs: tf.Tensor, prepared: dict | None = None
                 ) -> tuple[tf.Tensor, tf.Tensor]:
        """(outcomes in data units, Fock traces)."""
        amp, trace = self._measured(inputs, prepared)
        return self._outcomes(amp, inputs), trace

    def log_likelihood(self, inputs: tf.Tensor, y: tf.Tensor, prepared: dict | None = None
                       ) -> tf.Tensor:
        """log p(y) of data points y [N, d] in data units under the outcome distribution:
        exact for a latent-free state; with a latent, the mixture over the states of the
        latents in `inputs` [M, ...] (a Monte Carlo estimate of E_z p(y | z), so its mean
        over y is a lower bound of the log-likelihood in expectation, tight as M grows).
        The readout is affine, so p_y(y) = p_x((y - bias) / scale) / prod |scale|: [N]."""
        return self._log_likelihood(self._measured(inputs, prepared)[0], y)

    def with_likelihood(self, inputs: tf.Tensor, y: tf.Tensor, prepared: dict | None = None
                        ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(outcomes, traces, log_likelihood of y) from one simulation of the states: the
        training step's generator update when loss.likelihood_weight > 0."""
        amp, trace = self._measured(inputs, prepared)
        return self._outcomes(amp, inputs), trace, self._log_likelihood(amp, y)


def build_homodyne(cfg: Config, data_dim: int, name: str, seed: int) -> HomodyneModel:
    """The run's measured generator, homodyne or heterodyne (qgan.models.build_generator's
    branch for it)."""
    g = cfg.generator
    per = KINDS[kind_of(g.kind, g.output)].outcomes_per_mode
    assert per, (g.kind, g.output)
    spec = CircuitSpec(modes=g.modes, layers=g.layers, cutoff=g.cutoff,
                       n_inputs=max(g.latent_dim, 1), n_outputs=-(-data_dim // per),
                       reupload=g.reupload,
                       readout="x", encoding=g.encoding, truncation=g.truncation)
    scale = g.phase_range * np.pi / g.latent_scale if g.encoding == "phase" else 1.0
    return HomodyneModel(spec, g.backend, seed, g.init_std, name, g.latent_dim, g.latent_scale,
                         outcomes=data_dim, heterodyne=per == 2,
                         input_scale=scale, kerr_std=g.kerr_init_std,
                         encode_amplitude=g.encode_amplitude, circuit_init=g.circuit_init,
                         ring_components=g.ring_components)
