"""The stock alternative for the GRPO benchmarks: an rlft recipe run on plain TRL ``GRPOTrainer``.

    .venv/bin/python tests/bench/stock_trl_grpo.py recipes/math.yaml [--budget-seconds 900] [--key value ...]

The recipe is read with rlft's parser only to get the same values (data,
reward, GRPO settings, LoRA); the training itself is TRL's ``GRPOTrainer``
as a user would write it: the model loaded with transformers in the same
dtype as rlft loads it, a peft ``LoraConfig``, TRL's default generation
(transformers ``generate``), no rlft trainer subclass and no rollout engine.
``--budget-seconds`` stops training at the last step that ends within that
many seconds of this process starting (the learning-per-minute benchmark).
Writes the adapter, checkpoints and ``log_history.jsonl`` into ``output_dir``.
"""

from __future__ import annotations

import time

PROCESS_START = time.monotonic()

import argparse
import json
import sys
from pathlib import Path

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """Stop before a step that would end after ``budget`` seconds from process start."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.last = time.monotonic()
        self.longest = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now
        if now - PROCESS_START + self.longest > self.budget:
            control.should_training_stop = True
        return control


def stock_trainer(recipe_argv: list[str], callbacks: list | None = None):
    """Plain TRL ``GRPOTrainer`` for an rlft recipe (plus ``--key value`` overrides), as a user would build it.

    Example:
        >>> trainer = stock_trainer(["recipes/math.yaml", "--max_steps", "1"])  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import GRPOTrainer

    from rlft.core import data, models
    from rlft.core.arguments import RewardArguments
    from rlft.grpo import parse
    from rlft.stage.skeleton import StageArgs

    args = StageArgs(*parse(recipe_argv))
    data_args, model_args, reward_args, cfg = args.data, args.model, args.get(RewardArguments), args.train
    set_seed(cfg.seed)
    splits = data.load_splits(data_args, seed=cfg.seed)
    model_dir = models.resolve_model(model_args.model_name_or_path).base
    dtype = model_args.dtype if model_args.dtype not in (None, "auto") else "auto"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype, dtype))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    peft_config = LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha,
                             lora_dropout=model_args.lora_dropout, target_modules="all-linear",
                             task_type="CAUSAL_LM") if model_args.use_peft else None
    return GRPOTrainer(model=model, reward_funcs=reward_args.build(), args=cfg, train_dataset=splits["train"],
                       processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks or [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-seconds", type=float, default=None)
    known, recipe_argv = parser.parse_known_args()

    callbacks = [TimeBudget(known.budget_seconds)] if known.budget_seconds else []
    trainer = stock_trainer(recipe_argv, callbacks)
    trainer.train()
    cfg = trainer.args
    trainer.save_model(cfg.output_dir)
    out = Path(cfg.output_dir)
    (out / "log_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trainer.state.log_history))
    print(f"stock TRL: {trainer.state.global_step} steps in {time.monotonic() - PROCESS_START:.1f}s "
          f"since process start; saved to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
