"""The guarded Adam update is Keras's Adam (to float32 rounding) when applied, and exactly
nothing when not."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from qgan.optim import guarded_adam


def _variables(seed: int) -> list[tf.Variable]:
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=(3, 4)).astype(np.float32), name="w"),
            tf.Variable(rng.normal(size=(4,)).astype(np.float32), name="b")]


def _adam(variables: list[tf.Variable]) -> keras.optimizers.Adam:
    opt = keras.optimizers.Adam(3e-3, beta_1=0.5, beta_2=0.99)
    opt.build(variables)
    return opt


def _state(opt: keras.optimizers.Adam, variables: list[tf.Variable]) -> list[np.ndarray]:
    slots = [np.asarray(s.numpy()) for s in (*opt._momentums, *opt._velocities)]
    return [v.numpy() for v in variables] + slots + [np.asarray(opt.iterations.numpy())]


def test_applied_update_equals_keras_adam_to_rounding():
    ours, theirs = _variables(0), _variables(0)
    our_opt, their_opt = _adam(ours), _adam(theirs)

    @tf.function(autograph=False)
    def step_ours(grads):
        return guarded_adam(our_opt, grads, ours, tf.constant(True))

    @tf.function(autograph=False)
    def step_keras(grads):
        their_opt.apply_gradients(zip(grads, theirs))

    rng = np.random.default_rng(1)
    for _ in range(25):
        grads = [tf.constant(rng.normal(scale=10.0, size=v.shape).astype(np.float32))
                 for v in ours]
        assert bool(step_ours(grads))
        step_keras(grads)
    assert int(our_opt.iterations.numpy()) == 25
    ours_state, theirs_state = _state(our_opt, ours), _state(their_opt, theirs)
    for a, b in zip(ours_state, theirs_state):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
    # and the update is a real one: 25 steps moved every weight
    assert all(np.all(a != b) for a, b in zip(ours_state[:2], [v.numpy() for v in _variables(0)]))


def test_skipped_update_changes_nothing_even_with_nan_gradients():
    variables = _variables(2)
    opt = _adam(variables)
    guarded_adam(opt, [tf.ones_like(v) for v in variables], variables, tf.constant(True))
    before = _state(opt, variables)
    nan = [tf.fill(v.shape, np.float32(np.nan)) for v in variables]
    assert not bool(guarded_adam(opt, nan, variables, tf.constant(False)))
    after = _state(opt, variables)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert int(opt.iterations.numpy()) == 1


def test_refuses_optimizers_it_does_not_reproduce():
    variables = _variables(3)
    amsgrad = keras.optimizers.Adam(amsgrad=True)
    amsgrad.build(variables)
    with pytest.raises(ValueError, match="plain keras Adam only"):
        guarded_adam(amsgrad, variables, variables, tf.constant(True))
    with pytest.raises(ValueError, match="build the optimizer"):
        guarded_adam(keras.optimizers.Adam(), variables, variables, tf.constant(True))
