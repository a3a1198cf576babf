"""The one mark of an error whose message is all a user needs (bad input, a missing or corrupt file, a full
disk): the command line prints it as one line and exits 2; anything else is a bug and keeps its traceback."""
from __future__ import annotations


class UserError(Exception):
    """Mixed into each such error type beside its Python base (``class SuiteError(UserError, ValueError)``), so
    that code catching the base keeps working."""
