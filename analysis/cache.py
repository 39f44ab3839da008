"""Each run's diagnosis, cached in the run directory and recomputed only when what it read
changed; runs that need (re)diagnosis are loaded and diagnosed in parallel processes.

The cache, `<run>/.diagnosis-cache.json` (schema.DIAGNOSIS_CACHE_FILE), is three lines: a
header (format, the key it was computed for, an HMAC-SHA256 of each other line, bound to the
key and the line), the diagnosis with its resolved thresholds (findings, verdict and every reason, headline numbers, phases,
attempt timeline, best checkpoint, advice, the watched metric's curve, and what the live
verdict needs), and the `extras` upper layers derive from the run's data (`Extra`: the
report's per-run payload), so a run that did not change is never loaded. It is used only when

- the key equals the one computed now from what the diagnosis reads: every metrics part and
  attempt record (name, size, mtime, ctime, inode; never followed), run.json, config.toml,
  jobs.json, data_profile.json, the checkpoints' files, the run folder's own device and inode
  (a cache copied from another run is refused), the run's name and swept values, the
  thresholds, the toolkit's version and the analysis code itself (a changed rule recomputes);
- its MAC verifies with this user's key (`$XDG_CACHE_HOME/qgan/diagnosis.key`, 32 random bytes,
  mode 0600, made on first use): a cache written by anyone without that key is refused;
- and every field has the shape and type this module writes (a strict schema, no pickle).

Anything else (damaged, forged, stale, a link, oversized) is logged, ignored, and replaced by
a fresh diagnosis. A run directory that cannot be written still gets diagnosed, uncached.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
import hashlib
import hmac
import json
import logging
import multiprocessing
import os
import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from analysis import thresholds as _thresholds
from analysis.advice import Advice
from analysis.best import BestCheckpoint
from analysis.diagnosis import RunDiagnosis
from analysis.findings import Finding
from qgan import __version__, saferead, schema
from qgan.atomic import atomic_write_bytes
from qgan.schema import SEVERITIES
from qgan.vocabulary import FindingKind, Verdict

if TYPE_CHECKING:  # loading and diagnosing only on a miss: a hit needs no pandas
    from analysis.rundata import RunData

log = logging.getLogger(__name__)

FORMAT = 2  # 2: a header line (format, key, MAC over the body's bytes), then the body
KEY_ENV = "QGAN_CACHE_KEY_FILE"  # where the MAC key lives (default: XDG cache folder)


class CacheRefused(ValueError):
    """A cache file that is not a cache this user wrote for exactly these inputs."""


# ---- what the diagnosis read ----------------------------------------------------------------

def _stat_line(path: str | Path, label: str) -> str:
    try:
        st = os.lstat(path)
    except OSError:
        return f"{label}:-"
    return f"{label}:{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _tree_lines(root: str, label: str, depth: int) -> list[str]:
    """lstat of every entry below `root` down to `depth` levels, links never followed."""
    out = [_stat_line(root, label)]
    if depth <= 0 or os.path.islink(root) or not os.path.isdir(root):
        return out
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        out += _tree_lines(os.path.join(root, name), f"{label}/{name}", depth - 1)
    return out


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The toolkit's version plus a digest of the analysis code: a changed rule invalidates
    every cache, a release number alone would not."""
    h = hashlib.sha256(__version__.encode())
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def cache_key(run_dir: Path, name: str, overrides: dict[str, Any], given: dict[str, float]
              ) -> str:
    """The digest of everything one run's diagnosis reads (see the module docstring). The
    thresholds enter as the caller's overrides (`given`): with config.toml's stat and the
    code's digest they determine the resolved thresholds, which the cache stores, so that a
    hit reads no config."""
    lines = [f"format:{FORMAT}", f"code:{code_version()}", f"name:{name}",
             "overrides:" + json.dumps(overrides, sort_keys=True, default=str),
             "thresholds:" + json.dumps(given, sort_keys=True)]
    try:
        st = run_dir.stat()
        lines.append(f"run:{st.st_dev}:{st.st_ino}")
    except OSError:
        lines.append("run:-")
    for table in ("steps", "evals", "events"):
        for attempt, part in schema.metric_parts(run_dir, table):
            lines.append(_stat_line(part, f"{table}/{attempt}/{part.name}"))
    for n, p in sorted(schema.attempt_numbers(run_dir).items()):
        lines.append(_stat_line(Path(str(p)), f"attempt/{n}"))
    for f in (schema.RUN_FILE, schema.CONFIG_FILE, schema.JOBS_FILE, schema.PROFILE_FILE,
              schema.ATTEMPTS_DIR):
        lines.append(_stat_line(os.path.join(run_dir, f), f))
    lines += _tree_lines(os.path.join(run_dir, schema.CHECKPOINT_DIR), schema.CHECKPOINT_DIR, 2)
    # file names are bytes on disk: a name that is not UTF-8 arrives as surrogates
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogateescape")).hexdigest()


