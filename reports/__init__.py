"""reports: one self-contained HTML postmortem per run or experiment; figures for papers and
talks (reports.figures, matplotlib) and TensorBoard logs (reports.tensorboard).

    from reports import report
    path = report("runs/my-sweep")                      # writes runs/my-sweep/report.html
"""

import importlib
from typing import Any

__all__ = ["render_html", "report", "write_report"]


def __getattr__(name: str) -> Any:
    """The exports, imported on first use (PEP 562): every command line imports
    `reports.commands` to list its commands, and must not pay for the renderer (pandas,
    Jinja2) unless a report is written."""
    if name not in __all__:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    value = getattr(importlib.import_module("reports.render"), name)
    globals()[name] = value
    return value
