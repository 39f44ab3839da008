"""One training step: n_critic discriminator updates, then one generator update.

Every update is checked before it is applied: a non-finite loss or gradient skips that update
(no invented gradients, no fallback loss) and is reported. Health is measured on every update:
the global gradient norm before clipping, the fraction of parameters whose gradient is finite
and non-zero, and the Fock trace of the generated states. With the compiled circuit backend
(or a classical generator) the whole step runs under `tf.function`; SF's backend is eager-only.
"""

from __future__ import annotations

import numpy as np
from qgan.tflib import tf

from qgan import losses, rng
from qgan.config import Config
from qgan.data import Dataset
from qgan.generator_kinds import info as kind_info
from qgan.graph_options import graph_optimization
from qgan.models import generate, latent_width
from qgan.optim import guarded_adam


def _grad_health(grads: list[tf.Tensor | None], variables: list) -> tuple[list[tf.Tensor],
                                                                            tf.Tensor, tf.Tensor,
                                                                            tf.Tensor]:
    """Replace None by zeros; return (grads, all_finite, global_norm, live_fraction).

    Measured on one flat vector of all gradients: a few ops instead of a few per variable
    (every attempt traces the step again; issue 14)."""
    filled = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
              for g, v in zip(grads, variables)]
    flat = tf.concat([tf.reshape(g, [-1]) for g in filled], axis=0)
    finite = tf.math.is_finite(flat)
    live = tf.reduce_sum(tf.cast(tf.logical_and(finite, tf.not_equal(flat, 0.0)), tf.float32))
    total = float(sum(int(np.prod(v.shape)) for v in variables))
    return filled, tf.reduce_all(finite), tf.norm(flat), live / total


def _global_norm(variables: list) -> tf.Tensor:
    return tf.linalg.global_norm([tf.convert_to_tensor(v) for v in variables])


