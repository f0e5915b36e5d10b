"""Checks on a stage's inputs that TRL or transformers would only fail on deep inside training.

Each failure is a :class:`~rlft.core.errors.UserError` (one line, exit code 2),
raised before anything is written to the output directory.

Example:
    >>> from types import SimpleNamespace
    >>> check_counts(SimpleNamespace(max_steps=0, per_device_train_batch_size=8))
    Traceback (most recent call last):
    ...
    rlft.core.errors.UserError: max_steps must be positive (or -1 to train num_train_epochs), got 0
"""

from __future__ import annotations

import os
from typing import Any

from rewards import RewardInputError, contract
from rlft.core.data import is_conversational
from rlft.core.errors import UserError

# recipe keys that must be positive integers when a stage's config has them
POSITIVE = ("per_device_train_batch_size", "gradient_accumulation_steps", "max_completion_length",
            "max_length", "num_iterations")


def check_counts(cfg: Any) -> None:
    """Step counts, batch sizes and lengths must be positive."""
    steps = getattr(cfg, "max_steps", -1)
    if steps == 0 or steps < -1:
        raise UserError(f"max_steps must be positive (or -1 to train num_train_epochs), got {steps}")
    if steps == -1 and getattr(cfg, "num_train_epochs", 1) <= 0:
        raise UserError(f"num_train_epochs must be positive, got {cfg.num_train_epochs}")
    for name in POSITIVE:
        value = getattr(cfg, name, None)
        if value is not None and value <= 0:
            raise UserError(f"{name} must be positive, got {value}")
    for name, strategy in (("save_steps", "save_strategy"), ("logging_steps", "logging_strategy")):
        value = getattr(cfg, name, None)
        if getattr(cfg, strategy, None) == "steps" and value is not None and value <= 0:  # str enums
            raise UserError(f"{name} must be positive with {strategy}: steps, got {value}")


def check_eval_settings(cfg: Any) -> None:
    """Evaluation during training that cannot work as set: refused before any library loads.

    Example:
        >>> from types import SimpleNamespace
        >>> check_eval_settings(SimpleNamespace(eval_steps=None, keep_best="eval/accuracy"))
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: keep_best: eval/accuracy needs eval_steps: N (the evaluations it picks from)
    """
    eval_steps, keep_best = getattr(cfg, "eval_steps", None), getattr(cfg, "keep_best", None)
    patience = getattr(cfg, "early_stopping_patience", None)
    for name, value in (("eval_steps", eval_steps), ("early_stopping_patience", patience)):
        if value is not None and value <= 0:
            raise UserError(f"{name} must be a positive integer, got {value}")
    if keep_best and not eval_steps:
        raise UserError(f"keep_best: {keep_best} needs eval_steps: N (the evaluations it picks from)")
    if keep_best and not keep_best.startswith("eval/"):
        raise UserError(f"keep_best names an eval metric such as eval/accuracy, got {keep_best!r}")
    if getattr(cfg, "final_model", "last") == "best" and not keep_best:
        raise UserError("final_model: best needs keep_best: <metric> (e.g. eval/accuracy)")
    if patience and not keep_best:
        raise UserError("early_stopping_patience needs keep_best: <metric> (the value that must improve)")
    strategy = getattr(cfg, "save_strategy", "steps")
    strategy = str(getattr(strategy, "value", strategy))  # transformers' str enum, or the recipe's string
    if keep_best and strategy != "steps":
        raise UserError(f"keep_best keeps a checkpoint: it needs save_strategy: steps (this run has {strategy}); "
                        "a large save_steps saves only the best and the last")


def check_reward_weights(cfg: Any, reward_funcs: list) -> None:
    """One ``reward_weights`` value per reward (TRL would reject a mismatch late).

    Example:
        >>> from types import SimpleNamespace
        >>> check_reward_weights(SimpleNamespace(reward_weights=[1.0, 0.5]), [len])
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: reward_weights has 2 values for 1 reward_funcs; give one weight per reward
    """
    weights = cfg.reward_weights
    if weights is not None and len(weights) != len(reward_funcs):
        raise UserError(
            f"reward_weights has {len(weights)} values for {len(reward_funcs)} reward_funcs; give one weight per reward"
        )


def preflight_rewards(reward_funcs: list, row: dict[str, Any]) -> None:
    """Call every reward once on an empty completion for one training row, before any model loads.

    A reward that needs a column the data lacks, or that crashes on its
    inputs, fails here as one line instead of mid-training inside TRL.
    """
    columns = {k: [v] for k, v in row.items() if k != "prompt"}
    for func in reward_funcs:
        name = getattr(func, "__name__", repr(func))
        try:  # as TRL will call it: a chat completion for a chat prompt, and every keyword TRL passes
            out = contract.call(func, [row.get("prompt")], [""], columns)
        except RewardInputError as err:
            raise UserError(str(err)) from None
        except Exception as err:  # noqa: BLE001 - user code: report, don't trace back
            raise UserError(f"reward {name!r} failed on the first training row: {type(err).__name__}: {err}") from None
        if not isinstance(out, (list, tuple)) or len(out) != 1:
            raise UserError(f"reward {name!r} must return one value per completion; for 1 it returned {out!r}")


