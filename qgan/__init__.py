"""qgan: the resumable continuous-variable quantum GAN trainer.

Knows nothing of SLURM or reports; talks to the rest of the toolkit only through the run
directory (see qgan.schema).
"""

# The one place the version is written: pyproject.toml reads it (dynamic version), `qgan
# --version` prints it and run.json records it.
__version__ = "0.1.0"
