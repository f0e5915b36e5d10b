"""The memory plan of a stage's run, made from its recipe, data and tokenizer, and checked before the model loads.

Each stage says what its peak training micro-batch is (:meth:`TrainingStage.memory_rows`:
rows and the longest row in tokens); this module reads the model's shape
from its config, fills in precision, LoRA, checkpointing and the engine, and
asks :mod:`rlft.stage.memory_plan` for the estimate. ``memory_check`` (a
run key) decides what a plan that does not fit does: ``error`` refuses in
one line with a change that would fit, ``warn`` logs it, ``off`` only logs
the plan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rlft.core.accelerator import cuda_available
from rlft.core.errors import UserError
from rlft.core.models import resolve_model
from rlft.stage.memory_plan import (
    Choice,
    ModelShape,
    Plan,
    Workload,
    candidates,
    cheaper,
    env_available_override,
    estimate,
    gb,
    machine_memory,
)

logger = logging.getLogger(__name__)

SAMPLE_ROWS = 1000  # rows tokenized to find the longest: a longer row past them is not seen (max_length caps SFT/DPO)


def model_shape(name_or_path: str, trust_remote_code: bool = False) -> tuple[ModelShape, dict]:
    """The shape of ``name_or_path``'s base model and its config (a run directory resolves to its base)."""
    from transformers import AutoConfig

    base = resolve_model(name_or_path).base
    config = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code).to_dict()
    return ModelShape.from_config(config), config


def lora_params(shape: ModelShape, rank: int) -> int:
    """Trainable parameters of rank-``rank`` LoRA on every linear layer (the most ``all-linear`` adds).

    Example:
        >>> lora_params(ModelShape(params=0, layers=1, hidden=10, intermediate=20, kv_dim=5, vocab=1), 2)
        320
    """
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_dim
    per_layer = (h + h) * 2 + (h + kv) * 2 + (h + i) * 2 + (i + h)  # q and o, k and v, gate and up, down
    return shape.layers * per_layer * rank


def weight_bytes(args: Any, config: dict, shape: ModelShape) -> float:
    """Bytes per parameter as the weights are loaded: the recipe's dtype, else the checkpoint's; 4-bit bases keep
    their embeddings (and norms) wide."""
    model = args.model
    dtype = model.dtype if model.dtype not in (None, "auto") else config.get("dtype") or config.get("torch_dtype")
    wide = 2.0 if str(dtype) in ("bfloat16", "float16", "torch.bfloat16", "torch.float16") else 4.0
    if getattr(model, "load_in_4bit", False):  # nf4: half a byte, plus its block scales (~0.05)
        return (0.55 * (shape.params - shape.embedding_params) + wide * shape.embedding_params) / shape.params
    return wide


def longest_tokens(tokenizer: Any, rows: Any, columns: Iterable[str], tools: list | None = None,
                   options: dict | None = None, cap: int | None = None) -> int:
    """The most tokens any of the first rows takes over ``columns`` (chats through the chat template), at most
    ``cap`` (the trainer's ``max_length`` truncation).

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> longest_tokens(tokenizer, [{"prompt": "What is 2 + 2?"}], ["prompt"])  # doctest: +SKIP
        8
    """
    longest = 0
    for index, row in enumerate(rows):
        if index >= SAMPLE_ROWS:
            break
        longest = max(longest, row_tokens(tokenizer, row, columns, tools, options))
    return min(longest, cap) if cap else longest


def row_tokens(tokenizer: Any, row: dict, columns: Iterable[str], tools: list | None = None,
               options: dict | None = None) -> int:
    """The tokens one row takes over ``columns``: text as it is, chat turns as one conversation through the chat
    template (with ``tools`` and the template ``options``)."""
    total, chat = 0, []
    for column in columns:
        value = row.get(column)
        if isinstance(value, str):
            total += len(tokenizer(value, add_special_tokens=False)["input_ids"])
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            chat += value  # prompt and answer turns: one conversation, as the trainer renders them
    if chat:
        total += len(tokenizer.apply_chat_template(chat, tools=tools, tokenize=True, return_dict=False,
                                                   **(options or {})))
    return total


