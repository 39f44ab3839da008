"""Gradients reach every parameter of every model, through both circuit backends."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from qgan.config import config_from_dict
from qgan.data import load_dataset
from qgan.models import build_discriminator, build_generator
from qgan.step import AdversarialStep
from trainer_utils import TINY, merge


def _step(**overrides):
    cfg = config_from_dict(merge(TINY, overrides))
    data = load_dataset(cfg.data, cfg.run.seed)
    gen, disc = build_generator(cfg, data.dim), build_discriminator(cfg, data.dim)
    import keras

    g_opt, d_opt = keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3)
    g_opt.build(gen.weights)
    d_opt.build(disc.weights)
    return AdversarialStep(cfg, gen, disc, g_opt, d_opt, data, compiled=False), gen, disc


@pytest.mark.parametrize("overrides", [
    {"generator.backend": "sf"},
    {"generator.backend": "compiled"},
    {"generator.backend": "compiled", "discriminator.kind": "quantum", "loss.kind": "bce"},
    {"generator.backend": "compiled", "discriminator.kind": "quantum"},
    {"generator.kind": "classical", "loss.kind": "bce"},
    {"generator.backend": "compiled", "generator.reupload": True, "generator.readout": "xpn",
     "generator.modes": 3},
    {"generator.backend": "compiled", "generator.encoding": "phase", "generator.layers": 2},
    {"generator.backend": "sf", "generator.encoding": "phase", "generator.layers": 2},
], ids=["sf", "compiled", "quantum-disc-bce", "quantum-disc-wgan", "classical",
        "reupload-xpn-ancilla", "phase-reupload", "phase-reupload-sf"])
def test_every_parameter_gets_a_finite_nonzero_gradient(overrides):
    step, gen, disc = _step(**overrides)
    before = [v.numpy().copy() for v in gen.weights + disc.weights]
    row = step(1, 0)
    assert row["g_ok"] and row["d_ok"]
    assert row["g_grad_live"] == 1.0
    # A WGAN critic's hidden bias gets an exactly-zero gradient for a unit whose inputs all sit
    # on one side of the LeakyReLU kink (the loss is then linear in it and real/fake cancel).
    assert row["d_grad_live"] >= (0.99 if overrides.get("loss.kind") != "bce" else 1.0)
    after = [v.numpy() for v in gen.weights + disc.weights]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_backends_agree_on_the_generator_and_its_gradients():
    outs = {}
    for backend in ("sf", "compiled"):
        cfg = config_from_dict(merge(TINY, {"generator.backend": backend}))
        gen = build_generator(cfg, 2)
        z = tf.constant(np.random.default_rng(0).uniform(-1, 1, (5, 2)), tf.float32)
        with tf.GradientTape() as tape:
            x, trace = gen(z)
            loss = tf.reduce_sum(x ** 2)
        grads = tape.gradient(loss, gen.weights)
        outs[backend] = (x.numpy(), trace.numpy(), [g.numpy() for g in grads])
    (xa, ta, ga), (xb, tb, gb) = outs["sf"], outs["compiled"]
    np.testing.assert_allclose(xa, xb, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(ta, tb, atol=1e-5, rtol=1e-5)
    for a, b in zip(ga, gb):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_phase_encoding_maps_the_latent_range_onto_the_full_circle():
    """latent_scale -> pi: the two ends of the latent range are the same angle (same outputs),
    and the middle of the range (angle 0) differs from them."""
    cfg = config_from_dict(merge(TINY, {"generator.encoding": "phase", "generator.layers": 2,
                                        "generator.latent_scale": 0.7}))
    gen = build_generator(cfg, 2)
    assert gen.circuit["encode"].shape == (2, 2)  # one row per upload (reupload is default)
    z = tf.constant([[-0.7, 0.35], [0.7, 0.35], [0.0, 0.35]], tf.float32)
    x, trace = gen(z)
    np.testing.assert_allclose(x[0].numpy(), x[1].numpy(), atol=1e-5)
    np.testing.assert_allclose(trace[0].numpy(), trace[1].numpy(), atol=1e-6)
    assert np.abs(x[0].numpy() - x[2].numpy()).max() > 1e-2
    # phase_range = 0.5: the ends are -pi/2 and pi/2, no longer the same angle
    half = build_generator(config_from_dict(merge(TINY, {
        "generator.encoding": "phase", "generator.layers": 2, "generator.latent_scale": 0.7,
        "generator.phase_range": 0.5})), 2)
    assert half.input_scale == pytest.approx(0.5 * np.pi / 0.7)
    x_half, _ = half(z)
    assert np.abs(x_half[0].numpy() - x_half[1].numpy()).max() > 1e-2


def test_kerr_init_std_scales_only_the_kerr_draws():
    """generator.kerr_init_std: the same random draws, the Kerr strengths scaled, the rest
    unchanged (at 0.05 = init_std: the initial weights of the runs made before the key)."""
    base = config_from_dict(merge(TINY, {"generator.kerr_init_std": 0.05}))
    wider = config_from_dict(merge(TINY, {"generator.kerr_init_std": 0.2}))
    a, b = build_generator(base, 2).circuit, build_generator(wider, 2).circuit
    np.testing.assert_allclose(b["kerr"].numpy(), 4 * a["kerr"].numpy(), rtol=1e-6)
    assert np.abs(a["kerr"].numpy()).max() > 0
    for name in a:
        if name != "kerr":
            np.testing.assert_array_equal(a[name].numpy(), b[name].numpy())


def test_encode_amplitude_sets_only_the_first_uploads_amplitudes():
    """generator.encode_amplitude: the coherent amplitude the latent rotates first (re-upload
    amplitudes still start at 0); every other initial weight is unchanged, and at the default
    1.0 the weights are those of the runs made before the key."""
    base = build_generator(config_from_dict(merge(TINY, {
        "generator.encoding": "phase", "generator.layers": 2})), 2).circuit
    wide = build_generator(config_from_dict(merge(TINY, {
        "generator.encoding": "phase", "generator.layers": 2,
        "generator.encode_amplitude": 2.5})), 2).circuit
    np.testing.assert_array_equal(base["encode"].numpy(), [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(wide["encode"].numpy(), [[2.5, 2.5], [0.0, 0.0]])
    for name in base:
        if name != "encode":
            np.testing.assert_array_equal(base[name].numpy(), wide[name].numpy())