# ---- the MAC key ----------------------------------------------------------------------------

def _key_path() -> Path:
    if os.environ.get(KEY_ENV):
        return Path(os.environ[KEY_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qgan" / "diagnosis.key"


@functools.lru_cache(maxsize=4)
def _mac_key(path: Path) -> bytes | None:
    """This user's key (made on first use), or None when it cannot be had: then nothing is
    cached (a cache nobody can authenticate is worth nothing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        except FileExistsError:
            pass
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                log.warning("diagnosis cache key %s is not private to this user: caching off",
                            path)
                return None
            key = fh.read(64)
    except OSError as exc:
        log.info("no diagnosis cache key (%s): caching off", exc)
        return None
    return key if len(key) == 32 else None


def _mac(key: bytes, cache_for: str, line: str, text: str) -> str:
    """HMAC-SHA256 of one line of the cache, bound to the key it was computed for and to
    which line it is (neither can be moved to another file or line)."""
    return hmac.new(key, f"{cache_for}\n{line}\n{text}".encode(), hashlib.sha256).hexdigest()


# ---- the document: to JSON and strictly back ------------------------------------------------

def _plain(v: Any) -> Any:
    """JSON-safe Python values (numpy scalars in, tuples as lists)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return v


def to_doc(rd: RunDiagnosis) -> dict[str, Any]:
    """The diagnosis of one run as JSON (everything but the run's data)."""
    evals = rd.run.evals
    return _plain({
        "name": rd.run.name, "verdict": rd.verdict.value, "verdict_reason": rd.verdict_reason,
        "flags": [f.value for f in rd.flags], "reasons": [[k, v] for k, v in rd.reasons.items()],
        "findings": [f.to_dict() for f in rd.findings], "numbers": rd.numbers,
        "phases": [list(p) for p in rd.phases], "timeline": rd.timeline,
        "best": rd.best.to_dict() if rd.best is not None else None,
        "advice": [a.to_dict() for a in rd.advice],
        "curve": [[s, v] for s, v in rd.curve],
        "live": {"evals": int(len(evals)),
                 "last_step": int(rd.run.steps["step"].max()) if not rd.run.steps.empty
                 else None,
                 "total_steps": rd.run.total_steps},
    })


_SCALAR = (str, int, float, bool, type(None))


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise CacheRefused(what)


def _scalars(v: Any, what: str, depth: int = 2) -> None:
    """Only JSON scalars, lists and string-keyed objects, nested at most `depth` deep."""
    if isinstance(v, _SCALAR):
        return
    _need(depth > 0, f"{what} nests too deeply")
    if isinstance(v, list):
        for x in v:
            _scalars(x, what, depth - 1)
        return
    _need(isinstance(v, dict) and all(isinstance(k, str) for k in v), f"{what} is not plain")
    for x in v.values():
        _scalars(x, what, depth - 1)


def _opt_int(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool))


def _finding(d: Any) -> Finding:
    _need(isinstance(d, dict) and set(d) == {"kind", "severity", "run", "summary", "advice",
                                             "start_step", "end_step", "evidence"},
          "a finding has other fields")
    _need(d["kind"] in set(FindingKind) and d["severity"] in SEVERITIES,
          "a finding of an unknown kind or severity")
    _need(all(isinstance(d[k], str) for k in ("run", "summary", "advice")),
          "a finding's text is not text")
    _need(_opt_int(d["start_step"]) and _opt_int(d["end_step"]), "a finding's steps")
    _need(isinstance(d["evidence"], dict), "a finding's evidence")
    _scalars(d["evidence"], "evidence")
    return Finding(**d)


def _advice(d: Any) -> Advice:
    fields = {"text", "key", "direction", "steps", "evidence", "kinds", "panel", "severity",
              "phases"}
    _need(isinstance(d, dict) and set(d) == fields, "an advice has other fields")
    _need(all(isinstance(d[k], str) for k in ("text", "key", "direction", "evidence", "panel",
                                               "severity")), "an advice's text")
    _need(isinstance(d["steps"], list) and all(
        isinstance(s, list) and len(s) == 2 and all(_opt_int(x) and x is not None for x in s)
        for s in d["steps"]), "an advice's step ranges")
    _need(isinstance(d["kinds"], list) and all(k in set(FindingKind) for k in d["kinds"]),
          "an advice's kinds")
    _need(isinstance(d["phases"], list) and all(isinstance(p, dict) for p in d["phases"]),
          "an advice's phases")
    _scalars(d["phases"], "advice phases", 4)  # [{"steps": [[start, end], ...], ...}]
    return Advice(**{**d, "steps": [tuple(s) for s in d["steps"]]})


def _best(d: Any) -> BestCheckpoint | None:
    if d is None:
        return None
    _need(isinstance(d, dict) and set(d) == {"metric", "mode", "step", "value", "checkpoint",
                                             "kept", "note"}, "the best checkpoint's fields")
    _need(isinstance(d["metric"], str) and d["mode"] in ("min", "max") and
          isinstance(d["step"], int) and isinstance(d["value"], (int, float)) and
          isinstance(d["kept"], bool) and isinstance(d["note"], str) and
          (d["checkpoint"] is None or isinstance(d["checkpoint"], str)),
          "the best checkpoint's values")
    return BestCheckpoint(**{**d, "checkpoint": Path(d["checkpoint"]) if d["checkpoint"]
                             else None})


_TIMELINE = {"attempt", "start_time", "end_time", "start_step", "end_step", "cause", "signal",
             "exit_status", "job", "lost_steps", "lost_range", "lost_seconds"}


def _timeline(items: Any) -> list[dict]:
    _need(isinstance(items, list), "the timeline")
    out = []
    for t in items:
        _need(isinstance(t, dict) and set(t) == _TIMELINE, "a timeline entry's fields")
        _scalars(t, "a timeline entry")
        r = t["lost_range"]
        _need(r is None or (isinstance(r, list) and len(r) == 2 and all(
            isinstance(x, int) for x in r)), "a timeline's lost range")
        out.append({**t, "lost_range": tuple(r) if r is not None else None})
    return out


def check_doc(doc: Any, name: str) -> list[Finding]:
    """Validate a cached diagnosis document of the run `name` field by field; its findings.
    CacheRefused when anything is not what to_doc writes."""
    keys = {"name", "verdict", "verdict_reason", "flags", "reasons", "findings", "numbers",
            "phases", "timeline", "best", "advice", "curve", "live"}
    _need(isinstance(doc, dict) and set(doc) == keys, "the diagnosis has other fields")
    _need(doc["name"] == name, "the diagnosis names another run")
    verdicts = {v.value for v in Verdict}
    _need(doc["verdict"] in verdicts and isinstance(doc["verdict_reason"], str), "the verdict")
    _need(isinstance(doc["flags"], list) and all(f in verdicts for f in doc["flags"]),
          "the flags")
    _need(isinstance(doc["reasons"], list) and all(
        isinstance(p, list) and len(p) == 2 and p[0] in verdicts and isinstance(p[1], str)
        for p in doc["reasons"]), "the reasons")
    _need(isinstance(doc["numbers"], dict), "the numbers")
    _scalars(doc["numbers"], "the numbers", 1)
    _need(isinstance(doc["phases"], list) and all(
        isinstance(p, list) and len(p) == 3 and isinstance(p[0], str) and
        isinstance(p[1], int) and isinstance(p[2], int) for p in doc["phases"]), "the phases")
    _need(isinstance(doc["findings"], list) and isinstance(doc["advice"], list), "the lists")
    _need(isinstance(doc["curve"], list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], int) and
        not isinstance(p[0], bool) and isinstance(p[1], float) for p in doc["curve"]),
        "the watched metric's curve")
    live = doc["live"]
    _need(isinstance(live, dict) and set(live) == {"evals", "last_step", "total_steps"} and
          all(_opt_int(v) for v in live.values()), "the live numbers")
    try:
        return [_finding(f) for f in doc["findings"]]
    except (TypeError, ValueError) as exc:
        raise CacheRefused(f"a finding does not construct: {exc}") from None


