"""Generation engines for GRPO rollouts, plugged into TRL through ``rollout_func``.

- ``hf``: TRL's own generation (transformers ``generate``, batched) — the
  reference and the fallback. No ``rollout_func``: TRL generates itself.

Example:
    >>> RolloutArguments().rollout_engine
    'hf'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from rlft.errors import UserError

logger = logging.getLogger(__name__)


@dataclass
class RolloutArguments:
    """Which engine generates GRPO's completions."""

    rollout_engine: Literal["hf"] = field(
        default="hf", metadata={"help": "hf: TRL's transformers generation."},
    )


def check_batch(cfg: Any, reward_funcs: list) -> None:
    """One-line errors for batch and reward settings TRL would only reject deep inside training."""
    weights = cfg.reward_weights
    if weights is not None and len(weights) != len(reward_funcs):
        raise UserError(
            f"reward_weights has {len(weights)} values for {len(reward_funcs)} reward_funcs; give one weight per reward"
        )
    if cfg.max_completion_length is not None and cfg.max_completion_length <= 0:
        raise UserError(f"max_completion_length must be positive, got {cfg.max_completion_length}")


def make_engine(args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any) -> Any | None:
    """The engine object for ``args.rollout_engine`` (``None``: TRL generates)."""
    return None
