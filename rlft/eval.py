"""Evaluation: greedy, verifier-scored comparison of models against their base.

    accelerate launch rlft/eval.py recipes/eval_math.yaml --models base runs/math
    rlft eval recipes/eval_math.yaml --models base runs/sft runs/math
    rlft eval recipes/eval_math.yaml --sweep runs/math          # every checkpoint; marks the best

Every model answers the recipe's held-out prompts greedily (temperature 0)
and, unless ``general_suite: false``, the general-skills suite
(:mod:`rlft.suite`). Task outputs are scored by the recipe's ``accuracy``
reward, the same code as training. The output directory gets
``results.json``, ``samples.jsonl`` (every prompt, every model's output and
scores), ``report.md`` and ``report.html`` with plots; the table is printed.
Reruns of the same command write byte-identical ``samples.jsonl``.
Optional pass@k: ``pass_k_samples: n`` samples per prompt at ``pass_k_temperature``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rlft.errors import run_cli

logger = logging.getLogger("rlft.eval")


@dataclass
class EvalRunArguments:
    """What ``rlft eval`` compares and where its report goes."""

    models: list[str] = field(default_factory=list, metadata={"help": "Models: base, run dirs, hub ids, paths."})
    sweep: str | None = field(default=None, metadata={"help": "A run dir: evaluate base + every checkpoint."})
    output_dir: str = field(default="runs/eval", metadata={"help": "Where the report goes."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an earlier report in output_dir."})
    engine: Literal["vllm", "hf"] = field(default="vllm", metadata={"help": "vllm (HF fallback) or hf."})
    general_suite: bool = field(default=True, metadata={"help": "Also run the general-skills (forgetting) suite."})
    pass_k_samples: int = field(default=0, metadata={"help": "n samples per prompt for pass@k (0: off)."})
    pass_k: list[int] = field(default_factory=lambda: [1], metadata={"help": "k values for pass@k."})
    pass_k_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature for pass@k."})
    bootstrap_resamples: int = field(default=2000, metadata={"help": "Resamples for the 95% intervals."})
    seed: int = field(default=42, metadata={"help": "Seed for data, sampling and the bootstrap."})
    vllm_gpu_memory_utilization: float = field(default=0.2, metadata={"help": "vLLM memory share (RAM on CPU)."})
    vllm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = field(
        default="auto", metadata={"help": "vLLM weights dtype; float32 gives HF's greedy text exactly on CPU."},
    )


def gather_list(argv: Sequence[str], key: str) -> list[str]:
    """``--models a b c`` (several values after one flag) as the ``--models [a, b, c]`` the parser takes.

    Example:
        >>> gather_list(["r.yaml", "--models", "base", "runs/a", "--seed", "1"], "--models")
        ['r.yaml', '--models', '["base", "runs/a"]', '--seed', '1']
    """
    import json

    argv = list(argv)
    if key not in argv:
        return argv
    start = argv.index(key) + 1
    end = start
    while end < len(argv) and not argv[end].startswith("--"):
        end += 1
    if end - start == 1 and argv[start].startswith("["):
        return argv
    return [*argv[:start], json.dumps(argv[start:end]), *argv[end:]]


def parse(argv: Sequence[str] | None):
    from rlft.arguments import DataArguments, EvalArguments, RewardArguments
    from rlft.config import parse_recipe

    argv = gather_list(sys.argv[1:] if argv is None else argv, "--models")
    return parse_recipe([DataArguments, EvalArguments, RewardArguments, EvalRunArguments], argv, prog="rlft eval")


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the evaluation; returns ``results.json``'s content."""
    (data_args, eval_args, reward_args, args), recipe = parse(argv)

    from rlft import data, models, scoring
    from rlft.evaluation import evaluate
    from rlft.run_dir import RunArguments, check_output_dir
    from rlft.runtime import setup_logging

    setup_logging("info")
    check_output_dir(args.output_dir, RunArguments(overwrite=args.overwrite))
    names = scoring.expand_models(args.models, args.sweep)
    base_dir = scoring.base_of(names) if "base" in names else models.resolve_model(names[0]).base
    rewards = {f.__name__: f for f in reward_args.build()}
    if "accuracy" not in rewards:
        from rlft.errors import UserError

        raise UserError("the evaluation scores with the recipe's accuracy reward: add accuracy to reward_funcs")
    test = data.load_splits(data_args, seed=args.seed)["test"]
    data.require_columns(test, ["prompt", "answer"], "the evaluation")
    test = test.select(range(min(eval_args.eval_samples, len(test))))
    results = evaluate(names, base_dir, test, eval_args, args, rewards["accuracy"], recipe)
    print(results["table"])
    print(f"report: {args.output_dir}/report.html")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
