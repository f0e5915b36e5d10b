"""Datasets for every stage: local files, hub datasets and built-in task generators.

``dataset_name`` selects the source:

- ``task:arithmetic`` / ``task:word_problems``: generated offline (see :mod:`rlft.core.tasks`),
- a path to a ``.jsonl``/``.json``/``.csv``/``.parquet`` file (or a directory of them; in a directory,
  files named after the splits, ``train.jsonl`` and ``test.jsonl``, are those splits),
- anything else: a hub dataset id (with ``dataset_config``), loaded through ``datasets``.

Every source is turned into a ``DatasetDict`` with ``train`` and ``test``
splits. A source without a test split is split once with ``test_size`` and the
run's seed. Stages then ask for the columns they need through
:func:`require_columns`, which fails with one line listing the columns there are.

Example:
    >>> from rlft.core.arguments import DataArguments
    >>> splits = load_splits(DataArguments(dataset_name="task:arithmetic",
    ...                                    num_train_samples=8, num_test_samples=4))
    >>> len(splits["train"]), len(splits["test"])
    (8, 4)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rlft.core import tasks
from rlft.core.arguments import DataArguments
from rlft.core.errors import UserError, one_line

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def _task_splits(args: DataArguments, seed: int):
    from datasets import Dataset, DatasetDict

    name = args.dataset_name.removeprefix("task:")
    kwargs = dict(args.task_kwargs or {})
    train = tasks.generate(name, "train", args.num_train_samples or 2000, seed=seed, **kwargs)
    test = tasks.generate(name, "test", args.num_test_samples or 200, seed=seed, **kwargs)
    return DatasetDict(train=Dataset.from_list(train), test=Dataset.from_list(test))


def _looks_like_path(name: str) -> bool:
    return (
        Path(name).suffix.lower() in FILE_BUILDERS
        or name.startswith((".", "/", "~"))
        or Path(name).expanduser().exists()
    )


def _file_splits(args: DataArguments):
    from datasets import load_dataset

    path = Path(args.dataset_name).expanduser()
    if not path.exists():
        raise UserError(f"dataset file not found: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FILE_BUILDERS) if path.is_dir() else [path]
    if not files:
        raise UserError(f"no .jsonl/.json/.csv/.parquet files in dataset directory {path}")
    builder = FILE_BUILDERS.get(files[0].suffix.lower())
    if builder is None:
        raise UserError(f"unsupported dataset file type {path.suffix!r}; use {', '.join(FILE_BUILDERS)}")
    data_files: list[str] | dict[str, str] = [str(f) for f in files]
    named = {f.stem: str(f) for f in files if f.stem in (args.dataset_train_split, args.dataset_test_split)}
    if path.is_dir() and args.dataset_train_split in named:  # train.jsonl and test.jsonl: the splits, by name
        data_files = named
    import datasets as bars

    was_off = bars.are_progress_bars_disabled()
    bars.disable_progress_bars()  # "Generating train split" on a first read: the run's own lines say what loaded
    try:
        return load_dataset(builder, data_files=data_files)
    except Exception as err:  # noqa: BLE001 - datasets raises many types for malformed files
        raise UserError(f"cannot read dataset {path}: {one_line(str(err))[:300]}") from None
    finally:
        if not was_off:
            bars.enable_progress_bars()


def _hub_splits(args: DataArguments):
    from datasets import load_dataset

    try:
        return load_dataset(args.dataset_name, args.dataset_config)
    except Exception as err:  # noqa: BLE001 - offline, missing, gated: all end the run the same way
        raise UserError(
            f"cannot load dataset {args.dataset_name!r}: {one_line(str(err))[:300]} "
            "(for a local file give its path; for a built-in task use task:arithmetic or task:word_problems)"
        ) from None


def load_splits(args: DataArguments, seed: int = 42):
    """Load ``args.dataset_name`` into a ``DatasetDict`` with ``train`` and ``test`` splits.

    Example:
        >>> load_splits(DataArguments(dataset_name="data/train.jsonl"))  # doctest: +SKIP
        DatasetDict({train: ..., test: ...})
    """
    from datasets import DatasetDict

    name = args.dataset_name
    if name.startswith("task:"):
        return with_system_prompt(_task_splits(args, seed), args.system_prompt)
    raw = _file_splits(args) if _looks_like_path(name) else _hub_splits(args)
    train_name, test_name = args.dataset_train_split, args.dataset_test_split
    if train_name not in raw:
        raise UserError(
            f"dataset {name!r} has no split {train_name!r}; it has {', '.join(raw)} "
            "(set dataset_train_split)"
        )
    train = raw[train_name]
    if test_name and test_name in raw:
        test = raw[test_name]
    else:
        if len(train) < 2:
            raise UserError(f"dataset {name!r} has {len(train)} row(s); need at least 2 to hold out a test split")
        parts = train.train_test_split(test_size=args.test_size, seed=seed)
        train, test = parts["train"], parts["test"]
        logger.info("dataset %s has no %r split: held out %d rows for testing", name, test_name, len(test))
    if args.num_train_samples:
        train = train.select(range(min(args.num_train_samples, len(train))))
    if args.num_test_samples:
        test = test.select(range(min(args.num_test_samples, len(test))))
    if args.prompt_column:
        train, test = (with_prompts(split, args.prompt_column, args.prompt_instruction) for split in (train, test))
    return with_system_prompt(DatasetDict(train=train, test=test), args.system_prompt)


def with_system_prompt(splits: Any, system: str | None) -> Any:
    """Every chat ``prompt`` (and ``messages`` row) of ``splits`` opened by a system turn saying ``system``.

    A row that already opens with a system turn keeps its own (counted in
    the log); text prompts cannot carry one and are refused.

    Example:
        >>> from datasets import Dataset, DatasetDict
        >>> rows = [{"prompt": [{"role": "user", "content": "1+1?"}]},
        ...         {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]}]
        >>> out = with_system_prompt(DatasetDict(train=Dataset.from_list(rows)), "Think first.")
        >>> [row["prompt"][0]["content"] for row in out["train"]]
        ['Think first.', 'Be brief.']
    """
    if not system:
        return splits
    turn = {"role": "system", "content": system}
    for name, split in splits.items():
        columns = [c for c in ("prompt", "messages") if c in split.column_names]
        for column in columns:
            if len(split) and not is_conversational(split[0][column]):
                raise UserError(f"system_prompt needs chat prompts; the {name} split's {column!r} holds text "
                                "(give prompt_column, or chat-format rows)")
            own = sum(1 for row in split[column] if row and row[0].get("role") == "system")
            if own:
                logger.info("system_prompt: %d of %d %s rows have their own system turn and keep it", own,
                            len(split), name)
            split = split.map(lambda row, c=column: {c: row[c] if row[c] and row[c][0].get("role") == "system"
                                                      else [turn, *row[c]]})
        splits[name] = split
    return splits


def with_prompts(dataset: Any, column: str, instruction: str | None = None) -> Any:
    """Add a chat ``prompt`` (one user turn: the ``column`` text, then ``instruction``) to every row.

    How hub datasets such as GSM8K (``question`` / ``answer``) become GRPO prompts.

    Example:
        >>> from datasets import Dataset
        >>> ds = with_prompts(Dataset.from_list([{"question": "1+1?", "answer": "2"}]), "question", "Box it.")
        >>> ds[0]["prompt"]
        [{'role': 'user', 'content': '1+1?\\nBox it.'}]
    """
    require_columns(dataset, [column], "prompt_column")
    if "prompt" in dataset.column_names:
        raise UserError(f"dataset already has a 'prompt' column; drop prompt_column ({column!r}) from the recipe")
    suffix = f"\n{instruction}" if instruction else ""
    return dataset.map(lambda row: {"prompt": [{"role": "user", "content": f"{row[column]}{suffix}"}]})


def require_columns(dataset: Any, columns: Iterable[str], why: str) -> None:
    """Fail with one line if ``dataset`` lacks any of ``columns`` (``why`` says who needs them).

    Example:
        >>> from datasets import Dataset
        >>> require_columns(Dataset.from_list([{"prompt": "hi"}]), ["answer"], "the accuracy reward")
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: dataset has no column 'answer' (needed by the accuracy reward); its columns are: prompt
    """
    have = list(dataset.column_names)
    for col in columns:
        if col not in have:
            raise UserError(
                f"dataset has no column {col!r} (needed by {why}); its columns are: {', '.join(have)}"
            )


def is_conversational(value: Any) -> bool:
    """True for a list of ``{"role": ..., "content": ...}`` messages."""
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]


def for_sft(dataset: Any, target_column: str = "solution") -> Any:
    """Shape rows for TRL's ``SFTTrainer`` as prompt/completion pairs.

    Accepts ``messages`` (kept as is; the SFT stage trains them on their
    assistant turns, see :func:`with_assistant_masks`), ``prompt`` +
    ``completion``, or ``prompt`` + ``target_column`` (e.g. the generators'
    ``solution``). With a prompt/completion layout TRL computes the loss on
    the completion only.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "1+1?"}], "solution": "2"}])
        >>> for_sft(ds)[0]["completion"]
        [{'role': 'assistant', 'content': '2'}]
    """
    cols = dataset.column_names
    if "messages" in cols:
        return dataset.select_columns(["messages"])
    if "prompt" in cols and "completion" in cols:
        return dataset.select_columns(["prompt", "completion"])
    require_columns(dataset, ["prompt", target_column], "the SFT stage (prompt + target)")

    def shape(row: dict[str, Any]) -> dict[str, Any]:
        target = row[target_column]
        if is_conversational(row["prompt"]):
            return {"prompt": row["prompt"], "completion": [{"role": "assistant", "content": target}]}
        return {"prompt": row["prompt"], "completion": target}

    return dataset.map(shape, remove_columns=cols)


def with_template_options(dataset: Any, chat_template_kwargs: dict[str, Any] | None) -> Any:
    """Rows carrying ``chat_template_kwargs`` in the per-row column TRL's SFT, DPO and ORPO render chats with.

    ``SFTConfig``, ``DPOConfig`` and ``ORPOConfig`` have no field for them:
    each trainer reads a row's ``chat_template_kwargs`` column when it
    applies the chat template (plain-text rows are not templated).

    Example:
        >>> from datasets import Dataset
        >>> rows = Dataset.from_list([{"prompt": "Hi", "chosen": " Hello", "rejected": " No"}])
        >>> with_template_options(rows, {"enable_thinking": False})[0]["chat_template_kwargs"]
        {'enable_thinking': False}
        >>> with_template_options(rows, None).column_names
        ['prompt', 'chosen', 'rejected']
    """
    if not chat_template_kwargs:
        return dataset
    options = dict(chat_template_kwargs)
    return dataset.map(lambda _: {"chat_template_kwargs": options})


def trl_masks_assistant_turns(tokenizer: Any) -> bool:
    """True when TRL's ``assistant_only_loss`` can find the assistant turns in this tokenizer's chat template.

    TRL needs ``{% generation %}`` markers in the template, or a template it
    knows how to swap for a marked one (``get_training_chat_template``);
    SmolLM2's (the bundled model's) has neither, so rlft masks it itself
    (:func:`with_assistant_masks`).

    Example:
        >>> from types import SimpleNamespace
        >>> marked = "{% for m in messages %}{% generation %}{{ m['content'] }}{% endgeneration %}{% endfor %}"
        >>> trl_masks_assistant_turns(SimpleNamespace(chat_template=marked))
        True
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if has_generation_markers(tokenizer.chat_template):
        return True
    try:
        get_training_chat_template(tokenizer)  # the same check SFTTrainer makes, which raises for unknown templates
    except ValueError:
        return False
    return True


