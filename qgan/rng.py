"""Randomness derived from (seed, step, revision, purpose), stateless.

Nothing random is carried from one step to the next, so an attempt that resumes at step k
draws exactly what an uninterrupted run draws at step k. `revision` (the guard's rollback
count) enters the key so that steps replayed after a rollback see fresh batches instead of
replaying the batch that produced the NaN.
"""

from __future__ import annotations

from qgan.tflib import tf

# Purposes: small integers folded into the key, one per kind of draw.
REAL_BATCH = 1
LATENT = 2
INTERPOLATION = 3
INSTANCE_NOISE = 4
EVAL_LATENT = 5
INIT = 6


def step_key(seed: int, step: tf.Tensor | int, revision: tf.Tensor | int, purpose: int,
             index: int = 0) -> tf.Tensor:
    """A [2] int32 stateless seed for one draw of one step."""
    key = tf.constant([seed % (2**31 - 1), 0x5EED], dtype=tf.int32)
    for part in (step, revision, purpose, index):
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(part, tf.int32))
    return key