def from_doc(doc: Any, run: RunData) -> RunDiagnosis:
    """The cached diagnosis back as a RunDiagnosis of `run`; CacheRefused when any field is not
    what to_doc writes."""
    findings = check_doc(doc, run.name)
    try:
        return RunDiagnosis(
            run, findings, Verdict(doc["verdict"]),
            doc["verdict_reason"], dict(doc["numbers"]), [tuple(p) for p in doc["phases"]],
            _timeline(doc["timeline"]), [Verdict(f) for f in doc["flags"]],
            {k: v for k, v in doc["reasons"]}, _best(doc["best"]),
            [_advice(a) for a in doc["advice"]], [(s, v) for s, v in doc["curve"]])
    except (TypeError, ValueError) as exc:
        raise CacheRefused(f"a field does not construct: {exc}") from None


# ---- what upper layers cache beside the diagnosis -------------------------------------------

@dataclass(frozen=True)
class Extra:
    """Something an upper layer derives from a loaded run and its diagnosis, cached in the
    same document under `name` (e.g. the report's per-run payload: reports/runpart.py), so
    that a run that did not change is never loaded again. `compute` must return plain JSON;
    `check` raises ValueError for anything `compute` could not have written (the document is
    untrusted input like every file); `code` is a digest of the code that computes it: a
    changed payload recomputes, an unchanged diagnosis is reused."""
    name: str
    compute: Callable[[RunData, RunDiagnosis], Any]
    check: Callable[[Any], None]
    code: str