def plan_run(args: Any, rows: dict[str, int], engine: dict | None = None) -> Plan | None:
    """The plan of one training process of this run (``rows``: the stage's ``sequences`` and ``tokens``).

    ``None`` on a GPU: the plan's coefficients are measured for CPU memory only (said in the log).
    """
    model, cfg = args.model, args.train
    if cuda_available() and not getattr(cfg, "use_cpu", False):
        logger.info("memory plan: not made for CUDA runs (its figures are measured for CPU memory)")
        return None
    try:
        shape, config = model_shape(model.model_name_or_path, bool(getattr(model, "trust_remote_code", False)))
    except (KeyError, TypeError) as err:  # a config without Llama-style names (GPT-2's n_embd, n_layer)
        logger.warning("memory plan: not made for %s: its config has no %s; memory_check skipped",
                       model.model_name_or_path, err)
        return None
    total, available = machine_memory()
    override = env_available_override()
    engine = engine or {}
    work = Workload(
        sequences=rows["sequences"], tokens=rows["tokens"], logit_tokens=rows.get("logit_tokens"),
        loss=rows.get("loss", "other"), accumulation=cfg.gradient_accumulation_steps,
        per_example=rows.get("per_example", 1),
        precision="bf16" if cfg.bf16 else "float32",
        gradient_checkpointing=bool(cfg.gradient_checkpointing),
        trained_params=lora_params(shape, model.lora_r) if model.use_peft else None,
        reference_copy=bool(rows.get("reference_copy")) and not model.use_peft,
        weight_bytes=weight_bytes(args, config, shape),
        engine=engine.get("engine", "none"), engine_fraction=engine.get("fraction", 0.0),
        generation_sequences=engine.get("sequences", 0), machine_bytes=total,
    )
    return estimate(shape, work, override if override is not None else available)


def check(plan: Plan | None, mode: str) -> dict[str, Any] | None:
    """Log the plan; refuse (``error``) or warn (``warn``) when it does not fit. Returns the manifest's record."""
    if plan is None:
        return None
    if plan.fits or mode == "off":
        logger.info(plan.line())
        return plan.record()
    message = f"memory plan: this run {too_big(plan)}"
    if mode == "error":
        raise UserError(f"{message} (memory_check: warn runs it anyway)")  # the one line holds the figures
    logger.info(plan.line())
    logger.warning(f"{message}; memory_check: warn, running anyway")
    return plan.record()


def too_big(plan: Plan) -> str:
    """What a plan that does not fit needs, what is available, and the first change that would fit: the words
    of every memory refusal (a run, ``rlft check``, a pipeline or grid planned ahead)."""
    return f"needs about {gb(plan.peak)} at its peak and {gb(plan.available)} is available; {cheaper(plan)}"


def choose(plan: Plan | None, asked: list[str], mode: str, divides: int = 0) -> Choice:
    """The fastest setting of the ``auto`` keys in ``asked`` whose plan fits (:func:`candidates`), logged.

    Nothing fits: refused in one line (``memory_check: error``), else the
    cheapest setting with a warning. No plan (a GPU, a config without
    Llama-style names): refused, since there is nothing to choose from.
    """
    keys = " and ".join(f"{key}: auto" for key in asked)
    if plan is None:
        raise UserError(f"{keys} needs rlft's memory plan, which is made for CPU runs of Llama-style models only; "
                        "set a value")
    options = candidates(plan, "per_device_train_batch_size" in asked, "gradient_checkpointing" in asked, divides)
    fitting = [option for option in options if option.plan.fits]
    if fitting:
        choice = fitting[0]
    elif mode == "error":
        raise UserError(f"{keys}: no setting fits: the cheapest needs about {gb(options[-1].plan.peak)} and "
                        f"{gb(plan.available)} is available; shorten max_completion_length or max_length "
                        "(memory_check: warn runs the cheapest anyway)")
    else:  # memory_check warn/off: the cheapest, and check() says it does not fit
        choice = options[-1]
    why = "the fastest whose memory plan fits" if choice.plan.fits else "none fits: the cheapest"
    logger.info(f"{keys} chose {describe(choice)} ({why}: {gb(choice.plan.peak)} of {gb(plan.available)})")
    return choice


def describe(choice: Choice) -> str:
    """The chosen setting in the recipe's words.

    Example:
        >>> describe(Choice(8, 4, False, None))
        'per_device_train_batch_size: 8, gradient_accumulation_steps: 4, gradient_checkpointing: false'
    """
    return (f"per_device_train_batch_size: {choice.examples}, gradient_accumulation_steps: {choice.accumulation}, "
            f"gradient_checkpointing: {str(choice.checkpointing).lower()}")
