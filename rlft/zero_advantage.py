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
from typing import Any

import torch

from rlft.length_buckets import splittable, take_rows

logger = logging.getLogger(__name__)

# loss types whose normalizer does not depend on which rows a micro-batch holds
EXACT_LOSS_TYPES = ("dapo", "cispo")
TOLERANCE = 1e-6  # |advantage| below this counts as zero (mean of equal float rewards may be off by ~1e-17)


@dataclass
class SkipArguments:
    """Whether GRPO skips the training pass for zero-advantage completions."""

    skip_zero_advantage: bool = field(
        default=True,
        metadata={"help": "Skip the forward/backward pass for completions with zero advantage (same gradient; "
                          "applies with beta 0 and loss_type dapo or cispo)."},
    )
    length_buckets: bool | None = field(
        default=None,
        metadata={"help": "Train each micro-batch in length buckets, less padding, same gradient (where "
                          "skip_zero_advantage applies). Default: on when training on CPU (measured), off on GPU."},
    )


def why_not_exact(trainer: Any) -> str | None:
    """Why skipping would change this trainer's gradient, or ``None`` when it would not.

    Example:
        >>> why_not_exact(type("T", (), {"loss_type": "grpo", "beta": 0.0})())
        "loss_type 'grpo' averages over the rows it sees (skipping is exact for dapo, cispo)"
    """
    if trainer.loss_type not in EXACT_LOSS_TYPES:
        return (f"loss_type {trainer.loss_type!r} averages over the rows it sees "
                f"(skipping is exact for {', '.join(EXACT_LOSS_TYPES)})")
    if trainer.beta != 0.0:
        return f"beta is {trainer.beta} (the KL term is not zero for zero-advantage rows)"
    if getattr(trainer, "top_entropy_quantile", 1.0) < 1.0:
        return "top_entropy_quantile < 1 (the entropy mask depends on every row)"
    if getattr(trainer, "_entropy_bonus_enabled", False):
        return "an entropy bonus is on (it averages over every row)"
    if getattr(trainer, "aux_loss_enabled", False):
        return "the model's router aux loss is on"
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None and accelerator.num_processes > 1:
        # TRL gathers per-row values across processes in the loss; unequal row counts break the
        # collective (measured: gloo "Received data size doesn't match expected size" under ZeRO-3, 2 processes)
        return f"{accelerator.num_processes} processes (TRL gathers per-row values across them)"
    return None


def drop_zero_advantage_rows(inputs: dict[str, Any]) -> dict[str, Any]:
    """The micro-batch without its zero-advantage rows, and without padding columns no kept row uses.

    Every tensor whose first dimension is the batch is filtered; scalars
    (``num_items_in_batch``) pass through (:func:`rlft.length_buckets.take_rows`).
    If no row has a non-zero advantage, the row with the fewest completion
    tokens is kept.

    Example:
        >>> import torch
        >>> out = drop_zero_advantage_rows({"advantages": torch.zeros(2), "completion_mask": torch.tensor([[1, 1], [1, 0]])})
        >>> out["completion_mask"].tolist()
        [[1]]
    """
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

    Put it in front of :class:`rlft.length_buckets.LengthBuckets` in the bases,
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

    def enable_zero_advantage_skipping(self: Any, wanted: bool, length_buckets: bool | None = False) -> None:
        """Turn skipping (and length buckets, :mod:`rlft.length_buckets`) on if wanted and exact; log why not.

        ``length_buckets=None`` means: on where the trainer runs on CPU, where
        padding costs its full share of the time (measured); GPUs are not measured.
        """
        if length_buckets is None:
            length_buckets = self.accelerator.device.type == "cpu"
        asked = [name for name, on in (("skip_zero_advantage", wanted), ("length_buckets", length_buckets)) if on]
        reason = why_not_exact(self) if asked else None
        self.skip_zero_advantage = wanted and reason is None
        self.length_buckets = bool(length_buckets) and reason is None
        if reason:
            logger.info("%s: off, %s", " and ".join(asked), reason)
