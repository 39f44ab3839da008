"""The report layer's commands: one module per `qgan` subcommand (qgan/commandline.py)."""

COMMANDS = ("report", "figures", "export")
