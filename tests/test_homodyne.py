"""The homodyne generator (issue 21): its physics against Strawberry Fields, its sampler against
the exact density, its gradients against finite differences, and its config edge."""

from __future__ import annotations

import numpy as np
import pytest

from qgan.circuits import CircuitSpec
from qgan.circuits import homodyne as H
from qgan.circuits.compiled import CompiledBackend
from qgan.circuits.spec import initial_weights
from qgan.config import ConfigInvalid, config_from_dict
from qgan.models import build_models, check_dimensions, latent_line, latent_uniform
from qgan.tflib import tf


def _sf_state(cutoff: int):
    """A two-mode non-Gaussian state: a cat (Kerr pi/2 on a coherent state), a squeezed
    vacuum, mixed on a beamsplitter; SF's numpy Fock backend."""
    import strawberryfields as sf
    from strawberryfields import ops

    prog = sf.Program(2)
    with prog.context as q:
        ops.Dgate(1.5, 0.3) | q[0]
        ops.Sgate(0.3, 0.5) | q[1]
        ops.Kgate(np.pi / 2) | q[0]
        ops.BSgate(0.6, 0.2) | (q[0], q[1])
    return sf.Engine("fock", backend_options={"cutoff_dim": cutoff}).run(prog).state


@pytest.mark.parametrize("cutoff", [10, 24])
def test_x_marginals_match_strawberry_fields_wigner_marginal(cutoff):
    state = _sf_state(cutoff)
    ket = state.ket()
    xs = np.linspace(-6, 6, 61)
    for mode in (0, 1):
        reference = state.x_quad_values(mode, xs, np.linspace(-12, 12, 801))
        ours = H.marginal_density(tf.constant(np.moveaxis(ket, mode, 0)[None], tf.complex128),
                                  xs, cutoff)[0]
        assert np.abs(ours - reference).max() < 1e-9
        assert reference.max() > 0.2  # a real density was compared


def _exact_cdf(density: np.ndarray, xs: np.ndarray) -> np.ndarray:
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(xs))])
    return cum / cum[-1]


def test_samples_follow_the_exact_joint_distribution():
    """Mode 0 from its marginal, mode 1 from its conditional: both sampled marginals match
    the exact ones (KS distance at 40,000 samples: 1/sqrt(n) = 0.005)."""
    cutoff = 16
    ket = _sf_state(cutoff).ket()
    n = 40_000
    u = np.random.default_rng(0).uniform(size=(n, 2))
    amp = tf.constant(np.broadcast_to(ket[..., None], (n, cutoff, cutoff, 1)), tf.complex128)
    x = H.sample_quadratures(amp, 2, tf.constant(u), cutoff).numpy()
    fine = np.linspace(-12, 12, 4001)
    for mode in (0, 1):
        exact = _exact_cdf(H.marginal_density(
            tf.constant(np.moveaxis(ket, mode, 0)[None], tf.complex128), fine, cutoff)[0], fine)
        empirical = np.searchsorted(np.sort(x[:, mode]), fine, side="right") / n
        assert np.abs(empirical - exact).max() < 0.01
    # and the joint: the correlation of the two outcomes is the state's (a beamsplitter
    # correlates them), measured against the exact <x0 x1> from the Fock amplitudes
    c = cutoff
    a = np.diag(np.sqrt(np.arange(1, c)), 1)  # annihilation
    xop = a + a.T
    exact_x0x1 = np.real(np.einsum("mn,mp,nq,pq->", ket.conj(), xop, xop, ket))
    assert abs(np.mean(x[:, 0] * x[:, 1]) - exact_x0x1) < 0.05


@pytest.mark.parametrize("cutoff", [10, 30])
def test_grid_cdf_is_close_to_a_four_times_finer_one(cutoff):
    """The grid (POINTS_PER_WAVELENGTH) against a 4x finer one, on the highest Fock state
    mixed with the vacuum: the fastest oscillation the cutoff allows."""
    amp = np.zeros((1, cutoff, 1), np.complex128)
    amp[0, 0, 0] = amp[0, cutoff - 1, 0] = np.sqrt(0.5)
    xs = H.grid(cutoff)
    fine = np.linspace(xs[0], xs[-1], 4 * (len(xs) - 1) + 1)
    coarse = _exact_cdf(H.marginal_density(tf.constant(amp), xs, cutoff)[0], xs)
    reference = _exact_cdf(H.marginal_density(tf.constant(amp), fine, cutoff)[0], fine)
    assert np.abs(coarse - reference[::4]).max() < 2e-3
    assert reference[0] == 0 and 1 - reference[-5] < 1e-6  # the range holds the state


