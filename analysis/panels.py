"""The report's panels, named once: advice and findings point at one of these ids, and the
report (reports/) draws one figure per id, so a link from a recommendation to its evidence
cannot dangle. `KIND_PANEL` says which panel shows each finding kind."""

from __future__ import annotations

PANELS: dict[str, str] = {
    "w1": "W1 distance to the real data over the evals (quality)",
    "modes": "modes covered, variance ratio and high-quality fraction over the evals",
    "losses": "generator and discriminator losses per step (non-finite steps marked)",
    "critic": "D(real) and D(fake) per step: the adversarial balance",
    "grads": "gradient norms and live-parameter fractions per step",
    "trace": "Fock trace per step (probability kept inside the cutoff)",
    "samples": "generated vs real samples at the evals",
    "timeline": "attempts, checkpoints, signals and lost work over wall time",
    "sweep": "the experiment: outcomes against the swept settings",
    "files": "the run directory's files (unreadable or missing parts)",
}

KIND_PANEL: dict[str, str] = {
    "stagnation": "w1", "regression": "w1", "never_fit": "w1",
    "mode_collapse": "modes", "partial_collapse": "modes",
    "nonfinite": "losses", "oscillation": "losses",
    "d_dominance": "critic", "g_dominance": "critic", "equilibrium": "critic",
    "vanishing_gradients": "grads", "exploding_gradients": "grads",
    "dead_parameters": "grads", "clipping_saturation": "grads",
    "fock_leakage": "trace",
    "crash": "timeline", "lost_work": "timeline", "job_history": "timeline",
    "unfinished": "timeline", "checkpoint_cadence": "timeline",
    "checkpoint_rejected": "timeline", "checkpoint_failed": "timeline",
    "best_checkpoint": "timeline",
    "seed_spread": "sweep", "hyperparameter_effect": "sweep", "keep": "sweep",
}


def panel_of(kind: str) -> str:
    """The panel that shows a finding of `kind` ("files" for data problems and the unknown)."""
    return KIND_PANEL.get(kind, "files")
