"""How TRL (1.16) calls a reward function, for every caller outside TRL's trainer.

TRL's GRPO trainer calls each reward as
``reward(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=...,
log_extra=..., log_metric=...)`` (``environments`` too, with an environment):
completions are chat messages (``[{"role": "assistant", "content": ...}]``)
when the prompts are conversations, plain strings when they are text, and
every dataset column but ``prompt`` comes as a list, one value per
completion. Rewards written for TRL read ``completion[0]["content"]`` or a
``solution`` column and take ``**kwargs``; rlft's checks, closing table,
``rlft eval``, ``rlft rewards --samples`` and ``rlft pairs`` call rewards
through :func:`call`, so such a reward sees the same forms everywhere.

Example:
    >>> def exact(completions, solution, **kwargs):
    ...     return [float(c[0]["content"].strip() == s) for c, s in zip(completions, solution)]
    >>> call(exact, [[{"role": "user", "content": "2+2?"}]], ["4"], {"solution": ["4"]})
    [1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Keywords TRL passes besides the dataset's columns (``environments`` only with an environment factory).
TRL_KEYWORDS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
                "environments")


def is_chat(prompt: Any) -> bool:
    """Whether ``prompt`` is a conversation (TRL's ``is_conversational``: a list of role/content messages)."""
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def as_completions(outputs: Sequence[str], prompts: Sequence[Any]) -> list[Any]:
    """``outputs`` in the form TRL gives them to rewards: one assistant message for a chat prompt, else text
    (an output that is already a list of messages, a tool-loop transcript, is kept as it is).

    Example:
        >>> as_completions(["4", "5"], [[{"role": "user", "content": "2+2?"}], "2+3="])
        [[{'role': 'assistant', 'content': '4'}], '5']
    """
    return [[{"role": "assistant", "content": o}] if is_chat(p) and isinstance(o, str) else o
            for o, p in zip(outputs, prompts, strict=True)]


def _log_extra(column: str, values: list) -> None:
    """Outside training there is no completions table: what a reward logs is dropped."""


def _log_metric(name: str, value: float) -> None:
    """Outside training there is no metrics log: what a reward logs is dropped."""


def trainer_state() -> Any:
    """A fresh ``transformers.TrainerState`` (step 0): what a reward reading ``trainer_state`` gets outside
    training."""
    from transformers import TrainerState

    return TrainerState()


def call(func: Callable, prompts: Sequence[Any], outputs: Sequence[Any], columns: dict[str, Sequence[Any]],
         completion_ids: Sequence[Sequence[int]] | None = None, state: Any = None) -> list:
    """``func``'s rewards for ``outputs`` (texts), called as TRL calls it: completions in the prompts' form
    (:func:`as_completions`) and every keyword TRL passes.

    ``columns`` are the rows' dataset columns (``prompt`` and ``completion``
    are left out, as TRL leaves them out); ``completion_ids`` default to empty
    lists where no tokenizer made them; ``state`` to a fresh
    :func:`trainer_state`.
    """
    extra = {k: list(v) for k, v in columns.items() if k not in ("prompt", "completion", "completion_ids")}
    completions = as_completions(outputs, prompts)
    ids = [list(i) for i in completion_ids] if completion_ids is not None else [[] for _ in completions]
    return list(func(prompts=list(prompts), completions=completions, completion_ids=ids, **extra,
                     trainer_state=state if state is not None else trainer_state(),
                     log_extra=_log_extra, log_metric=_log_metric))