class AdversarialStep:
    """Callable training step; returns the step's health and loss figures as Python floats."""

    def __init__(self, cfg: Config, generator, discriminator, g_opt, d_opt, data: Dataset,
                 compiled: bool, generators=None):
        """`generators` (qgan.models.Generators): updates its moving average after each
        applied generator update, and `generate` samples from `generators.sampling`."""
        self.cfg = cfg
        self.gen = generator
        self.generators = generators
        self.sampler = generators.sampling if generators is not None else generator
        self.disc = discriminator
        self.g_opt = g_opt
        self.d_opt = d_opt
        self.train_data = tf.constant(data.train)
        self.g_vars = generator.weights
        self.d_vars = discriminator.weights
        self.compiled = compiled
        if compiled:
            # autograph off: the step has no tensor-dependent Python control flow, and
            # converting it and everything it calls cost ~1/4 of the tracing that every
            # attempt pays at start-up (issue 14)
            self._fn = tf.function(self._step, jit_compile=cfg.train.xla, autograph=False)
        else:
            self._fn = self._step

    # -- pieces ------------------------------------------------------------------------------
    def latent(self, key: tf.Tensor, n: int) -> tf.Tensor:
        """Latent vectors, uniform in [-s, s] (generator.latent_scale): bounded displacements
        keep the states inside the cutoff."""
        s = self.cfg.generator.latent_scale
        return tf.random.stateless_uniform([n, latent_width(self.cfg.generator)], key, -s, s)

    def _real_batch(self, key: tf.Tensor) -> tf.Tensor:
        n = self.train_data.shape[0]
        idx = tf.random.stateless_uniform([self.cfg.train.batch_size], key, 0, n, dtype=tf.int32)
        return tf.gather(self.train_data, idx)

    def _noisy(self, x: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
        std = self.cfg.loss.instance_noise
        if self.cfg.loss.kind != "bce" or std <= 0:
            return x
        return x + std * tf.random.stateless_normal(tf.shape(x), key)

    def _apply(self, opt, grads: list[tf.Tensor], variables: list, norm: tf.Tensor,
               ok: tf.Tensor) -> tf.Tensor:
        """Clip to train.clip_norm by the global norm `norm` (already measured), then update
        if `ok`."""
        clip = self.cfg.train.clip_norm
        if clip > 0:
            grads, _ = tf.clip_by_global_norm(grads, clip, use_norm=norm)
        return guarded_adam(opt, grads, variables, ok)

    # -- the step ----------------------------------------------------------------------------
    def _critic_updates(self, step: tf.Tensor, revision: tf.Tensor, nan: tf.Tensor,
                        prepared) -> tuple:
        """n_critic guarded discriminator updates; returns the last update's (loss, outputs,
        gradient norm, live fraction) and whether all were applied."""
        cfg, seed = self.cfg, self.cfg.run.seed
        batch = cfg.train.batch_size
        d_all_ok = tf.constant(True)
        d_loss = d_out = None
        d_norm = d_live = tf.constant(0.0)
        # The generator is fixed during the critic updates: its fakes for all of them come from
        # one call (one circuit in the traced graph instead of n_critic: a shorter start-up).
        z = tf.concat([self.latent(rng.step_key(seed, step, revision, rng.LATENT, i), batch)
                       for i in range(cfg.loss.n_critic)], axis=0)
        fakes = tf.split(tf.stop_gradient(self.gen(z, prepared)[0]), cfg.loss.n_critic)
        for i, fake in enumerate(fakes):
            real = self._real_batch(rng.step_key(seed, step, revision, rng.REAL_BATCH, i))
            noise_key = rng.step_key(seed, step, revision, rng.INSTANCE_NOISE, i)
            real_in, fake_in = self._noisy(real, noise_key), self._noisy(fake, noise_key + 1)
            with tf.GradientTape() as tape:
                if cfg.loss.kind == "wgan-gp":
                    d_out = losses.wgan_gp_d_loss(
                        self.disc, real_in, fake_in,
                        rng.step_key(seed, step, revision, rng.INTERPOLATION, i), cfg.loss.gp_weight)
                else:
                    d_out = losses.bce_d_loss(self.disc, real_in, fake_in, cfg.loss.label_smoothing)
                d_loss = d_out.loss + nan
            grads = tape.gradient(d_loss, self.d_vars)
            grads, ok, d_norm, d_live = _grad_health(grads, self.d_vars)
            ok = tf.logical_and(ok, tf.math.is_finite(d_loss))
            self._apply(self.d_opt, grads, self.d_vars, d_norm, ok)
            d_all_ok = tf.logical_and(d_all_ok, ok)
        return d_loss, d_out, d_norm, d_live, d_all_ok

    def _step(self, step: tf.Tensor, revision: tf.Tensor, inject_nan: tf.Tensor) -> dict:
        cfg, seed = self.cfg, self.cfg.run.seed
        nan = tf.where(inject_nan, tf.constant(np.nan, tf.float32), tf.constant(0.0))
        g_tape = tf.GradientTape()
        with g_tape:
            # What depends only on the generator's weights (the compiled circuit's gates, about
            # half of its forward) is built once and shared by the critic's fakes and the
            # generator update: the weights do not change in between (issue 14).
            prepared = self.gen.prepare()
            with g_tape.stop_recording():
                d_loss, d_out, d_norm, d_live, d_all_ok = self._critic_updates(
                    step, revision, nan, prepared)
            z = self.latent(rng.step_key(seed, step, revision, rng.LATENT, cfg.loss.n_critic),
                            cfg.train.batch_size)
            nll = tf.constant(np.nan)
            if cfg.loss.likelihood_weight > 0:  # a kind with a density (config checks)
                real = self._real_batch(rng.step_key(seed, step, revision, rng.REAL_BATCH,
                                                     cfg.loss.n_critic))
                fake, trace, log_p = self.gen.with_likelihood(z, real, prepared)
                nll = -tf.reduce_mean(log_p)
            else:
                fake, trace = self.gen(z, prepared)
            fake_in = self._noisy(fake, rng.step_key(seed, step, revision, rng.INSTANCE_NOISE,
                                                      cfg.loss.n_critic))
            if cfg.loss.kind == "wgan-gp":
                g_loss = losses.wgan_g_loss(self.disc, fake_in)
            else:
                g_loss = losses.bce_g_loss(self.disc, fake_in)
            if cfg.loss.diversity_weight > 0:
                g_loss += cfg.loss.diversity_weight * losses.diversity_penalty(fake)
            if cfg.loss.likelihood_weight > 0:
                g_loss += cfg.loss.likelihood_weight * nll
            if cfg.loss.trace_penalty > 0 and kind_info(cfg.generator).circuit:
                g_loss += cfg.loss.trace_penalty * losses.trace_penalty(trace)
            g_loss = g_loss + nan
        grads = g_tape.gradient(g_loss, self.g_vars)
        grads, g_ok, g_norm, g_live = _grad_health(grads, self.g_vars)
        g_ok = tf.logical_and(g_ok, tf.math.is_finite(g_loss))
        applied = self._apply(self.g_opt, grads, self.g_vars, g_norm, g_ok)
        if self.generators is not None:
            self.generators.update_ema(applied)

        clip = cfg.train.clip_norm
        return {
            "g_loss": g_loss, "d_loss": d_loss, "d_real": d_out.d_real, "d_fake": d_out.d_fake,
            "gp": d_out.gp, "g_grad_norm": g_norm, "d_grad_norm": d_norm,
            "g_grad_live": g_live, "d_grad_live": d_live,
            "g_clipped": tf.logical_and(clip > 0, g_norm > clip) if clip > 0 else tf.constant(False),
            "d_clipped": tf.logical_and(clip > 0, d_norm > clip) if clip > 0 else tf.constant(False),
            "g_param_norm": _global_norm(self.g_vars), "d_param_norm": _global_norm(self.d_vars),
            "fock_trace_min": tf.reduce_min(trace), "fock_trace_mean": tf.reduce_mean(trace),
            "g_nll": nll,
            "g_ok": g_ok, "d_ok": d_all_ok,
        }

    def __call__(self, step: int, revision: int, inject_nan: bool = False) -> dict:
        with graph_optimization(self.cfg.train.graph_optimization):
            out = self._fn(tf.constant(step, tf.int32), tf.constant(revision, tf.int32),
                           tf.constant(inject_nan))
        row = {}
        for k, v in out.items():
            v = v.numpy()
            row[k] = bool(v) if v.dtype == np.bool_ else float(v)
        return row

    def generate(self, z: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Samples and Fock traces for given latent vectors (evals), in chunks."""
        return generate(self.sampler, z, chunk)
