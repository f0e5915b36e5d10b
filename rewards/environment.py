"""The ``environment`` reward: the score a multi-turn environment gives its own rollout.

An environment (``environment: my_pkg.envs:GuessNumber`` in a GRPO recipe)
is a class with ``reset(**row)``, tool methods the model calls, and
optionally ``get_reward() -> float``, read once a rollout has ended (TRL's
contract). Naming ``environment`` in ``reward_funcs`` makes that score one
of the recipe's rewards, weighted and logged like the others, and the one the
closing check scores with. TRL passes each rollout's environment instance as
the ``environments`` keyword; rlft's closing check does the same.

Example:
    >>> class Found:
    ...     def get_reward(self):
    ...         return 1.0
    >>> environment(["I found it: 7"], environments=[Found()])
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards.base import RewardInputError


def environment(completions: Sequence[Any], environments: Sequence[Any] | None = None, **_: Any) -> list[float]:
    """Each rollout's ``environment.get_reward()`` (needs the recipe's ``environment``)."""
    if environments is None:
        raise RewardInputError("reward 'environment' reads the recipe's environment (environment: module:Class), "
                               "and this run has none")
    if len(environments) != len(completions):
        raise ValueError(f"reward 'environment': {len(environments)} environments for {len(completions)} completions")
    return [float(env.get_reward()) for env in environments]
