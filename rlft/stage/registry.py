"""The one list of what ``rlft <name>`` runs: every training stage and every command, with what each offers.

Everything that needs a stage's name reads this table: the console script
(``rlft <name>``, its usage), ``rlft pipeline`` and ``rlft ablate`` (which
stages they can run), the key rules (the keys a stage takes beyond every
stage's, :mod:`rlft.stage.key_rules`), the fast pre-check's key table
(:mod:`rlft.stage.key_table`) and the architecture test. Adding a training
stage is one :class:`Entry` here, its module (a
:class:`~rlft.stage.skeleton.TrainingStage` subclass, ``parse`` and ``main``)
and its recipe. A module outside rlft can add its own stage with
:func:`register` when it is imported.

Importing this module imports no third-party package: ``rlft --help`` and a
refused recipe stay fast.

Example:
    >>> get("grpo").module, get("grpo").is_stage, get("merge").is_stage
    ('rlft.grpo', True, False)
    >>> [e.name for e in entries() if e.pipeline]
    ['sft', 'pairs', 'dpo', 'orpo', 'grpo']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlft.core.errors import UserError
from rlft.stage import key_rules
from rlft.stage.key_rules import Rule


@dataclass(frozen=True)
class Entry:
    """One name ``rlft`` runs.

    ``target`` is ``module`` or ``module:function`` (default ``main``);
    ``stage_class`` names the :class:`~rlft.stage.skeleton.TrainingStage`
    subclass in that module (``None`` for a command); ``pipeline`` and
    ``ablate`` say whether ``rlft pipeline`` can chain it and ``rlft ablate``
    can run a grid of it; ``rules`` are the stage's own key rules, on top of
    the ones every stage shares (:func:`rules_for`); ``recipe`` is the shipped
    recipe that shows it (the docs and the tests run it).
    """

    name: str
    target: str
    about: str
    stage_class: str | None = None
    pipeline: bool = False
    ablate: bool = False
    rules: Mapping[str, Rule] = field(default_factory=dict)
    recipe: str | None = None

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def is_stage(self) -> bool:
        """A training stage (a :class:`~rlft.stage.skeleton.TrainingStage` with a recipe of keys)."""
        return self.stage_class is not None

    def main(self) -> Callable[..., Any]:
        """The function ``rlft <name>`` calls with the rest of the command line (imports the module)."""
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function or "main")

    def stage(self) -> Any:
        """A fresh instance of the stage's :class:`~rlft.stage.skeleton.TrainingStage` (imports the module)."""
        if self.stage_class is None:
            raise TypeError(f"rlft {self.name} is a command, not a training stage")
        return getattr(importlib.import_module(self.module), self.stage_class)()


_ENTRIES: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    """Add ``entry`` (or replace the one of the same name); returns it.

    Example:
        >>> register(Entry("toy", "toy_module", "a toy stage", stage_class="Toy")).name
        'toy'
        >>> unregister("toy")
    """
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove the entry called ``name`` (tests that register a throwaway stage clean up with it)."""
    _ENTRIES.pop(name, None)


def entries() -> list[Entry]:
    """Every entry, in the order ``rlft --help`` lists them."""
    return list(_ENTRIES.values())


def names(**where: bool) -> list[str]:
    """The names of the entries whose attributes match ``where``.

    Example:
        >>> names(ablate=True)
        ['sft', 'dpo', 'orpo', 'grpo']
    """
    return [e.name for e in _ENTRIES.values() if all(getattr(e, k) == v for k, v in where.items())]


def get(name: str) -> Entry:
    """The entry called ``name``; a one-line :class:`UserError` naming the valid ones otherwise."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise UserError(f"unknown stage {name!r}; stages: {', '.join(_ENTRIES)}") from None


def rules_for(stage: str) -> dict[str, Rule]:
    """Every key the stage accepts, with its :class:`~rlft.stage.key_rules.Rule`.

    Example:
        >>> rules_for("sft")["sft_target_column"].kind, rules_for("dpo")["sft_target_column"].kind
        ('used', 'refused')
    """
    return key_rules.with_common_rules(get(stage).rules)


for _entry in (
    Entry("sft", "rlft.sft", "supervised fine-tuning on worked solutions", stage_class="SFT", pipeline=True,
          ablate=True, rules=key_rules.SFT_KEYS, recipe="recipes/sft.yaml"),
    Entry("pairs", "rlft.commands.pairs", "preference pairs sampled from a policy and scored by verifiable rewards",
          pipeline=True, recipe="recipes/pairs.yaml"),
    Entry("dpo", "rlft.dpo", "DPO preference tuning", stage_class="DPO", pipeline=True, ablate=True,
          rules=key_rules.DPO_KEYS, recipe="recipes/dpo.yaml"),
    Entry("orpo", "rlft.orpo", "ORPO preference tuning (no reference model)", stage_class="ORPO", pipeline=True,
          ablate=True, rules=key_rules.ORPO_KEYS, recipe="recipes/orpo.yaml"),
    Entry("grpo", "rlft.grpo", "GRPO with verifiable rewards", stage_class="GRPO", pipeline=True, ablate=True,
          rules=key_rules.GRPO_KEYS, recipe="recipes/math.yaml"),
    Entry("pipeline", "rlft.commands.pipeline", "SFT -> pairs -> DPO -> GRPO, then one evaluation of every stage",
          recipe="recipes/pipeline.yaml"),
    Entry("check", "rlft.commands.check", "every problem of a recipe in one pass, one line each, before it runs"),
    Entry("plan", "rlft.commands.plan", "a run's peak memory, part by part, and whether it fits, before it loads"),
    Entry("merge", "rlft.commands.merge",
          "fold a run's adapter chain into its base: a plain transformers/vLLM model directory"),
    Entry("eval", "rlft.eval", "greedy, verifier-scored comparison of models against their base"),
    Entry("ablate", "rlft.commands.ablate",
          "a grid of recipe settings x seeds, one run per cell, a table with intervals"),
    Entry("rewards", "rlft.commands.score_samples", "score literal completions with a recipe's rewards"),
    Entry("generate", "rlft.commands.generate:generate_main", "answer prompts with a run's model (JSONL out)"),
    Entry("chat", "rlft.commands.generate:chat_main", "talk to a run's model in the terminal (/compare base)"),
    Entry("recipes", "rlft.commands.recipes", "list the recipes and launch configs rlft ships, or copy one to edit"),
    Entry("doctor", "rlft.commands.doctor", "installed versions against the tested set, and what this machine runs"),
    Entry("export", "rlft.commands.export", "a run as one GGUF file for llama.cpp/Ollama, checked by loading it back"),
    Entry("push", "rlft.commands.push",
          "publish a finished run (card, adapter or merged model) on the Hugging Face Hub"),
    Entry("ab", "rlft.commands.ab", "blind A/B rating page from an eval's samples.jsonl"),
    Entry("ab-tally", "rlft.commands.ab:tally_main", "unblind A/B ratings and print win rates"),
):
    register(_entry)
