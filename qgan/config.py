"""The run configuration: one TOML file, validated at the edge before any work starts.

Every field is declared once, in a dataclass, with its documentation and its allowed values;
the commented default config (`qgan config --default`), validation and `--set KEY=VALUE`
overrides are all derived from those declarations. Validation lists every problem at once,
each with its key path, the value given and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin

import tomli_w

from qgan import saferead, tbevents, thresholds
from qgan.circuits.spec import CIRCUIT_INITS, ENCODINGS, OUTPUTS, READOUTS, TRUNCATIONS
from qgan.generator_kinds import CONFIG_KINDS, KINDS, kind_of
from qgan.vocabulary import METRIC_MODE

__all__ = [
    "Config",
    "ConfigError",
    "ConfigInvalid",
    "load_config",
    "resolve_auto",
    "config_from_dict",
    "config_to_dict",
    "default_config_text",
    "apply_overrides",
    "parse_override",
    "read_toml",
]


def _f(default: Any, doc: str, *, choices: tuple | None = None, ge: float | None = None,
       gt: float | None = None, le: float | None = None) -> Any:
    """A config field: its default, one line of documentation and its allowed values."""
    meta = {"doc": doc, "choices": choices, "ge": ge, "gt": gt, "le": le}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    name: str = _f("qgan", "Name of the run (free text; shown in reports).")
    seed: int = _f(1234, "Seed: all randomness is derived from (seed, step).", ge=0)


@dataclass
class DataConfig:
    target: str = _f("bimodal", "Target distribution, or 'file' for user data.",
                     choices=("bimodal", "ring8", "grid25", "mixture1d", "file"))
    path: str = _f("", "With target='file': a .csv, .parquet or .npy file (numeric columns).")
    columns: list = _f([], "With target='file': the columns to use (default: all numeric).")
    max_file_mb: int = _f(1024, "With target='file': refuse a data file larger than this many MiB "
                                "(it is read into memory whole, as float32; raise it knowingly).",
                          ge=1)
    n_train: int = _f(4096, "Number of training samples drawn from a synthetic target.", ge=16)
    n_holdout: int = _f(1024, "Held-out real samples used by evals.", ge=16)
    std: float = _f(0.15, "Standard deviation of each Gaussian mode of a synthetic target.", gt=0)
    scale: float = _f(1.0, "Distance of the modes from the origin (synthetic targets).", gt=0)


@dataclass
class GeneratorConfig:
    kind: str = _f("quantum", "'quantum' (CV circuit) or 'classical' (MLP baseline).",
                   choices=CONFIG_KINDS)
    backend: str = _f("compiled", "Circuit simulator: 'sf' (Strawberry Fields' TF backend, eager) or "
                            "'compiled' (vectorised TF ops under tf.function).",
                      choices=("sf", "compiled"))
    modes: int = _f(2, "Number of optical modes.", ge=1, le=6)
    layers: int = _f(2, "Number of CV-QNN layers (interferometer, squeezing, interferometer, "
                        "displacement, Kerr).", ge=1, le=16)
    cutoff: int = _f(10, "Fock-space cutoff dimension per mode. 10 (6 until issue 9's third "
                         "round): a trained generator spends the photon numbers its cutoff "
                         "allows, since steeper maps need them; at 6 the default bimodal and "
                         "ring8 runs ended with samples up to 12 % past it (2 of 9 judged "
                         "'leaking'); at 10 with loss.trace_penalty 50 at most 5.5 % and none, "
                         "at the same HQ, for 1.4x the step time (BENCHMARKS.md 'Learning'). "
                         "With generator.truncation = 'total': the bound on all modes' photons "
                         "together. Above 30 only with one mode (a heterodyne ring: "
                         "BENCHMARKS.md).",
                     ge=2, le=64)
    truncation: str = _f("mode", "How the Fock space is cut: 'mode' (each mode's photon number "
                                 "below generator.cutoff, c^modes states: what SF does) or "
                                 "'total' (the sum of all modes' photon numbers below it, "
                                 "C(cutoff - 1 + modes, modes) states: Piquasso's; compiled "
                                 "backend only; a different approximation, so match the "
                                 "cutoff first: BENCHMARKS.md 'Total-photon-number "
                                 "truncation'). Checkpoints restore across both.",
                         choices=TRUNCATIONS)
    output: str = _f("expectation", "What the quantum generator outputs: 'expectation' (the "
                                    "measured features below, a deterministic map of the "
                                    "latent) or 'homodyne' (x-quadrature measurement outcomes of "
                                    "modes 0..d-1, sampled exactly from the circuit's state: a "
                                    "CV Born machine whose samples carry the state's own "
                                    "multimodality; compiled backend; generator.readout is not "
                                    "used: each outcome is scaled and shifted; latent_dim = 0 "
                                    "makes the state latent-free; BENCHMARKS.md 'Homodyne') or "
                                    "'heterodyne' (both quadratures of each of modes "
                                    "0..d/2-1, a sample of its Husimi Q function: one mode "
                                    "gives 2-D data, a Kerr cat's components on a ring).",
                     choices=OUTPUTS)
    latent_dim: int = _f(2, "Latent size; each latent component is encoded into one mode (0: "
                            "no latent, with generator.output = 'homodyne' only).", ge=0)
    latent_scale: float = _f(0.5, "Latent components are uniform in [-latent_scale, "
                                  "latent_scale]. Displacement encoding: the input "
                                  "displacements; 0.5 keeps the initial states inside a cutoff "
                                  "of 6 (at 1.0 an interferometer can put 2 photons in one mode: "
                                  "2% past the cutoff at the start). Phase encoding: only the "
                                  "latent's scale (the range maps onto phase_range).",
                             gt=0, le=5)
    init_std: float = _f(0.05, "Std of the initial squeezing and displacement parameters: "
                               "small values keep the state inside the cutoff.", ge=0)
    kerr_init_std: float = _f(0.2, "Std of the initial Kerr strengths (the only non-Gaussian "
                                   "gate: larger values start the map further from affine; "
                                   "until issue 9 it was init_std, 0.05; BENCHMARKS.md).", ge=0)
    circuit_init: str = _f("random", "The circuit's initial weights: 'random' (passive angles "
                                     "uniform, active ones normal: init_std, kerr_init_std) or "
                                     "'cat' (generator.output = 'homodyne', >= 2 modes and "
                                     "layers, phase encoding: issue 21's two-mode cat, "
                                     "interferometers the identity but a 50:50 beamsplitter "
                                     "between modes 0 and 1 in layer 2, Kerr pi/2 on mode 0 in "
                                     "layer 1, every other active weight normal with init_std; "
                                     "the encoding's amplitude on mode 0 is the cat's: "
                                     "encode_amplitude 3.34 at cutoff 26 puts x-peaks near "
                                     "+-(4.7, 4.7), two correlated modes: bimodal 98.9 % "
                                     "HQ over 3 seeds with latent_dim 0, where random weights "
                                     "collapsed onto one mode; BENCHMARKS.md 'Homodyne') or "
                                     "'ring' (a measured output, phase encoding: Kerr "
                                     "pi/K on mode 0's coherent input in layer 1, K = "
                                     "generator.ring_components, a cat of K components on a "
                                     "circle of radius encode_amplitude; with 'heterodyne', K "
                                     "blobs on a ring).",
                         choices=CIRCUIT_INITS)
    ring_components: int = _f(8, "Components of the cat that circuit_init = 'ring' starts "
                                 "from (even: Kerr pi/K gives K equal ones).", ge=2, le=32)
    reupload: bool = _f(True, "Re-upload the latent before every layer after the first "
                              "(displacement: displace the input modes again; phase: a trainable "
                              "displacement, then the rotation by the latent again): a less "
                              "affine map; both backends.")
    encoding: str = _f("phase", "How the latent enters the circuit: 'phase' (mode i starts in "
                                "a coherent state of trainable amplitude rotated by the angle "
                                "phase_range * pi * z_i / latent_scale; with reupload every "
                                "later layer rotates it again: outputs are trigonometric series "
                                "in the latent, not near-affine maps) or 'displacement' (latent "
                                "component i displaces mode i along x; the default before "
                                "issue 9's second round). Both backends; BENCHMARKS.md.",
                       choices=ENCODINGS)
    phase_range: float = _f(1.0, "With encoding = 'phase': the latent range maps onto the angles "
                                 "[-phase_range * pi, phase_range * pi]. 1 = the full circle "
                                 "(the map is periodic in the latent: it suits rings; between "
                                 "two separated modes it must cross the gap twice), 0.5 = a half "
                                 "circle (one crossing suffices).", gt=0, le=1)
    encode_amplitude: float = _f(1.0, "With encoding = 'phase': the initial amplitude a of the "
                                      "coherent states the latent rotates (a^2 photons per "
                                      "mode). Each output is a trigonometric series in the "
                                      "latent whose usable degree grows with the photon "
                                      "numbers, so a larger a allows steeper maps (fewer "
                                      "samples between separated modes: bimodal 87 % -> 90 % "
                                      "HQ with a = 2 at cutoff 12, 91 % at 16), but an "
                                      "interferometer can gather modes * a^2 photons in one "
                                      "mode: raise generator.cutoff with it (BENCHMARKS.md, "
                                      "'band limit').", gt=0, le=5)
    readout: str = _f("xpn", "Measured features: 'x' (<x> of the output modes, scaled and "
                             "shifted per output; the default before issue 9: resume older "
                             "runs with 'x') or 'xpn' (<x>, <p> and <n> of every mode, "
                             "ancillas included, through a trainable linear map; both backends).",
                      choices=READOUTS)
    readout_init: str = _f("data", "Initial affine readout: 'unit' (scale 1, shift 0) or 'data' "
                                   "(match the training data's per-axis mean and std on a "
                                   "fixed latent batch: targets far from the origin, e.g. a "
                                   "grid of spacing 2, are in reach from step 0).",
                           choices=("unit", "data"))
    hidden: list = _f([16, 16], "Hidden layer widths of the classical baseline generator.")


@dataclass
class DiscriminatorConfig:
    kind: str = _f("mlp", "'mlp' (classical Keras MLP) or 'quantum'.", choices=("mlp", "quantum"))
    hidden: list = _f([128, 128, 128], "Hidden layer widths of the MLP discriminator ([32, 32] "
                                       "before issue 9's second round: a wider one pushes the "
                                       "quantum generator's samples off the gaps between modes).")
    modes: int = _f(2, "Quantum discriminator: number of modes.", ge=1, le=6)
    layers: int = _f(1, "Quantum discriminator: number of layers.", ge=1, le=16)
    cutoff: int = _f(6, "Quantum discriminator: Fock cutoff.", ge=2, le=30)
    init_std: float = _f(0.05, "Quantum discriminator: std of the initial active parameters.", ge=0)


@dataclass
class LossConfig:
    kind: str = _f("bce", "'bce' (non-saturating cross-entropy; with one D step per G step it "
                          "took the quantum generator from ~70 % to ~85 % HQ, 3x faster per "
                          "step: BENCHMARKS.md) or 'wgan-gp' (Wasserstein with gradient "
                          "penalty, the default before issue 9's second round).",
                   choices=("bce", "wgan-gp"))
    gp_weight: float = _f(10.0, "WGAN-GP: weight of the gradient penalty.", ge=0)
    n_critic: int = _f(1, "Discriminator updates per generator update (1 for BCE; WGAN-GP "
                          "usually takes 5, the default before issue 9's second round).",
                       ge=1, le=50)
    label_smoothing: float = _f(0.0, "BCE: real labels become 1 - label_smoothing.", ge=0, le=0.5)
    instance_noise: float = _f(0.0, "BCE: std of Gaussian noise added to D's inputs.", ge=0)
    diversity_weight: float = _f(0.0, "Weight of a pairwise-distance diversity regulariser on "
                                      "the generator (0 = off).", ge=0)
    trace_penalty: float = _f(50.0, "Weight of (1 - Fock trace)^2 in the generator loss "
                                    "(0 = off). 50 with generator.cutoff 10 keeps every "
                                    "sample's trace >= 0.9 over 3000 steps on bimodal, ring8 and "
                                    "grid25 (at 10, the default until issue 9's third round, "
                                    "the generator traded trace for steepness: batch-min "
                                    "trace down to 0.84) at the same HQ and W1.", ge=0)
    likelihood_weight: float = _f(0.0, "Weight of the negative log-likelihood of a real batch "
                                       "under the generator's exact outcome density, added to "
                                       "the generator loss (0 = off; generator.output = "
                                       "'homodyne' or 'heterodyne' only: their samples have a "
                                       "density, the expectation generator's do not). Maximum "
                                       "likelihood covers every mode, which the adversarial "
                                       "loss alone may drop (BENCHMARKS.md, 'Homodyne "
                                       "generator').", ge=0)


@dataclass
class TrainConfig:
    steps: int = _f(300, "Number of generator steps (one step = n_critic D updates + 1 G update).",
                    ge=1)
    batch_size: int = _f(64, "Samples per batch (32 before issue 9's second round).", ge=2)
    g_lr: float = _f(0.001, "Generator learning rate (Adam).", gt=0)
    d_lr: float = _f(0.001, "Discriminator learning rate (Adam).", gt=0)
    beta1: float = _f(0.5, "Adam beta1.", ge=0, le=1)
    beta2: float = _f(0.9, "Adam beta2.", ge=0, le=1)
    g_ema: float = _f(0.99, "Decay of an exponential moving average of the generator's "
                            "weights (0 = off, the default before issue 9's second round): "
                            "evals and `qgan sample` use the average, which is checkpointed "
                            "with the rest.", ge=0, le=0.9999)
    clip_norm: float = _f(10.0, "Clip gradients to this global norm (0 = no clipping).", ge=0)
    log_every: int = _f(10, "Write one progress line to the log every N steps.", ge=1)
    xla: bool = _f(False, "Compile the whole step with XLA (compiled backend or classical "
                          "models only): ~2x faster steps after a compile of ~10-30 s, so it "
                          "pays off from a few thousand steps on (BENCHMARKS.md).")
    graph_optimization: str = _f("light", "Graph optimisation (Grappler) of the compiled step at "
                                          "each attempt's first call: 'light' (one round, no "
                                          "memory/layout/remapper passes: half the first call, "
                                          "no slower steps; issue 14) or 'full' (TensorFlow's "
                                          "default, the only setting before).",
                                 choices=("light", "full"))


@dataclass
class GuardConfig:
    max_bad_steps: int = _f(3, "Consecutive non-finite steps that trigger a rollback.", ge=1)
    rollback_lr_scale: float = _f(0.5, "Learning rates are multiplied by this on a rollback.",
                                  gt=0, le=1)
    max_rollbacks: int = _f(5, "After this many rollbacks the run stops as diverged.", ge=0)


@dataclass
class EvalConfig:
    every_steps: int = _f(25, "Evaluate every N steps (and at the last step).", ge=1)
    n_samples: int = _f(512, "Generated samples per eval.", ge=16)
    save_samples: int = _f(256, "Generated samples stored per eval in samples/ (0 = none).", ge=0)
    data_modes_max: int = _f(12, "Data-file targets: the most Gaussian components fitted "
                                 "to the data to find its modes (the number is chosen by BIC; "
                                 "components without a density valley between them form one "
                                 "mode). Fitted once, at the first attempt, and kept in "
                                 "data_profile.json.", ge=1, le=50)
    interpolation_points: int = _f(64, "Points of the latent line (corner to corner) mapped "
                                       "through the best checkpoint's generator into "
                                       "samples/best-interpolation.parquet (0 = none).", ge=0)


@dataclass
class MonitorConfig:
    collapse_var_ratio: float = _f(thresholds.value("collapse_var_ratio"), "Mode collapse: generated/real variance below this, "
                                         "once it has been at least twice as high (a generator "
                                         "that has not spread out yet is not collapsed).",
                                   ge=0, le=1)
    collapse_action: str = _f("lr", "On collapse: 'none', 'lr' (halve G's learning rate) or "
                                    "'rollback' (restore last checkpoint).",
                              choices=("none", "lr", "rollback"))
    early_stop_metric: str = _f("w1_mean", "Eval metric watched by early stopping ('' = off).",
                                choices=("",) + tuple(METRIC_MODE))
    early_stop_mode: str = _f("auto", "Whether the metric should go 'min' or 'max'; 'auto' = "
                                      "the metric's own direction (w1_mean min, the others max).",
                              choices=("auto", "min", "max"))
    patience: int = _f(0, "Evals without improvement before stopping (0 = never).", ge=0)
    min_delta: float = _f(1e-4, "Smallest change that counts as an improvement.", ge=0)
    collapse_arm_factor: float = _f(2.0, "The collapse monitor arms once the variance ratio "
                                         "has reached this multiple of collapse_var_ratio.",
                                    ge=1)
    collapse_persist_evals: int = _f(3, "Evals that collapse may persist after the recovery "
                                        "action before a critical stop.", ge=1)
    stop_on_critical: bool = _f(True, "Stop at once on a critical failure (collapse that "
                                      "persists after recovery, gradients all dead).")
    dead_gradient_steps: int = _f(20, "Consecutive steps with no live generator gradient that "
                                      "count as a critical failure.", ge=1)
    lr_controller: bool = _f(False, "Adapt the learning rates from the adversarial balance.")
    lr_controller_factor: float = _f(0.7, "The controller multiplies D's learning rate by "
                                          "this when D dominates.", gt=0, le=1)
    lr_controller_max: int = _f(5, "At most this many learning-rate reductions.", ge=0)


@dataclass
class CheckpointConfig:
    every_steps: int = _f(250, "Write a checkpoint every N steps (and at the end).", ge=1)
    every_seconds: float = _f(120.0, "... and at least every N seconds of wall time (0 = off); "
                                     "bounds the work a SIGKILL or node failure can lose.", ge=0)
    keep: int = _f(3, "Number of checkpoints kept.", ge=1)
    keep_best: bool = _f(True, "Also keep the state of the best eval so far (by "
                               "checkpoint.best_metric) in checkpoints/best-<seq>/, outside the "
                               "keep-N rotation, like Keras ModelCheckpoint(save_best_only); "
                               "`qgan sample --checkpoint best` draws from it.")
    best_metric: str = _f("auto", "Eval metric that decides the best checkpoint; its direction "
                                  "(lower or higher is better) is fixed per metric: w1_mean "
                                  "and sliced_w1 min, the others max. 'auto': w1_mean for the "
                                  "built-in targets, sliced_w1 for data files (per-axis W1 "
                                  "sees only the marginals; the sliced W1 sees the joint shape "
                                  "and the mode weights). A run keeps the metric it started "
                                  "with.",
                          choices=("auto", *METRIC_MODE))


@dataclass
class MetricsConfig:
    flush_seconds: float = _f(30.0, "Flush buffered metric rows at least this often.", gt=0)
    tensorboard: bool = _f(False, "Also write TensorBoard event files under RUN/tensorboard/ "
                                  "as the run trains (the steps and evals tables' numbers, "
                                  "written with every metrics flush; one file per attempt, "
                                  "resume-safe). Needs the tensorboard package: pip install "
                                  "'qgan-toolkit[tensorboard]'.")


@dataclass
class FaultsConfig:
    nan_at_steps: list = _f([], "Make these steps' losses NaN (rehearse the guard).")
    sigterm_at_step: int = _f(-1, "Send SIGTERM to itself after this step (-1 = never).", ge=-1)
    sigkill_at_step: int = _f(-1, "Send SIGKILL to itself after this step (-1 = never).", ge=-1)
    corrupt_checkpoint_at_step: int = _f(-1, "Damage the checkpoint written at this step "
                                             "(-1 = never).", ge=-1)
    on_attempt: int = _f(1, "Faults fire only in this attempt, so a resumed run goes on.", ge=1)
    step_seconds: float = _f(0.0, "Sleep this long after every step, in every attempt: a tiny "
                                  "run lasts like a long one, so preemptions can be rehearsed "
                                  "(numbers are unchanged).", ge=0)


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)


SECTION_DOCS = {
    "run": "Identity of the run.",
    "data": "The real data the GAN learns.",
    "generator": "The generator: a CV quantum circuit or a classical baseline.",
    "discriminator": "The discriminator (critic).",
    "loss": "Adversarial loss.",
    "train": "Optimisation.",
    "guard": "Non-finite steps are skipped, never patched; repeated ones roll back.",
    "eval": "Evaluation on held-out real data.",
    "monitor": "Mode-collapse detection, early stopping, learning-rate control.",
    "checkpoint": "Full-state atomic checkpoints.",
    "metrics": "Parquet metric tables.",
    "faults": "Fault injection, for tests and rehearsals. Leave off for real runs.",
}


@dataclass(frozen=True)
class ConfigError:
    """One problem in a config: where, what was given, what is allowed."""

    path: str
    given: Any
    allowed: str

    def __str__(self) -> str:
        given = "(missing)" if self.given is _MISSING else repr(self.given)
        return f"{self.path}: got {given}; {self.allowed}"


class ConfigInvalid(ValueError):
    """Raised with every problem of a config at once."""

    def __init__(self, errors: list[ConfigError], source: str = "config"):
        self.errors = errors
        self.source = source
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{source} has {len(errors)} problem(s):\n{lines}")


_MISSING = object()


def _field_type(f: dataclasses.Field) -> type:
    t = f.type if not isinstance(f.type, str) else eval(f.type)  # noqa: S307 - our own annotations
    return get_origin(t) or t


def _check_value(path: str, value: Any, f: dataclasses.Field, errors: list[ConfigError]) -> Any:
    t = _field_type(f)
    meta = f.metadata
    if t is bool:
        if not isinstance(value, bool):
            errors.append(ConfigError(path, value, "expected true or false"))
            return f.default
    elif t is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(ConfigError(path, value, "expected an integer"))
            return f.default
    elif t is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(ConfigError(path, value, "expected a number"))
            return f.default
        value = float(value)
        if not math.isfinite(value):
            errors.append(ConfigError(path, value, "expected a finite number"))
            return f.default
    elif t is str:
        if not isinstance(value, str):
            errors.append(ConfigError(path, value, "expected a string"))
            return f.default
    elif t is list:
        if not isinstance(value, list):
            errors.append(ConfigError(path, value, "expected a list, e.g. [1, 2]"))
            return list(f.default_factory())  # type: ignore[misc]
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        errors.append(ConfigError(path, value, "allowed: " + ", ".join(repr(c) for c in choices)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                              ("le", lambda v, b: v <= b, "<=")):
            bound = meta.get(key)
            if bound is not None and not ok(value, bound):
                errors.append(ConfigError(path, value, f"must be {word} {bound}"))
    return value


def _section_from_dict(cls: type, raw: Any, prefix: str, errors: list[ConfigError]) -> Any:
    if not isinstance(raw, dict):
        errors.append(ConfigError(prefix, raw, "expected a table of keys"))
        return cls()
    names = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            errors.append(ConfigError(f"{prefix}.{key}", raw[key],
                                      "unknown key; known keys: " + ", ".join(names)))
    kwargs = {}
    for name, f in names.items():
        if name in raw:
            kwargs[name] = _check_value(f"{prefix}.{name}", raw[name], f, errors)
    return cls(**kwargs)


def _init_needs(errors: list[ConfigError], init: str, conditions: tuple) -> None:
    """One error naming every (unmet, what it needs) of generator.circuit_init = init."""
    why = [what for bad, what in conditions if bad]
    if why:
        errors.append(ConfigError("generator.circuit_init", init, "needs " + ", ".join(why)
                                  + "; or set generator.circuit_init = 'random'"))


def _cross_checks(cfg: Config, errors: list[ConfigError]) -> None:
    g, d = cfg.generator, cfg.discriminator
    named = kind_of(g.kind, g.output)  # None: generator.kind's own check said so
    kind = KINDS[named] if named is not None else None
    if kind and kind.circuit and g.latent_dim > g.modes:
        errors.append(ConfigError("generator.latent_dim", g.latent_dim,
                                  f"must be <= generator.modes ({g.modes}): each latent "
                                  "component is encoded into one mode"))
    if kind and kind.circuit and g.truncation == "total" and g.backend == "sf":
        errors.append(ConfigError("generator.truncation", g.truncation,
                                  "needs generator.backend = 'compiled' (Strawberry Fields "
                                  "truncates each mode): set the backend to 'compiled' or "
                                  "the truncation to 'mode'"))
    if kind and g.latent_dim == 0 and not kind.measured:
        errors.append(ConfigError("generator.latent_dim", 0, "0 (no latent) needs a quantum "
                                  "generator with generator.output = 'homodyne', whose samples "
                                  "are random without one; set it >= 1"))
    if kind and g.circuit_init == "cat":
        _init_needs(errors, "cat", (
            (not kind.measured, "generator.output = 'homodyne' (a cat's <x> is 0: only its "
                                "measurement outcomes are two-peaked)"),
            (g.modes < 2, "generator.modes >= 2"), (g.layers < 2, "generator.layers >= 2"),
            (g.encoding != "phase", "generator.encoding = 'phase' (its amplitude is the cat's "
                                    "displacement)")))
    if kind and kind.circuit and g.cutoff > 30 and g.modes > 1:
        errors.append(ConfigError("generator.cutoff", g.cutoff, f"must be <= 30 with "
                                  f"{g.modes} modes (the state holds cutoff^modes amplitudes "
                                  "per sample); above 30 only with generator.modes = 1"))
    if kind and g.circuit_init == "ring":
        _init_needs(errors, "ring", (
            (not kind.measured, "generator.output = 'heterodyne' or 'homodyne' (a ring's "
                                "expectation values are 0: only its measurement outcomes "
                                "show the components)"),
            (g.encoding != "phase", "generator.encoding = 'phase' (its amplitude is the "
                                    "ring's radius)"),
            (g.ring_components % 2, "an even generator.ring_components")))
    if kind and cfg.loss.likelihood_weight > 0 and not kind.density:
        errors.append(ConfigError("loss.likelihood_weight", cfg.loss.likelihood_weight,
                                  "needs generator.output = 'homodyne' or 'heterodyne' (a "
                                  "generator whose samples have an exact density); set it to "
                                  "0 for this generator"))
    if kind and kind.compiled_only and g.backend != "compiled":
        errors.append(ConfigError("generator.output", g.output, "needs generator.backend = "
                                  "'compiled' (the homodyne sampler reads the batched state and "
                                  "runs under tf.function; SF's backend does neither)"))
    for path, widths in (("generator.hidden", g.hidden), ("discriminator.hidden", d.hidden)):
        if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
            errors.append(ConfigError(path, widths, "expected a list of positive integers"))
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
               for s in cfg.faults.nan_at_steps):
        errors.append(ConfigError("faults.nan_at_steps", cfg.faults.nan_at_steps,
                                  "expected a list of step numbers >= 0"))
    if not all(isinstance(c, str) for c in cfg.data.columns):
        errors.append(ConfigError("data.columns", cfg.data.columns, "expected a list of names"))
    if cfg.data.target == "file" and not cfg.data.path:
        errors.append(ConfigError("data.path", cfg.data.path,
                                  "required when data.target = 'file'"))
    if cfg.data.target != "file" and cfg.data.path:
        errors.append(ConfigError("data.path", cfg.data.path,
                                  "only used with data.target = 'file'; remove it or set the "
                                  "target to 'file'"))
    if cfg.metrics.tensorboard:
        if not tbevents.available():
            errors.append(ConfigError("metrics.tensorboard", True, "needs the tensorboard "
                                      f"package, which is not installed: {tbevents.EXTRA} "
                                      "(or set it to false)"))
    if cfg.eval.save_samples > cfg.eval.n_samples:
        errors.append(ConfigError("eval.save_samples", cfg.eval.save_samples,
                                  f"must be <= eval.n_samples ({cfg.eval.n_samples})"))


def resolve_auto(cfg: Config, existing: Config | None = None) -> Config:
    """`cfg` with its "auto" settings made concrete: what the run directory's own config
    (`existing`) says, so that a new default never changes a running run; else the choice
    for this config's data."""
    c = cfg.checkpoint
    if c.best_metric != "auto":
        return cfg
    if existing is not None and existing.checkpoint.best_metric != "auto":
        metric = existing.checkpoint.best_metric
    else:
        metric = "sliced_w1" if cfg.data.target == "file" else "w1_mean"
    return dataclasses.replace(cfg, checkpoint=dataclasses.replace(c, best_metric=metric))