def _circuit_samples(weights: dict, backend: CompiledBackend, z: tf.Tensor, u: tf.Tensor):
    psi, axes = backend.states(weights, z)
    amp = tf.transpose(psi, [axes.index(-1), axes.index(0), axes.index(1)])
    return H.sample_quadratures(tf.reshape(amp, [-1, 8, 8, 1]), 2, u, 8)


def _check_gradients(f, w0: dict, tol: float) -> int:
    """Autodiff of the scalar f(weights) against central differences (eps 1e-6) for every
    entry of the weights that shape a state; returns how many entries were checked."""
    weights = {k: tf.Variable(v) for k, v in w0.items()}
    with tf.GradientTape() as tape:
        value = f(weights)
    grads = tape.gradient(value, weights)
    eps, checked = 1e-6, 0
    for name in ("squeeze", "displace", "kerr", "bs1_theta", "encode"):
        for idx in np.ndindex(w0[name].shape):
            values = []
            for sign in (1, -1):
                w = {k: v.copy() for k, v in w0.items()}
                w[name][idx] += sign * eps
                values.append(float(f({k: tf.constant(v) for k, v in w.items()})))
            fd = (values[0] - values[1]) / (2 * eps)
            assert abs(grads[name].numpy()[idx] - fd) < tol * max(1.0, abs(fd)), (name, idx)
            checked += 1
    return checked


def _float64_circuit():
    spec = CircuitSpec(modes=2, layers=1, cutoff=8, n_inputs=2, n_outputs=2,
                       encoding="phase")
    w0 = {k: v.astype(np.float64) for k, v in initial_weights(spec, 3, 0.3, 0.4).items()}
    return CompiledBackend(spec, tf.complex128), w0


def test_gradients_match_finite_differences():
    """d(samples)/d(weights) by implicit reparameterisation, chained through the conditional,
    against central differences of the sampler itself (float64)."""
    backend, w0 = _float64_circuit()
    z = tf.constant([[0.3, -1.0], [1.2, 0.4], [-0.7, 2.0]], tf.float64)
    u = tf.constant([[0.2, 0.7], [0.55, 0.1], [0.9, 0.45]], tf.float64)
    cot = tf.constant([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7]], tf.float64)
    assert _check_gradients(
        lambda w: tf.reduce_sum(cot * _circuit_samples(w, backend, z, u)), w0, 1e-5) == 9


def test_the_sample_is_the_exact_inverse_of_the_grid_cdf():
    """F(x) = u at the returned x (the value of the surrogate is the sample itself)."""
    amp = tf.constant(np.broadcast_to(_sf_state(12).ket()[..., None], (3, 12, 12, 1)),
                      tf.complex128)
    u = tf.constant([[0.1, 0.5], [0.5, 0.5], [0.93, 0.5]], tf.float64)
    x = H.sample_quadratures(amp, 1, u[:, :1], 12).numpy()[:, 0]
    xs = H.grid(12)
    cdf = _exact_cdf(H.marginal_density(amp[:1, :, :, 0], xs, 12)[0], xs)
    assert np.allclose(np.interp(x, xs, cdf), [0.1, 0.5, 0.93], atol=1e-12)


# --- the generator in the run config ---

def _cfg(**generator):
    return config_from_dict({"generator": {"output": "homodyne", "cutoff": 6, "layers": 1,
                                           **generator}})


def test_default_output_is_expectation_and_homodyne_widens_the_latent():
    assert config_from_dict({}).generator.output == "expectation"
    cfg = _cfg()
    z = latent_uniform(cfg, 5, 1)
    assert z.shape == (5, cfg.generator.latent_dim + cfg.generator.modes)
    assert latent_line(cfg, 3)[1].shape == (3, 4)
    assert latent_uniform(config_from_dict({}), 5, 1).shape == (5, 2)


