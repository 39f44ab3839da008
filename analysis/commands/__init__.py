"""The analysis layer's command: one module per `qgan` subcommand (qgan/commandline.py)."""

COMMANDS = ("diagnose",)
