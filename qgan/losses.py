"""Adversarial losses: WGAN-GP (default) and non-saturating BCE, plus regularisers.

Each function takes the discriminator as a callable returning (output [B, 1], trace) and
returns plain tensors; nothing here is patched when it goes non-finite (that is the guard's
job, which skips the update instead).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from qgan.tflib import tf

Critic = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


class DLoss(NamedTuple):
    loss: tf.Tensor
    d_real: tf.Tensor  # mean critic value (WGAN) or mean D probability (BCE) on real data
    d_fake: tf.Tensor
    gp: tf.Tensor  # gradient penalty (NaN for BCE)


def _scores(disc: Critic, x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(disc(x)[0], [-1])


def gradient_penalty(disc: Critic, real: tf.Tensor, fake: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    """E[(||grad_x D(x_hat)|| - 1)^2] on random interpolates (Gulrajani et al. 2017)."""
    alpha = tf.random.stateless_uniform([tf.shape(real)[0], 1], key)
    x_hat = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = _scores(disc, x_hat)
    grads = tape.gradient(scores, x_hat)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=1) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def wgan_gp_d_loss(disc: Critic, real: tf.Tensor, fake: tf.Tensor, key: tf.Tensor,
                   gp_weight: float) -> DLoss:
    s_real = tf.reduce_mean(_scores(disc, real))
    s_fake = tf.reduce_mean(_scores(disc, fake))
    gp = gradient_penalty(disc, real, fake, key) if gp_weight > 0 else tf.constant(0.0)
    return DLoss(s_fake - s_real + gp_weight * gp, s_real, s_fake, gp)


def wgan_g_loss(disc: Critic, fake: tf.Tensor) -> tf.Tensor:
    return -tf.reduce_mean(_scores(disc, fake))


def bce_d_loss(disc: Critic, real: tf.Tensor, fake: tf.Tensor, label_smoothing: float) -> DLoss:
    l_real = _scores(disc, real)
    l_fake = _scores(disc, fake)
    target = tf.fill(tf.shape(l_real), 1.0 - label_smoothing)
    loss = (tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(target, l_real))
            + tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(l_fake), l_fake)))
    return DLoss(loss, tf.reduce_mean(tf.sigmoid(l_real)), tf.reduce_mean(tf.sigmoid(l_fake)),
                 tf.constant(float("nan")))


def bce_g_loss(disc: Critic, fake: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    logits = _scores(disc, fake)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(logits), logits))


def diversity_penalty(samples: tf.Tensor) -> tf.Tensor:
    """-log(mean pairwise distance): grows as the samples bunch together."""
    diff = samples[:, None, :] - samples[None, :, :]
    dist = tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1) + 1e-12)
    return -tf.math.log(tf.reduce_mean(dist) + 1e-6)


def trace_penalty(trace: tf.Tensor) -> tf.Tensor:
    """(1 - trace)^2: probability leaked past the Fock cutoff (SF maintainers' remedy)."""
    return tf.reduce_mean(tf.square(1.0 - trace))