def config_from_dict(raw: dict, source: str = "config") -> Config:
    """Build and validate a Config; raise ConfigInvalid listing every problem."""
    errors: list[ConfigError] = []
    sections = {f.name: f for f in dataclasses.fields(Config)}
    if not isinstance(raw, dict):
        raise ConfigInvalid([ConfigError("(top)", raw, "expected a table")], source)
    for key in raw:
        if key not in sections:
            hint = ("; sweeps are run with `qgan submit`" if key == "sweep"
                    else "; known sections: " + ", ".join(sections))
            errors.append(ConfigError(key, raw[key], "unknown section" + hint))
    kwargs = {}
    for name, f in sections.items():
        if name in raw:
            kwargs[name] = _section_from_dict(f.default_factory, raw[name], name,  # type: ignore[arg-type]
                                              errors)
    cfg = Config(**kwargs)
    _cross_checks(cfg, errors)
    if errors:
        raise ConfigInvalid(errors, source)
    return cfg


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def read_toml(path: Path, *, root: Path | None = None) -> dict:
    """Read a TOML file; a missing, refused or malformed file raises ConfigInvalid.

    With `root` (a run directory) the file is read confined below it, never through a link
    (qgan.saferead); without, it is a file the user named (a link is fine). Either way it must
    be a regular file of bounded size (a FIFO would block)."""
    try:
        if root is None:
            text = saferead.read_text(path, "user_config", follow=True)
        else:
            text = saferead.read_text(path, "config", root=root)
    except FileNotFoundError:
        raise ConfigInvalid([ConfigError(str(path), _MISSING,
                                         "file not found; `qgan config --default > FILE` "
                                         "writes a starting point")], str(path)) from None
    except saferead.ReadRefused as exc:
        raise ConfigInvalid([ConfigError(str(path), _MISSING, f"refused: {exc}")],
                            str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid([ConfigError(str(path), _MISSING, f"cannot read: {exc}")],
                            str(path)) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid([ConfigError(str(path), _MISSING, f"not valid TOML: {exc}")],
                            str(path)) from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse KEY=VALUE; the value is read as a TOML value, else taken as a plain string."""
    if "=" not in text:
        raise ConfigInvalid([ConfigError(f"--set {text}", _MISSING,
                                         "expected KEY=VALUE, e.g. train.steps=100")], "--set")
    key, _, value = text.partition("=")
    key = key.strip()
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key, parsed


def apply_overrides(raw: dict, overrides: list[tuple[str, Any]]) -> dict:
    """Return a copy of raw with dotted-path overrides applied (validation happens later)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for key, value in overrides:
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                node[p] = nxt
            else:
                nxt = dict(nxt)
                node[p] = nxt
            node = nxt
        node[parts[-1]] = value
    return out


def load_config(path: Path | None, overrides: list[str] | tuple[str, ...] = (), *,
                root: Path | None = None) -> Config:
    """Load, override and validate a config file (None = the defaults); `root`: the run
    directory holding it (read confined, see read_toml)."""
    errors: list[ConfigError] = []
    raw: dict = {}
    parsed = []
    try:
        raw = read_toml(path, root=root) if path is not None else {}
    except ConfigInvalid as exc:
        errors += exc.errors
    for text in overrides:
        try:
            parsed.append(parse_override(text))
        except ConfigInvalid as exc:
            errors += exc.errors
    source = str(path) if path else "config"
    if errors:
        raise ConfigInvalid(errors, source)
    return config_from_dict(apply_overrides(raw, parsed), source)


def dumps(cfg: Config) -> str:
    """The resolved config as TOML."""
    return tomli_w.dumps(config_to_dict(cfg))


def default_config_text() -> str:
    """A complete default config with one comment per key."""
    lines = ["# qgan-toolkit run configuration (TOML). Every key is shown with its default.",
             "# Override any key on the command line: --set train.steps=100", ""]
    for sf in dataclasses.fields(Config):
        section = sf.default_factory()  # type: ignore[misc]
        lines.append(f"# {SECTION_DOCS[sf.name]}")
        lines.append(f"[{sf.name}]")
        for f in dataclasses.fields(section):
            meta = f.metadata
            doc = meta["doc"]
            if meta.get("choices"):
                doc += " Allowed: " + ", ".join(repr(c) for c in meta["choices"]) + "."
            lines.append(f"# {doc}")
            lines.append(tomli_w.dumps({f.name: getattr(section, f.name)}).strip())
        lines.append("")
    return "\n".join(lines)
