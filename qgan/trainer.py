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
import math
import os
import signal
import time
from pathlib import Path

import numpy as np

from qgan import schema, thresholds
from qgan.checkpoints import (CheckpointManager, CheckpointMismatchError,
                              CheckpointWriteError, RestoreResult, damage_checkpoint)
from qgan.config import Config
from qgan.data import DataError, Dataset, load_dataset
from qgan.dataprofile import ProfileError, load_or_create
from qgan.dataprofile import read as read_profile
from qgan.evals import Evaluator
from qgan.generator_kinds import info as kind_info
from qgan.metrics import MetricsWriter, write_parquet
from qgan.step import AdversarialStep
from qgan.tbevents import LiveMirror
from qgan.models import build_models, check_dimensions, latent_uniform
from qgan.monitors import (CollapseMonitor, DeadGradientWatch, Decision, EarlyStopping, Guard,
                           LRController, MonitorList)
from qgan.atomic import UnsafePathError
from qgan.rundir import (Attempt, RunDirError, RunLock, apply_config, move_aside, open_run_dir,
                         plan_config, storage_error)
from qgan.sampling import interpolation
from qgan.signals import StopFlag
from qgan.tflib import configure_tensorflow
from qgan.vocabulary import METRIC_MODE, AttemptEnd, better

log = logging.getLogger(__name__)

_STEP_COLUMNS = [f.name for f in schema.STEPS_SCHEMA]


class UnverifiedCheckpointsError(RuntimeError):
    """Checkpoints exist and none verifies (damage, or an I/O error while verifying): the
    trainer stops without touching anything (exit EXIT_UNVERIFIED). Starting over is the
    user's explicit choice (`--fresh`), which moves the old state aside."""


def train(cfg: Config, run_dir: Path, *, allow_config_change: bool = False,
          stop_flag: StopFlag | None = None, lock_wait: float = 0.0,
          fresh: bool = False) -> int:
    """Run (or resume) one training run in run_dir. Raises DataError/RunDirError for bad input,
    RunLockedError if another trainer holds the run directory (after `lock_wait` seconds),
    UnverifiedCheckpointsError if it holds checkpoints and none verifies, StorageError if the
    run directory cannot be written at start-up (disk full).

    Nothing is written into an existing run directory before every check has passed (config,
    checkpoints that fit and verify): a refused command leaves it exactly as it was.
    `fresh`: start over, moving the old state to `superseded/<time>/` (never deleting it).
    `stop_flag`: a StopFlag the caller installed early (before importing TensorFlow), so that a
    signal arriving during start-up is not lost; by default one is installed here.
    """
    if stop_flag is None:
        with StopFlag() as flag:
            return train(cfg, run_dir, allow_config_change=allow_config_change, stop_flag=flag,
                         lock_wait=lock_wait, fresh=fresh)
    configure_tensorflow()
    data = load_dataset(cfg.data, cfg.run.seed)
    problems = check_dimensions(cfg, data.dim)
    if problems:
        raise DataError("; ".join(problems))
    run_dir = open_run_dir(Path(run_dir))
    with RunLock(run_dir, lock_wait) as lock:
        plan = plan_config(run_dir, cfg, allow_config_change)  # reads only
        cfg = plan.cfg  # its "auto" settings resolved
        if fresh:
            move_aside(run_dir)
        trainer = Trainer(cfg, run_dir, data)
        restored = trainer.restore()  # reads only; refuses what does not fit or verify
        trainer.check_profile()  # reads only
        apply_config(run_dir, cfg, plan)  # every check passed: now the run is written
        lock.note()
        return trainer.run(stop_flag, restored)


