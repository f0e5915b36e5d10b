"""What every reward shares: column access with clear errors, names and counters.

Example:
    >>> get_column({"answer": ["1", "2"]}, "answer", "accuracy", 2)
    ['1', '2']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

Reward = Callable[..., list]


class RewardInputError(ValueError):
    """A reward was called without what it needs (a missing column, a bad setting)."""


def get_column(columns: dict[str, Any], name: str, reward: str, n: int) -> list:
    """Column ``name`` from the keyword arguments TRL passes, checked for length.

    Raises :class:`RewardInputError` naming the reward, the column and the columns there are.
    """
    if name not in columns or columns[name] is None:
        # TRL passes the prompt column as `prompts`
        have = ", ".join(sorted("prompt" if k == "prompts" else k for k in columns
                                if not k.startswith(("trainer_", "completion_ids", "log_"))))
        raise RewardInputError(
            f"reward '{reward}' needs a dataset column '{name}'; the rows have: {have or 'no columns'}"
        )
    values = list(columns[name])
    if len(values) != n:
        raise RewardInputError(f"reward '{reward}': column '{name}' has {len(values)} values for {n} completions")
    return values


def named(fn: Reward, name: str) -> Reward:
    """Give a reward the name TRL logs it under, and a ``stats`` counter for its logs."""
    fn.__name__ = name
    fn.__qualname__ = name
    fn.stats = Counter()  # type: ignore[attr-defined]
    return fn


def positive(value: float, name: str, reward: str) -> float:
    """Check a numeric setting is > 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise RewardInputError(f"reward '{reward}': setting {name} must be a positive number, got {value!r}")
    return value
