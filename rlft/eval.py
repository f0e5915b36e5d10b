"""Evaluation: greedy, verifier-scored comparison of models against their base.

    accelerate launch rlft/eval.py recipes/eval_math.yaml --models base runs/math
    rlft eval recipes/eval_math.yaml --models base runs/sft runs/math
    rlft eval recipes/eval_math.yaml --sweep runs/math          # every checkpoint; marks the best

``base`` is the base under the first adapter among the models, or the
recipe's ``model_name_or_path`` (default: the bundled model) when there is
none. Every model answers the recipe's held-out prompts greedily (temperature 0)
and, unless ``general_suite: false``, the general-skills suite
(:mod:`rlft.evaluation.suite`). Task outputs are scored by the recipe's rewards
with their ``reward_kwargs``, the same code as training and the same scorer as
every stage's closing check (:mod:`rlft.evaluation.scoring`): the table's
first column is ``accuracy`` (or the first reward when there is none). The output directory gets
``results.json``, ``samples.jsonl`` (every prompt, every model's output and
scores), ``report.md`` and ``report.html`` with plots; the table is printed.
Reruns of the same command write byte-identical ``samples.jsonl`` (the engine
runs in float32; ``reproducible: false`` allows bf16 and the report says so).
Optional pass@k: ``pass_k_samples: n`` samples per prompt at ``pass_k_temperature``.
With ``tools`` (or an ``environment``) and ``max_turns``, as in a GRPO recipe,
every model answers the task through the same tool loop as training's
closing check, greedily; the table adds how often each model called a tool
and its turns per answer, ``samples.jsonl`` every transcript.
``paired_previous: true`` adds each model's paired change against the one
listed before it (``--models base runs/sft runs/grpo``: what each stage added).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rlft.core import data, models
from rlft.core.arguments import DataArguments, EvalArguments, RewardArguments
from rlft.core.errors import UserError, run_cli
from rlft.core.recipe import parse_recipe
from rlft.core.run_dir import RunArguments, check_output_dir
from rlft.core.runtime import log_deferred_warnings, setup_logging
from rlft.evaluation.compare import EvalRunArguments, base_of, evaluate, expand_models, gather_list
from rlft.stage.input_checks import check_scoring
from rlft.stage.parsing import idle_data_keys, warn_idle
from rlft.tools.environments import tool_setup
from rlft.tools.loading import ToolArguments

#: Keys rlft eval's argument groups share with the training stages but that it never reads.
NOT_READ = {
    "eval_before_after": "rlft eval always compares the models it is given",
    "sft_target_column": "rlft eval scores the models' answers with the recipe's rewards; SFT targets are not read",
    "num_train_samples": "rlft eval reads the test split only (num_test_samples, eval_samples)",
}


def parse(argv: Sequence[str] | None):
    argv = gather_list(sys.argv[1:] if argv is None else argv, "--models")
    parts, recipe = parse_recipe([DataArguments, EvalArguments, RewardArguments, ToolArguments, EvalRunArguments],
                                 argv, prog="rlft eval")
    for key, why in NOT_READ.items():
        if key in recipe:
            raise UserError(f"{key}: not used by rlft eval: {why}; drop it")
    idle = idle_data_keys(parts[0], recipe)
    idle += [f"{key} (only with pass_k_samples above 0)" for key in ("pass_k", "pass_k_temperature")
             if key in recipe and not parts[-1].pass_k_samples]
    warn_idle(idle)
    return parts, recipe


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the evaluation; returns ``results.json``'s content."""
    (data_args, eval_args, reward_args, tool_args, args), recipe = parse(argv)

    from rlft.tools.chat import enable_tool_calls

    setup_logging("info")
    check_output_dir(args.output_dir, RunArguments(overwrite=args.overwrite))
    log_deferred_warnings()
    names = expand_models(args.models, args.sweep)
    base_dir = base_of(names, args.model_name_or_path) if "base" in names else models.resolve_model(names[0]).base
    reward_funcs = reward_args.build()
    test = data.load_splits(data_args, seed=args.seed)["test"]
    data.require_columns(test, ["prompt"], "the evaluation")
    test = test.select(range(min(eval_args.eval_samples, len(test))))
    tools = tool_setup(tool_args, dict(test[0]))
    check_scoring(test, reward_funcs, len(test), bool(tools and tools.has_environment))  # before any model loads
    if tools and args.pass_k_samples:
        raise UserError("pass_k_samples: pass@k samples single completions; with tools it is not built "
                        "(set pass_k_samples: 0)")
    tokenizer = enable_tool_calls(models.load_tokenizer(base_dir), base_dir) if tools else None
    results = evaluate(names, base_dir, test, eval_args, args, reward_funcs, recipe, tools, tokenizer)
    print(results["table"])
    print(f"report: {args.output_dir}/report.html")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
