"""`python -m reports`: diagnose and the report layer's commands (report, figures, export),
without the job layer; what the report job at the end of a sweep starts."""

import sys

from qgan.commandline import main

if __name__ == "__main__":
    sys.exit(main(("analysis", "reports")))
