"""Memory plans of runs that are still to come: ``rlft plan``, and a pipeline or grid checked before it starts.

A pipeline or an ablation grid runs its stages one after another; a stage
that does not fit would be refused only when its turn comes, after the ones
before it trained. :func:`check_ahead` makes every run's plan first (data
and tokenizer read, no weights loaded) and refuses the whole in one line,
naming the run and the change that would fit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rlft.core.errors import UserError, one_line
from rlft.core.runtime import discard_deferred_warnings
from rlft.stage import registry
from rlft.stage.memory_check import too_big
from rlft.stage.skeleton import StageArgs

logger = logging.getLogger(__name__)


def plan_of(stage: str, argv: Sequence[str]) -> tuple[Any, Any]:
    """The settled arguments of ``rlft <stage> argv`` and their memory plan (``None`` where none is made), with
    ``auto`` keys chosen, as the run would make them before its model loads.

    Example:
        >>> args, plan = plan_of("sft", ["recipes/sft.yaml"])  # doctest: +SKIP
        >>> plan.fits  # doctest: +SKIP
        True
    """
    runner = registry.get(stage).stage()
    args = runner.settle(StageArgs(*runner.parse(argv)))
    splits, tokenizer, _ = runner.prepare(args)
    return runner.fit_auto(args, runner.memory_plan(args, splits, tokenizer))


def check_ahead(runs: Sequence[tuple[str, str, list[str]]]) -> None:
    """Plan each ``(label, stage, argv)`` and refuse, in one line, the first that does not fit (unless its
    recipe says ``memory_check: warn`` or ``off``, which logs it).

    Once every run is planned, each plan is logged on one line under its
    label (a refusal is the only line). Notes the parses queue are dropped
    (each run logs its own when it starts).
    """
    lines = []
    try:
        for label, stage, argv in runs:
            try:
                args, plan = plan_of(stage, argv)
            except UserError as err:
                raise UserError(f"{label}: {one_line(str(err))}") from None
            if plan is None:
                continue
            lines.append(f"{label}: {plan.line()}")
            if not plan.fits and args.run.memory_check == "error":
                raise UserError(f"{label}: memory plan: {too_big(plan)} (memory_check: warn runs it anyway); "
                                "nothing has run")
    finally:
        discard_deferred_warnings()
    for line in lines:
        logger.info(line)