class Trainer:
    def __init__(self, cfg: Config, run_dir: Path, data: Dataset):
        self.cfg = cfg
        self.run_dir = run_dir
        self.data = data
        # the one construction of what a checkpoint holds (shared with `qgan sample`)
        self.models = build_models(cfg, data.dim)
        self.gen, self.disc = self.models.generator, self.models.discriminator
        self.g_opt, self.d_opt = self.models.g_opt, self.models.d_opt
        compiled = (not kind_info(cfg.generator).circuit or cfg.generator.backend == "compiled") and (
            cfg.discriminator.kind == "mlp" or cfg.generator.backend == "compiled")
        self.step_fn = AdversarialStep(cfg, self.gen, self.disc, self.g_opt, self.d_opt, data,
                                       compiled, self.models.generators)
        # read-only until the restore has succeeded (open_for_writing): a refused start
        # leaves checkpoints/ as it was
        self.ckpt = CheckpointManager(run_dir / schema.CHECKPOINT_DIR, self.models.trackables(),
                                      keep=cfg.checkpoint.keep, read_only=True)
        self.guard = Guard(cfg.guard)
        self.monitors = MonitorList({"guard": self.guard,
                                     "dead": DeadGradientWatch(cfg.monitor),
                                     "collapse": CollapseMonitor(cfg.monitor),
                                     "early_stop": EarlyStopping(cfg.monitor),
                                     "lr_controller": LRController(cfg.monitor, cfg.loss.kind)})
        self.eval_z = latent_uniform(cfg, cfg.eval.n_samples, [cfg.run.seed, 0xE7A1])
        # the best eval so far (checkpoint.keep_best): metric, mode, value, step, folder; it
        # travels in extra.json, so a resume carries it on exactly
        self.best: dict | None = None
        self.step = 0
        self.revision = 0
        self.metrics: MetricsWriter | None = None
        self.tb = None  # the TensorBoard mirror of this attempt (metrics.tensorboard)
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
                "monitors": self.monitors.state_dict(),
                "best": self.best, "outcome": outcome}

    def _load_extra(self, extra: dict, *, monitors: bool) -> None:
        self.step = int(extra["step"])
        self.revision = int(extra["revision"])
        for network, value in extra["lr"].items():
            self._set_lr(network, value)
        if monitors:  # a rollback keeps them (and the best so far) as they are in memory
            self.monitors.load_state_dict(extra["monitors"])
            self.best = extra.get("best")

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
    def restore(self) -> RestoreResult | None:
        """Restore the newest checkpoint that verifies (None: a run with no checkpoint yet).
        Writes nothing. Raises RunDirError when the checkpoints do not fit this config, and
        UnverifiedCheckpointsError when checkpoints exist and none verifies: starting over
        then would delete them (keep-N rotation, the best kept elsewhere), so the trainer
        stops instead."""
        try:
            restored = self.ckpt.restore_latest()
        except CheckpointMismatchError as exc:
            raise RunDirError(f"the checkpoints in {self.run_dir} do not fit the models of "
                              f"this config ({exc}); was the run directory made for another "
                              "model? Use a new --run-dir (nothing was changed).") from None
        if restored is not None:
            return restored
        try:
            present = self.ckpt.present()
        except OSError as exc:
            present = [f"(the folder cannot be listed: {exc.strerror or exc})"]
        if present:
            why = "; ".join(f"{getattr(w, 'name', w)}: {r}"
                            for w, r in self.ckpt.last_rejected[:2])
            more = len(self.ckpt.last_rejected) - 2
            raise UnverifiedCheckpointsError(
                f"{self.ckpt.directory} holds {len(present)} checkpoint folder(s) "
                f"({', '.join(present[:4])}{' ...' if len(present) > 4 else ''}) and none "
                f"verifies ({why or 'none can be described'}"
                f"{f'; +{more} more' if more > 0 else ''}). Nothing was changed or deleted. "
                "If this was a passing I/O error, run again; to start over, run again with "
                f"--fresh: the old state is moved to {self.run_dir / schema.SUPERSEDED_DIR}"
                "/<time>/, never deleted")
        return None

    def run(self, flag: StopFlag, restored: RestoreResult | None) -> int:
        """The attempt, after `restore` (the run directory is written from here on)."""
        try:
            self.ckpt.open_for_writing()
        except OSError as exc:
            raise storage_error(exc, "opening the checkpoints folder") from None
        self.evaluate = self._evaluator()
        outcome = restored.extra.get("outcome") if restored else None
        if outcome == AttemptEnd.FINISHED and restored.extra["step"] < self.cfg.train.steps:
            outcome = None  # train.steps was raised (--allow-config-change): train on
        if outcome is not None:
            log.info("run %s already ended (%s) at step %s; nothing to do", self.run_dir,
                     outcome, restored.extra["step"])
            return schema.EXIT_DIVERGED if outcome == AttemptEnd.DIVERGED else schema.EXIT_OK
        try:
            self.attempt = Attempt(self.run_dir)
            self.metrics = MetricsWriter(self.run_dir, self.attempt.number,
                                         self.cfg.metrics.flush_seconds)
            if restored is not None:
                self._load_extra(restored.extra, monitors=True)
            self.attempt.update(start_step=self.step + 1,
                                resumed_from=self.step if restored is not None else None)
        except OSError as exc:  # nothing trained yet: a full disk stops here, resumably
            raise storage_error(exc, "starting an attempt") from None
        self._open_tensorboard()
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
        self._flush("attempt start")  # the start is evidence even if it is killed at once
        if not (self.run_dir / schema.SAMPLES_DIR / "real.parquet").is_file():
            self._write("samples/real.parquet", self.metrics.write_real_samples,
                        self.data.holdout)
        if restored is None:
            # only a fresh run fits its readout (a resumed one restores it: the fit, a forward
            # of 512 latents, would be wasted start-up time at every requeue; issue 14)
            self.models.generators.init_readout(self.cfg, self.data.train)
            self.save_checkpoint()
        try:
            reason, status = self._loop(flag)
        except Exception as exc:
            self.event("attempt_end", "error", f"crash: {type(exc).__name__}: {exc}",
                       {"reason": AttemptEnd.CRASH, "exit_status": schema.EXIT_CRASH})
            self._flush("attempt end")
            self._close_attempt(AttemptEnd.CRASH, schema.EXIT_CRASH, None)
            raise
        self.event("attempt_end", "info", f"attempt {self.attempt.number} ended: {reason}",
                   {"reason": reason, "exit_status": status, "signal": flag.signal_name})
        self._flush("attempt end")
        self._close_attempt(reason, status, flag.signal_name)
        return status

    def check_profile(self) -> None:
        """Refuse a damaged data profile before anything is written (reads only)."""
        path = self.run_dir / schema.PROFILE_FILE
        if path.exists() or path.is_symlink():
            try:
                read_profile(path)
            except ProfileError as exc:
                raise RunDirError(self._profile_advice(exc)) from None

    @staticmethod
    def _profile_advice(exc: ProfileError) -> str:
        return (f"{exc}. It records the modes the evals measure against, found once at the "
                "run's first attempt; restore it, or move it out of the run directory to "
                "profile the data again (later evals are then measured against the new "
                "modes). Nothing was changed.")

    def _evaluator(self) -> Evaluator:
        """The eval metrics against the run's data profile: read from the run directory, or
        made (and written) at the first attempt, before anything else of the attempt."""
        d, e = self.data, self.cfg.eval
        try:
            profile = load_or_create(self.run_dir, d.train, d.holdout, d.centers, d.std,
                                     seed=self.cfg.run.seed, eval_size=e.n_samples,
                                     max_modes=e.data_modes_max)
        except ProfileError as exc:
            raise RunDirError(self._profile_advice(exc)) from None
        except OSError as exc:
            raise storage_error(exc, f"writing {schema.PROFILE_FILE}") from None
        return Evaluator(d.holdout, d.centers, d.std, profile, e.n_samples)

    # -- writes that may fail (disk full): recorded, never fatal -----------------------------
    def _flush(self, when: str) -> bool:
        """Flush metrics; on failure the rows stay buffered for the next flush."""
        try:
            self.metrics.flush()
            return True
        except OSError as exc:
            log.error("metrics flush failed at %s, step %d (rows kept in memory): %s", when,
                      self.step, exc)
            return False

    def _write(self, what: str, writer, *args) -> None:
        """A samples file: evidence, not state. A failed write is an event; training goes on
        and the files already written are intact (writes are atomic)."""
        try:
            writer(*args)
        except (OSError, UnsafePathError) as exc:
            self.event("write_failed", "error", f"writing {what} failed at step {self.step}: "
                       f"{exc}", {"what": what, "error": str(exc)})

    def _open_tensorboard(self) -> None:
        """metrics.tensorboard: this attempt's event file, starting at its first step
        (qgan/tbevents.py says why that is resume-safe). A failure to open it is recorded
        and training goes on without it: it is a view, the Parquet tables are the record."""
        if not self.cfg.metrics.tensorboard:
            return

        try:
            self.tb = LiveMirror(self.run_dir, self.attempt.number, self.step + 1)
        except Exception as exc:  # noqa: BLE001 - OSError, UnsafePathError, TensorFlow's
            # errors, MissingTensorBoard: a view that cannot open never stops training
            self.event("write_failed", "error", f"TensorBoard event file not opened: {exc}; "
                       "training goes on without it", {"what": "tensorboard",
                                                        "error": str(exc)})
            return
        self.metrics.mirror = self.tb

    def _close_attempt(self, reason: str, status: int, signal_name: str | None) -> None:
        if self.tb is not None:
            try:
                self.tb.close()
            except Exception as exc:  # noqa: BLE001 - a view, never fatal
                log.error("could not close the TensorBoard event file: %s", exc)
        try:
            self.attempt.close(reason, status, self.step, signal_name)
        except OSError as exc:  # the attempt file keeps its start (end_time null)
            log.error("could not record the end of attempt %d: %s", self.attempt.number, exc)

    def _final_checkpoint(self, outcome: str, status: int) -> tuple[str, int]:
        """The run's last checkpoint decides whether it ended: if it cannot be written (disk
        full), stop resumably so a later attempt redoes the steps since the last good one."""
        if self.save_checkpoint(outcome=outcome):
            return outcome, status
        log.error("stopping: the final checkpoint at step %d could not be written; run again "
                  "when there is room (exit %d): the run resumes from its newest checkpoint",
                  self.step, schema.EXIT_RESUME)
        return AttemptEnd.WRITE_FAILED, schema.EXIT_RESUME

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
                return AttemptEnd.SIGNAL, schema.EXIT_RESUME
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
            decisions = self.monitors.observe_step(step, row)
            if step % cfg.eval.every_steps == 0 or step == cfg.train.steps:
                eval_row = self._evaluate(step)
                self._keep_best(step, eval_row)
                decisions += self.monitors.observe_eval(step, eval_row)
            stop, rolled_back = self._carry_out(decisions)
            if stop == AttemptEnd.DIVERGED:
                return self._final_checkpoint(AttemptEnd.DIVERGED, schema.EXIT_DIVERGED)
            if stop == AttemptEnd.EARLY_STOP:
                return self._final_checkpoint(AttemptEnd.EARLY_STOP, schema.EXIT_OK)
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
                return AttemptEnd.SIGNAL, schema.EXIT_RESUME
            if due and step < cfg.train.steps:
                self._scheduled_checkpoint(faults_armed)
            if self.metrics.due():  # disk full: rows stay buffered; retried on the timer
                self._flush("the flush timer")
        return self._final_checkpoint(AttemptEnd.FINISHED, schema.EXIT_OK)

    def _scheduled_checkpoint(self, faults_armed: bool) -> None:
        self.save_checkpoint()
        if faults_armed and self.step == self.cfg.faults.corrupt_checkpoint_at_step:
            damage_checkpoint(self.ckpt.latest())
            self.event("fault_injected", "warning", f"checkpoint at step {self.step} damaged",
                       {"fault": "corrupt_checkpoint"})

    def _evaluate(self, step: int) -> dict:
        samples, traces = self.step_fn.generate(self.eval_z)
        row = self.evaluate(samples)
        row.update(step=step, revision=self.revision, wall_time=time.time(),
                   fock_trace_min=float(np.min(traces)), fock_trace_mean=float(np.mean(traces)))
        self.metrics.add("evals", row)
        if self.cfg.eval.save_samples:
            self._write(f"the samples of step {step}", self.metrics.write_samples, step,
                        self.revision, samples[:self.cfg.eval.save_samples])
        return row

    def _keep_best(self, step: int, row: dict) -> None:
        """At an eval that improves checkpoint.best_metric, keep this state as the best
        checkpoint (outside the rotation) and map the latent line through it. A failed write
        is recorded and training goes on; the previous best stays."""
        c = self.cfg.checkpoint
        if not c.keep_best:
            return
        value = float(row[c.best_metric])
        if self.best is not None and self.best.get("metric") != c.best_metric:
            self.best = None  # checkpoint.best_metric changed on resume: a new best from here
        if not math.isfinite(value) or (
                self.best is not None and not better(c.best_metric, value, self.best["value"])):
            return
        started = time.monotonic()
        best = {"metric": c.best_metric, "mode": METRIC_MODE[c.best_metric], "value": value,
                "step": step}
        try:
            info = self.ckpt.save_best(step, {**self._extra(), "best": best},
                                       metric=c.best_metric, mode=best["mode"], value=value)
        except (OSError, CheckpointWriteError) as exc:
            self.event("checkpoint_failed", "error", f"best checkpoint at step {step} failed: "
                       f"{exc}", {"error": str(exc), "best": True})
            return
        self.best = {**best, "folder": info.name}
        self.event("best_checkpoint", "info", f"best {c.best_metric} {value:.4g} at step {step} "
                   f"kept in {info.name}", {**self.best, "path": info.name,
                                            "seconds": round(time.monotonic() - started, 4)})
        points = self.cfg.eval.interpolation_points
        if points:
            path = self.run_dir / schema.SAMPLES_DIR / schema.INTERPOLATION_FILE
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_parquet(path, interpolation(self.cfg, self.models.sampling, step, points),
                              {"qgan.checkpoint": info.name, "qgan.step": str(step)})
            except OSError as exc:  # evidence only: training goes on
                log.warning("could not write %s: %s", path, exc)

    def _carry_out(self, decisions: list[Decision]) -> tuple[str | None, bool]:
        """Record every decision and execute its actions; return (stop reason, rolled back)."""
        stop, rolled_back = None, False
        for d in decisions:
            if d.rollback:
                from_step = self.step
                evidence = self._rollback(d)
                if self.tb is not None:  # the replayed steps supersede the rolled-back ones
                    self.tb.restart(self.step + 1)
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
        if row["fock_trace_min"] < thresholds.value("leak_trace"):
            flags.append(f"LEAK(trace {row['fock_trace_min']:.3f})")
        if row["g_grad_live"] < thresholds.value("grad_live_warn"):
            flags.append(f"DEAD-G({row['g_grad_live']:.0%})")
        if row["g_clipped"] or row["d_clipped"]:
            flags.append("CLIPPED")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "?"
        log.info("step %d/%d (%.0f%%) %.2f steps/s ETA %s | g %.4g d %.4g D(r) %.3g D(f) %.3g "
                 "| %s", self.step, total, 100 * self.step / total, rate, eta_text,
                 row["g_loss"], row["d_loss"], row["d_real"], row["d_fake"],
                 " ".join(flags) or "ok")
