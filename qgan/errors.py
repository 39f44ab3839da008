"""Errors that are the user's to fix: the CLI prints them without a traceback, exit 2."""

from qgan.saferead import ReadRefused, check_input_path


class UserError(Exception):
    """A mistake in the input (config, path, option). The message names the problem and fix."""


def checked_path(path, what: str = "PATH"):
    """A path from the command line, checked before any work (qgan.saferead.check_input_path):
    a name too long for the file system, a path under a regular file, a dangling link or a
    missing path is a UserError (one line, exit 2), not a traceback later."""
    try:
        return check_input_path(path, what)
    except ReadRefused as exc:
        raise UserError(str(exc)) from None
