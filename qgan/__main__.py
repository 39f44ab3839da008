"""`python -m qgan`: the training layer's commands (config, train, sample) without loading the
layers above; what the job layer starts for each attempt."""

import sys

from qgan.commandline import main

if __name__ == "__main__":
    sys.exit(main(("qgan",)))
