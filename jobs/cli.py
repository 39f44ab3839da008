"""The `qgan` entry point: every layer's commands, stacked (qgan/commandline.py does the work).

Each layer owns its commands: qgan (config, train, sample), analysis (diagnose), reports
(report, figures, export), jobs (submit, status, cancel, resubmit, extend, drill).

`python -m jobs.cli` is also what attempts of toolkit 0.1.0 started (`python -m jobs.cli train
...`), so a job submitted before an upgrade and requeued after it still runs. Keep this shim
through the 0.2 releases, remove it in 0.3 (tests/test_layers.py checks it until then); new
attempts start `python -m qgan train`.
"""

from __future__ import annotations

import sys

from qgan import commandline

PACKAGES = ("qgan", "analysis", "reports", "jobs")


def main(argv: list[str] | None = None) -> int:
    return commandline.main(PACKAGES, argv)


if __name__ == "__main__":
    sys.exit(main())
