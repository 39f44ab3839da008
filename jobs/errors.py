"""Errors that are the user's to fix: the CLI prints them without a traceback, exit 2."""


class UserError(Exception):
    """A mistake in the input (config, path, option). The message names the problem and fix."""
