"""One module per `qgan` subcommand (see jobs/cli.py)."""
