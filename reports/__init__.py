"""reports: one self-contained HTML postmortem per run or experiment; figures for papers and
talks (reports.figures, matplotlib) and TensorBoard logs (reports.tensorboard).

    from reports import report
    path = report("runs/my-sweep")                      # writes runs/my-sweep/report.html
"""

from reports.render import render_html, report, write_report

__all__ = ["render_html", "report", "write_report"]
