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

import logging
import sys
from collections.abc import Sequence

from rlft.errors import run_cli

logger = logging.getLogger("rlft.sft")


def parse(argv: Sequence[str] | None):
    from trl import SFTConfig

    from rlft.arguments import DataArguments, EvalArguments, ModelArguments
    from rlft.config import parse_recipe
    from rlft.run_dir import RunArguments
    from rlft.runtime import cpu_precision, platform_defaults

    types = [DataArguments, EvalArguments, ModelArguments, RunArguments, SFTConfig]
    return parse_recipe(types, argv, prog="rlft sft", defaults=platform_defaults(), adjust=cpu_precision)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the SFT stage; returns the manifest written to the output directory."""
    (data_args, eval_args, model_args, run_args, cfg), recipe = parse(argv)

    from transformers import set_seed

    from rlft import checks, data, greedy, models
    from rlft.runtime import is_main_process, setup_logging
    from rlft.stage import StageRun

    setup_logging(cfg.log_level if cfg.log_level != "passive" else "info")
    set_seed(cfg.seed)
    run = StageRun("sft", recipe, run_args, model_args)
    run.check(cfg.output_dir)
    checks.check_counts(cfg)

    # data, model, trainer
    splits = data.load_splits(data_args, seed=cfg.seed)
    tokenizer = models.load_tokenizer(model_args.model_name_or_path)
    checks.require_chat_template(tokenizer, splits["train"], model_args.model_name_or_path)
    trainer = build_trainer(cfg, model_args, data_args, splits["train"], tokenizer)

    # train, save
    run.begin(trainer, splits["train"])
    run.train()
    trainer.save_model(cfg.output_dir)

    # greedy before/after on held-out prompts, then the run's record
    if not is_main_process():
        return {}
    manifest = run.conclude(tokenizer, splits["test"], eval_args, {})
    print(greedy.closing_text(manifest, cfg.output_dir))
    return manifest


def build_trainer(cfg, model_args, data_args, train, tokenizer):
    """TRL ``SFTTrainer`` on prompt/completion rows (loss on the completion only), with atomic checkpoints."""
    from trl import SFTTrainer

    from rlft import checks, data, models
    from rlft.run_dir import AtomicCheckpoints

    class RlftSFTTrainer(AtomicCheckpoints, SFTTrainer):
        pass

    train = data.for_sft(train, data_args.sft_target_column)
    if model_args.chat_template_kwargs:  # TRL's SFT reads template options per row
        options = dict(model_args.chat_template_kwargs)
        train = train.map(lambda _: {"chat_template_kwargs": options})
    model = models.load_model(model_args.model_name_or_path, model_args.dtype)
    checks.check_lora_targets(model, model_args)
    return RlftSFTTrainer(
        model=model, args=cfg, train_dataset=train,
        processing_class=tokenizer, peft_config=models.lora_config(model_args),
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
