"""Preference pairs from verifiable rewards: sample, score, keep the prompts that split.

    rlft pairs recipes/pairs.yaml [--key value ...]
    python -m rlft.commands.pairs recipes/pairs.yaml --model_name_or_path runs/sft

For each training prompt, the policy (``model_name_or_path``: the bundled
model, a hub id or an earlier stage's run directory) samples
``samples_per_prompt`` completions through the evaluation engine (vLLM,
falling back to transformers; chat prompts rendered with the recipe's
``chat_template_kwargs``), the recipe's rewards score them (weighted by
``reward_weights``, as GRPO would), and a prompt becomes a pair when its best
completion beats its worst by at least ``min_score_gap``: chosen = the best,
rejected = the worst (the earliest sample among ties, so a seed always gives
the same file). Completions a reward cannot verify (``None``) are left out.

The output directory gets ``pairs.jsonl`` (``prompt``, ``chosen``,
``rejected`` in the prompt's own format: chat messages or plain text, so TRL's
DPO and ORPO trainers read it directly; the dataset's other columns such as
``answer``; ``score_chosen``, ``score_rejected``; and ``source``: model, seed,
recipe) and the usual ``recipe.yaml`` + ``rlft_manifest.json``.

Example:
    >>> build_pairs([{"prompt": "1+1?", "answer": "2"}], ["2", "3"], [1.0, 0.0], k=2, min_gap=0.5, source={})
    [{'prompt': '1+1?', 'chosen': '2', 'rejected': '3', 'answer': '2', 'score_chosen': 1.0, 'score_rejected': 0.0, 'source': {}}]
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rewards import contract
from rlft.core import data, models
from rlft.core.accelerator import generation_device
from rlft.core.arguments import DataArguments, ModelArguments, RewardArguments
from rlft.core.errors import UserError, run_cli
from rlft.core.files import write_atomic
from rlft.core.loading import LoadOptions
from rlft.core.manifest import write_run_files
from rlft.core.recipe import parse_recipe
from rlft.core.run_dir import RunArguments, check_output_dir, claim_output_dir
from rlft.core.runtime import log_deferred_warnings, setup_logging
from rlft.evaluation.generation import CompletionEngine
from rlft.stage import input_checks
from rlft.stage.machine_checks import refuse_machine
from rlft.stage.parsing import idle_data_keys, warn_idle

logger = logging.getLogger("rlft.commands.pairs")


@dataclass
class PairsArguments:
    """How many completions to sample per prompt and which pairs to keep."""

    output_dir: str = field(default="runs/pairs", metadata={"help": "Where pairs.jsonl and the manifest go."})
    samples_per_prompt: int = field(default=8, metadata={"help": "Completions sampled per prompt (k >= 2)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (> 0)."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest completion sampled."})
    min_score_gap: float = field(default=0.5, metadata={"help": "Keep a prompt when best - worst score >= this."})
    reward_weights: list[float] | None = field(default=None, metadata={"help": "One weight per reward (1.0 each)."})
    engine: Literal["vllm", "hf"] = field(
        default="vllm", metadata={"help": "vllm (HF fallback) or hf; the same option as GRPO's engine."},
    )
    batch_size: int = field(default=32, metadata={"help": "Prompts per batch on the HF engine."})
    seed: int = field(default=42, metadata={"help": "Seed for the data and the sampling."})
    vllm_gpu_memory_utilization: float = field(default=0.2, metadata={"help": "vLLM memory share (RAM on CPU)."})
    vllm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = field(
        default="auto", metadata={"help": "vLLM weights dtype (auto: bf16 where it is native, else float32)."},
    )

    def __post_init__(self) -> None:
        if self.samples_per_prompt < 2:
            raise UserError(f"samples_per_prompt must be at least 2 to form a pair, got {self.samples_per_prompt}")
        if self.temperature <= 0:
            raise UserError(f"temperature must be > 0 (greedy samples would all be the same), got {self.temperature}")
        if self.min_score_gap <= 0:
            raise UserError(f"min_score_gap must be > 0 so chosen always beats rejected, got {self.min_score_gap}")


def weighted_scores(reward_funcs: list, weights: list[float] | None, rows: list[dict], completions: list[Any],
                    k: int, completion_ids: list[list[int]] | None = None) -> list[float | None]:
    """Each completion's weighted reward (``None`` if any reward could not verify it).

    Rewards are called as TRL calls them (:func:`rewards.contract.call`):
    ``completions`` (chat messages or text, like the prompts), ``prompts``,
    every dataset column, one entry per completion, and TRL's other keywords.
    """
    weights = weights or [1.0] * len(reward_funcs)
    if len(weights) != len(reward_funcs):
        raise UserError(f"reward_weights has {len(weights)} values for {len(reward_funcs)} reward_funcs")
    columns = {key: [row[key] for row in rows for _ in range(k)] for key in rows[0]}
    prompts = columns.pop("prompt")
    totals: list[float | None] = [0.0] * len(completions)
    for func, weight in zip(reward_funcs, weights, strict=True):
        values = contract.call(func, prompts, completions, columns, completion_ids=completion_ids)
        if len(values) != len(completions):
            name = getattr(func, "__name__", "reward")
            raise UserError(f"reward {name} returned {len(values)} scores for {len(completions)} completions")
        totals = [None if t is None or v is None else t + weight * float(v) for t, v in zip(totals, values)]
    return totals


def build_pairs(rows: list[dict], completions: list[Any], scores: list[float | None], k: int, min_gap: float,
                source: dict) -> list[dict]:
    """One pair per prompt whose best completion beats its worst by ``min_gap`` (prompt-major inputs)."""
    pairs = []
    for i, row in enumerate(rows):
        scored = [(scores[j], j) for j in range(i * k, (i + 1) * k) if scores[j] is not None]
        if len(scored) < 2:
            continue
        best = max(scored, key=lambda s: (s[0], -s[1]))  # highest score, earliest sample
        worst = min(scored, key=lambda s: (s[0], s[1]))  # lowest score, earliest sample
        if best[0] - worst[0] < min_gap:
            continue
        extra = {key: value for key, value in row.items() if key != "prompt"}
        pairs.append({"prompt": row["prompt"], "chosen": completions[best[1]], "rejected": completions[worst[1]],
                      **extra, "score_chosen": best[0], "score_rejected": worst[0], "source": source})
    return pairs


def as_completions(prompts: list[Any], texts: list[str], k: int) -> list[Any]:
    """Completions shaped like their prompts: an assistant message for chat prompts, plain text otherwise."""
    return [[{"role": "assistant", "content": text}] if isinstance(prompts[i // k], list) else text
            for i, text in enumerate(texts)]


#: Keys rlft pairs parses with the groups it shares with the stages, and never reads.
NOT_READ = {
    "num_test_samples": "it samples from the train split only (num_train_samples)",
    "sft_target_column": "it scores sampled answers with the recipe's rewards; SFT targets are not read",
    "memory_check": "it makes no memory plan (rlft plan is for the training stages)",
}


def parse(argv: Sequence[str] | None):
    types = [DataArguments, ModelArguments, RewardArguments, RunArguments, PairsArguments]
    (data_args, *rest), recipe = parse_recipe(types, argv, prog="rlft pairs")
    for key, why in NOT_READ.items():
        if key in recipe:
            raise UserError(f"{key}: not used by rlft pairs: {why}; drop it")
    warn_idle(idle_data_keys(data_args, recipe))
    return (data_args, *rest), recipe


#: Model keys of training (an adapter, a quantized base to train it on): pairs sample from the model as it is.
TRAINING_KEYS = ("use_peft", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "lora_target_parameters",
                 "lora_modules_to_save", "lora_task_type", "use_rslora", "use_dora", "load_in_8bit", "load_in_4bit",
                 "bnb_4bit_quant_type", "use_bnb_nested_quant", "bnb_4bit_quant_storage")


def load_options(model_args: Any, recipe: dict[str, Any]) -> LoadOptions:
    """How the policy is loaded to sample from: the recipe's revision and attention; training keys refused.

    Example:
        >>> from rlft.core.arguments import ModelArguments
        >>> load_options(ModelArguments(attn_implementation="eager"), {}).attn_implementation
        'eager'
    """
    for key in TRAINING_KEYS:
        if key in recipe:
            raise UserError(f"{key}: not used by rlft pairs: it samples from the model as it is (give training keys "
                            "to the stage that trains on the pairs)")
    refuse_machine(recipe)
    revision = model_args.model_revision if model_args.model_revision not in (None, "main") else None
    return LoadOptions(revision=revision, attn_implementation=model_args.attn_implementation)


def main(argv: Sequence[str] | None = None) -> dict:
    """Build the pairs; returns the manifest written to the output directory."""
    argv = list(sys.argv[1:] if argv is None else argv)
    (data_args, model_args, reward_args, run_args, args), recipe = parse(argv)
    options = load_options(model_args, recipe)
    recipe_file = argv[0] if argv and not argv[0].startswith("--") else "command line"

    setup_logging("info", verbose=run_args.verbose)
    check_output_dir(args.output_dir, run_args)
    log_deferred_warnings()
    train = data.load_splits(data_args, seed=args.seed)["train"]
    data.require_columns(train, ["prompt"], "the pairs builder")
    rows = [dict(row) for row in train]
    reward_funcs = reward_args.build()
    input_checks.preflight_rewards(reward_funcs, rows[0])
    tokenizer = models.load_tokenizer(model_args.model_name_or_path, options=options)
    input_checks.require_chat_template(tokenizer, train, model_args.model_name_or_path)
    policy = models.load_model(model_args.model_name_or_path, model_args.dtype, options=options,
                               device=generation_device())

    k = args.samples_per_prompt
    gen = CompletionEngine(args.engine, models.resolve_model(model_args.model_name_or_path).base, tokenizer,
                           args.max_new_tokens, args.batch_size, args.seed, args.vllm_gpu_memory_utilization,
                           args.vllm_dtype, model_args.chat_template_kwargs)
    try:
        gen.load(policy)
        prompts = [row["prompt"] for row in rows]
        logger.info("sampling %d completions for each of %d prompts (%s)", k, len(rows), gen.engine)
        texts = gen.generate(prompts, samples=k, temperature=args.temperature, seed=args.seed)
        engine = gen.engine
    finally:
        gen.close()

    completions = as_completions(prompts, texts, k)
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    scores = weighted_scores(reward_funcs, args.reward_weights, rows, completions, k, ids)
    source = {"model": models.base_model_id(model_args.model_name_or_path), "seed": args.seed,
              "recipe": recipe_file}
    pairs = build_pairs(rows, completions, scores, k, args.min_score_gap, source)
    if not pairs:
        raise UserError(f"no prompt had completions {args.min_score_gap} apart in score among {len(rows)} prompts: "
                        "raise temperature or samples_per_prompt, lower min_score_gap, or check the rewards")

    claim_output_dir(args.output_dir, run_args)
    write_atomic(Path(args.output_dir) / "pairs.jsonl", "".join(json.dumps(p) + "\n" for p in pairs))
    verified = [s for s in scores if s is not None]
    results = {"prompts": len(rows), "samples_per_prompt": k, "pairs": len(pairs), "engine": engine,
               "mean_score": sum(verified) / len(verified) if verified else None,
               "unverified": len(scores) - len(verified)}
    manifest = write_run_files(args.output_dir, "pairs", recipe, args.seed,
                               models.base_model_id(model_args.model_name_or_path), results=results)
    print(f"{len(pairs)} pairs from {len(rows)} prompts ({k} samples each, {engine}); "
          f"saved to {args.output_dir}/pairs.jsonl")
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
