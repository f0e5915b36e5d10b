"""User-facing errors and the wrapper that turns them into one-line exits.

Everything a user can get wrong (a recipe key, a path, a dataset column) is
raised as :class:`UserError`. Entry scripts run through :func:`run_cli`, which
prints ``error: <message>`` on stderr and exits with status 2, so a bad recipe
never shows a traceback and never leaves half-written output behind (the
checks run before anything is written).

Example:
    >>> from rlft.errors import UserError
    >>> str(UserError("unknown recipe key 'lr'"))
    "unknown recipe key 'lr'"
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence

EXIT_USAGE = 2

logger = logging.getLogger(__name__)


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2 (subclasses may set ``exit_code``)."""


def one_line(message: str) -> str:
    """Collapse a message to a single line (library errors often span several)."""
    return " ".join(str(message).split())


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`UserError` becomes one stderr line and exit 2.

    Example:
        >>> def main(argv):
        ...     raise UserError("recipe file not found: x.yaml")
        >>> run_cli(main, [])  # doctest: +SKIP
        error: recipe file not found: x.yaml
        2
    """
    try:
        main(argv)
    except UserError as err:
        sys.stderr.write(f"error: {one_line(str(err))}\n")
        return getattr(err, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0
