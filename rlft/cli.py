"""The ``rlft`` console script: ``rlft <stage> recipes/<name>.yaml [--key value ...]``.

Each stage is a module with ``main(argv)`` (or ``module:function``); ``rlft sft ...`` is the same as
``python -m rlft.sft ...`` and ``accelerate launch rlft/sft.py ...``.

Example:
    >>> sorted(STAGES)
    ['ab', 'ab-tally', 'ablate', 'chat', 'doctor', 'dpo', 'eval', 'export', 'generate', 'grpo', 'merge', 'orpo', 'pairs', 'pipeline', 'push', 'recipes', 'rewards', 'sft']
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from rlft.core.errors import EXIT_USAGE, run_cli

STAGES = {
    "sft": ("rlft.sft", "supervised fine-tuning on worked solutions"),
    "pairs": ("rlft.commands.pairs", "preference pairs sampled from a policy and scored by verifiable rewards"),
    "dpo": ("rlft.dpo", "DPO preference tuning"),
    "orpo": ("rlft.orpo", "ORPO preference tuning (no reference model)"),
    "grpo": ("rlft.grpo", "GRPO with verifiable rewards"),
    "pipeline": ("rlft.commands.pipeline", "SFT -> pairs -> DPO -> GRPO, then one evaluation of every stage"),
    "merge": ("rlft.commands.merge", "fold a run's adapter chain into its base: a plain transformers/vLLM model directory"),
    "eval": ("rlft.eval", "greedy, verifier-scored comparison of models against their base"),
    "ablate": ("rlft.commands.ablate", "a grid of recipe settings x seeds, one run per cell, a table with intervals"),
    "rewards": ("rlft.commands.score_samples", "score literal completions with a recipe's rewards"),
    "generate": ("rlft.commands.generate:generate_main", "answer prompts with a run's model (JSONL out)"),
    "chat": ("rlft.commands.generate:chat_main", "talk to a run's model in the terminal (/compare base)"),
    "recipes": ("rlft.commands.recipes", "list the recipes and launch configs rlft ships, or copy one to edit"),
    "doctor": ("rlft.commands.doctor", "installed versions against the tested set, and what this machine runs"),
    "export": ("rlft.commands.export", "a run as one GGUF file for llama.cpp/Ollama, checked by loading it back"),
    "push": ("rlft.commands.push", "publish a finished run (card, adapter or merged model) on the Hugging Face Hub"),
    "ab": ("rlft.commands.ab", "blind A/B rating page from an eval's samples.jsonl"),
    "ab-tally": ("rlft.commands.ab:tally_main", "unblind A/B ratings and print win rates"),
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
    module_name, _, function = STAGES[stage][0].partition(":")
    module = importlib.import_module(module_name)
    sys.argv = [f"rlft {stage}", *rest]
    return run_cli(getattr(module, function or "main"), rest)


if __name__ == "__main__":
    sys.exit(main())
