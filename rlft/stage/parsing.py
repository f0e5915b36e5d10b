"""The one way a training stage reads its recipe, and the checks it makes, in one order:

    argv -> recipe file + command line -> the stage's key table (types, defaults, old names)
         -> values converted, unknown keys and wrong types refused
         -> rlft's value checks (refused keys, lora_r, counts, reward names)
         -> the argument dataclasses (TRL's config last)

Everything up to the dataclasses reads the key table
(:mod:`rlft.stage.key_table`) and imports no third-party package, so a bad
recipe is refused in its one line before torch loads; the table is the
dataclasses' own fields, so the words are the same whether the table was
cached or had to be built. Each check is written once, here or in
:mod:`rlft.core.recipe`.

Parsing is pure: it reads the machine's platform defaults (``use_cpu`` where
no GPU is visible) but measures nothing and leaves the process environment as
it found it. What the machine decides (bf16 on a CPU where it is slow, the
launcher's precision, TRL settings a stage derives) happens once, after
parsing, in :meth:`rlft.stage.skeleton.TrainingStage.settle`.

Example:
    >>> check_values("sft", {"max_steps": 0}, {})
    Traceback (most recent call last):
    ...
    rlft.core.errors.UserError: max_steps must be positive (or -1 to train num_train_epochs), got 0
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Sequence
from dataclasses import MISSING, fields
from types import SimpleNamespace
from typing import Any, Literal

import rewards
from rlft.core.errors import UserError
from rlft.core.recipe import coerce_recipe, help_text, instances_from, recipe_sources
from rlft.core.runtime import (
    defer_warning,
    launcher_follows_recipe,
    launcher_precision,
    platform_defaults,
)
from rlft.stage import key_rules, key_table
from rlft.stage.input_checks import check_closing_launch, check_counts, check_eval_settings
from rlft.stage.machine_checks import refuse_machine
from rlft.stage.registry import rules_for

#: Defaults every stage has where transformers' differ: TensorBoard logs in ``<output_dir>/runs``
#: (local, no account; ``report_to: none`` turns them off).
STAGE_DEFAULTS = {"report_to": ["tensorboard"]}

#: Keys that take ``auto``: the run chooses the fastest value whose memory plan fits, once the data is read
#: (:meth:`rlft.stage.skeleton.TrainingStage.fit_auto`). Until then they hold these starting values:
#: transformers' default micro-batch (the optimizer step stays 8 x gradient_accumulation_steps examples) and
#: no checkpointing (tried first: recomputing the forward pass costs a fifth of a step or more).
AUTO_STARTS = {"per_device_train_batch_size": 8, "gradient_checkpointing": False}

#: Values TRL 1.16 takes for keys it types as plain strings (from each field's help; tests/test_settings.py holds
#: them to TRL's text): checked at the parse, so a misspelling is one line before anything loads, not a
#: ValueError at the first loss step after the model and the engine have loaded.
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "grpo": {"loss_type": ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")},
    "dpo": {"loss_type": ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
                          "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")},
    "sft": {"loss_type": ("nll", "dft", "chunked_nll")},
}


def parse_stage(stage: Any, argv: Sequence[str] | None) -> tuple[list[Any], dict[str, Any]]:
    """``stage``'s argument groups (one instance each, in :meth:`argument_types` order) and the resolved recipe.

    ``--help`` prints every key and exits 0. The resolved recipe is what the
    file and the command line set, converted to the keys' types and under the
    keys' current names; defaults stay out of it.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        sys.stdout.write(help_text(stage.argument_types(), f"rlft {stage.name}") + "\n")
        raise SystemExit(0)
    resolved = read_values(stage, argv)
    return build_instances(stage.argument_types(), run_values(resolved)), resolved


def run_values(resolved: dict[str, Any]) -> dict[str, Any]:
    """The values a stage's dataclasses are built from: every stage's defaults, the machine's, then the recipe's."""
    return {**STAGE_DEFAULTS, **platform_defaults(), **without_auto(resolved)}