def _extras_of(body: dict, extras: tuple[Extra, ...]) -> dict[str, Any] | None:
    """{name: document} of every wanted extra in a cache body, or None when one is missing,
    from other code, or refused by its check."""
    if not extras:
        return {}
    have = body.get("extras")
    if not isinstance(have, dict):
        return None
    out = {}
    for e in extras:
        got = have.get(e.name)
        if not (isinstance(got, dict) and set(got) == {"code", "doc"} and got["code"] == e.code):
            return None
        try:
            e.check(got["doc"])
        except (TypeError, ValueError, KeyError) as exc:
            log.warning("cached %s refused: %s; computing it again", e.name, exc)
            return None
        out[e.name] = got["doc"]
    return out


# ---- read, write --------------------------------------------------------------------------

def read(run_dir: Path, key: str, extras: bool = True) -> dict | None:
    """The cached body ({"diagnosis", "thresholds", "extras"}) for `key`, or None (absent,
    stale, damaged, forged). The file is three lines: a header (format, key, one MAC per
    line), the diagnosis with its thresholds, the extras; each MAC covers the key and its
    line's bytes as stored and is checked before the line is parsed. `extras` false leaves
    the (larger) extras line unread: "extras" is then None (`qgan status` and the pruner need
    the diagnosis alone)."""
    path = run_dir / schema.DIAGNOSIS_CACHE_FILE
    mac_key = _mac_key(_key_path())
    if mac_key is None or not (path.exists() or path.is_symlink()):
        return None
    try:
        text = saferead.read_text(path, "diagnosis_cache", root=run_dir)
        head, _, rest = text.partition("\n")
        if head == "{":  # a format-1 cache (one indented document): stale, not damaged
            log.debug("diagnosis cache of %s has an older format", run_dir)
            return None
        doc = json.loads(head)
        _need(isinstance(doc, dict), "not a diagnosis cache")
        if doc.get("format") != FORMAT or doc.get("key") != key:  # other inputs or code
            log.debug("diagnosis cache of %s is stale", run_dir)
            return None
        _need(set(doc) == {"format", "key", "macs"}, "not a diagnosis cache")
        diagnosis_text, newline, extras_text = rest.removesuffix("\n").partition("\n")
        macs = doc["macs"]
        _need(bool(newline) and isinstance(macs, list) and len(macs) == 2 and
              all(isinstance(m, str) for m in macs), "not two lines with a MAC each")
        _need(hmac.compare_digest(macs[0], _mac(mac_key, key, "diagnosis", diagnosis_text)) and
              (not extras or hmac.compare_digest(
                  macs[1], _mac(mac_key, key, "extras", extras_text))),
              "its MAC does not verify (written by someone else, or edited)")
        line = json.loads(diagnosis_text)
        _need(isinstance(line, dict) and set(line) == {"diagnosis", "thresholds"},
              "the diagnosis line has other fields")
        th = line["thresholds"]
        _need(isinstance(th, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in th.items()), "the thresholds")
        body = {"diagnosis": line["diagnosis"], "thresholds": th,
                "extras": json.loads(extras_text) if extras else None}
        _need(not extras or isinstance(body["extras"], dict), "the extras are not an object")
        return body
    except RecursionError:
        log.warning("diagnosis cache %s refused: nests too deeply; diagnosing again", path)
        return None
    except (OSError, ValueError) as exc:  # ReadRefused, JSON errors and CacheRefused
        log.warning("diagnosis cache %s refused: %s; diagnosing again", path, exc)
        return None


