"""Train a micro-batch in length buckets: less padding, the same gradient.

TRL runs each micro-batch through the model as one tensor, padded to its
longest prompt and its longest completion. On ``recipes/math.yaml`` most
completions are 11-15 tokens by step 10, but one rambling completion in 32
pads every row to 64. On a CPU the forward and backward cost is linear in
tokens (bundled model, LoRA r=16, float32, 2 cores: 5.2-5.9 ms per token
from 2 rows up, and about 0.3 s more for each extra pass), so padding is time
spent for nothing. Replaying a math-recipe run (``make bench-buckets``,
``bench/results/length_buckets.json``), the buckets held 0.73x the tokens of
TRL's single passes and took 0.58-0.7x the time.

:func:`split_by_length` sorts the rows by completion length and cuts them
into the buckets that minimise padded tokens plus a fixed cost per pass
(:data:`PASS_OVERHEAD_TOKENS`, from the measurement above), each trimmed to
its own widths. Where the loss is a plain sum over tokens divided by a
normalizer that does not depend on the rows a pass sees (``dapo``/``cispo``
with ``beta: 0``, the same conditions as :mod:`rlft.training.zero_advantage`), the sum
of the buckets' losses is the micro-batch's loss, so the gradient is TRL's.
Trimming a prompt's left padding shifts every position by the same amount,
which rotary position embeddings do not see.

No library does this for TRL's GRPO batches (its ``padding_free`` covers SFT
and DPO, and needs flash-attention's variable-length kernels, not on CPU),
so it is done here, on the batch dict TRL hands to ``_compute_loss``.

Example:
    >>> plan_buckets([3, 60, 4, 5], [40, 40, 40, 40], overhead=64)  # one long row pads the rest: cut it off
    [[0, 2, 3], [1]]
    >>> plan_buckets([3, 60, 4, 5], [40, 40, 40, 40], overhead=1000)  # a pass costs more than the padding
    [[0, 2, 3, 1]]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlft.training.batch_rows import splittable, take_rows, why_not_exact

if TYPE_CHECKING:  # torch loads when a batch is handled, not when the recipe's keys are read
    import torch

logger = logging.getLogger(__name__)

# The fixed cost of one more forward/backward pass, in tokens (see above: ~0.3 s at ~5.3 ms per token on CPU).
PASS_OVERHEAD_TOKENS = 64


@dataclass
class LengthBucketArguments:
    """Whether GRPO trains each micro-batch in length buckets."""

    length_buckets: bool | None = field(
        default=None,
        metadata={"help": "Train each micro-batch in length buckets, less padding, same gradient (where "
                          "skip_zero_advantage applies). Default: on when training on CPU (measured), off on GPU."},
    )


def plan_buckets(completion_lengths: list[int], prompt_lengths: list[int],
                 overhead: int = PASS_OVERHEAD_TOKENS) -> list[list[int]]:
    """Row indices in buckets, shortest first: padded tokens plus ``overhead`` tokens per bucket, minimised.

    Rows are sorted by completion length and cut into contiguous runs (the
    optimal cut for that order, by dynamic programming over at most a few
    dozen rows). A bucket costs ``rows x (longest prompt + longest completion)``.

    Example:
        >>> plan_buckets([10, 10, 10], [5, 5, 5])
        [[0, 1, 2]]
    """
    order = sorted(range(len(completion_lengths)), key=lambda i: (completion_lengths[i], prompt_lengths[i]))
    best = [0] + [float("inf")] * len(order)  # best[j]: cheapest plan for the first j sorted rows
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest_prompt = 0
        for start in range(end - 1, -1, -1):  # bucket = order[start:end]
            longest_prompt = max(longest_prompt, prompt_lengths[order[start]])
            cost = best[start] + (end - start) * (longest_prompt + completion_lengths[order[end - 1]]) + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    buckets, end = [], len(order)
    while end:
        buckets.append(order[cut[end]:end])
        end = cut[end]
    return buckets[::-1]


def split_by_length(inputs: dict[str, Any], overhead: int | None = None) -> list[dict[str, Any]]:
    """The micro-batch as length buckets (see :func:`plan_buckets`); ``[inputs]`` when one bucket is cheapest.

    ``overhead`` defaults to :data:`PASS_OVERHEAD_TOKENS`.

    Example:
        >>> import torch
        >>> batch = {"completion_mask": torch.tensor([[1] + [0] * 99, [1] * 100]), "advantages": torch.ones(2),
        ...          "completion_ids": torch.ones(2, 100), "prompt_mask": torch.ones(2, 3)}
        >>> [tuple(b["completion_ids"].shape) for b in split_by_length(batch)]
        [(1, 1), (1, 100)]
    """
    import torch

    completion = _used_lengths(inputs["completion_mask"], from_right=False)
    prompt = _used_lengths(inputs["prompt_mask"], from_right=True) if "prompt_mask" in inputs \
        else [0] * len(completion)
    buckets = plan_buckets(completion, prompt, PASS_OVERHEAD_TOKENS if overhead is None else overhead)
    if len(buckets) == 1:
        return [inputs]
    return [take_rows(inputs, torch.tensor(bucket)) for bucket in buckets]


def _used_lengths(mask: torch.Tensor, from_right: bool) -> list[int]:
    """Per row, the columns up to its last (or, left-padded, from its first) non-zero mask entry."""
    import torch

    width = mask.size(1)
    positions = torch.arange(1, width + 1, device=mask.device)
    if from_right:
        first = torch.where(mask.bool(), positions, width + 1).min(dim=1).values
        return (width + 1 - first).clamp(min=0).tolist()
    return torch.where(mask.bool(), positions, 0).max(dim=1).values.tolist()


class LengthBuckets:
    """Mixin for ``GRPOTrainer``: each micro-batch's loss as the sum of its length buckets' losses.

    Set ``length_buckets`` on the instance only where that sum is the
    micro-batch's loss (:func:`rlft.training.batch_rows.why_not_exact`; the
    trainer's constructor does). The number of passes per micro-batch is
    logged as ``length_buckets/passes``. Logged per-pass metrics (``entropy``,
    ``clip_ratio``) are then averaged over the passes.
    """

    length_buckets: bool = False

    def _compute_loss(self: Any, model: Any, inputs: dict) -> torch.Tensor:
        if not (self.length_buckets and self.model.training and splittable(inputs)):
            return super()._compute_loss(model, inputs)
        buckets = split_by_length(inputs)
        self._metrics["train"]["length_buckets/passes"].append(float(len(buckets)))
        loss = None
        for bucket in buckets:
            part = super()._compute_loss(model, bucket)
            loss = part if loss is None else loss + part
        return loss

    def enable_length_buckets(self: Any, wanted: bool | None) -> None:
        """Turn buckets on if wanted and exact for this trainer; log why not.

        ``None`` means: on where the trainer runs on CPU, where padding costs
        its full share of the time (measured); GPUs are not measured.
        """
        if wanted is None:
            wanted = self.accelerator.device.type == "cpu"
        reason = why_not_exact(self) if wanted else None
        self.length_buckets = bool(wanted) and reason is None
        if reason:
            logger.info("length_buckets: off, %s", reason)
