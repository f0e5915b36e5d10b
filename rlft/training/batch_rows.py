"""Which rows of a GRPO micro-batch can be dropped or trained apart, and when that leaves TRL's loss unchanged.

Shared by :mod:`rlft.training.zero_advantage` (drop rows whose advantage is
zero) and :mod:`rlft.training.length_buckets` (train rows in passes of
similar length). Both are exact only where the loss is a plain sum over
tokens divided by a normalizer that does not depend on which rows a pass
sees (:func:`why_not_exact`), and only for batches whose tensors are one row
per completion (:func:`splittable`).

Example:
    >>> why_not_exact(type("T", (), {"loss_type": "dapo", "beta": 0.1})())
    'beta is 0.1 (the KL term is not zero for zero-advantage rows)'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads when a batch is handled, not when the recipe's keys are read
    import torch

# loss types whose normalizer does not depend on which rows a micro-batch holds
EXACT_LOSS_TYPES = ("dapo", "cispo")
# per-completion-token tensors TRL puts in a training batch (right-padded, trimmed with completion_mask)
COMPLETION_COLUMNS = ("completion_ids", "completion_mask", "old_per_token_logps", "sampling_per_token_logps",
                      "ref_per_token_logps", "importance_sampling_ratio", "tool_mask")
# per-prompt-token tensors (left-padded, trimmed with prompt_mask)
PROMPT_COLUMNS = ("prompt_ids", "prompt_mask")
# vision inputs: not one row per completion (patches, image grids), so such batches are never split
IMAGE_KEYS = ("pixel_values", "image_grid_thw", "pixel_attention_mask", "image_sizes", "num_images")


def why_not_exact(trainer: Any) -> str | None:
    """Why dropping or splitting rows would change this trainer's gradient, or ``None`` when it would not.

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


def splittable(inputs: dict[str, Any]) -> bool:
    """Whether a micro-batch's rows can be taken apart: not when it carries images.

    Example:
        >>> splittable({"advantages": 0}), splittable({"advantages": 0, "pixel_values": 0})
        (True, False)
    """
    return not any(key in inputs for key in IMAGE_KEYS)


def take_rows(inputs: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The micro-batch restricted to ``rows`` (a bool mask or indices), without padding columns no kept row uses.

    Every tensor whose first dimension is the batch is indexed; scalars
    (``num_items_in_batch``) pass through. Completion columns are trimmed on
    the right, prompt columns on the left.

    Example:
        >>> import torch
        >>> batch = {"prompt_mask": torch.tensor([[0, 1], [1, 1]]), "prompt_ids": torch.tensor([[0, 7], [6, 7]]),
        ...          "completion_mask": torch.tensor([[1, 0], [1, 1]]), "completion_ids": torch.tensor([[8, 0], [8, 9]]),
        ...          "advantages": torch.tensor([1.0, -1.0]), "num_items_in_batch": torch.tensor(3)}
        >>> out = take_rows(batch, torch.tensor([0]))
        >>> out["prompt_ids"].tolist(), out["completion_ids"].tolist(), int(out["num_items_in_batch"])
        ([[7]], [[8]], 3)
    """
    size = inputs["advantages"].size(0)
    out = {key: value[rows] if _is_per_row(value, size) else value for key, value in inputs.items()}
    _trim(out, COMPLETION_COLUMNS, out["completion_mask"], keep_right=False)
    if "prompt_mask" in out:
        _trim(out, PROMPT_COLUMNS, out["prompt_mask"], keep_right=True)
    return out


def _trim(out: dict[str, Any], keys: tuple[str, ...], mask: torch.Tensor, keep_right: bool) -> None:
    import torch

    width = mask.size(1)
    used = mask.bool().any(dim=0).nonzero()
    if not used.numel():
        start, stop = (width - 1, width) if keep_right else (0, 1)
    else:
        start, stop = (int(used.min()), width) if keep_right else (0, int(used.max()) + 1)
    if stop - start == width:
        return
    for key in keys:
        value = out.get(key)
        if torch.is_tensor(value) and value.dim() == 2 and value.size(1) == width:
            out[key] = value[:, start:stop]


def _is_per_row(value: Any, rows: int) -> bool:
    import torch

    return torch.is_tensor(value) and value.dim() >= 1 and value.size(0) == rows