def write(run_dir: Path, key: str, body: dict) -> None:
    mac_key = _mac_key(_key_path())
    if mac_key is None:
        return
    try:
        diagnosis, extras = (json.dumps(x, separators=(",", ":"), allow_nan=True) for x in (
            {"diagnosis": body["diagnosis"], "thresholds": body["thresholds"]}, body["extras"]))
        head = json.dumps({"format": FORMAT, "key": key,
                           "macs": [_mac(mac_key, key, "diagnosis", diagnosis),
                                    _mac(mac_key, key, "extras", extras)]})
        # derived data: complete or absent, not worth an fsync
        atomic_write_bytes(run_dir / schema.DIAGNOSIS_CACHE_FILE,
                           f"{head}\n{diagnosis}\n{extras}\n".encode(), durable=False)
    except (OSError, UnicodeEncodeError, TypeError, ValueError) as exc:
        # a name that is not UTF-8, or a value JSON cannot hold: not cached
        log.debug("diagnosis cache of %s not written: %s", run_dir, exc)


def diagnose_cached(run: RunData, given: dict[str, float], extras: tuple[Extra, ...] = ()
                    ) -> tuple[RunDiagnosis, bool]:
    """(the run's diagnosis with `extras` filled in, whether it all came from the cache);
    `given`: the caller's threshold overrides (analysis.thresholds.read_overrides)."""
    from analysis.rundiagnose import diagnose_run  # lazy: only a miss diagnoses (pandas)

    th = _thresholds.resolve(given, run.config)
    key = cache_key(run.path, run.name, run.overrides, given)
    body = read(run.path, key)  # extras parsed: a rewrite keeps the ones not asked for
    rd = None
    if body is not None:
        try:
            rd = from_doc(body["diagnosis"], run)
        except CacheRefused as exc:
            log.warning("diagnosis cache of %s refused: %s; diagnosing again", run.path, exc)
            body = None
    if rd is not None:
        have = _extras_of(body, extras)
        if have is not None:
            rd.extras = have
            return rd, True
        kept = {k: v for k, v in body["extras"].items()
                if isinstance(v, dict) and k not in {e.name for e in extras}}
    else:
        rd, kept = diagnose_run(run, th), {}
    rd.extras = {e.name: e.compute(run, rd) for e in extras}
    write(run.path, key, {"diagnosis": to_doc(rd), "thresholds": th,
                          "extras": kept | {e.name: {"code": e.code, "doc": rd.extras[e.name]}
                                            for e in extras}})
    return rd, False