def test_homodyne_config_errors_name_the_fix():
    with pytest.raises(ConfigInvalid, match="generator.output.*compiled"):
        _cfg(backend="sf")
    with pytest.raises(ConfigInvalid, match="generator.latent_dim.*homodyne"):
        config_from_dict({"generator": {"latent_dim": 0}})
    assert check_dimensions(_cfg(modes=1, latent_dim=1), 2) == [
        "the data has 2 dimensions but generator.modes = 1; with generator.output = "
        "'homodyne' each output is one mode's measured quadrature: set generator.modes >= 2"]


@pytest.mark.parametrize("generator", [{}, {"latent_dim": 0}, {"truncation": "total"}])
def test_generator_samples_are_reproducible_and_random(generator):
    """Same latent and uniforms -> the same samples (bitwise); the measurement makes samples
    random even without a latent; the total truncation gives the same kind of state."""
    cfg = _cfg(**generator)
    gen = build_models(cfg, 2).generator
    z = latent_uniform(cfg, 64, 5)
    x1, trace = gen(tf.constant(z))
    x2, _ = build_models(cfg, 2).generator(tf.constant(z))
    assert np.array_equal(x1.numpy(), x2.numpy())
    assert x1.shape == (64, 2) and np.isfinite(x1.numpy()).all()
    assert np.all((trace.numpy() > 0.9) & (trace.numpy() <= 1.0 + 1e-5))
    assert np.unique(x1.numpy()[:, 0]).size == 64


def test_latent_free_state_is_one_state_for_all_samples():
    """Simulated once ([1, c, c]) and measured by every sample: the same samples as the
    state copied per sample, and one trace per sample."""
    cfg = _cfg(latent_dim=0)
    gen = build_models(cfg, 2).generator
    z = tf.constant(latent_uniform(cfg, 4, 5))
    amp = gen.amplitudes(z)
    assert amp.shape == (1, 6, 6)
    x, trace = gen(z)
    assert trace.shape == (4,) and np.all(trace.numpy() == trace.numpy()[0])
    u = np.clip((z.numpy()[:, :2] + 0.5), 1e-6, 1 - 1e-6)
    copied = H.sample_quadratures(tf.reshape(tf.tile(amp, [4, 1, 1]), [4, 6, 6, 1]), 2,
                                  tf.constant(u, tf.float32), 6)
    expected = copied * gen.readout_scale + gen.readout_bias
    assert np.abs(x.numpy() - expected.numpy()).max() < 1e-5


@pytest.mark.parametrize("rest", [1, 3, 12])
def test_density_through_the_reduced_density_matrix_equals_the_direct_sum(rest):
    """density_on_grid's two orders of the same sum (by the shapes) agree in float64."""
    c = 12
    rng = np.random.default_rng(1)
    amp = rng.normal(size=(2, c, rest)) + 1j * rng.normal(size=(2, c, rest))
    xs, phi, pairs = H._tables(c)
    re, im = tf.constant(amp.real), tf.constant(amp.imag)
    direct = H.density_on_grid(re, im, tf.constant(phi))
    both = H.density_on_grid(re, im, tf.constant(phi), tf.constant(pairs))
    assert np.abs(direct.numpy() - both.numpy()).max() < 1e-12 * np.abs(direct.numpy()).max()
    assert np.abs(phi - H.hermite_functions(tf.constant(xs), c).numpy()).max() < 1e-14


def test_total_truncation_state_matches_the_mode_truncation_where_both_hold_it():
    """At small amplitudes both truncations hold the state: the dense amplitudes agree."""
    a = build_models(_cfg(cutoff=8, init_std=0.01, encode_amplitude=0.3), 2).generator
    b = build_models(_cfg(cutoff=8, init_std=0.01, encode_amplitude=0.3,
                          truncation="total"), 2).generator
    z = tf.constant(latent_uniform(_cfg(), 4, 2))
    assert np.abs(a.amplitudes(z).numpy() - b.amplitudes(z).numpy()).max() < 1e-4


# --- the generator in the trainer: resume, guard, leakage, `qgan sample` ---

HOMODYNE = {"generator__output": "homodyne", "generator__cutoff": 6, "train__g_ema": 0.9}


