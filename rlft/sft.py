"""SFT stage: supervised fine-tuning on worked solutions with TRL's ``SFTTrainer``.

    accelerate launch rlft/sft.py recipes/sft.yaml [--key value ...]
    python -m rlft.sft recipes/sft.yaml --max_steps 3
    rlft sft recipes/sft.yaml

The loss is on what the assistant says, never on the prompt: prompt/completion
rows (or prompt + ``sft_target_column``) train on the completion only, and
``messages`` rows (whole conversations) on their assistant turns only: system
and user turns, and their role headers, are masked. TRL masks a
conversation where the chat template marks assistant turns (``{% generation %}``,
or a template TRL can patch); otherwise rlft finds the turns by rendering the
conversation prefix by prefix (:func:`rlft.core.data.with_assistant_masks`),
which is what the bundled model's template takes. ``assistant_only_loss: false``
in the recipe trains ``messages`` rows on every token (unset, rlft masks them, where TRL's
default would not). ``chat_template_kwargs`` reach every render. With ``tools``
(``tools: [rlft.tools:calculator]``) every
conversation is rendered with those tools in its system prompt, as GRPO's
rollouts render them, so ``messages`` rows whose assistant turns call tools
(``task_kwargs: {tool_transcript: true}``) teach the calls GRPO will run;
the tool results are not the assistant's and carry no loss, and the closing
check answers through the tool loop, up to ``max_turns`` turns. LoRA by default (``use_peft: false`` for
full fine-tuning). The run's sequence is :class:`rlft.stage.skeleton.TrainingStage`'s;
the output directory holds the adapter, the tokenizer, ``recipe.yaml`` and
``rlft_manifest.json``, and the run ends with a greedy before/after check.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trl

from rlft.core import data, models
from rlft.core.errors import UserError, run_cli
from rlft.stage.skeleton import TrainingStage
from rlft.tools.environments import tool_setup
from rlft.tools.loading import ToolArguments


@dataclass
class LossMaskArguments:
    """Which tokens of ``messages`` rows carry the loss. Read before TRL's ``SFTConfig``, whose default
    (``False``) cannot say "not set"."""

    assistant_only_loss: bool | None = field(
        default=None,
        metadata={"help": "Loss on the assistant turns of messages rows only (unset: yes); false: every token."},
    )


class SFT(TrainingStage):
    name = "sft"
    config = "trl:SFTConfig"
    extra_arguments = (LossMaskArguments, ToolArguments)

    def check_data(self, args, splits) -> None:
        """The recipe's tools imported and checked before the model loads (an environment is refused earlier)."""
        self.tools = tool_setup(args.get(ToolArguments), dict(splits["train"][0]))
        path = args.train.chat_template_path
        if path and not is_template_file(path) and "messages" in splits["train"].column_names:
            raise UserError(f"chat_template_path: {path} is not a .jinja file; with messages rows give the template "
                            "as a .jinja file (a template cloned from a model adds tokens after rlft has tokenized "
                            "the rows)")

    def prepare_tokenizer(self, args, tokenizer) -> None:
        """With tools, a template that renders them; then the recipe's ``eos_token`` and template file
        (:func:`template_first`)."""
        super().prepare_tokenizer(args, tokenizer)
        template_first(args.train, tokenizer)

    def build_trainer(self, args, splits, tokenizer, model):
        """TRL ``SFTTrainer``: loss on completions, or on the assistant turns of ``messages`` rows."""
        from rlft.stage.trainers import stage_trainer

        self.prepare_tokenizer(args, tokenizer)  # tools: saved with the run, so GRPO renders them alike
        functions = self.tools.functions if self.tools else ()
        return stage_trainer(trl.SFTTrainer)(
            model=model, args=args.train, train_dataset=sft_rows(args, splits["train"], tokenizer, functions),
            processing_class=tokenizer, peft_config=models.lora_config(args.model),
        )

    def results(self, trainer) -> dict:
        if not self.tools:
            return {}
        return {"tools": {"tools": self.tools.names, "counts": self.tools.stats.snapshot()}}


def is_template_file(path: str) -> bool:
    return os.path.isfile(path) and path.endswith((".jinja", ".j2"))  # TRL reads such a file as the template


def template_first(cfg, tokenizer) -> None:
    """``eos_token`` and a ``chat_template_path`` file applied to ``tokenizer`` before any row is tokenized.

    TRL's SFTTrainer applies them when it is built, after rlft has tokenized
    ``messages`` rows for its own masking (templates without generation
    markers): training would see the old template and the saved tokenizer the
    new one. TRL applies them again, to the same effect. A template cloned
    from another model (a hub id) also adds tokens and resizes the model, which
    only TRL's own pass does right (refused with ``messages`` rows:
    :meth:`SFT.check_data`).
    """
    if cfg.chat_template_path and is_template_file(cfg.chat_template_path):
        tokenizer.chat_template = Path(cfg.chat_template_path).read_text(encoding="utf-8")
    if cfg.eos_token:
        tokenizer.eos_token = cfg.eos_token


def sft_rows(args, train, tokenizer, tools=()):
    """The rows SFTTrainer gets; for ``messages`` rows, sets ``assistant_only_loss`` where TRL can mask them.

    ``tools`` (functions) are rendered into every conversation: through the
    options of rlft's own masking, or the ``tools`` column TRL's SFT reads.
    TRL's ``assistant_only_loss`` set here is recorded in ``args.settled``.

    Example:
        >>> from types import SimpleNamespace
        >>> from datasets import Dataset
        >>> args = SimpleNamespace(data=SimpleNamespace(sft_target_column="solution"), settled={},
        ...                        get=lambda cls: LossMaskArguments(),
        ...                        model=SimpleNamespace(chat_template_kwargs={"enable_thinking": False}))
        >>> rows = Dataset.from_list([{"prompt": "1+1=", "completion": "2"}])
        >>> sft_rows(args, rows, tokenizer=None)[0]["chat_template_kwargs"]
        {'enable_thinking': False}
    """
    from transformers.utils import get_json_schema

    train = data.for_sft(train, args.data.sft_target_column)
    options = dict(args.model.chat_template_kwargs or {})
    schemas = [get_json_schema(tool) for tool in tools]  # what apply_chat_template makes of the functions
    if "messages" in train.column_names and args.get(LossMaskArguments).assistant_only_loss is not False:
        if data.trl_masks_assistant_turns(tokenizer):
            args.train.assistant_only_loss = True
            args.settled["assistant_only_loss"] = {"value": True, "why": "messages rows: TRL masks all but the "
                                                   "assistant turns (the chat template marks them)"}
        else:  # pre-tokenized with the mask; TRL folds assistant_masks into the labels
            return data.with_assistant_masks(train, tokenizer, {**options, "tools": schemas} if schemas else options)
    train = data.with_template_options(train, options)
    if schemas:  # TRL's SFT renders a row's `tools` column (JSON) into its conversation
        text = json.dumps(schemas)
        train = train.map(lambda _: {"tools": text})
    return train


def parse(argv: Sequence[str] | None):
    return SFT().parse(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the SFT stage; returns the manifest written to the output directory."""
    stage = SFT()
    manifest = stage.run(argv)
    if manifest:
        # imported only now, after the recipe was parsed: rlft.evaluation.closing loads transformers
        from rlft.evaluation.closing import closing_text

        print(closing_text(manifest, stage.output_dir))
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
