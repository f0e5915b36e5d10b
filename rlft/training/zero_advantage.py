"""Skip the training pass for completions whose advantage is zero.

In GRPO, a group whose completions all earn the same reward (all wrong, or
all right) has advantage 0 for every completion in it. With no KL term
(``beta: 0``) and a loss normalized by the whole batch's token count
(``loss_type: dapo`` or ``cispo``: ``sum(per-token loss) / num_items_in_batch``),
those rows add exactly 0 to the loss and to its gradient, yet TRL still runs
them through the forward and backward pass. On a small model early in
training that is most of the batch (the bundled model on ``recipes/math.yaml``:
75-100 % of the groups in the first steps, ``frac_reward_zero_std``).

:class:`ZeroAdvantageSkipping` drops those rows from each micro-batch before
the loss is computed and trims the padding columns that only they used.
``num_items_in_batch`` is left as TRL computed it, so the loss and the
gradient are the ones TRL would compute (the tests compare them). Where they
would not be (another loss type, which averages over the rows it sees;
``beta > 0``; an entropy bonus or entropy mask; a router aux loss), nothing
is skipped; nor in multi-process runs, where TRL gathers per-row values
across processes and every process must hold the same number of rows. When
every row of a micro-batch has zero advantage, the shortest one is kept so
the backward pass still runs (its gradient is 0).

TRL has no hook for this (its rows are fixed once generated), so the filter
sits in front of ``_compute_loss``; logged training metrics such as
``entropy`` and ``clip_ratio`` then describe the rows that were trained on.

Example:
    >>> import torch
    >>> batch = {"advantages": torch.tensor([0.0, 1.5, 0.0]), "completion_mask": torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0]]),
    ...          "completion_ids": torch.tensor([[5, 6, 7], [8, 0, 0], [9, 9, 0]]), "num_items_in_batch": torch.tensor(6)}
    >>> kept = drop_zero_advantage_rows(batch)
    >>> kept["completion_ids"].tolist(), int(kept["num_items_in_batch"])
    ([[8]], 6)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlft.training.batch_rows import splittable, take_rows, why_not_exact

if TYPE_CHECKING:  # torch loads when a batch is handled, not when the recipe's keys are read
    import torch

logger = logging.getLogger(__name__)

TOLERANCE = 1e-6  # |advantage| below this counts as zero (mean of equal float rewards may be off by ~1e-17)


@dataclass
class ZeroAdvantageArguments:
    """Whether GRPO skips the training pass for zero-advantage completions."""

    skip_zero_advantage: bool = field(
        default=True,
        metadata={"help": "Skip the forward/backward pass for completions with zero advantage (same gradient; "
                          "applies with beta 0 and loss_type dapo or cispo)."},
    )


def drop_zero_advantage_rows(inputs: dict[str, Any]) -> dict[str, Any]:
    """The micro-batch without its zero-advantage rows, and without padding columns no kept row uses.

    Every tensor whose first dimension is the batch is filtered; scalars
    (``num_items_in_batch``) pass through (:func:`rlft.training.batch_rows.take_rows`).
    If no row has a non-zero advantage, the row with the fewest completion
    tokens is kept.

    Example:
        >>> import torch
        >>> out = drop_zero_advantage_rows({"advantages": torch.zeros(2), "completion_mask": torch.tensor([[1, 1], [1, 0]])})
        >>> out["completion_mask"].tolist()
        [[1]]
    """
    import torch

    keep = inputs["advantages"].abs() > TOLERANCE
    if keep.dim() > 1:
        keep = keep.any(dim=tuple(range(1, keep.dim())))
    if bool(keep.all()):
        return inputs
    if not bool(keep.any()):
        keep = torch.zeros_like(keep)
        keep[int(inputs["completion_mask"].sum(dim=1).argmin())] = True
    return take_rows(inputs, keep)


class ZeroAdvantageSkipping:
    """Mixin for ``GRPOTrainer``: train only on rows with a non-zero advantage, where that is exact.

    Put it in front of :class:`rlft.training.length_buckets.LengthBuckets` in the bases,
    so the rows it keeps are the ones bucketed.

    Set ``skip_zero_advantage`` on the instance (the trainer's constructor
    does); the fraction of rows skipped is logged as ``zero_advantage/skipped``.
    """

    skip_zero_advantage: bool = False

    def _compute_loss(self: Any, model: Any, inputs: dict) -> torch.Tensor:
        if not (self.skip_zero_advantage and self.model.training and splittable(inputs)):
            return super()._compute_loss(model, inputs)
        rows = inputs["advantages"].size(0)
        inputs = drop_zero_advantage_rows(inputs)
        skipped = 1.0 - inputs["advantages"].size(0) / rows
        self._metrics["train"]["zero_advantage/skipped"].append(skipped)
        return super()._compute_loss(model, inputs)

    def enable_zero_advantage_skipping(self: Any, wanted: bool) -> None:
        """Turn skipping on if wanted and exact for this trainer (:func:`~rlft.training.batch_rows.why_not_exact`); log why not."""
        reason = why_not_exact(self) if wanted else None
        self.skip_zero_advantage = wanted and reason is None
        if reason:
            logger.info("skip_zero_advantage: off, %s", reason)
