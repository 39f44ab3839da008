"""Decisions taken during training: the guard, collapse recovery, early stopping, LR control.

Each monitor is a small object with a clear lifecycle (like a Keras callback): it observes a
step or an eval row and returns Decisions, which the trainer carries out and records as
`events` rows with their reason. Monitors hold no TensorFlow state; `state_dict()` /
`load_state_dict()` put their state into checkpoints, so a resumed run decides exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qgan import thresholds
from qgan.config import GuardConfig, MonitorConfig
from qgan.thresholds import collapsed
from qgan.vocabulary import METRIC_MODE, AttemptEnd


@dataclass
class Decision:
    kind: str  # an event kind (qgan.schema.EVENT_KINDS)
    severity: str
    message: str
    data: dict = field(default_factory=dict)
    lr_scale: dict[str, float] = field(default_factory=dict)  # network ("g"/"d") -> factor
    rollback: bool = False
    stop: AttemptEnd | None = None  # EARLY_STOP or DIVERGED


class Monitor:
    """Base with no-op hooks (Keras' Callback is the model): a subclass overrides the hooks it
    needs. Stateless unless the subclass lists attributes in STATE."""

    STATE: tuple[str, ...] = ()

    def observe_step(self, step: int, row: dict) -> list[Decision]:
        """After every optimizer step, with its `steps` row."""
        return []

    def observe_eval(self, step: int, row: dict) -> list[Decision]:
        """After every eval, with its `evals` row."""
        return []

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.STATE}

    def load_state_dict(self, state: dict) -> None:
        for k in self.STATE:
            if k in state:
                setattr(self, k, state[k])


class MonitorList:
    """The trainer's monitors by name, called in order (like Keras' CallbackList); their
    state goes into checkpoints under the same names."""

    def __init__(self, monitors: dict[str, Monitor]):
        self.monitors = dict(monitors)

    def observe_step(self, step: int, row: dict) -> list[Decision]:
        return [d for m in self.monitors.values() for d in m.observe_step(step, row)]

    def observe_eval(self, step: int, row: dict) -> list[Decision]:
        return [d for m in self.monitors.values() for d in m.observe_eval(step, row)]

    def state_dict(self) -> dict[str, dict]:
        return {k: m.state_dict() for k, m in self.monitors.items()}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        for k, m in self.monitors.items():
            m.load_state_dict(state.get(k, {}))


class Guard(Monitor):
    """Counts consecutive non-finite steps; asks for a rollback, then gives up."""

    STATE = ("bad_streak", "rollbacks", "skipped_total")

    def __init__(self, cfg: GuardConfig):
        self.cfg = cfg
        self.bad_streak = 0
        self.rollbacks = 0
        self.skipped_total = 0

    def observe_step(self, step: int, row: dict) -> list[Decision]:
        if not row["nonfinite"]:
            self.bad_streak = 0
            return []
        self.bad_streak += 1
        self.skipped_total += 1
        which = [n for n, ok in (("generator", row["g_ok"]), ("discriminator", row["d_ok"]))
                 if not ok]
        out = [Decision("nonfinite_step", "warning",
                        f"step {step}: non-finite loss or gradient in {', '.join(which)}; "
                        "update skipped", {"which": which, "streak": self.bad_streak})]
        if self.bad_streak < self.cfg.max_bad_steps:
            return out
        self.bad_streak = 0
        if self.rollbacks >= self.cfg.max_rollbacks:
            out.append(Decision("diverged", "error",
                                f"{self.cfg.max_bad_steps} consecutive non-finite steps after "
                                f"{self.rollbacks} rollbacks: giving up",
                                {"rollbacks": self.rollbacks}, stop=AttemptEnd.DIVERGED))
            return out
        self.rollbacks += 1
        scale = self.cfg.rollback_lr_scale
        out.append(Decision("rollback", "warning",
                            f"{self.cfg.max_bad_steps} consecutive non-finite steps: rolling "
                            f"back to the last checkpoint, learning rates x{scale}",
                            {"rollbacks": self.rollbacks, "lr_scale": scale},
                            lr_scale={"g": scale, "d": scale}, rollback=True))
        return out


class DeadGradientWatch(Monitor):
    """Critical failure: the generator's gradient is zero or non-finite everywhere for long."""

    STATE = ("dead_streak",)

    def __init__(self, cfg: MonitorConfig):
        self.enabled = cfg.stop_on_critical
        self.limit = cfg.dead_gradient_steps
        self.dead_streak = 0

    def observe_step(self, step: int, row: dict) -> list[Decision]:
        self.dead_streak = self.dead_streak + 1 if row["g_grad_live"] == 0.0 else 0
        if self.enabled and self.dead_streak == self.limit:
            return [Decision("early_stop", "error",
                             f"no generator parameter had a finite non-zero gradient for "
                             f"{self.limit} steps", {"reason": "dead_gradients"},
                             stop=AttemptEnd.EARLY_STOP)]
        return []