def check_scoring(test: Any, reward_funcs: list, samples: int, has_environment: bool = False) -> None:
    """The rewards the before/after table (and eval during training) scores with must score this test split.

    Each reward is called as TRL calls it (:func:`rewards.contract.call`) on
    the first ``samples`` test rows with empty answers: a column it needs and
    the split lacks, or an error, is refused in one line naming the reward;
    so is a reward that returns ``None`` ("cannot verify") for every row, as
    one whose gold column cannot be read does. No column is needed by name.
    With an environment the rewards read the episode, which only the tool
    loop makes: nothing is checked here then.

    Example:
        >>> from datasets import Dataset
        >>> never = lambda completions, **kw: [None] * len(completions)
        >>> check_scoring(Dataset.from_list([{"prompt": "1+1?", "solution": "x"}]), [never], 5)
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: reward '<lambda>' cannot score any of the first 1 test rows (it returned None, cannot verify, for each): the before/after table would be empty; check the column it reads its gold from
    """
    if not reward_funcs or not len(test) or has_environment:
        return
    rows = test.select(range(min(samples, len(test))))
    columns = {c: list(rows[c]) for c in rows.column_names}
    prompts = columns.get("prompt") or [None] * len(rows)
    for func in reward_funcs:
        name = getattr(func, "__name__", repr(func))
        try:
            values = contract.call(func, prompts, [""] * len(rows), columns)
        except RewardInputError as err:
            raise UserError(f"the before/after table cannot be scored: {err} (give reward_funcs your test rows can "
                            "be scored by, or eval_before_after: false)") from None
        except Exception as err:  # noqa: BLE001 - user code: report, don't trace back
            raise UserError(f"reward {name!r} failed on the test split: {type(err).__name__}: {err}") from None
        if all(v is None for v in values):
            raise UserError(f"reward {name!r} cannot score any of the first {len(rows)} test rows (it returned "
                            "None, cannot verify, for each): the before/after table would be empty; check the "
                            "column it reads its gold from")


def check_closing_launch(eval_before_after: bool) -> None:
    """The closing before/after check runs in the main process with the model whole: refused, in one line, under
    ZeRO-3 across several processes, where each holds a shard of it.

    Example:
        >>> check_closing_launch(True)  # one process here: nothing to refuse
    """
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if eval_before_after and processes > 1 and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        raise UserError(f"eval_before_after: ZeRO-3 splits the model across the {processes} processes and the "
                        "closing check needs it whole in one; set eval_before_after: false and compare afterwards "
                        "with rlft eval RECIPE --models base RUN_DIR")


def check_lora_targets(model: Any, model_args: Any) -> None:
    """Every ``lora_target_modules`` name must match a module of ``model`` (``all-linear`` always does)."""
    targets = model_args.lora_target_modules
    if not model_args.use_peft or not targets or targets in ("all-linear", ["all-linear"]):
        return
    import torch

    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear)})
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for target in [targets] if isinstance(targets, str) else targets:
        if target not in names:
            raise UserError(
                f"lora_target_modules: the model has no module named {target!r}; its linear layers are: "
                f"{', '.join(linear)} (or use all-linear)"
            )


def require_chat_template(tokenizer: Any, dataset: Any, model_name: str) -> None:
    """Chat-formatted prompts need a tokenizer with a chat template."""
    if getattr(tokenizer, "chat_template", None):
        return
    first = dataset[0] if len(dataset) else {}
    columns = ("prompt", "messages", "completion", "chosen")
    if any(is_conversational(first.get(col)) for col in columns):
        raise UserError(
            f"the data is in chat format but the tokenizer of {model_name} has no chat template; use an "
            "instruct/chat model, or give plain-text prompts"
        )


def checked_rewards(reward_args: Any, cfg: Any, row: dict[str, Any], on_error: str = "stop") -> list:
    """The recipe's rewards, built, weighed against ``reward_weights``, tried on ``row`` and guarded.

    What GRPO does before its model loads: a bad reward name, setting, weight
    count or a reward that crashes on the data is one line now, not a
    traceback mid-training (:func:`preflight_rewards`); mid-run failures then
    stop or skip per ``on_reward_error`` (:func:`rlft.stage.training_guards.guard_rewards`).
    """
    from rlft.stage.training_guards import guard_rewards

    reward_funcs = reward_args.build()
    check_reward_weights(cfg, reward_funcs)
    preflight_rewards(reward_funcs, row)
    return guard_rewards(reward_funcs, on_error)