def assistant_token_mask(tokenizer: Any, messages: list[dict[str, Any]],
                         chat_template_kwargs: dict[str, Any] | None = None) -> dict[str, list[int]]:
    """A conversation's token ids and a mask that is 1 on its assistant turns only.

    Each assistant turn is found by rendering the conversation prefix by
    prefix: it starts after the turns before it and the generation prompt
    (the assistant's role header) and ends after the turn itself, its
    end-of-turn token included (as in TRL's own ``{% generation %}``
    templates), so the model learns to stop. System and user turns, their
    headers and the header of each assistant turn stay 0.

    Example:
        >>> from rlft.core.models import load_tokenizer
        >>> tok = load_tokenizer("bundled:smollm2-135m-instruct")
        >>> out = assistant_token_mask(tok, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
        >>> tok.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m])
        'Hello<|im_end|>\\n'
    """
    from trl.data_utils import common_prefix_length

    options = dict(chat_template_kwargs or {})

    def render(turns: list[dict[str, Any]], generation_prompt: bool = False) -> str:
        return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=generation_prompt,
                                             **options)

    def encode(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]  # what apply_chat_template(tokenize=True) does

    full_text = render(messages)
    input_ids = encode(full_text)
    mask = [0] * len(input_ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        if i == 0:  # transformers renders no empty prefix: the template's preamble cannot be told apart
            raise UserError("a conversation opens with an assistant turn, whose tokens rlft cannot tell from the "
                            "chat template's preamble; start it with a system or user turn, or set "
                            "assistant_only_loss: false to train on every token")
        before, through = render(messages[:i], generation_prompt=True), render(messages[:i + 1])
        if not (full_text.startswith(before) and full_text.startswith(through)):
            # earlier turns render differently on their own: a span from prefixes would cover the wrong tokens
            raise UserError(
                f"the chat template renders a conversation up to its assistant turn {i} differently on its own "
                "than inside the whole conversation, so rlft cannot find that turn's tokens; use a template with "
                "{% generation %} markers, or set assistant_only_loss: false to train on every token"
            )
        # token boundaries by common prefix: a token merged across a boundary counts as the assistant's
        start = common_prefix_length(encode(before), input_ids)
        end = common_prefix_length(encode(through), input_ids)
        mask[start:end] = [1] * (end - start)
    return {"input_ids": input_ids, "assistant_masks": mask}


def with_assistant_masks(dataset: Any, tokenizer: Any, chat_template_kwargs: dict[str, Any] | None = None) -> Any:
    """``messages`` rows as the pre-tokenized rows TRL's ``SFTTrainer`` takes: ``input_ids`` + ``assistant_masks``.

    TRL turns ``assistant_masks`` into labels (-100 off the assistant turns),
    truncates to ``max_length`` and drops rows left with nothing to learn.

    Example:
        >>> from datasets import Dataset
        >>> from rlft.core.models import load_tokenizer
        >>> rows = Dataset.from_list([{"messages": [{"role": "user", "content": "Hi"},
        ...                                         {"role": "assistant", "content": "Hello"}]}])
        >>> with_assistant_masks(rows, load_tokenizer("bundled:smollm2-135m-instruct")).column_names
        ['input_ids', 'assistant_masks']
    """
    def tokenize(row: dict[str, Any], index: int) -> dict[str, list[int]]:
        try:
            return assistant_token_mask(tokenizer, row["messages"], chat_template_kwargs)
        except UserError as err:
            raise UserError(f"SFT row {index}: {err}") from None

    return dataset.map(tokenize, with_indices=True, remove_columns=dataset.column_names)