class CollapseMonitor(Monitor):
    """Detects mode collapse at evals, acts once, stops if it persists after the action.

    Armed only once the generator has shown diversity (a variance ratio of ARM_FACTOR times
    the threshold at some eval): a generator that has not spread out yet is untrained, not
    collapsed, and halving its learning rate would only slow it down (measured: an MLP
    generator at g_lr 3e-4 starts at ratio 0.025 and used to be stopped at step 100)."""

    STATE = ("active", "onset_step", "evals_since_action", "actions", "peak_ratio")

    def __init__(self, cfg: MonitorConfig):
        self.cfg = cfg
        self.th = {**thresholds.defaults(), "collapse_var_ratio": cfg.collapse_var_ratio}
        self.active = False
        self.onset_step = -1
        self.evals_since_action = 0
        self.actions = 0
        self.peak_ratio = 0.0

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "peak_ratio" not in state:  # a checkpoint from before arming: it was always armed
            self.peak_ratio = self.cfg.collapse_arm_factor * self.cfg.collapse_var_ratio

    def _collapsed(self, row: dict) -> bool:
        # Collapse as analysis defines it (qgan.thresholds.collapsed), with this run's
        # configured variance ratio. Not mode coverage: an untrained generator also covers few
        # modes, and partial mode dropping is a postmortem finding, not a reason to intervene.
        armed = self.peak_ratio >= self.cfg.collapse_arm_factor * self.cfg.collapse_var_ratio
        real_pd = row["real_mean_pairwise_dist"]
        pairwise = row["mean_pairwise_dist"] / real_pd if real_pd > 0 else math.nan
        return armed and bool(collapsed(row["sample_var_ratio"], pairwise, self.th))

    def observe_eval(self, step: int, row: dict) -> list[Decision]:
        if math.isfinite(row["sample_var_ratio"]):
            self.peak_ratio = max(self.peak_ratio, float(row["sample_var_ratio"]))
        collapsed = self._collapsed(row)
        evidence = {"sample_var_ratio": row["sample_var_ratio"],
                    "modes_covered": row["modes_covered"], "n_modes": row["n_modes"]}
        if not collapsed:
            if self.active:
                self.active = False
                return [Decision("collapse_ended", "info",
                                 f"evals no longer show collapse (onset at step "
                                 f"{self.onset_step})", {"onset_step": self.onset_step, **evidence})]
            return []
        if not self.active:
            self.active, self.onset_step, self.evals_since_action = True, step, 0
            out = [Decision("collapse_detected", "warning",
                            f"mode collapse: variance ratio {row['sample_var_ratio']:.3g}, "
                            f"{row['modes_covered']}/{row['n_modes']} modes covered", evidence)]
            action = self.cfg.collapse_action
            if action != "none":
                self.actions += 1
                out.append(Decision("recovery_action", "info", f"recovery action: {action}",
                                    {"action": action, "onset_step": step},
                                    lr_scale={"g": 0.5} if action == "lr" else {},
                                    rollback=action == "rollback"))
            return out
        self.evals_since_action += 1
        if self.cfg.stop_on_critical and self.evals_since_action >= self.cfg.collapse_persist_evals:
            return [Decision("early_stop", "error",
                             f"mode collapse persisted for {self.evals_since_action} evals after "
                             "the recovery action", {"reason": "collapse", "onset_step":
                                                     self.onset_step, **evidence},
                             stop=AttemptEnd.EARLY_STOP)]
        return []


