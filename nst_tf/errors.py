"""The exceptions a run ends with on purpose: `UserError` for mistakes a user can fix (bad files, flags,
layer names, diverging runs), `Interrupted` for Ctrl-C and SIGTERM.

`run.py` prints a UserError's message as a single line and exits with status 2, an Interrupted one with
status 130; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input; the message says what is wrong and what to do."""


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after saving its last image (run.py exits 130)."""
