"""SFT stage: supervised fine-tuning on worked solutions with TRL's ``SFTTrainer``.

    accelerate launch rlft/sft.py recipes/sft.yaml [--key value ...]
    python -m rlft.sft recipes/sft.yaml --max_steps 3
    rlft sft recipes/sft.yaml

Rows are shaped as prompt/completion pairs, so TRL computes the loss on the
completion (assistant) tokens only. LoRA by default (``use_peft: false`` for
full fine-tuning). The run's sequence is :class:`rlft.stage.skeleton.TrainingStage`'s;
the output directory holds the adapter, the tokenizer, ``recipe.yaml`` and
``rlft_manifest.json``, and the run ends with a greedy before/after check.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rlft.core.errors import run_cli
from rlft.stage.skeleton import TrainingStage


class SFT(TrainingStage):
    name = "sft"

    def config_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def build_trainer(self, args, splits, tokenizer, model):
        """TRL ``SFTTrainer`` on prompt/completion rows (loss on the completion only)."""
        from trl import SFTTrainer

        from rlft.core import data, models
        from rlft.stage.checkpoints import with_atomic_checkpoints

        train = data.for_sft(splits["train"], args.data.sft_target_column)
        if args.model.chat_template_kwargs:  # TRL's SFT reads template options per row
            options = dict(args.model.chat_template_kwargs)
            train = train.map(lambda _: {"chat_template_kwargs": options})
        return with_atomic_checkpoints(SFTTrainer)(
            model=model, args=args.train, train_dataset=train, processing_class=tokenizer,
            peft_config=models.lora_config(args.model),
        )


def parse(argv: Sequence[str] | None):
    return SFT().parse(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the SFT stage; returns the manifest written to the output directory."""
    from rlft.evaluation.closing import closing_text

    stage = SFT()
    manifest = stage.run(argv)
    if manifest:
        print(closing_text(manifest, stage.output_dir))
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
