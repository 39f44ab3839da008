"""The job layer's commands: one module per `qgan` subcommand (qgan/commandline.py)."""

COMMANDS = ("submit", "status", "cancel", "resubmit", "extend", "drill")