def test_homodyne_run_resumes_bit_identical_and_guards_nonfinite_steps(tmp_path):
    """Stopped by a rehearsed SIGTERM and resumed: the same rows and parameters as an
    uninterrupted run (test_trainer's check); a NaN step is skipped and recorded; the Fock
    trace is measured per step."""
    from qgan.metrics import read_table
    from test_trainer import _resumes_bit_identical

    params = _resumes_bit_identical(tmp_path, dict(HOMODYNE, faults__nan_at_steps=[3]))
    assert params["generator/readout_scale/.ATTRIBUTES/VARIABLE_VALUE"].shape == (2,)
    steps = read_table(tmp_path / "ref", "steps")
    assert steps.loc[steps.step == 3, "skipped"].tolist() == [True]
    assert steps["fock_trace_min"].between(0.5, 1.0).all()
    events = read_table(tmp_path / "ref", "events")
    assert events.loc[events.kind == "nonfinite_step", "step"].tolist() == [3]


def test_qgan_sample_draws_the_same_samples_for_the_same_run(tmp_path, capsys):
    import pyarrow.parquet as pq

    from jobs.cli import main
    from qgan import schema
    from qgan.trainer import train
    from trainer_utils import TINY, merge

    cfg = config_from_dict(merge(TINY, {k.replace("__", "."): v for k, v in HOMODYNE.items()}))
    assert train(cfg, tmp_path / "run") == schema.EXIT_OK
    drawn = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.parquet"
        assert main(["sample", str(tmp_path / "run"), "-n", "300", "--out", str(out)]) == 0
        drawn.append(pq.read_table(out).to_pandas())
    assert drawn[0].equals(drawn[1]) and len(drawn[0]) == 300
    assert drawn[0]["x0"].nunique() == 300


@pytest.mark.parametrize("output", ["homodyne", "heterodyne"])
def test_between_modes_advice_for_a_measured_run_does_not_ask_for_encode_amplitude(output):
    from analysis.advice import _actions
    from analysis.findings import Finding
    from analysis.offmode import _advice
    from qgan.generator_kinds import kind_of
    from qgan.vocabulary import FindingKind

    class Run:
        config = {"generator.kind": "quantum", "generator.output": output,
                  "generator.cutoff": 20}

    kind = kind_of("quantum", output)
    text = _advice(Run, kind, None)
    assert "encode amplitude does not" in text and "encode_amplitude" not in text
    f = Finding(FindingKind.BETWEEN_MODES, "warning", "r", "m", text, 1, 2,
                {"generator": kind})
    assert [(k, d) for k, d, _ in _actions(f)] == [("generator.cutoff", "raise")]
    assert "encode_amplitude" not in _actions(f)[0][2]
    assert output in _actions(f)[0][2]


# --- generator.circuit_init = "cat": issue 21's two-mode cat as the starting state ---

def test_cat_init_config_is_validated_with_the_fix_named():
    assert config_from_dict({}).generator.circuit_init == "random"
    assert _cfg(layers=2, circuit_init="cat").generator.circuit_init == "cat"
    with pytest.raises(ConfigInvalid) as err:
        config_from_dict({"generator": {"circuit_init": "cat"}})
    assert ("generator.circuit_init: got 'cat'; needs generator.output = 'homodyne' (a "
            "cat's <x> is 0: only its measurement outcomes are two-peaked); or set "
            "generator.circuit_init = 'random'") in str(err.value)
    with pytest.raises(ConfigInvalid) as err:
        _cfg(circuit_init="cat", modes=1, latent_dim=1, encoding="displacement")
    assert ("needs generator.modes >= 2, generator.layers >= 2, generator.encoding = 'phase' "
            "(its amplitude is the cat's displacement); or set") in str(err.value)
    with pytest.raises(ConfigInvalid) as err:
        _cfg(circuit_init="kitten")
    assert "generator.circuit_init: got 'kitten'; allowed: 'random', 'cat'" in str(err.value)


