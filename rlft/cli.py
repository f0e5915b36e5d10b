"""The ``rlft`` console script: ``rlft <stage> recipes/<name>.yaml [--key value ...]``.

Each stage is a module with ``main(argv)``; ``rlft sft ...`` is the same as
``python -m rlft.sft ...`` and ``accelerate launch rlft/sft.py ...``.

Example:
    >>> sorted(STAGES)
    ['grpo', 'rewards', 'sft']
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from rlft.errors import EXIT_USAGE, run_cli

STAGES = {
    "sft": ("rlft.sft", "supervised fine-tuning on worked solutions"),
    "grpo": ("rlft.grpo", "GRPO with verifiable rewards"),
    "rewards": ("rlft.reward_check", "score literal completions with a recipe's rewards"),
}


def usage() -> str:
    lines = ["usage: rlft <stage> RECIPE.yaml [--key value ...]", "", "stages:"]
    lines += [f"  {name:<8} {about}" for name, (_, about) in STAGES.items()]
    lines += ["", "`rlft <stage> --help` lists every recipe key of a stage."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    stage, rest = argv[0], argv[1:]
    if stage not in STAGES:
        sys.stderr.write(f"error: unknown stage {stage!r}; stages: {', '.join(STAGES)}\n")
        return EXIT_USAGE
    module = importlib.import_module(STAGES[stage][0])
    sys.argv = [f"rlft {stage}", *rest]
    return run_cli(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