class EarlyStopping(Monitor):
    """Patience on one eval metric, like keras.callbacks.EarlyStopping."""

    STATE = ("best", "best_step", "wait")

    def __init__(self, cfg: MonitorConfig):
        self.cfg = cfg
        self.best: float | None = None
        self.best_step = -1
        self.wait = 0

    def observe_eval(self, step: int, row: dict) -> list[Decision]:
        metric = self.cfg.early_stop_metric
        if not metric or self.cfg.patience == 0:
            return []
        value = float(row[metric])
        mode = self.cfg.early_stop_mode
        mode = METRIC_MODE[metric] if mode == "auto" else mode
        sign = 1.0 if mode == "min" else -1.0
        improved = math.isfinite(value) and (
            self.best is None or sign * (self.best - value) > self.cfg.min_delta)
        if improved:
            self.best, self.best_step, self.wait = value, step, 0
            return []
        self.wait += 1
        if self.wait < self.cfg.patience:
            return []
        return [Decision("early_stop", "info",
                         f"{metric} did not improve for {self.wait} evals (best {self.best} at "
                         f"step {self.best_step})",
                         {"reason": "patience", "metric": metric, "best": self.best,
                          "best_step": self.best_step}, stop=AttemptEnd.EARLY_STOP)]


class LRController(Monitor):
    """Slows the discriminator when it dominates, from the steps since the last eval.

    Dominance: for BCE, mean D(real) and D(fake) past the thresholds analysis uses
    (d_dominant_real / d_dominant_fake: D separates almost perfectly, the generator's gradient
    vanishes); for WGAN-GP, the critic gap grew at three evals in a row (a trend, the trigger
    of this action, not a health level). Each action multiplies D's learning rate by
    monitor.lr_controller_factor, at most monitor.lr_controller_max times.
    """

    STATE = ("gaps", "reductions")

    def __init__(self, cfg: MonitorConfig, loss_kind: str):
        self.cfg = cfg
        self.enabled = cfg.lr_controller
        self.loss_kind = loss_kind
        self.gaps: list[float] = []
        self.reductions = 0
        self._window: list[tuple[float, float]] = []

    def observe_step(self, step: int, row: dict) -> list[Decision]:
        if math.isfinite(row["d_real"] - row["d_fake"]):
            self._window.append((row["d_real"], row["d_fake"]))
        return []

    def observe_eval(self, step: int, row: dict) -> list[Decision]:
        if not self._window:
            return []
        real = sum(r for r, _ in self._window) / len(self._window)
        fake = sum(f for _, f in self._window) / len(self._window)
        gap = real - fake
        self._window = []
        self.gaps = (self.gaps + [gap])[-4:]
        if not self.enabled or self.reductions >= self.cfg.lr_controller_max:
            return []
        if self.loss_kind == "bce":
            dominant = (real > thresholds.value("d_dominant_real")
                        and fake < thresholds.value("d_dominant_fake"))
        else:
            dominant = len(self.gaps) == 4 and all(b > a for a, b in zip(self.gaps, self.gaps[1:]))
        if not dominant:
            return []
        self.reductions += 1
        self.gaps = []
        factor = self.cfg.lr_controller_factor
        return [Decision("lr_change", "info", f"discriminator dominates (gap {gap:.3g}): "
                         f"D learning rate x{factor}", {"network": "d", "reason": "d_dominance",
                                                        "gap": gap}, lr_scale={"d": factor})]
