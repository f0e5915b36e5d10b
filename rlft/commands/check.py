"""``rlft check RECIPE [--stage NAME] [--key value ...]``: every problem of a recipe in one pass, one line each.

    rlft check recipes/math.yaml
    rlft check their_grpo_config.yaml --stage grpo

A stage stops at the first problem, in one line, so that nothing half-starts;
a recipe with N problems would take N runs to see them all. ``rlft check``
reads the recipe as its stage does (:mod:`rlft.stage.parsing`) and, at each
refusal, notes it, sets the key aside and reads on: unknown and renamed keys,
wrong types, refused keys, values, what this machine lacks
(:mod:`rlft.stage.machine_checks`), reward names. Then, with what is left, as
the run would before its model loads: the data and its columns, the tokenizer
and chat template, every reward on the first training row (as TRL calls it)
and on the test split the closing table is scored on, and the memory plan.
No model is loaded. Each problem goes to stderr as ``error: ...``; exit 2 if
there is any, else 0 with one line on stdout.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from rlft.commands.ablate import stage_of, stage_recipe
from rlft.core.errors import UserError, one_line, run_cli
from rlft.core.recipe import load_recipe_file, recipe_sources
from rlft.core.runtime import discard_deferred_warnings
from rlft.stage import input_checks, parsing
from rlft.stage.memory_check import too_big
from rlft.stage.memory_plan import gb
from rlft.stage.skeleton import StageArgs

MAX_PROBLEMS = 50
#: Keys only a GRPO recipe has: a recipe without rlft's opening line that sets one is GRPO's.
GRPO_ONLY = ("reward_funcs", "num_generations", "max_completion_length", "use_vllm", "engine")

Sources = list[tuple[str, dict[str, Any]]]


def offending_key(message: str, sources: Sources) -> str | None:
    """The recipe key ``message`` is about: the one it names first (quoted, or before a colon).

    Example:
        >>> offending_key("unknown recipe key 'betta' (in r.yaml)", [("in r.yaml", {"betta": 1, "beta": 2})])
        'betta'
    """
    keys = {key for _, values in sources for key in values}
    found = [(match.start(), key) for key in keys
             if (match := re.search(rf"(?<![\w.]){re.escape(key)}(?![\w])", message))]
    return min(found)[1] if found else None


def without(sources: Sources, key: str) -> Sources:
    return [(label, {k: v for k, v in values.items() if k != key}) for label, values in sources]


def without_reward(sources: Sources, message: str) -> Sources | None:
    """``sources`` with the reward ``message`` names dropped from ``reward_funcs`` (and its weight)."""
    out = []
    dropped = False
    for label, values in sources:
        values = dict(values)
        names = values.get("reward_funcs")
        if isinstance(names, str):
            names = [n.strip() for n in names.strip("[]").split(",") if n.strip()]
        for index, name in enumerate(names or []):
            if f"'{name}'" in message or f"{name}:" in message:
                values["reward_funcs"] = names[:index] + names[index + 1:]
                weights = values.get("reward_weights")
                if isinstance(weights, list) and len(weights) > index:
                    values["reward_weights"] = weights[:index] + weights[index + 1:]
                dropped = True
                break
        out.append((label, values))
    return out if dropped else None


def read(runner: Any, sources: Sources, problems: list[str]) -> Any | None:
    """The recipe's arguments, read past each refusal (noted in ``problems``); ``None`` when one cannot be set
    aside."""
    for _ in range(MAX_PROBLEMS):
        try:
            resolved = parsing.read_sources(runner, sources, warn=False)
            parts = parsing.build_instances(runner.argument_types(), parsing.run_values(resolved))
            return StageArgs(parts, resolved)
        except UserError as err:
            message = one_line(str(err))
            problems.append(message)
            rest = without_reward(sources, message) if "reward" in message else None
            if rest is None:
                key = offending_key(message, sources)
                if key is None:
                    return None
                rest = without(sources, key)
            sources = rest
    return None


def before_the_model(runner: Any, args: Any, problems: list[str]) -> str | None:
    """What a run checks before its model loads, to the first problem; the memory plan's line when all pass."""
    try:
        args = runner.settle(args)
        splits, tokenizer, _ = runner.prepare(args)
        scoring = runner.scoring_rewards(args) if args.eval.eval_before_after else []
        input_checks.check_scoring(splits["test"], scoring, max(args.eval.eval_samples, 1),
                                   bool(runner.tools and runner.tools.has_environment))
        args, plan = runner.fit_auto(args, runner.memory_plan(args, splits, tokenizer))
    except UserError as err:
        problems.append(one_line(str(err)))
        return None
    if plan is None:
        return "no memory plan (made for CPU runs of Llama-style models)"
    if not plan.fits and args.run.memory_check == "error":
        problems.append(f"memory plan: {too_big(plan)}")
        return None
    return f"memory plan {gb(plan.peak)} of {gb(plan.available)}"


def grpo_by_its_keys(recipe: str) -> str:
    """The stage the recipe's opening line names, else GRPO for a recipe with GRPO's keys (a TRL-era config)."""
    try:
        return stage_of(recipe)
    except UserError:
        values = load_recipe_file(recipe) or {}
        if any(key in values for key in GRPO_ONLY):
            return "grpo"
        raise


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0])
        return 0 if argv else 2
    entry, argv = stage_recipe(argv, "check", guess=grpo_by_its_keys)
    recipe = argv[0]
    runner, problems = entry.stage(), []
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # stderr holds the problems, one line each
    try:
        args = read(runner, recipe_sources(argv), problems)
        summary = before_the_model(runner, args, problems) if args is not None else None
    finally:
        discard_deferred_warnings()
    for problem in problems:
        sys.stderr.write(f"error: {problem}\n")
    if problems:
        return 2
    print(f"ok: rlft {entry.name} {recipe}: no problems found (keys, machine, data, rewards; {summary})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
