"""The training layer's commands: one module per `qgan` subcommand (qgan/commandline.py)."""

COMMANDS = ("config", "train", "sample")
