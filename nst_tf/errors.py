"""The exceptions a run ends with on purpose: `UserError` for mistakes a user can fix (bad files, flags,
layer names), with `Diverged` (a non-finite loss) and `OutOfMemory` its kinds that a run's status names,
and `Interrupted` for Ctrl-C and SIGTERM.

`nst_tf.lifecycle` turns them into a run's status and the command line's last line and exit status: a
UserError's message as a single line and status 2, an Interrupted one status 130; anything else is a bug,
keeps its traceback and exits 1.

`request_stop` / `stop_if_requested`: the run's signal handler (`nst_tf.lifecycle`) raises KeyboardInterrupt
at once, but Python drops an exception raised while a finalizer runs (it prints "Exception ignored in ..."
and goes on; TensorFlow's objects have finalizers), so that one can be lost. The handler also records the
request, and each step loop calls `stop_if_requested`, so a stop asked for is never dropped.
"""


class UserError(Exception):
    """A problem with the user's input; the message says what is wrong and what to do."""


class Diverged(UserError):
    """The loss became non-finite; the run kept its last good image (status "diverged")."""


class OutOfMemory(UserError):
    """The accelerator or the host ran out of memory; the message says which option to lower."""


class Interrupted(Exception):
    """The run was stopped by Ctrl-C or SIGTERM after saving its last image (run.py exits 130)."""


_stop_requested = False


def request_stop(requested: bool = True) -> None:
    """Records that Ctrl-C or SIGTERM asked the running run to stop (False: the run has ended)."""
    global _stop_requested
    _stop_requested = requested


def stop_if_requested() -> None:
    """Raises KeyboardInterrupt when a stop was asked for and the caller, a step loop, still runs: the
    signal handler's own KeyboardInterrupt was lost in a finalizer."""
    if _stop_requested:
        raise KeyboardInterrupt


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
