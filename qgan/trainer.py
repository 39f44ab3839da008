"""The resumable training loop: `train(config, run_dir)` -> exit status (qgan.schema.EXIT_*).

One call is one attempt. It restores the newest valid checkpoint (or starts at step 0), runs
steps until the end, an early stop, a divergence, or a stop signal; at every step boundary it
records health, runs evals and monitors, checkpoints on schedule, and acts on a signal by
flushing metrics and checkpointing before it exits with EXIT_RESUME. Metric rows are flushed
before each checkpoint commits, so every step up to a checkpoint is on disk exactly once per
attempt that computed it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import numpy as np

from qgan import schema
from qgan.checkpoints import (CheckpointManager, CheckpointMismatchError,
                              CheckpointWriteError, damage_checkpoint)
from qgan.config import Config
from qgan.data import DataError, Dataset, load_dataset
from qgan.evals import eval_metrics
from qgan.metrics import MetricsWriter
from qgan.models import Generators, build_discriminator, check_dimensions
from qgan.monitors import (CollapseMonitor, DeadGradientWatch, Decision, EarlyStopping, Guard,
                           LRController)
from qgan.rundir import Attempt, RunDirError, prepare
from qgan.signals import StopFlag

log = logging.getLogger(__name__)

_STEP_COLUMNS = [f.name for f in schema.STEPS_SCHEMA]


def configure_tensorflow() -> None:
    """Deterministic CPU ops, quiet logs. Called once per process before any model exists."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    tf.config.experimental.enable_op_determinism()


