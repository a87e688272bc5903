"""The exceptions a run ends with on purpose: `UserError` for mistakes a user can fix (bad files, flags,
layer names), with `Diverged` (a non-finite loss) and `OutOfMemory` its kinds that a run's status names,
and `Interrupted` for Ctrl-C and SIGTERM.

`nst_tf.lifecycle` turns them into a run's status and the command line's last line and exit status: a
UserError's message as a single line and status 2, an Interrupted one status 130; anything else is a bug,
keeps its traceback and exits 1.
"""


class UserError(Exception):
    """A problem with the user's input; the message says what is wrong and what to do."""


class Diverged(UserError):
    """The loss became non-finite; the run kept its last good image (status "diverged")."""


class OutOfMemory(UserError):
    """The accelerator or the host ran out of memory; the message says which option to lower."""


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after saving its last image (run.py exits 130)."""


class MissingExtra(UserError):
    """An optional part of nst_tf is not installed; the message names the pip extra that brings it."""


def require(module: str, extra: str, what: str) -> None:
    """MissingExtra, in one line naming the extra to install, when `module` (needed for `what`) cannot be
    imported. Checks without importing it (Ray takes seconds)."""
    import importlib.util
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):   # a module set to None in sys.modules, or a broken package
        found = False
    if not found:
        raise MissingExtra(f"{what} needs {module}, which is not installed: pip install \"nst_tf[{extra}]\" "
                           f"(or pip install -e \".[{extra}]\" in a checkout).")
