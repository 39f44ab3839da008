"""qgan: the resumable continuous-variable quantum GAN trainer.

Knows nothing of SLURM or reports; talks to the rest of the toolkit only through the run
directory (see qgan.schema).
"""

__version__ = "0.1.0"