def train(cfg: Config, run_dir: Path, *, allow_config_change: bool = False,
          stop_flag: StopFlag | None = None) -> int:
    """Run (or resume) one training run in run_dir. Raises DataError/RunDirError for bad input.

    `stop_flag`: a StopFlag the caller installed early (before importing TensorFlow), so that a
    signal arriving during start-up is not lost; by default one is installed here.
    """
    if stop_flag is None:
        with StopFlag() as flag:
            return train(cfg, run_dir, allow_config_change=allow_config_change, stop_flag=flag)
    configure_tensorflow()
    data = load_dataset(cfg.data, cfg.run.seed)
    problems = check_dimensions(cfg, data.dim)
    if problems:
        raise DataError("; ".join(problems))
    prepare(Path(run_dir), cfg, allow_config_change=allow_config_change)
    return Trainer(cfg, Path(run_dir), data).run(stop_flag)


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, data: Dataset):
        import keras

        from qgan.step import AdversarialStep

        self.cfg = cfg
        self.run_dir = run_dir
        self.data = data
        self.generators = Generators(cfg, data.dim)
        self.generators.init_readout(cfg, data.train)
        self.gen = self.generators.train
        self.disc = build_discriminator(cfg, data.dim)
        t = cfg.train
        self.g_opt = keras.optimizers.Adam(t.g_lr, beta_1=t.beta1, beta_2=t.beta2, name="g_opt")
        self.d_opt = keras.optimizers.Adam(t.d_lr, beta_1=t.beta1, beta_2=t.beta2, name="d_opt")
        # Slots must exist before a restore, or it is silently deferred (FACTS.md).
        self.g_opt.build(self.gen.weights)
        self.d_opt.build(self.disc.weights)
        compiled = (cfg.generator.kind == "classical" or cfg.generator.backend == "compiled") and (
            cfg.discriminator.kind == "mlp" or cfg.generator.backend == "compiled")
        self.step_fn = AdversarialStep(cfg, self.gen, self.disc, self.g_opt, self.d_opt, data,
                                       compiled, self.generators)
        self.ckpt = CheckpointManager(run_dir / schema.CHECKPOINT_DIR,
                                      {**self.generators.trackables(), "discriminator": self.disc,
                                       "g_opt": self.g_opt, "d_opt": self.d_opt},
                                      keep=cfg.checkpoint.keep)
        self.guard = Guard(cfg.guard)
        self.monitors = {"guard": self.guard, "dead": DeadGradientWatch(cfg.monitor),
                         "collapse": CollapseMonitor(cfg.monitor),
                         "early_stop": EarlyStopping(cfg.monitor),
                         "lr_controller": LRController(cfg.monitor, cfg.loss.kind)}
        eval_key = np.random.default_rng([cfg.run.seed, 0xE7A1])
        ls = cfg.generator.latent_scale
        self.eval_z = eval_key.uniform(-ls, ls, size=(cfg.eval.n_samples,
                                                      cfg.generator.latent_dim)).astype(np.float32)
        self.step = 0
        self.revision = 0
        self.metrics: MetricsWriter | None = None
        self.attempt: Attempt | None = None
        self._last_ckpt_time = time.monotonic()
        self._last_ckpt_step = -1

    # -- state -------------------------------------------------------------------------------
    @property
    def lrs(self) -> dict[str, float]:
        return {"g": float(self.g_opt.learning_rate.numpy()),
                "d": float(self.d_opt.learning_rate.numpy())}

    def _set_lr(self, network: str, value: float) -> None:
        opt = self.g_opt if network == "g" else self.d_opt
        opt.learning_rate.assign(value)

    def _extra(self, outcome: str | None = None) -> dict:
        return {"step": self.step, "revision": self.revision, "lr": self.lrs,
                "monitors": {k: m.state_dict() for k, m in self.monitors.items()},
                "outcome": outcome}

    def _load_extra(self, extra: dict, *, monitors: bool) -> None:
        self.step = int(extra["step"])
        self.revision = int(extra["revision"])
        for network, value in extra["lr"].items():
            self._set_lr(network, value)
        if monitors:
            for k, m in self.monitors.items():
                m.load_state_dict(extra["monitors"].get(k, {}))

    # -- recording ---------------------------------------------------------------------------
    def event(self, kind: str, severity: str, message: str, data: dict | None = None,
              step: int | None = None) -> None:
        assert kind in schema.EVENT_KINDS, kind
        log_fn = {"info": log.info, "warning": log.warning, "error": log.error}[severity]
        log_fn("%s: %s", kind, message)
        self.metrics.add("events", {"step": self.step if step is None else step,
                                    "revision": self.revision, "wall_time": time.time(),
                                    "kind": kind, "severity": severity, "message": message,
                                    "data": json.dumps(data or {}, sort_keys=True, default=str)})

    def save_checkpoint(self, outcome: str | None = None) -> bool:
        """Flush metrics, then commit a checkpoint; a failed write is recorded, not fatal.

        The flush comes first so that every step up to a checkpoint is on disk: if it fails
        (disk full), no checkpoint is written either; the rows stay buffered for a later flush
        and the previous checkpoint stays the newest.
        """
        started = time.monotonic()
        try:
            self.metrics.flush()
            info = self.ckpt.save(self.step, self._extra(outcome))
        except (OSError, CheckpointWriteError) as exc:  # previous checkpoint intact
            self.event("checkpoint_failed", "error", f"checkpoint at step {self.step} failed: "
                       f"{exc}", {"error": str(exc)})
            self._last_ckpt_time = time.monotonic()  # retry at the next scheduled checkpoint
            return False
        seconds = time.monotonic() - started
        self.event("checkpoint_written", "info", f"checkpoint {info.name} at step {self.step}",
                   {"step": self.step, "path": str(info.name), "seconds": round(seconds, 4)})
        self._last_ckpt_time = time.monotonic()
        self._last_ckpt_step = self.step
        return True

    # -- the attempt -------------------------------------------------------------------------
    def run(self, flag: StopFlag) -> int:
        try:
            restored = self.ckpt.restore_latest()
        except CheckpointMismatchError as exc:
            raise RunDirError(f"the checkpoints in {self.run_dir} do not fit the models of "
                              f"this config ({exc}); was the run directory made for another "
                              "model? Use a new --run-dir.") from None
        outcome = restored.extra.get("outcome") if restored else None
        if outcome == "finished" and restored.extra["step"] < self.cfg.train.steps:
            outcome = None  # train.steps was raised (--allow-config-change): train on
        if outcome is not None:
            log.info("run %s already ended (%s) at step %s; nothing to do", self.run_dir,
                     outcome, restored.extra["step"])
            return schema.EXIT_DIVERGED if outcome == "diverged" else schema.EXIT_OK
        self.attempt = Attempt(self.run_dir)
        self.metrics = MetricsWriter(self.run_dir, self.attempt.number,
                                     self.cfg.metrics.flush_seconds)
        if restored is not None:
            self._load_extra(restored.extra, monitors=True)
        self.attempt.update(start_step=self.step + 1,
                            resumed_from=self.step if restored is not None else None)
        self.event("attempt_start", "info", f"attempt {self.attempt.number} starts at step "
                   f"{self.step + 1} of {self.cfg.train.steps}",
                   {"host": self.attempt.record["host"], "pid": os.getpid(),
                    "job_id": self.attempt.record["slurm_job_id"],
                    "restart_count": self.attempt.record["slurm_restart_count"],
                    "resumed_from": self.attempt.record["resumed_from"]})
        for what, reason in self.ckpt.last_rejected:
            name = getattr(what, "name", what)
            ckpt_step = getattr(what, "step", None)
            self.event("checkpoint_rejected", "warning", f"checkpoint {name} rejected: {reason}",
                       {"path": str(name), "step": ckpt_step, "reason": reason},
                       step=ckpt_step if ckpt_step is not None else self.step)
        if restored is not None:
            self.event("checkpoint_restored", "info", f"resumed from step {self.step}",
                       {"step": self.step, "path": str(restored.info.name)})
        self.metrics.flush()  # the attempt's start is evidence even if it is killed at once
        if restored is None:
            self.metrics.write_real_samples(self.data.holdout)
            self.save_checkpoint()
        try:
            reason, status = self._loop(flag)
        except Exception as exc:
            self.event("attempt_end", "error", f"crash: {type(exc).__name__}: {exc}",
                       {"reason": "crash", "exit_status": schema.EXIT_CRASH})
            self.metrics.flush()
            self.attempt.close("crash", schema.EXIT_CRASH, self.step)
            raise
        self.event("attempt_end", "info", f"attempt {self.attempt.number} ended: {reason}",
                   {"reason": reason, "exit_status": status, "signal": flag.signal_name})
        self.metrics.close()
        self.attempt.close(reason, status, self.step, flag.signal_name)
        return status

    def _loop(self, flag: StopFlag) -> tuple[str, int]:
        cfg = self.cfg
        faults = cfg.faults
        faults_armed = self.attempt.number == faults.on_attempt
        rate_t0, rate_s0 = time.monotonic(), self.step
        while self.step < cfg.train.steps:
            if flag.is_set:  # arrived during start-up, or after the last boundary's check
                self.event("signal", "warning", f"{flag.signal_name} received before step "
                           f"{self.step + 1}; exiting for a requeue",
                           {"signal": flag.signal_name, "at_step": self.step})
                if self._last_ckpt_step != self.step:
                    self.save_checkpoint()
                return "signal", schema.EXIT_RESUME
            step = self.step + 1
            inject = faults_armed and self.revision == 0 and step in faults.nan_at_steps
            started = time.monotonic()
            row = self.step_fn(step, self.revision, inject)
            self.step = step
            if faults.step_seconds:
                time.sleep(faults.step_seconds)
            row["nonfinite"] = not (row["g_ok"] and row["d_ok"])
            row["skipped"] = row["nonfinite"]
            lrs = self.lrs
            self.metrics.add("steps", {**{k: row[k] for k in _STEP_COLUMNS if k in row},
                                       "step": step, "revision": self.revision,
                                       "wall_time": time.time(),
                                       "step_seconds": time.monotonic() - started,
                                       "g_lr": lrs["g"], "d_lr": lrs["d"]})
            if inject:
                self.event("fault_injected", "warning", f"NaN injected at step {step}",
                           {"fault": "nan"})
            decisions: list[Decision] = []
            for m in self.monitors.values():
                if hasattr(m, "observe_step"):
                    decisions += m.observe_step(step, row)
            if step % cfg.eval.every_steps == 0 or step == cfg.train.steps:
                eval_row = self._evaluate(step)
                for m in self.monitors.values():
                    if hasattr(m, "observe_eval"):
                        decisions += m.observe_eval(step, eval_row)
            stop, rolled_back = self._carry_out(decisions)
            if stop == "diverged":
                self.save_checkpoint(outcome="diverged")
                return "diverged", schema.EXIT_DIVERGED
            if stop == "early_stop":
                self.save_checkpoint(outcome="early_stop")
                return "early_stop", schema.EXIT_OK
            if rolled_back:
                continue  # the step counter went back; the rest of this iteration is stale
            if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                self._log_progress(row, rate_t0, rate_s0)
            if faults_armed and step == faults.sigterm_at_step:
                self.event("fault_injected", "warning", f"SIGTERM to self after step {step}",
                           {"fault": "sigterm"})
                os.kill(os.getpid(), signal.SIGTERM)
            if faults_armed and step == faults.sigkill_at_step:
                self.metrics.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            due = (step % cfg.checkpoint.every_steps == 0 or step == cfg.train.steps
                   or (cfg.checkpoint.every_seconds > 0 and
                       time.monotonic() - self._last_ckpt_time >= cfg.checkpoint.every_seconds)
                   or (faults_armed and step == faults.corrupt_checkpoint_at_step))
            if flag.is_set:
                self.event("signal", "warning", f"{flag.signal_name} received; checkpointing "
                           f"at step {step} and exiting for a requeue",
                           {"signal": flag.signal_name, "at_step": step})
                if self._last_ckpt_step != step:
                    self._scheduled_checkpoint(faults_armed)
                return "signal", schema.EXIT_RESUME
            if due and step < cfg.train.steps:
                self._scheduled_checkpoint(faults_armed)
            try:
                self.metrics.maybe_flush()
            except OSError as exc:  # disk full: rows stay buffered; retried on the timer
                log.error("metrics flush failed at step %d (rows kept in memory): %s", step, exc)
        self.save_checkpoint(outcome="finished")
        return "finished", schema.EXIT_OK

    def _scheduled_checkpoint(self, faults_armed: bool) -> None:
        self.save_checkpoint()
        if faults_armed and self.step == self.cfg.faults.corrupt_checkpoint_at_step:
            damage_checkpoint(self.ckpt.latest())
            self.event("fault_injected", "warning", f"checkpoint at step {self.step} damaged",
                       {"fault": "corrupt_checkpoint"})

    def _evaluate(self, step: int) -> dict:
        samples, traces = self.step_fn.generate(self.eval_z)
        row = eval_metrics(samples, self.data.holdout, self.data.centers, self.data.std)
        row.update(step=step, revision=self.revision, wall_time=time.time(),
                   fock_trace_min=float(np.min(traces)), fock_trace_mean=float(np.mean(traces)))
        self.metrics.add("evals", row)
        if self.cfg.eval.save_samples:
            self.metrics.write_samples(step, self.revision, samples[:self.cfg.eval.save_samples])
        return row

    def _carry_out(self, decisions: list[Decision]) -> tuple[str | None, bool]:
        """Record every decision and execute its actions; return (stop reason, rolled back)."""
        stop, rolled_back = None, False
        for d in decisions:
            if d.rollback:
                from_step = self.step
                evidence = self._rollback(d)
                self.event(d.kind, d.severity, d.message, {**d.data, **evidence}, step=from_step)
                self.event("checkpoint_restored", "warning", f"rolled back from step "
                           f"{from_step} to step {self.step}",
                           {"step": self.step, "from_step": from_step, "lr": self.lrs,
                            "revision": self.revision, "path": evidence["path"]})
                self.save_checkpoint()  # the rollback and its learning rates are now durable
                rolled_back = True
            else:
                self.event(d.kind, d.severity, d.message, d.data)
                for network, factor in d.lr_scale.items():
                    old = self.lrs[network]
                    self._set_lr(network, old * factor)
                    self.event("lr_change", "info", f"{network} learning rate {old:.3g} -> "
                               f"{old * factor:.3g} ({d.kind})",
                               {"network": network, "old": old, "new": old * factor,
                                "reason": d.kind})
            stop = stop or d.stop
        return stop, rolled_back

    def _rollback(self, d: Decision) -> dict:
        """Restore the newest checkpoint; monitors keep their in-memory state (no re-triggers).

        Steps replayed from here on carry revision + 1: fresh randomness, and their rows
        supersede the rolled-back ones.
        """
        info = self.ckpt.latest()
        restored = self.ckpt.restore(info)
        self._load_extra(restored.extra, monitors=False)
        self.revision = max(self.revision, int(restored.extra["revision"])) + 1
        for network, factor in d.lr_scale.items():
            self._set_lr(network, self.lrs[network] * factor)
        lrs = self.lrs
        return {"to_step": self.step, "g_lr": lrs["g"], "d_lr": lrs["d"], "path": info.name}

    def _log_progress(self, row: dict, t0: float, s0: int) -> None:
        total = self.cfg.train.steps
        elapsed = time.monotonic() - t0
        rate = (self.step - s0) / elapsed if elapsed > 0 else float("nan")
        eta = (total - self.step) / rate if rate > 0 else float("nan")
        flags = []
        if row["nonfinite"]:
            flags.append("NONFINITE")
        if row["fock_trace_min"] < 0.99:
            flags.append(f"LEAK(trace {row['fock_trace_min']:.3f})")
        if row["g_grad_live"] < 0.5:
            flags.append(f"DEAD-G({row['g_grad_live']:.0%})")
        if row["g_clipped"] or row["d_clipped"]:
            flags.append("CLIPPED")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "?"
        log.info("step %d/%d (%.0f%%) %.2f steps/s ETA %s | g %.4g d %.4g D(r) %.3g D(f) %.3g "
                 "| %s", self.step, total, 100 * self.step / total, rate, eta_text,
                 row["g_loss"], row["d_loss"], row["d_real"], row["d_fake"],
                 " ".join(flags) or "ok")
