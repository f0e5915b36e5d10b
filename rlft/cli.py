"""The ``rlft`` console script: ``rlft <stage> recipes/<name>.yaml [--key value ...]``.

What each name runs is in :mod:`rlft.stage.registry`; ``rlft sft ...`` is the same as
``python -m rlft.sft ...`` and ``accelerate launch rlft/sft.py ...``.

Example:
    >>> print(usage().splitlines()[3])
      sft      supervised fine-tuning on worked solutions
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rlft.core.errors import EXIT_USAGE, run_cli
from rlft.stage import registry


def usage() -> str:
    lines = ["usage: rlft <stage> RECIPE.yaml [--key value ...]", "", "stages:"]
    lines += [f"  {entry.name:<8} {entry.about}" for entry in registry.entries()]
    lines += ["", "`rlft <stage> --help` lists every recipe key of a stage."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    stage, rest = argv[0], argv[1:]
    if stage not in registry.names():
        sys.stderr.write(f"error: unknown stage {stage!r}; stages: {', '.join(registry.names())}\n")
        return EXIT_USAGE
    sys.argv = [f"rlft {stage}", *rest]
    return run_cli(registry.get(stage).main(), rest)


if __name__ == "__main__":
    sys.exit(main())