def test_cat_init_starts_as_two_correlated_peaks():
    """encode_amplitude 3.34, no noise, cutoff 26: the state holds (trace > 0.9998); the
    weights are the cat's; the outcomes are two correlated peaks at +-(4.72, 4.72) (hbar 2:
    x = 2 Re(alpha), alpha = 3.34 / sqrt(2)), each with the vacuum's unit std."""
    cfg = _cfg(layers=2, cutoff=26, latent_dim=0, circuit_init="cat", encode_amplitude=3.34,
               init_std=0.0, readout_init="unit")
    gen = build_models(cfg, 2).generator
    w = {k: v.numpy() for k, v in gen.circuit.items()}
    assert w["kerr"].tolist() == [[np.float32(np.pi / 2), 0.0], [0.0, 0.0]]
    assert w["bs1_theta"].tolist() == [[0.0], [np.float32(np.pi / 4)]]
    assert not any(w[k].any() for k in ("bs1_phi", "rot1", "bs2_theta", "bs2_phi", "rot2",
                                        "squeeze", "displace"))
    x, trace = gen(tf.constant(latent_uniform(cfg, 4000, 3)))
    x = x.numpy()
    assert trace.numpy().min() > 0.9998
    same_sign = np.sign(x[:, 0]) == np.sign(x[:, 1])
    assert same_sign.mean() > 0.99 and 0.45 < (x[:, 0] > 0).mean() < 0.55
    peak = np.abs(x[same_sign]).mean(axis=0)
    assert np.all(np.abs(peak - 2 * 3.34 / np.sqrt(2)) < 0.1), peak
    assert np.all(np.abs(np.abs(x).std(axis=0) - 1.0) < 0.1)


# --- loss.likelihood_weight: the exact density of the outcomes ---

def _amp_of(gen, z) -> tf.Tensor:
    amp = gen.amplitudes(tf.constant(z))
    return tf.reshape(amp, [-1, 6, 6, 1])


@pytest.mark.parametrize("latent_dim", [0, 2])
def test_log_likelihood_is_the_normalised_density_of_the_outcomes(latent_dim):
    """On a 2-D grid in data units, exp(log_likelihood) integrates to 1 (the readout's
    Jacobian included); its x0-marginal is each state's marginal density (grid-free, from
    `marginal_density`) averaged over the latents' states; a data point far outside keeps a
    finite log-likelihood."""
    cfg = _cfg(latent_dim=latent_dim)
    gen = build_models(cfg, 2).generator
    gen.readout_scale.assign([0.5, 2.0])
    gen.readout_bias.assign([1.0, -3.0])
    z = latent_uniform(cfg, 3, 7)
    g0 = np.linspace(-9, 9, 721)  # quadrature units, beyond every phi_n (n < 6)
    xs0, xs1 = 1.0 + 0.5 * g0, -3.0 + 2.0 * g0  # the same grid in data units
    y = np.stack(np.meshgrid(xs0, xs1, indexing="ij"), axis=-1).reshape(-1, 2)
    p = np.exp(gen.log_likelihood(tf.constant(z), tf.constant(y, tf.float32)).numpy())
    p = p.reshape(len(xs0), len(xs1))
    h0, h1 = xs0[1] - xs0[0], xs1[1] - xs1[0]
    assert abs(p.sum() * h0 * h1 - 1.0) < 1e-4
    amp = _amp_of(gen, z)
    trace = tf.reduce_sum(tf.abs(amp) ** 2, axis=[1, 2, 3]).numpy()
    states = H.marginal_density(tf.reshape(amp, [-1, 6, 6]), g0, 6) / trace[:, None]
    marginal = p.sum(axis=1) * h1  # in data units: the quadrature density / 0.5
    assert np.abs(marginal * 0.5 - states.mean(axis=0)).max() < 1e-4
    far = gen.log_likelihood(tf.constant(z), tf.constant([[1e3, 1e3]], tf.float32)).numpy()
    assert np.isfinite(far).all() and far[0] < -40


def test_likelihood_gradients_match_finite_differences():
    """d(mean log-likelihood)/d(weights) by autodiff against central differences (float64
    circuit, the model's own joint_density, a mixture over two latents' states)."""
    backend, w0 = _float64_circuit()
    z = tf.constant([[0.3, -1.0], [1.2, 0.4]], tf.float64)
    y = tf.constant([[0.5, -1.0], [2.0, 0.3], [-1.5, 1.1]], tf.float64)

    def mean_ll(weights):
        psi, axes = backend.states(weights, z)
        amp = tf.transpose(psi, [axes.index(-1), axes.index(0), axes.index(1)])
        p = H.joint_density(tf.reshape(amp, [-1, 8, 8, 1]), y, 2, 8)
        return tf.reduce_mean(tf.math.log(tf.reduce_mean(p, axis=0)))

    assert _check_gradients(mean_ll, w0, 1e-6) == 9


