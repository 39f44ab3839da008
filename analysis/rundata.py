"""Read run directories (the contract in qgan/schema.py) into pandas, tolerating damage.

Every part file is read on its own, so one corrupt or truncated part costs that part and a
finding, not the whole analysis. Every file is opened through the confined reader
(qgan.saferead: no link followed, regular files only, size and time bounds) and every JSON
record is schema-checked (qgan.records): a refused or mis-shaped file is a finding too. Per step the row with the largest (attempt, revision) is the
one that counts; the others are kept apart as evidence of lost work.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis.findings import EXPERIMENT, Finding
from analysis.rundirs import NotARunError, find_runs, is_run_dir
from analysis.series import as_int
from qgan import records, saferead, schema
from qgan.dataprofile import Profile, ProfileError
from qgan.dataprofile import read as read_profile
from qgan.vocabulary import FindingKind, StopCause

log = logging.getLogger(__name__)

_ATTEMPT_DIR = re.compile(r"^attempt=(\d+)$")  # (samples/; metric parts: schema.metric_parts)
_SAMPLE_FILE = re.compile(r"^step-(\d+)-r(\d+)\.parquet$")


@dataclass
class RunData:
    path: Path
    name: str
    info: dict[str, Any]
    config: dict[str, Any]  # flattened: dotted key -> value
    overrides: dict[str, Any]  # from experiment.json's task for this run
    steps: pd.DataFrame  # one row per step (largest attempt, revision), sorted by step
    steps_superseded: pd.DataFrame
    evals: pd.DataFrame
    evals_superseded: pd.DataFrame
    events: pd.DataFrame  # every event row, sorted by (attempt, wall_time)
    attempts: list[dict[str, Any]]
    problems: list[Finding] = field(default_factory=list)
    profile: Profile | None = None  # data_profile.json: the data's modes and reference values
    # False for a header (`run_header`): names and config only, every table empty; its
    # diagnosis came from the cache (analysis.diagnose.summarise_path)
    loaded: bool = True

    @property
    def total_steps(self) -> int | None:
        return as_int(self.info.get("total_steps", self.config.get("train.steps")))


@dataclass
class Experiment:
    path: Path
    name: str
    info: dict[str, Any]
    runs: list[RunData]
    problems: list[Finding] = field(default_factory=list)


def load(path: str | Path) -> Experiment:
    """A run or an experiment; a single run comes back as an experiment of one."""
    path = Path(path)
    if not path.is_dir():
        raise NotARunError(f"{path} is not a directory")
    if is_run_dir(path):
        run = load_run(path)
        return Experiment(path=path, name=run.name, info={}, runs=[run])
    return load_experiment(path)


def load_experiment(path: str | Path) -> Experiment:
    path, info, problems, run_dirs, overrides = experiment_plan(path)
    runs = [load_run(d, overrides.get(d.name, {})) for d in run_dirs]
    return assemble(path, info, problems, runs)


def experiment_plan(path: str | Path
                    ) -> tuple[Path, dict, list[Finding], list[Path], dict[str, dict]]:
    """(path, experiment.json, problems, run folders, swept values by run folder): what
    loading an experiment needs before its runs are read (one by one, or in parallel)."""
    path = Path(path)
    problems: list[Finding] = []
    info = _read_json(path / schema.EXPERIMENT_FILE, EXPERIMENT, problems, required=False,
                      kind="experiment", root=path)
    run_dirs = find_runs(path) if path.is_dir() else []
    if not run_dirs:
        raise NotARunError(f"{path} holds no run directories (folders with {schema.RUN_FILE} "
                           f"or {schema.METRICS_DIR}/) and is not a run itself")
    overrides = {}
    for task in info.get("tasks", []) if isinstance(info.get("tasks"), list) else []:
        if isinstance(task, dict) and isinstance(task.get("overrides"), dict):
            overrides[str(task.get("run"))] = task["overrides"]
    return path, info, problems, run_dirs, overrides


def assemble(path: Path, info: dict, problems: list[Finding], runs: list[RunData]
             ) -> Experiment:
    """The experiment of loaded `runs`. The runs of a sweep share one config, so run.json's
    name is often the same for all of them: then each run is named by its folder."""
    if len({r.name for r in runs}) < len(runs):
        for r in runs:
            rename(r, r.path.name)
    name = str(info.get("name") or path.name)
    return Experiment(path=path, name=name, info=info, runs=runs, problems=problems)


def rename(run: RunData, name: str) -> None:
    """Call the run `name`, in its findings too."""
    run.name = name
    for f in run.problems:
        f.run = name


def load_run(path: str | Path, overrides: dict[str, Any] | None = None) -> RunData:
    path = Path(path)
    if not is_run_dir(path):
        raise NotARunError(f"{path} is not a run directory (no {schema.RUN_FILE}, no "
                           f"{schema.METRICS_DIR}/)")
    problems: list[Finding] = []
    info = _read_json(path / schema.RUN_FILE, path.name, problems, required=True, kind="run",
                      root=path)
    name = str(info.get("name") or path.name)
    for f in problems:
        f.run = name
    config = _read_config(path, name, problems)
    steps, steps_old = _split_latest(_read_table(path, "steps", name, problems))
    evals, evals_old = _split_latest(_read_table(path, "evals", name, problems))
    events = _read_table(path, "events", name, problems)
    if not events.empty:
        events = events.sort_values(["attempt", "wall_time"], kind="mergesort",
                                    ignore_index=True)
    attempts = _read_attempts(path, name, problems)
    _check_columns(steps, "steps", name, problems)
    return RunData(path=path, name=name, info=info, config=config, overrides=overrides or {},
                   steps=steps, steps_superseded=steps_old, evals=evals,
                   evals_superseded=evals_old, events=events, attempts=attempts,
                   problems=problems, profile=_read_profile(path, name, problems))


def run_header(path: Path, name: str, overrides: dict[str, Any] | None = None) -> RunData:
    """A run without its tables: what the experiment's diagnosis and the report need of a run
    whose diagnosis and report payload are cached (its config, for the swept settings)."""
    empty = {t: _empty_frame_shared(t) for t in ("steps", "evals", "events")}
    return RunData(path=path, name=name, info={}, config=read_config(path),
                   overrides=overrides or {}, steps=empty["steps"],
                   steps_superseded=empty["steps"], evals=empty["evals"],
                   evals_superseded=empty["evals"], events=empty["events"], attempts=[],
                   loaded=False)


# ---- tables --------------------------------------------------------------------------------

def _empty_frame(table: str) -> pd.DataFrame:
    t = schema.empty_table(table)
    return t.append_column("attempt", pa.array([], pa.int32())).to_pandas()


@functools.lru_cache(maxsize=None)
def _empty_frame_shared(table: str) -> pd.DataFrame:
    """One empty frame per table for every header (read only: a header is never filled);
    building it from Arrow costs about a millisecond, once per run otherwise."""
    return _empty_frame(table)


class _PartSchemaError(ValueError):
    """A part whose rows cannot mean what the contract says (a key column missing, a value
    that does not fit its type, e.g. a fractional step)."""


def _conform(t: pa.Table, target: pa.Schema, attempt: int,
             later: frozenset[str] = frozenset()) -> tuple[pa.Table, list[str]]:
    """(`t` with exactly the contract's columns, differences found). Missing nullable columns
    become null and extra ones are dropped (both noted, except columns of `later`: the
    contract's additions, which a part written before them lacks by right); a missing key
    column or a value that does not cast losslessly (a fractional step) raises
    _PartSchemaError."""
    notes = []
    extra = [n for n in t.column_names if n not in target.names]
    missing = [n for n in target.names if n not in t.column_names]
    absent = [n for n in missing if n not in later]
    if extra:
        notes.append(f"extra column(s) {', '.join(extra)} (ignored)")
    if missing:
        required = [n for n in missing if not target.field(n).nullable]
        if required:
            raise _PartSchemaError(f"required column(s) {', '.join(required)} missing")
        if absent:
            notes.append(f"missing column(s) {', '.join(absent)} (read as empty)")
    cols = []
    for f in target:
        if f.name in t.column_names:
            col = t[f.name]
            if not col.type.equals(f.type):
                try:
                    col = col.cast(f.type)  # safe: 1.5 is not a step
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise _PartSchemaError(f"column {f.name} is {col.type}, not {f.type}, and "
                                           f"does not convert: {exc}") from None
                notes.append(f"column {f.name} is {t[f.name].type}, not {f.type}")
        else:
            col = pa.nulls(t.num_rows, f.type)
        if pa.types.is_boolean(f.type):
            col = pc.fill_null(col, False)
        cols.append(col)
    cols.append(pa.array(np.full(t.num_rows, attempt, np.int32)))
    return pa.Table.from_arrays(cols, names=target.names + ["attempt"]), notes


_SCHEMA_ADVICE = ("The toolkit writes every part with the contract's schema (qgan/schema.py), "
                  "so this part was written by other code or edited: outside readers "
                  "(DuckDB, pandas) see an inconsistent table. Move it out of the run "
                  "directory, or rewrite it with the contract's columns.")


def _read_table(run: Path, table: str, name: str, problems: list[Finding]) -> pd.DataFrame:
    root = run / schema.METRICS_DIR / table
    target = schema.SCHEMAS[table]
    if not root.is_dir():
        problems.append(Finding(FindingKind.MISSING_TABLE, "warning", name,
                                f"metrics/{table}/ is missing",
                                "Check the run's logs/: the trainer never flushed this table "
                                "(it died before the first flush, or ran another version)."))
        return _empty_frame(table)
    pieces = []
    for attempt, part in schema.metric_parts(run, table):
        rel = str(part.relative_to(run))
        evidence = {"part": rel, "table": table}
        try:
            piece, notes = _conform(saferead.read_parquet(part, "part", root=run), target,
                                    attempt, schema.LATER_COLUMNS[table])
        except saferead.ReadRefused as exc:  # a link, a FIFO, a huge file: never read
            problems.append(_refused(exc, name, f"part {rel}", evidence))
            continue
        except _PartSchemaError as exc:
            problems.append(Finding(
                FindingKind.PART_SCHEMA, "warning", name,
                f"part {rel} does not fit the {table} schema: {exc}; its rows are left out",
                _SCHEMA_ADVICE, evidence=evidence))
            continue
        except Exception as exc:  # noqa: BLE001 - any damage is a finding
            problems.append(Finding(
                FindingKind.CORRUPT_PART, "warning", name,
                f"unreadable part {rel}: {type(exc).__name__}: {exc}",
                "The rows in this part are lost to the analysis. Parts are written "
                "atomically, so damage means a disk or copy problem: check the file "
                "system, or re-copy the run directory.", evidence=evidence))
            continue
        pieces.append(piece)
        if notes:
            problems.append(Finding(
                FindingKind.PART_SCHEMA, "warning", name,
                f"part {rel} does not match the {table} schema: {'; '.join(notes)}",
                _SCHEMA_ADVICE, evidence=evidence))
    if not pieces or sum(p.num_rows for p in pieces) == 0:
        problems.append(Finding(FindingKind.EMPTY_TABLE, "warning", name,
                                f"metrics/{table}/ has no rows",
                                "The run produced no readable rows for this table; see logs/."))
        return _empty_frame(table)
    return pa.concat_tables(pieces).to_pandas()


def _split_latest(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows that count: largest attempt, revision per step; superseded rows)."""
    if df.empty:
        return df, df.copy()
    df = df.sort_values(["step", "attempt", "revision"], kind="mergesort", ignore_index=True)
    last = ~df["step"].duplicated(keep="last").to_numpy()
    return df[last].reset_index(drop=True), df[~last].reset_index(drop=True)


def _check_columns(steps: pd.DataFrame, table: str, name: str,
                   problems: list[Finding]) -> None:
    """All-null metric columns are reported once, so a missing curve is explained."""
    if steps.empty:
        return
    empty = [c for c in ("g_loss", "d_loss", "d_real", "d_fake", "g_grad_norm", "d_grad_norm",
                         "g_grad_live", "d_grad_live", "g_param_norm", "d_param_norm")
             if c in steps and steps[c].isna().all()]
    if empty:
        problems.append(Finding(FindingKind.EMPTY_COLUMNS, "info", name,
                                f"{table}: no values in {', '.join(empty)}",
                                "Diagnoses that need these columns were skipped.",
                                evidence={"columns": ", ".join(empty)}))


# ---- JSON / TOML side files ----------------------------------------------------------------

def _refused(exc: saferead.ReadRefused, name: str, what: str,
             evidence: dict | None = None) -> Finding:
    """A file the confined reader refused (a link out, a FIFO, over its size limit): a
    finding naming it, never a read through it."""
    link = exc.problem in ("link", "outside")
    return Finding(FindingKind.UNSAFE_PATH if link or exc.problem == "not_regular"
                   else FindingKind.CORRUPT_FILE, "warning", name, f"{what} not read: {exc}",
                   "A run directory holds its own regular files, written by the toolkit: "
                   "replace the link or the stranger by the real file (or move it away).",
                   evidence=evidence or {"file": str(exc.path)})


def _read_json(path: Path, name: str, problems: list[Finding], *, required: bool,
               kind: str, root: Path) -> dict:
    """A JSON record (`kind` in qgan.records.SPECS), confined below `root`, bounded and
    schema-checked: what does not fit is dropped and named in one finding."""
    loaded = records.load(path, kind, root=root)
    if loaded.missing:
        if required:
            problems.append(Finding(FindingKind.MISSING_FILE, "info", name,
                                    f"{path.name} is missing",
                                    "The run's identity is unknown; names come from folders."))
        return {}
    if loaded.problems:
        problems.append(Finding(
            FindingKind.CORRUPT_FILE, "warning", name,
            "; ".join(p.replace(str(path), path.name, 1) for p in loaded.problems[:3])
            + (f" (+{len(loaded.problems) - 3} more)" if len(loaded.problems) > 3 else "")
            + ("" if loaded.usable else "; not used"),
            "Restore it from the job's logs or resubmission record; the values shown are "
            "what remained usable.", evidence={"file": str(path)}))
    return loaded.doc or {}


def _read_profile(run: Path, name: str, problems: list[Finding]) -> Profile | None:
    """The run's data profile; None (and a finding) when it is damaged, None alone when it
    is absent (runs written before it existed)."""
    path = run / schema.PROFILE_FILE
    if not (path.exists() or path.is_symlink()):
        return None
    try:
        return read_profile(path)
    except ProfileError as exc:
        problems.append(Finding(FindingKind.CORRUPT_FILE, "warning", name,
                                f"{schema.PROFILE_FILE} is unusable: {exc}",
                                "The data's modes are unknown to the analysis (mode weights "
                                "and dropped modes are not judged); the trainer refuses to "
                                "resume until it is restored or moved away."))
        return None


def read_config(run: Path) -> dict[str, Any]:
    """A run's config, flattened (empty when it is missing or unusable)."""
    return _read_config(run, run.name, [])


def _read_config(run: Path, name: str, problems: list[Finding]) -> dict[str, Any]:
    path = run / schema.CONFIG_FILE
    try:
        return schema.dotted_keys(tomllib.loads(saferead.read_text(path, "config", root=run)))
    except FileNotFoundError:
        return {}
    except saferead.ReadRefused as exc:
        problems.append(_refused(exc, name, schema.CONFIG_FILE))
        return {}
    except Exception as exc:  # noqa: BLE001
        problems.append(Finding(FindingKind.CORRUPT_FILE, "warning", name,
                                f"{schema.CONFIG_FILE} is unreadable: {exc}",
                                "Hyperparameters of this run are unknown to the sweep analysis."))
        return {}


def _read_attempts(run: Path, name: str, problems: list[Finding]) -> list[dict[str, Any]]:
    folder = run / schema.ATTEMPTS_DIR
    if folder.is_symlink():
        problems.append(_refused(saferead.ReadRefused(folder, "link", (
            f"{folder} is a symbolic link (to {os.readlink(folder)}); not listed")), name,
            f"{schema.ATTEMPTS_DIR}/"))
    if not folder.is_dir():
        return []
    out = []
    for _, p in sorted(schema.attempt_numbers(run).items()):
        a = _read_json(p, name, problems, required=False, kind="attempt", root=run)
        if a:
            out.append(a)
    out = sorted(out, key=lambda a: a["attempt"])
    causes, jobs = _from_ledger(run, name, problems)
    for a in out:
        if a.get("attempt") in causes:
            a["stop_cause"] = causes[a["attempt"]]
        if a.get("attempt") in jobs:
            a["job_id"] = jobs[a["attempt"]]
    return out


_JOB_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")  # SLURM's 123 / 123_4, submitit's local ids


def _from_ledger(run: Path, name: str, problems: list[Finding]
                 ) -> tuple[dict[int, StopCause], dict[int, str]]:
    """({trainer attempt: why its job episode stopped}, {trainer attempt: the job id that ran
    it}), from the job layer's ledger (the job ids over resubmissions and requeues).

    The job layer decides a stop's cause once (jobs/task.py: exit status, signals, deadline);
    reading it here makes the report agree with `qgan status`. When several episodes name one
    attempt (a later episode died before its trainer started) the first one, which ran that
    attempt, counts. Unknown causes are ignored: the trainer's own record then decides."""
    doc = _read_json(run / schema.JOBS_FILE, name, problems, required=False, kind="jobs",
                     root=run)
    episodes = doc.get("episodes")
    out: dict[int, StopCause] = {}
    jobs: dict[int, str] = {}
    for e in episodes if isinstance(episodes, list) else []:
        if not isinstance(e, dict):
            continue
        attempt = as_int(e.get("trainer_attempt"))
        if attempt is None:
            continue
        job = e.get("job_id")
        if isinstance(job, (str, int)) and not isinstance(job, bool) and \
                _JOB_ID.fullmatch(str(job)):
            jobs.setdefault(attempt, str(job))
        try:
            out.setdefault(attempt, StopCause(e.get("stop_cause")))
        except ValueError:
            continue
    return out, jobs


# ---- samples -------------------------------------------------------------------------------

def sample_files(run: RunData) -> dict[int, Path]:
    """step -> the samples file that counts (largest attempt, revision) for that step. A
    linked `attempt=N` folder is never listed through."""
    root = run.path / schema.SAMPLES_DIR
    best: dict[int, tuple[int, int, Path]] = {}
    if not root.is_dir() or root.is_symlink():
        return {}
    for sub in root.iterdir():
        m = _ATTEMPT_DIR.match(sub.name)
        if not (m and sub.is_dir() and not sub.is_symlink()):
            continue
        for f in sub.iterdir():
            s = _SAMPLE_FILE.match(f.name)
            if s:
                step, key = int(s.group(1)), (int(m.group(1)), int(s.group(2)))
                if step not in best or key > best[step][:2]:
                    best[step] = (*key, f)
    return {k: v[2] for k, v in sorted(best.items())}


def read_samples(path: Path, root: Path | None = None) -> np.ndarray | None:
    """The x0..x{d-1} columns of a samples file as an (n, d) array; None if it is missing,
    unreadable or refused (a link out of `root`, the run directory; a FIFO; too large)."""
    try:
        t = saferead.read_parquet(path, "samples", root=root)
        cols = sorted((c for c in t.column_names if re.fullmatch(r"x\d+", c)),
                      key=lambda c: int(c[1:]))
        if not cols:
            return None
        return np.column_stack([t[c].to_numpy(zero_copy_only=False) for c in cols]).astype(float)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001
        log.warning("samples file %s not used: %s", path, exc)
        return None


def real_samples(run: RunData) -> np.ndarray | None:
    return read_samples(run.path / schema.SAMPLES_DIR / "real.parquet", root=run.path)
