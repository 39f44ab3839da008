"""The report's panels, named once: advice and findings point at one of these ids, and the
report (reports/) draws one figure per id, so a link from a recommendation to its evidence
cannot dangle. `KIND_PANEL` says which panel shows each finding kind."""

from __future__ import annotations

from qgan.vocabulary import FindingKind

PANELS: dict[str, str] = {
    "w1": "W1 distance to the real data over the evals (quality)",
    "modes": "modes covered, variance ratio and high-quality fraction over the evals",
    "support": "precision, recall, density and coverage (k-NN manifolds), sliced W1 to its "
               "floor, and the spread around the data's centre over the evals",
    "losses": "generator and discriminator losses per step (non-finite steps marked)",
    "critic": "D(real) and D(fake) per step: the adversarial balance",
    "grads": "gradient norms and live-parameter fractions per step",
    "trace": "Fock trace per step (probability kept inside the cutoff)",
    "samples": "generated vs real samples at the evals",
    "timeline": "attempts, checkpoints, signals and lost work over wall time",
    "sweep": "the experiment: outcomes against the swept settings",
    "files": "the run directory's files (unreadable or missing parts)",
}

K = FindingKind
KIND_PANEL: dict[FindingKind, str] = {
    K.STAGNATION: "w1", K.REGRESSION: "w1", K.NEVER_FIT: "w1",
    K.MODE_COLLAPSE: "modes", K.PARTIAL_COLLAPSE: "modes", K.BETWEEN_MODES: "modes",
    K.DROPPED_MODE: "modes", K.SKEWED_WEIGHTS: "modes",
    K.OFF_SUPPORT: "support", K.MISSED_SUPPORT: "support", K.TOO_NARROW: "support",
    K.TOO_WIDE: "support",
    K.NONFINITE: "losses", K.OSCILLATION: "losses",
    K.D_DOMINANCE: "critic", K.G_DOMINANCE: "critic", K.EQUILIBRIUM: "critic",
    K.VANISHING_GRADIENTS: "grads", K.EXPLODING_GRADIENTS: "grads",
    K.DEAD_PARAMETERS: "grads", K.CLIPPING_SATURATION: "grads",
    K.FOCK_LEAKAGE: "trace",
    K.CRASH: "timeline", K.LOST_WORK: "timeline", K.JOB_HISTORY: "timeline", K.PRUNED: "timeline",
    K.UNFINISHED: "timeline", K.CHECKPOINT_CADENCE: "timeline",
    K.CHECKPOINT_REJECTED: "timeline", K.CHECKPOINT_FAILED: "timeline",
    K.SEED_SPREAD: "sweep", K.HYPERPARAMETER_EFFECT: "sweep", K.KEEP: "sweep",
    K.MISSING_FILE: "files", K.CORRUPT_FILE: "files", K.UNSAFE_PATH: "files",
    K.MISSING_TABLE: "files", K.EMPTY_TABLE: "files", K.EMPTY_COLUMNS: "files",
    K.PART_SCHEMA: "files", K.CORRUPT_PART: "files", K.ANALYSIS_ERROR: "files",
}
del K


def panel_of(kind: str) -> str:
    """The panel that shows a finding of `kind`; a kind outside FindingKind raises ValueError
    (a new kind needs its panel here, never a silent default)."""
    return KIND_PANEL[FindingKind(kind)]