def test_likelihood_weight_needs_a_generator_with_a_density():
    assert config_from_dict({}).loss.likelihood_weight == 0.0
    cfg = config_from_dict({"generator": {"output": "homodyne", "cutoff": 6},
                            "loss": {"likelihood_weight": 0.5}})
    assert cfg.loss.likelihood_weight == 0.5
    for generator in ({}, {"kind": "classical"}):
        with pytest.raises(ConfigInvalid) as err:
            config_from_dict({"generator": generator, "loss": {"likelihood_weight": 0.5}})
        assert ("loss.likelihood_weight: got 0.5; needs generator.output = 'homodyne' or "
                "'heterodyne' (a generator whose samples have an exact density); set it to 0 "
                "for this generator") in str(err.value)


def test_homodyne_run_with_likelihood_term_resumes_bit_identical(tmp_path):
    """The likelihood term in the generator loss (a real batch of its own stream): the run
    still resumes bit for bit, and the term is in g_loss (a different g_loss than without)."""
    from qgan.metrics import read_table
    from test_trainer import _resumes_bit_identical

    _resumes_bit_identical(tmp_path / "nll", dict(HOMODYNE, loss__likelihood_weight=0.5))
    _resumes_bit_identical(tmp_path / "gan", dict(HOMODYNE))
    with_term = read_table(tmp_path / "nll" / "ref", "steps")
    without = read_table(tmp_path / "gan" / "ref", "steps")
    assert np.isfinite(with_term["g_loss"]).all() and not with_term["skipped"].any()
    assert (with_term["g_loss"] - without["g_loss"]).abs().min() > 0.1


# --- generator.output = "heterodyne": both quadratures of a mode, the Husimi Q function ---

def test_heterodyne_arms_give_the_husimi_q_function():
    """For random single-mode states (cutoff 8), the joint density of the two arms' x
    outcomes is the Q function Q(alpha) = |<alpha|psi>|^2 / pi at alpha = (x1 + i x2) /
    sqrt(2), times the Jacobian 1/2, exactly (grid-free); with a second mode left alone, that mode is
    traced out."""
    import math

    c = 8
    rng = np.random.default_rng(3)
    psi = rng.normal(size=(2, c)) + 1j * rng.normal(size=(2, c))
    psi /= np.linalg.norm(psi, axis=1, keepdims=True)
    x = rng.normal(0.0, 2.0, size=(50, 2))
    alpha = (x[:, 0] + 1j * x[:, 1]) / np.sqrt(2)
    n = np.arange(c)
    coherent = np.exp(-np.abs(alpha[:, None]) ** 2 / 2) * alpha[:, None] ** n / np.sqrt(
        [math.factorial(k) for k in n])  # <n|alpha>, [50, c]
    q = np.abs(np.conj(coherent) @ psi.T) ** 2 / np.pi  # [50, 2]
    arms = H.heterodyne_arms(tf.constant(psi), 1, c)
    assert arms.shape == (2, c, c)
    got = H.joint_density(tf.reshape(arms, [2, c, c, 1]), tf.constant(x), 2, c).numpy()
    assert np.abs(got - q.T / 2).max() < 1e-12
    # mode 1 in a Fock state |2>: traced out, the same Q function of mode 0
    two = np.einsum("bn,m->bnm", psi, np.eye(c)[2])
    arms2 = H.heterodyne_arms(tf.constant(two), 1, c)
    assert arms2.shape == (2, c, c, c)
    got2 = H.joint_density(tf.reshape(arms2, [2, c, c, c]), tf.constant(x), 2, c).numpy()
    assert np.abs(got2 - q.T / 2).max() < 1e-12