# ---- many runs, in parallel ---------------------------------------------------------------

class Entry(NamedTuple):
    """One run's cached diagnosis as the callers that do not load the run use it."""
    doc: dict  # to_doc's document
    findings: list[Finding]
    thresholds: dict[str, float]
    extras: dict[str, Any]


def _job(args: tuple[str, str, dict, dict, tuple[Extra, ...]]
         ) -> tuple[dict, dict[str, float], dict, bool]:
    """In a worker: load one run and diagnose it (cache first); only JSON comes back (the
    run's data stays in the worker: shipping DataFrames back cost more than it saved)."""
    from analysis.rundata import load_run, rename  # lazy: only a miss loads a run (pandas)

    path, name, overrides, given, extras = args
    run = load_run(Path(path), overrides)
    if run.name != name:
        rename(run, name)
    rd, hit = diagnose_cached(run, given, extras)
    return to_doc(rd), _thresholds.resolve(given, run.config), rd.extras, hit


def _pool_map(jobs: list[tuple], n_workers: int | None) -> list[tuple]:
    n = n_workers or workers(len(jobs))
    if n <= 1 or len(jobs) < 4:
        return [_job(j) for j in jobs]
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_job, jobs, chunksize=max(1, len(jobs) // (4 * n))))


def workers(n_runs: int) -> int:
    """Processes for `n_runs` runs: the CPUs this process may use, at most one per run."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, n_runs))


def entries(run_dirs: list[Path], names: list[str], overrides: dict[str, dict],
            given: dict[str, float], n_workers: int | None = None,
            extras: tuple[Extra, ...] = ()) -> dict[Path, Entry]:
    """Every run's cached diagnosis and `extras`, without loading the runs whose cache holds
    them all; the others are loaded, diagnosed and cached in parallel processes."""
    out: dict[Path, Entry] = {}
    misses = []
    for d, name in zip(run_dirs, names):
        body = read(d, cache_key(d, name, overrides.get(d.name, {}), given), bool(extras))
        have = _extras_of(body, extras) if body is not None else None
        if have is not None:
            try:
                out[d] = Entry(body["diagnosis"], check_doc(body["diagnosis"], name),
                               body["thresholds"], have)
                continue
            except CacheRefused as exc:
                log.warning("diagnosis cache of %s refused: %s; diagnosing again", d, exc)
        misses.append((d, name))
    jobs = [(str(d), name, overrides.get(d.name, {}), given, extras) for d, name in misses]
    for (d, name), (doc, th, got, _) in zip(misses, _pool_map(jobs, n_workers)):
        out[d] = Entry(doc, check_doc(doc, name), th, got)
    return out


def docs(run_dirs: list[Path], names: list[str], overrides: dict[str, dict],
         given: dict[str, float], n_workers: int | None = None
         ) -> dict[Path, tuple[dict, list[Finding], dict[str, float]]]:
    """{run folder: (diagnosis document, its findings, its thresholds)}: what `qgan status`
    and the pruner need (`entries` without extras)."""
    return {d: e[:3] for d, e in entries(run_dirs, names, overrides, given, n_workers).items()}