def auto_keys(resolved: dict[str, Any]) -> list[str]:
    """The keys the recipe sets to ``auto`` (:data:`AUTO_STARTS`).

    Example:
        >>> auto_keys({"per_device_train_batch_size": "auto", "gradient_checkpointing": True})
        ['per_device_train_batch_size']
    """
    return [key for key in AUTO_STARTS if resolved.get(key) == "auto"]


def without_auto(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each ``auto`` replaced by its starting value (what the dataclasses are built from)."""
    return {**values, **{key: AUTO_STARTS[key] for key in auto_keys(values)}}


def read_values(stage: Any, argv: Sequence[str], warn: bool = True) -> dict[str, Any]:
    """The recipe's values for ``stage``, checked against its key table: the fast half of the parse.

    Example:
        >>> from rlft.stage.registry import get
        >>> read_values(get("grpo").stage(), ["--max_steps", "3", "--rollout_engine", "vllm"], warn=False)
        {'max_steps': 3, 'engine': 'vllm'}
    """
    return read_sources(stage, recipe_sources(argv), warn)


def read_sources(stage: Any, sources: Sequence[tuple[str, dict[str, Any]]], warn: bool = True) -> dict[str, Any]:
    """:func:`read_values` from the recipe's sources (file, command line) as :func:`recipe_sources` gives them."""
    table = key_table.table_for(stage)
    types = key_table.types_of(table)
    types.update({key: types[key] | Literal["auto"] for key in AUTO_STARTS if key in types})
    for key, values in CHOICES.get(stage.name, {}).items():  # DPO's loss_type is a list of them
        types[key] = list[Literal[values]] if typing.get_origin(types[key]) is list else Literal[values]
    resolved = coerce_recipe(sources, types, table["renamed"], warn=warn)
    check_values(stage.name, resolved, table["defaults"])
    return resolved


def check_values(stage: str, resolved: dict[str, Any], defaults: dict[str, Any]) -> None:
    """rlft's checks of a recipe's values that need no library: refused keys, lora_r, counts, eval settings,
    reward names.

    Refused keys come first, so a refused setting gets rlft's words before
    TRL or transformers check it in theirs.
    """
    refuse_set_keys(stage, resolved, defaults)
    given = {**defaults, **without_auto(resolved)}
    if given.get("use_peft") and isinstance(given.get("lora_r"), int) and given["lora_r"] <= 0:
        raise UserError(f"lora_r must be a positive integer, got {given['lora_r']}")
    check_counts(SimpleNamespace(**given))
    check_eval_settings(SimpleNamespace(**given))
    refuse_machine(resolved)  # what this machine lacks (an attention kernel, an integration, the Hub)
    check_closing_launch(bool(given.get("eval_before_after", True)))
    check_loss_needs(stage, given)
    for name in resolved.get("reward_funcs") or []:
        if ":" not in name and name not in rewards.REWARDS:  # dotted paths are imported with the rewards
            try:
                rewards.resolve(name)
            except rewards.RewardInputError as err:
                raise UserError(str(err)) from None


TOKEN_IS_MODES = ("token_truncate", "token_mask")  # vllm_importance_sampling_mode values that weigh each token


# Loss types that need another key set (found by training each loss type TRL 1.16 offers for two steps,
# tests/test_loss_variants.py): TRL raises when the trainer is built, after the model loads, or only warns and
# trains some other loss; refused at the parse instead, in one line that says what to set.
def check_loss_needs(stage: str, given: dict[str, Any]) -> None:
    """Refuse a loss type whose companion setting is missing, in one line.

    Example:
        >>> check_loss_needs("dpo", {"loss_type": ["sigmoid", "exo_pair"], "label_smoothing": 0.0})
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: loss_type exo_pair needs label_smoothing above 0 (the EXO paper uses 1e-3)
        >>> check_loss_needs("grpo", {"loss_type": "luspo", "importance_sampling_level": "token"})
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: loss_type luspo needs importance_sampling_level: sequence (LUSPO is a sequence-level loss; at token level it is another loss)
    """
    losses = given.get("loss_type")
    losses = losses if isinstance(losses, list) else [losses]
    if stage == "dpo" and "exo_pair" in losses and not given.get("label_smoothing"):
        raise UserError("loss_type exo_pair needs label_smoothing above 0 (the EXO paper uses 1e-3)")
    if stage != "grpo":
        return
    if "luspo" in losses and given.get("importance_sampling_level") != "sequence":
        raise UserError("loss_type luspo needs importance_sampling_level: sequence (LUSPO is a sequence-level loss; "
                        "at token level it is another loss)")
    if "vespo" in losses and given.get("engine") == "vllm" and given.get("vllm_importance_sampling_correction") \
            and given.get("vllm_importance_sampling_mode") not in TOKEN_IS_MODES:
        raise UserError(f"loss_type vespo with engine: vllm needs vllm_importance_sampling_mode: {TOKEN_IS_MODES[0]} "
                        f"or {TOKEN_IS_MODES[1]} (VESPO weighs sequences itself; TRL refuses the others)")


def refuse_set_keys(stage: str, values: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Raise the one-line ``UserError`` for a refused key that ``values`` sets to other than its default.

    Example:
        >>> refuse_set_keys("grpo", {"do_train": True}, {"do_train": False})
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: do_train: not used by rlft grpo: rlft stages always train; drop it
    """
    rules = rules_for(stage)
    for key, value in values.items():
        rule = rules.get(key)
        if rule is not None and rule.kind == "refused" and value != defaults.get(key, object()):
            raise UserError(f"{key}: not used by rlft {stage}: {rule.why}")


def build_instances(classes: Sequence[type], values: dict[str, Any]) -> list[Any]:
    """One instance of each class from the keys it has (a dataclass's own check: one line).

    transformers reads the launcher's precision (``ACCELERATE_MIXED_PRECISION``)
    while it builds ``TrainingArguments``, so the variable follows the values
    while they are built (:func:`rlft.core.runtime.launcher_follows_recipe`)
    and is restored afterwards.

    Example:
        >>> from rlft.core.arguments import EvalArguments
        >>> build_instances([EvalArguments], {"eval_samples": 5, "max_steps": 3})
        [EvalArguments(eval_before_after=True, eval_samples=5, eval_max_new_tokens=96, eval_batch_size=16)]
    """
    with launcher_precision():
        launcher_follows_recipe(values)
        return instances_from(classes, values)


def defaults_of(parts: Sequence[Any]) -> dict[str, Any]:
    """Each field's default over ``parts`` (classes or instances; the first one with a field wins)."""
    out: dict[str, Any] = {}
    for part in parts:
        for f in fields(part):
            if f.default is not MISSING:
                out.setdefault(f.name, f.default)
            elif f.default_factory is not MISSING:
                out.setdefault(f.name, f.default_factory())
    return out


def idle_keys(stage: str, args: Any) -> list[str]:
    """The keys the recipe sets that do nothing in this run (``only_with`` a condition that does not hold).

    A key counts as set when the recipe or the command line gives it a value
    other than its default. Refused keys never get here: the parse refused them.
    """
    rules, defaults = rules_for(stage), defaults_of(args.parts)
    idle = []
    for key, value in args.recipe.items():
        rule = rules.get(key)
        if rule is None or value == defaults.get(key, object()):
            continue
        if rule.kind == "only_with" and not rule.holds(args):
            idle.append(f"{key} (only with {rule.why})")
    return idle


def idle_data_keys(data_args: Any, recipe: dict[str, Any]) -> list[str]:
    """The data keys ``recipe`` sets that this kind of data does not read, for a command that loads data as the
    stages do (``rlft pairs``, ``rlft eval``): a task's own splits and prompts, a file's ``task_kwargs``.

    Example:
        >>> from rlft.core.arguments import DataArguments
        >>> idle_data_keys(DataArguments(dataset_name="task:arithmetic"), {"test_size": 0.2})
        ['test_size (only with file or hub data (a task: generator makes its own splits and prompts))']
    """
    holds = SimpleNamespace(data=data_args)
    return [f"{key} (only with {rule.why})" for key, rule in key_rules.RLFT.items()
            if key in recipe and rule.kind == "only_with" and not rule.holds(holds)]


def warn_idle(idle: list[str]) -> None:
    """Queue the one warning that names the keys set but doing nothing in this run (nothing when there are none).

    Example:
        >>> warn_idle([])
    """
    if idle:
        defer_warning(f"set but doing nothing in this run: {', '.join(idle)}")
