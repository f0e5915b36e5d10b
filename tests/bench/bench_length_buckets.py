"""Benchmark: GRPO training-pass time with length buckets vs TRL's one padded pass, on a recorded run's batches.

    make demo                                          # records runs/math/completions/*.parquet
    .venv/bin/python tests/bench/bench_length_buckets.py [--run runs/math] [--steps 30]

Replays the completions a GRPO run logged (``log_completions: true``, as in
``recipes/math.yaml``): each step's 64 rows are split into the recipe's
micro-batches (rows shuffled, as TRL does), the zero-advantage rows are
dropped on both sides (``skip_zero_advantage``, measured in
``bench_grpo_step.py``), and each micro-batch's loss and backward pass runs
twice through rlft's trainer (TRL's ``_compute_loss``): once as TRL's single
padded pass and once in length buckets, in alternating order, after one
untimed pass of each. Same model
(the bundled one, LoRA from the recipe, float32), same rows, same gradient;
only the padding differs. Completions are re-tokenized from their logged
text, so a token count can differ by one from the run's.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ratio, write_report


def load_steps(run: Path, steps: int | None) -> list:
    """The logged completions of ``run``, one DataFrame per step."""
    import pandas as pd

    files = sorted((run / "completions").glob("completions_*.parquet"))
    if not files:
        sys.exit(f"error: no completions logged in {run}/completions; run `make demo` first "
                 "(or a GRPO run with log_completions: true) and pass it as --run")
    return [pd.read_parquet(f) for f in files[:steps]]


def micro_batches(frame, tokenizer, rows_per_batch: int, seed: int) -> list[dict]:
    """TRL-shaped micro-batches (left-padded prompts, right-padded completions) of one logged step."""
    import torch

    from rlft.rollout.vllm_runtime import encode_prompt

    rows = []
    for prompt, completion, advantage in zip(frame.prompt, frame.completion, frame.advantage):
        ids = tokenizer(completion[0]["content"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((encode_prompt(tokenizer, list(prompt)), ids, float(advantage)))
    random.Random(seed).shuffle(rows)
    total_tokens = sum(len(c) for _, c, _ in rows)
    out = []
    for start in range(0, len(rows), rows_per_batch):
        part = rows[start:start + rows_per_batch]
        prompt_width = max(len(p) for p, _, _ in part)
        completion_width = max(len(c) for _, c, _ in part)
        pad = tokenizer.pad_token_id
        out.append({
            "prompt_ids": torch.tensor([[pad] * (prompt_width - len(p)) + p for p, _, _ in part]),
            "prompt_mask": torch.tensor([[0] * (prompt_width - len(p)) + [1] * len(p) for p, _, _ in part]),
            "completion_ids": torch.tensor([c + [pad] * (completion_width - len(c)) for _, c, _ in part]),
            "completion_mask": torch.tensor([[1] * len(c) + [0] * (completion_width - len(c)) for _, c, _ in part]),
            "advantages": torch.tensor([a for _, _, a in part]),
            "num_items_in_batch": torch.tensor(total_tokens),
        })
    return out


def build_trainer(recipe: str, tokenizer):
    """rlft's GRPO trainer on the bundled model with the recipe's LoRA, float32; nothing is generated."""
    from datasets import Dataset
    from trl import GRPOConfig

    from rlft.core.arguments import ModelArguments
    from rlft.core.models import load_model, lora_config
    from rlft.core.recipe import load_recipe_file
    from rlft.training.grpo_trainer import RlftGRPOTrainer

    values = load_recipe_file(recipe)
    model_args = ModelArguments(**{k: values[k] for k in ("model_name_or_path", "lora_r", "lora_alpha",
                                                          "lora_target_modules") if k in values})
    cfg = GRPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-buckets-"), report_to="none", use_cpu=True,
                     bf16=False, loss_type=values.get("loss_type", "dapo"), beta=values.get("beta", 0.0),
                     per_device_train_batch_size=values["per_device_train_batch_size"],
                     num_generations=values["num_generations"])
    trainer = RlftGRPOTrainer(model=load_model(model_args.model_name_or_path, "float32"),
                              reward_funcs=[lambda completions, **_: [0.0] * len(completions)], args=cfg,
                              train_dataset=Dataset.from_list([{"prompt": "x"}]), processing_class=tokenizer,
                              peft_config=lora_config(model_args), skip_zero_advantage=True, length_buckets=True)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = values.get("gradient_accumulation_steps", 1)
    return trainer


def timed_pass(trainer, batch: dict, buckets: bool) -> tuple[float, int]:
    """Seconds for one micro-batch's loss and backward, and the tokens its passes held."""
    import torch

    from rlft.training.length_buckets import split_by_length
    from rlft.training.zero_advantage import drop_zero_advantage_rows

    kept = drop_zero_advantage_rows(dict(batch))
    passes = split_by_length(kept) if buckets else [kept]
    tokens = sum(p["prompt_ids"].numel() + p["completion_ids"].numel() for p in passes)
    trainer.length_buckets = buckets
    trainer.model.zero_grad()
    start = time.perf_counter()
    loss = trainer._compute_loss(trainer.model, dict(batch))
    loss.backward()
    seconds = time.perf_counter() - start
    assert torch.isfinite(loss)
    return seconds, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "math", help="a GRPO run with logged completions")
    parser.add_argument("--recipe", default="recipes/math.yaml")
    parser.add_argument("--steps", type=int, default=None, help="replay only the first N steps")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    args = parser.parse_args()

    from rlft.core.models import load_tokenizer
    from rlft.core.recipe import load_recipe_file

    steps = load_steps(args.run, args.steps)
    tokenizer = load_tokenizer(load_recipe_file(args.recipe)["model_name_or_path"])
    trainer = build_trainer(args.recipe, tokenizer)
    totals = {"one-pass": [0.0, 0], "buckets": [0.0, 0]}
    warm_up = micro_batches(steps[0], tokenizer, trainer.args.per_device_train_batch_size, seed=0)[0]
    for buckets in (False, True):  # untimed: the first passes through the model are slower
        timed_pass(trainer, warm_up, buckets)
    for index, frame in enumerate(steps):
        for number, batch in enumerate(micro_batches(frame, tokenizer, trainer.args.per_device_train_batch_size,
                                                     seed=index)):
            order = [False, True] if number % 2 == 0 else [True, False]
            for buckets in order:
                seconds, tokens = timed_pass(trainer, batch, buckets)
                side = totals["buckets" if buckets else "one-pass"]
                side[0] += seconds
                side[1] += tokens
        print(f"step {index + 1}: " + ", ".join(f"{k} {v[0]:.1f} s" for k, v in totals.items()), flush=True)
    report = {
        "setup": {"run": str(args.run), "recipe": args.recipe, "steps": len(steps)},
        "seconds": {k: round(v[0], 1) for k, v in totals.items()},
        "tokens": {k: v[1] for k, v in totals.items()},
        "time_vs_one_pass": ratio(totals["buckets"][0], totals["one-pass"][0]),
        "tokens_vs_one_pass": ratio(totals["buckets"][1], totals["one-pass"][1]),
    }
    print(report, flush=True)
    write_report(args.out, "length_buckets", report)


if __name__ == "__main__":
    main()