def test_heterodyne_generator_samples_a_coherent_state_as_a_q_blob():
    """One mode displaced by a (no other active weight): 4,000 heterodyne samples in
    quadrature units sit at distance sqrt(2) a from the origin (x1 = sqrt2 Re b, x2 = sqrt2
    Im b for |b|: the rotations only turn it), with the vacuum's unit std per axis; two
    outcomes and two measurement uniforms per mode; the config names the fix for too few
    modes."""
    cfg = config_from_dict({"generator": {"output": "heterodyne", "modes": 1, "layers": 1,
                                          "cutoff": 16, "latent_dim": 0, "init_std": 0.0,
                                          "encode_amplitude": 1.5, "readout_init": "unit"}})
    assert latent_uniform(cfg, 3, 1).shape == (3, 2)
    gen = build_models(cfg, 2).generator
    x, trace = gen(tf.constant(latent_uniform(cfg, 4000, 5)))
    x = x.numpy()
    assert x.shape == (4000, 2) and trace.numpy().min() > 0.999
    assert abs(np.linalg.norm(x.mean(axis=0)) - np.sqrt(2) * 1.5) < 0.08
    assert np.all(np.abs(x.std(axis=0) - 1.0) < 0.05)
    assert check_dimensions(cfg, 3) == [
        "the data has 3 dimensions but generator.modes = 1; with generator.output = "
        "'heterodyne' each output is one of 2 outcomes (x, p) of a mode's heterodyne "
        "measurement: set generator.modes >= 2"]


def test_heterodyne_run_resumes_bit_identical_with_the_likelihood_term(tmp_path):
    """A one-mode heterodyne Born machine (2-D data from one mode) with the likelihood term,
    stopped by a rehearsed SIGTERM and resumed: the same rows and parameters as an
    uninterrupted run; one scale and shift per outcome."""
    from qgan.metrics import read_table
    from test_trainer import _resumes_bit_identical

    params = _resumes_bit_identical(tmp_path, {
        "generator__output": "heterodyne", "generator__modes": 1, "generator__cutoff": 6,
        "generator__latent_dim": 0, "train__g_ema": 0.9, "loss__likelihood_weight": 0.5})
    assert params["generator/readout_scale/.ATTRIBUTES/VARIABLE_VALUE"].shape == (2,)
    steps = read_table(tmp_path / "ref", "steps")
    assert np.isfinite(steps["g_nll"]).all() and not steps["skipped"].any()


def test_ring_init_is_validated_and_starts_as_k_blobs_on_a_ring():
    """circuit_init = 'ring' with heterodyne, one mode: Kerr pi/8 on the coherent input
    (amplitude 4, cutoff 40): 8 blobs of equal weight on a circle of radius sqrt(2) * 4 in
    quadrature units (each sector of pi/4 around a blob holds 1/8 of 8,000 samples); the
    config refuses it for an expectation generator and for an odd K, with the fix named."""
    base = {"output": "heterodyne", "modes": 1, "layers": 1, "cutoff": 40, "latent_dim": 0,
            "init_std": 0.0, "encode_amplitude": 4.0, "readout_init": "unit",
            "circuit_init": "ring"}
    cfg = config_from_dict({"generator": base})
    gen = build_models(cfg, 2).generator
    assert gen.circuit["kerr"].numpy()[0, 0] == np.float32(np.pi / 8)
    x, trace = gen(tf.constant(latent_uniform(cfg, 8000, 9)))
    x = x.numpy()
    assert trace.numpy().min() > 0.9999
    radius = np.linalg.norm(x, axis=1)
    assert abs(np.median(radius) - np.sqrt(2) * 4) < 0.15
    theta = np.arctan2(x[:, 1], x[:, 0])
    offset = np.angle(np.exp(8j * theta).mean()) / 8  # the blobs' common angle
    sector = np.round((theta - offset) / (np.pi / 4)).astype(int) % 8
    shares = np.bincount(sector, minlength=8) / len(x)
    assert np.all(np.abs(shares - 0.125) < 0.02), shares
    with pytest.raises(ConfigInvalid) as err:
        config_from_dict({"generator": {"circuit_init": "ring", "ring_components": 3}})
    assert ("generator.circuit_init: got 'ring'; needs generator.output = 'heterodyne' or "
            "'homodyne' (a ring's expectation values are 0: only its measurement outcomes "
            "show the components), an even generator.ring_components; or set "
            "generator.circuit_init = 'random'") in str(err.value)
    with pytest.raises(ConfigInvalid) as err:
        config_from_dict({"generator": {"cutoff": 40}})
    assert ("generator.cutoff: got 40; must be <= 30 with 2 modes (the state holds "
            "cutoff^modes amplitudes per sample); above 30 only with generator.modes = 1"
            ) in str(err.value)
