"""The morning report: `<experiment>/report.html`, written when the experiment's jobs have
ended, by the local queue after its last run and on SLURM by a small job that depends on the
array(s) (`--dependency=afterany:`). Either way the outcome is recorded in experiment.json
(`report`: state, time, exit status, log), and `qgan status` shows it; a report that fails says
why in its own log and there.

    python -m jobs.report_job EXPERIMENT_DIR LOG     (what the SLURM report job runs)
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from jobs import ledger
from qgan import saferead
from qgan.sanitise import install_safe_logging
from qgan.schema import REPORT_FILE

log = logging.getLogger(__name__)

TIMEOUT_S = 3600.0


def record(exp_dir: Path, **fields: object) -> None:
    def change(exp: dict) -> None:
        current = exp.get("report") if isinstance(exp.get("report"), dict) else {}
        exp["report"] = {**current, **fields}

    ledger.update_experiment(exp_dir, change)


def write(exp_dir: Path, log_path: Path) -> int:
    """Run `qgan report EXP` (its output and errors go to `log_path`); record the outcome."""
    record(exp_dir, state="running", started=time.time(), log=str(log_path))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:  # never appended through a link planted in the experiment (O_NOFOLLOW)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        why = f"cannot open the report log {log_path}: {exc.strerror or exc}"
        record(exp_dir, state="failed", ended=time.time(), exit=2, path=None, error=why)
        log.error("report of %s: %s", exp_dir, why)
        return 2
    with os.fdopen(fd, "ab") as out:
        try:
            status = subprocess.run([sys.executable, "-m", "reports", "report", str(exp_dir),
                                     "-o", str(exp_dir / REPORT_FILE)], stdout=out,
                                    stderr=subprocess.STDOUT, timeout=TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            status = 124
    why = "" if status == 0 else _last_line(log_path)
    record(exp_dir, state="written" if status == 0 else "failed", ended=time.time(),
           exit=status, path=str(exp_dir / REPORT_FILE) if status == 0 else None, error=why)
    log.log(logging.INFO if status == 0 else logging.ERROR, "report of %s: exit %s %s",
            exp_dir, status, why)
    return status


def _last_line(path: Path) -> str:
    lines = saferead.tail_lines(path, 1)
    return lines[-1][:300] if lines else ""


def describe(exp: dict) -> str:
    """One line for `qgan status` ("" when no report was asked for)."""
    rep = exp.get("report") if isinstance(exp, dict) else None
    if not isinstance(rep, dict):
        return ""
    state = rep.get("state")
    if state == "written":
        return f"report: {rep.get('path')} (written {_clock(rep.get('ended'))})"
    if state == "failed":
        where = f"; log {rep['log']}" if rep.get("log") else ""
        return f"report: FAILED (exit {rep.get('exit')}): {rep.get('error') or '?'}{where}"
    if state == "running":
        return f"report: being written since {_clock(rep.get('started'))} (log {rep.get('log')})"
    job = rep.get("job_id")
    return f"report: job {job} waits for every run to end" if job else \
        "report: written when the last run ends"


def wait(exp_dir: Path, timeout: float = TIMEOUT_S) -> str:
    """Wait until the report of the experiment is written or has failed; its status line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rep = (ledger.read_experiment(exp_dir) or {}).get("report")
        if not isinstance(rep, dict) or rep.get("state") in ("written", "failed"):
            break
        time.sleep(1.0)
    return describe(ledger.read_experiment(exp_dir) or {}) or "report: none was asked for"


def _clock(when: object) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when)) if isinstance(when, (int, float)) \
        else "?"


def main(argv: list[str]) -> int:
    install_safe_logging(logging.INFO, "%(asctime)s %(levelname)s %(message)s")
    return write(Path(argv[0]), Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
