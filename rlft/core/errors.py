"""User-facing errors and the wrapper that turns them into one-line exits.

Everything a user can get wrong (a recipe key, a path, a dataset column) is
raised as :class:`UserError`. Entry scripts run through :func:`run_cli`, which
prints ``error: <message>`` on stderr and exits with status 2, so a bad recipe
never shows a traceback and never leaves half-written output behind (the
checks run before anything is written).

Example:
    >>> from rlft.core.errors import UserError
    >>> str(UserError("unknown recipe key 'lr'"))
    "unknown recipe key 'lr'"
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence

EXIT_USAGE = 2
EXIT_TERMINATED = 128 + signal.SIGTERM

logger = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit), raised like Ctrl-C so cleanup code runs."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2 (subclasses may set ``exit_code``)."""


class RunStopped(RuntimeError):
    """A library layer stopped training mid-step: a failing reward, a rollout engine off the policy.

    Defined here so that every layer can raise it and the stage, which may
    import none of them, can catch it: :meth:`rlft.stage.run.StageRun.train`
    saves a checkpoint of the last finished step and ends the run with one
    line (exit code 3): the message, the checkpoint, then :attr:`advice`.

    Example:
        >>> RunStopped("the reward failed").advice
        'fix the cause and rerun with --resume'
    """

    advice = "fix the cause and rerun with --resume"


def one_line(message: str) -> str:
    """Collapse a message to a single line (library errors often span several)."""
    return " ".join(str(message).split())


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` becomes one stderr line and exit 2.

    SIGTERM unwinds like Ctrl-C (exit 143), so ``finally`` blocks run: without
    that, Python dies on the spot and a GRPO run's vLLM worker process (7 GB
    for the bundled model) outlives it, holding its memory.

    Example:
        >>> def main(argv):
        ...     raise UserError("recipe file not found: x.yaml")
        >>> run_cli(main, [])  # doctest: +SKIP
        error: recipe file not found: x.yaml
        2
    """
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        result = main(argv)
    except UserError as err:
        sys.stderr.write(f"error: {one_line(str(err))}\n")
        return getattr(err, "exit_code", EXIT_USAGE)
    except Terminated:
        sys.stderr.write("terminated\n")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    # A command that returns its own exit code (rlft doctor: 1 when something is missing) keeps it.
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
