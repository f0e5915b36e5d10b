"""The sync check: after each weight sync, the engine and the trainer score one fixed probe and must agree.

The most common silent failure of an RL trainer with a separate rollout
engine is rollouts that keep coming from the base or from stale weights
after a sync: nothing crashes, the importance-sampling ratios absorb part of
it, and the run learns less or not at all. So after every
``engine.sync_weights(policy)`` rlft scores a fixed token sequence (the
*probe*: the first rollout's first prompt and the start of its completion,
:data:`rlft.rollout.sync_check.PROBE_COMPLETION_TOKENS`) twice, with the engine
(vLLM's prompt logprobs, one forward pass) and with the trainer's model
(a no-grad forward in eval mode, so no dropout), both at temperature 1, and
takes the per-token absolute difference of the two logprobs. Its mean and
max are logged as ``sync/logprob_gap`` and ``sync/logprob_gap_max``. A mean
above the engine's tolerance (``sync_check_tolerance``; ``auto`` is
:data:`rlft.rollout.sync_check.SYNC_TOLERANCE` by precision) raises
:class:`SyncDrift`, which the stage turns into a checkpoint and a one-line
exit 3 (:meth:`rlft.stage.run.StageRun.train`).

Example:
    >>> import torch
    >>> logprob_gap([-1.0, -2.0], torch.tensor([-1.5, -2.0]))
    (0.25, 0.5)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlft.core.errors import RunStopped

logger = logging.getLogger(__name__)


class SyncDrift(RunStopped):
    """The engine's logprobs of the probe left the trainer's after a sync: rollouts are off the policy."""

    advice = ("the engine is not sampling the policy being trained; report it, and meanwhile try the other "
              "vllm_sync or engine: hf (sync_check_tolerance raises the bar, sync_check: false turns it off)")


def model_logprobs(model: Any, ids: Sequence[int]) -> torch.Tensor:
    """The model's logprob of each token after the first, given those before it (temperature 1, eval mode).

    The model is put in eval mode for the forward (LoRA dropout off, as in
    the engine) and back in the mode it was in.

    Example:
        >>> class Uniform(torch.nn.Module):
        ...     def forward(self, input_ids):
        ...         return type("Out", (), {"logits": torch.zeros(1, input_ids.shape[1], 4)})()
        >>> model_logprobs(Uniform(), [1, 2, 3])  # log(1/4) per token
        tensor([-1.3863, -1.3863])
    """
    training = model.training
    first = next(model.parameters(), None)
    tokens = torch.tensor([list(ids)], device=first.device if first is not None else "cpu")
    model.eval()
    try:
        with torch.no_grad():
            logits = model(input_ids=tokens).logits[0, :-1].float()
    finally:
        model.train(training)
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens[0, 1:, None])[:, 0].cpu()


def logprob_gap(engine: Sequence[float], trainer: torch.Tensor) -> tuple[float, float]:
    """Mean and max per-token absolute difference between the engine's and the trainer's logprobs.

    Example:
        >>> logprob_gap([0.0, -1.0], torch.tensor([0.0, -1.0]))
        (0.0, 0.0)
    """
    gap = (torch.tensor(list(engine), dtype=torch.float64) - trainer.double()).abs()
    return gap.mean().item(), gap.max().item()


class SyncCanary:
    """Runs the sync check after each sync and keeps its figures for the trainer's next log.

    ``engine`` needs ``probe``, ``probe_logprobs()``, ``sync``, ``dtype``,
    ``sync_tolerance`` and ``record_sync_check(gap, gap_max, seconds)``
    (:class:`rlft.rollout.engine.VLLMEngine`). ``reduce`` makes the figures
    global across processes (every rank must decide alike, or one stops and
    the others wait); the default keeps them local.

    Example (the engine says -0.5 per token, a uniform model over 2 tokens says -0.69):
        >>> class Engine:
        ...     probe, sync, dtype, sync_tolerance = [0, 1, 1], "merged", "float32", 0.01
        ...     def probe_logprobs(self): return [-0.5, -0.5]
        ...     def record_sync_check(self, gap, gap_max, seconds): pass
        >>> class Uniform(torch.nn.Module):
        ...     def forward(self, input_ids):
        ...         return type("Out", (), {"logits": torch.zeros(1, input_ids.shape[1], 2)})()
        >>> SyncCanary(Engine()).check(Uniform(), step=1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rlft.training.sync_canary.SyncDrift: sync check failed after the sync at step 1 (vllm_sync: merged, ...
    """

    def __init__(self, engine: Any, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.engine, self.reduce = engine, reduce
        self.pending: list[tuple[float, float]] = []  # checks since the last log

    def check(self, model: Any, step: int) -> None:
        """Score the probe with both sides; record the gap; raise :class:`SyncDrift` past the tolerance."""
        engine = self.engine
        if engine.probe is None:  # no rollout yet, so no probe (the first sync follows the first rollout)
            return
        began = time.perf_counter()
        gap, gap_max = logprob_gap(engine.probe_logprobs(), model_logprobs(model, engine.probe))
        if self.reduce is not None:
            gap, gap_max = self.reduce(torch.tensor([gap, gap_max], dtype=torch.float64)).tolist()
        seconds = time.perf_counter() - began
        engine.record_sync_check(gap, gap_max, seconds)
        self.pending.append((gap, gap_max))
        logger.debug("sync check at step %d: gap %.3g (max %.3g) in %.2fs", step, gap, gap_max, seconds)
        if not gap <= engine.sync_tolerance:  # a NaN gap fails too
            raise SyncDrift(
                f"sync check failed after the sync at step {step} (vllm_sync: {engine.sync}, engine {engine.dtype}): "
                f"the engine's logprobs of a fixed {len(engine.probe)}-token probe differ from the trainer's by "
                f"{gap:.3g} nats/token on average (max {gap_max:.3g}; tolerance {engine.sync_tolerance:g})"
            )

    def pop_logs(self) -> dict[str, float]:
        """``sync/logprob_gap`` (mean over the checks since the last call) and ``sync/logprob_gap_max`` (max)."""
        if not self.pending:
            return {}
        gaps, maxes = zip(*self.pending, strict=True)
        self.pending = []
        return {"sync/logprob_gap": sum(gaps) / len(gaps), "sync/logprob_gap_max": max(maxes)}
