"""A run's generator and discriminator, built from its config (the networks themselves are
in qgan/networks.py and qgan/homodyne.py), and the latents that drive them. Every model's
initial weights are a pure function of the run seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qgan.tflib import keras, tf

from qgan.circuits import CircuitSpec
from qgan.config import Config, GeneratorConfig
from qgan.generator_kinds import KINDS, GeneratorKind, kind_of
from qgan.generator_kinds import info as kind_info
from qgan.homodyne import build_homodyne
from qgan.networks import KerasModel, QuantumModel


def build_generator(cfg: Config, data_dim: int, name: str = "generator") -> tf.Module:
    g = cfg.generator
    kind = kind_of(g.kind, g.output)
    if kind is GeneratorKind.CLASSICAL:
        return KerasModel(g.latent_dim, data_dim, list(g.hidden), cfg.run.seed * 7 + 1, name)
    if KINDS[kind].measured:
        return build_homodyne(cfg, data_dim, name, cfg.run.seed * 7 + 2)
    spec = CircuitSpec(modes=g.modes, layers=g.layers, cutoff=g.cutoff, n_inputs=g.latent_dim,
                       n_outputs=data_dim, reupload=g.reupload, readout=g.readout,
                       encoding=g.encoding, truncation=g.truncation)
    # The phase encoding turns the latent range [-latent_scale, latent_scale] into angles
    # [-phase_range * pi, phase_range * pi].
    scale = g.phase_range * np.pi / g.latent_scale if g.encoding == "phase" else 1.0
    return QuantumModel(spec, g.backend, cfg.run.seed * 7 + 2, g.init_std, name,
                        input_scale=scale, kerr_std=g.kerr_init_std,
                        encode_amplitude=g.encode_amplitude)


class Generators:
    """The trained generator and, with train.g_ema > 0, its moving average: the one place that
    says which generator evals and sampling use and what a checkpoint holds of them.

    A sampler rebuilds a run's generator with `Generators(cfg, dim)`, restores
    `.trackables()` from a checkpoint and calls `.sampling`.
    """

    def __init__(self, cfg: Config, data_dim: int):
        self.decay = float(cfg.train.g_ema)
        self.train = build_generator(cfg, data_dim)
        self.ema = build_generator(cfg, data_dim, "generator_ema") if self.decay > 0 else None
        self.sync_ema()

    @property
    def sampling(self) -> tf.Module:
        """The generator evals and samples use: the average when there is one."""
        return self.ema if self.ema is not None else self.train

    def trackables(self) -> dict[str, tf.Module]:
        """Checkpoint entries; without EMA exactly what checkpoints always held."""
        out = {"generator": self.train}
        if self.ema is not None:
            out["generator_ema"] = self.ema
        return out

    def sync_ema(self) -> None:
        """Start the average at the current weights (after any data-dependent init)."""
        if self.ema is not None:
            for e, v in zip(self.ema.weights, self.train.weights):
                e.assign(v)

    def update_ema(self, applied: tf.Tensor | bool = True) -> None:
        """ema <- decay * ema + (1 - decay) * weights where `applied` (the generator update
        was); traceable (called inside the step, with tf.where rather than a tf.cond, whose
        branch functions cost tracing time at every attempt's start)."""
        if self.ema is not None:
            for e, v in zip(self.ema.weights, self.train.weights):
                e.assign(tf.where(applied, self.decay * e + (1.0 - self.decay) * v, e))

    def init_readout(self, cfg: Config, data: np.ndarray) -> None:
        """generator.readout_init = 'data': fit the quantum readout to the data's scale."""
        if cfg.generator.readout_init == "data" and isinstance(self.train, QuantumModel):
            self.train.fit_readout(latent_uniform(cfg, 512, [cfg.run.seed, 0x1D17]), data)
            self.sync_ema()


def build_discriminator(cfg: Config, data_dim: int) -> tf.Module:
    """A WGAN critic has no output bias: it cancels out of the loss (its gradient is exactly
    zero), and a parameter that can never learn would read as a dead one in the health data."""
    d = cfg.discriminator
    bias = cfg.loss.kind != "wgan-gp"
    if d.kind == "mlp":
        return KerasModel(data_dim, 1, list(d.hidden), cfg.run.seed * 7 + 3, "discriminator",
                          output_bias=bias)
    spec = CircuitSpec(modes=d.modes, layers=d.layers, cutoff=d.cutoff, n_inputs=data_dim,
                       n_outputs=1)
    return QuantumModel(spec, cfg.generator.backend, cfg.run.seed * 7 + 4, d.init_std,
                        "discriminator", output_bias=bias)


def check_dimensions(cfg: Config, data_dim: int) -> list[str]:
    """Problems between the data's dimension and the models, as messages with the fix."""
    problems = []
    g = cfg.generator
    kind = kind_of(g.kind, g.output)
    per = KINDS[kind].outcomes_per_mode if kind is not None else 0
    if per and data_dim > per * g.modes:
        what = ("one mode's measured quadrature" if per == 1 else
                f"one of {per} outcomes (x, p) of a mode's heterodyne measurement")
        problems.append(f"the data has {data_dim} dimensions but generator.modes = "
                        f"{g.modes}; with generator.output = '{g.output}' each output is "
                        f"{what}: set generator.modes >= {-(-data_dim // per)}")
    elif kind is GeneratorKind.QUANTUM and g.readout == "x" and data_dim > g.modes:
        problems.append(f"the data has {data_dim} dimensions but generator.modes = "
                        f"{g.modes}; with generator.readout = 'x' each output is one mode's "
                        f"quadrature: set generator.modes >= {data_dim}, or the readout to "
                        "'xpn'")
    if kind is GeneratorKind.QUANTUM and g.readout == "xpn" and data_dim > 3 * g.modes:
        problems.append(f"the data has {data_dim} dimensions but generator.modes = "
                        f"{g.modes} gives 3 x {g.modes} = {3 * g.modes} features (<x>, <p>, "
                        f"<n> per mode): set generator.modes >= {-(-data_dim // 3)}")
    if cfg.discriminator.kind == "quantum" and data_dim > cfg.discriminator.modes:
        problems.append(f"the data has {data_dim} dimensions but discriminator.modes = "
                        f"{cfg.discriminator.modes}; set discriminator.modes >= {data_dim}")
    return problems


@dataclass
class Models:
    """Everything a checkpoint holds. Built only by `build_models`, which the trainer and
    `qgan sample` both call, so a checkpoint always restores into the same structure."""

    generators: Generators
    discriminator: tf.Module
    g_opt: keras.optimizers.Optimizer
    d_opt: keras.optimizers.Optimizer

    @property
    def generator(self) -> tf.Module:
        """The generator being trained."""
        return self.generators.train

    @property
    def sampling(self) -> tf.Module:
        """The generator evals, the best checkpoint's interpolation and `qgan sample` use (the
        moving average with train.g_ema > 0)."""
        return self.generators.sampling

    def trackables(self) -> dict[str, object]:
        """The names the checkpoint stores them under (tf.train.Checkpoint keyword args)."""
        return {**self.generators.trackables(), "discriminator": self.discriminator,
                "g_opt": self.g_opt, "d_opt": self.d_opt}


def build_models(cfg: Config, data_dim: int) -> Models:
    """Generators, discriminator and their Adam optimizers, with the optimizers' slots built:
    a restore into unbuilt slots is silently deferred (FACTS.md)."""
    t = cfg.train
    gens = Generators(cfg, data_dim)
    disc = build_discriminator(cfg, data_dim)
    g_opt = keras.optimizers.Adam(t.g_lr, beta_1=t.beta1, beta_2=t.beta2, name="g_opt")
    d_opt = keras.optimizers.Adam(t.d_lr, beta_1=t.beta1, beta_2=t.beta2, name="d_opt")
    g_opt.build(gens.train.weights)
    d_opt.build(disc.weights)
    return Models(gens, disc, g_opt, d_opt)


def generate(generator: tf.Module, z: np.ndarray, chunk: int = 256
             ) -> tuple[np.ndarray, np.ndarray]:
    """Samples and Fock traces for given latent vectors, in chunks (evals, `qgan sample`)."""
    samples, traces = [], []
    for start in range(0, len(z), chunk):
        s, t = generator(tf.constant(z[start:start + chunk]))
        samples.append(s.numpy())
        traces.append(t.numpy())
    return np.concatenate(samples), np.concatenate(traces)


def latent_width(g: GeneratorConfig) -> int:
    """Columns of the generator's input: the latent, plus one measurement uniform per outcome
    of every mode with a measured output (qgan/homodyne.py)."""
    return g.latent_dim + g.modes * kind_info(g).outcomes_per_mode


def latent_uniform(cfg: Config, n: int, seed: int | list[int]) -> np.ndarray:
    """n latent vectors uniform in [-latent_scale, latent_scale] (the training distribution),
    from numpy's generator seeded with `seed` (with their measurement uniforms, homodyne)."""
    ls = cfg.generator.latent_scale
    rng = np.random.default_rng(seed)
    return rng.uniform(-ls, ls, size=(n, latent_width(cfg.generator))).astype(np.float32)


def latent_line(cfg: Config, points: int) -> tuple[np.ndarray, np.ndarray]:
    """(t, z): a straight line through latent space from the corner (-s, ..., -s) to the
    opposite corner (s, ..., s), s = latent_scale, at `points` evenly spaced t in [0, 1]."""
    ls = cfg.generator.latent_scale
    t = np.linspace(0.0, 1.0, points)
    z = (-ls + 2 * ls * t)[:, None] * np.ones((1, latent_width(cfg.generator)))
    return t, z.astype(np.float32)

