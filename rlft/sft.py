"""SFT stage: supervised fine-tuning on worked solutions with TRL's ``SFTTrainer``.

    accelerate launch rlft/sft.py recipes/sft.yaml [--key value ...]
    python -m rlft.sft recipes/sft.yaml --max_steps 3
    rlft sft recipes/sft.yaml

Rows are shaped as prompt/completion pairs, so TRL computes the loss on the
completion (assistant) tokens only. LoRA by default (``use_peft: false`` for
full fine-tuning). The output directory holds the adapter, the tokenizer,
``recipe.yaml`` and ``rlft_manifest.json``; the run ends with a greedy
before/after check on the test split.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence

from rlft.errors import run_cli

logger = logging.getLogger("rlft.sft")


def parse(argv: Sequence[str] | None):
    from trl import SFTConfig

    from rlft.arguments import DataArguments, EvalArguments, ModelArguments
    from rlft.config import parse_recipe
    from rlft.runtime import platform_defaults

    types = [DataArguments, EvalArguments, ModelArguments, SFTConfig]
    return parse_recipe(types, argv, prog="rlft sft", defaults=platform_defaults())


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the SFT stage; returns the manifest written to the output directory."""
    (data_args, eval_args, model_args, cfg), recipe = parse(argv)

    from transformers import set_seed

    from rlft import data, greedy, models
    from rlft.manifest import launch_info, write_atomic, write_run_files
    from rlft.runtime import is_main_process, setup_logging

    setup_logging(cfg.log_level if cfg.log_level != "passive" else "info")
    set_seed(cfg.seed)

    # data, model, trainer
    splits = data.load_splits(data_args, seed=cfg.seed)
    tokenizer = models.load_tokenizer(model_args.model_name_or_path)
    trainer = build_trainer(cfg, model_args, data_args, splits["train"], tokenizer)

    # train, save
    trainer.train()
    trainer.save_model(cfg.output_dir)

    # greedy before/after on held-out prompts
    results: dict = {}
    if eval_args.eval_before_after and is_main_process() and trainer.accelerator.num_processes == 1:
        results = evaluate(trainer.model, tokenizer, splits["test"], eval_args, model_args, cfg.output_dir)

    manifest = {}
    if is_main_process():
        write_atomic(f"{cfg.output_dir}/log_history.jsonl",
                     "".join(json.dumps(e) + "\n" for e in trainer.state.log_history))
        manifest = write_run_files(
            cfg.output_dir, "sft", recipe, cfg.seed, models.base_model_id(model_args.model_name_or_path),
            data_fingerprint=getattr(splits["train"], "_fingerprint", None), results=results,
            launch=launch_info(trainer.accelerator),
        )
        if results:
            print(greedy.format_table(results["table"]))
        print(f"saved to {cfg.output_dir}")
    return manifest


def build_trainer(cfg, model_args, data_args, train, tokenizer):
    """TRL ``SFTTrainer`` on prompt/completion rows (loss on the completion only)."""
    from trl import SFTTrainer

    from rlft import data, models

    train = data.for_sft(train, data_args.sft_target_column)
    if model_args.chat_template_kwargs:  # TRL's SFT reads template options per row
        options = dict(model_args.chat_template_kwargs)
        train = train.map(lambda _: {"chat_template_kwargs": options})
    model = models.load_model(model_args.model_name_or_path, model_args.dtype)
    return SFTTrainer(
        model=model, args=cfg, train_dataset=train,
        processing_class=tokenizer, peft_config=models.lora_config(model_args),
    )


def evaluate(model, tokenizer, test, eval_args, model_args, output_dir: str) -> dict:
    """Greedy before/after check on the first ``eval_samples`` test rows."""
    from rlft import greedy
    from rlft.manifest import write_atomic

    if "answer" not in test.column_names:
        logger.warning("test split has no 'answer' column: skipping the before/after check")
        return {}
    rows = test.select(range(min(eval_args.eval_samples, len(test))))
    base = None
    if not hasattr(model, "disable_adapter"):
        from rlft.models import load_model

        base = load_model(model_args.model_name_or_path, model_args.dtype)
    table, samples = greedy.before_after(
        model, tokenizer, rows, base_model=base, max_new_tokens=eval_args.eval_max_new_tokens,
        batch_size=eval_args.eval_batch_size, chat_template_kwargs=model_args.chat_template_kwargs,
    )
    write_atomic(f"{output_dir}/before_after.jsonl", "".join(json.dumps(s) + "\n" for s in samples))
    return {"table": table}


if __name__ == "__main__":
    sys.exit(run_cli(main))
