"""The trainer class a stage builds: TRL's (or rlft's GRPO) trainer with the stage's mixins in front.

- :class:`rlft.stage.checkpoints.AtomicCheckpoints`: checkpoints renamed into place when complete;
- :class:`rlft.stage.greedy_eval.GreedyEvaluation`: greedy, reward-scored evaluation during training.

Example:
    >>> from transformers import Trainer
    >>> [c.__name__ for c in stage_trainer(Trainer).__mro__[:4]]
    ['StageTrainer', 'AtomicCheckpoints', 'GreedyEvaluation', 'Trainer']
"""

from __future__ import annotations

import functools

from rlft.stage.checkpoints import AtomicCheckpoints
from rlft.stage.greedy_eval import GreedyEvaluation


@functools.cache
def stage_trainer(trainer_cls: type) -> type:
    """``trainer_cls`` with rlft's stage mixins in front (one subclass per trainer class)."""
    return type(f"Stage{trainer_cls.__name__}", (AtomicCheckpoints, GreedyEvaluation, trainer_cls), {})
