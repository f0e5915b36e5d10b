"""TRL's vLLM importance-sampling correction without its extra forward pass.

With ``use_vllm``, TRL's ``GRPOTrainer`` runs one more no-grad forward over
every generated batch to get the trainer's logprobs of the sampled tokens
(``old_per_token_logps``), and weights each sequence's (or token's) loss by
``exp(trainer logprob - engine logprob)``, clipped or masked per
``vllm_importance_sampling_mode``. When generation is on-policy (one
generation per optimizer step: ``gradient_accumulation_steps`` is a multiple
of ``steps_per_generation * num_iterations``, rlft's recipes' case), those
logprobs equal the detached logprobs of the training forward that follows,
because the weights have not changed in between. :class:`DeferredImportanceSampling`
computes the ratio there instead, from the same numbers, and saves a forward
pass per step (measured on the bundled model, 4 x 8 x 32 tokens, float32,
2 CPU cores: 7.5-8.8 s of a ~42 s step).

TRL computes the ratio inline in ``_generate_and_score_completions``, with no
function to call, so :func:`vllm_importance_ratio` restates its arithmetic
(TRL 1.16, ``grpo_trainer.py``); the tests check it against hand values.

Example:
    >>> import torch
    >>> ratio = vllm_importance_ratio(torch.tensor([[-1.0, -2.0]]), torch.tensor([[-1.5, -2.0]]),
    ...                               torch.ones(1, 2), "sequence_truncate", None, 3.0)
    >>> round(ratio.item(), 4)  # exp(0.5)
    1.6487
"""

from __future__ import annotations

import math
from typing import Any

import torch


def vllm_importance_ratio(trainer_logps: torch.Tensor, sampling_logps: torch.Tensor, mask: torch.Tensor,
                          mode: str, clip_min: float | None, clip_max: float | None) -> torch.Tensor:
    """TRL's vLLM importance-sampling weights: (B, 1) for ``sequence_*`` modes, (B, T) for ``token_*``.

    ``*_truncate`` clamps the ratio to ``[clip_min, clip_max]``; ``*_mask``
    sets ratios outside it to 0 (the sequence or token is dropped). Tokens
    the engine could not score (NaN) count as agreeing.

    Example:
        >>> vllm_importance_ratio(torch.tensor([[0.0]]), torch.tensor([[-2.0]]), torch.ones(1, 1),
        ...                       "token_mask", None, 3.0).item()  # exp(2) > 3: dropped
        0.0
    """
    diff = torch.nan_to_num((trainer_logps - sampling_logps) * mask, nan=0.0)
    if mode.startswith("sequence"):
        diff = diff.sum(dim=-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        return torch.clamp(ratio, min=clip_min, max=clip_max)
    if mode.endswith("mask"):
        low = -math.inf if clip_min is None else clip_min
        high = math.inf if clip_max is None else clip_max
        return ratio.masked_fill((ratio < low) | (ratio > high), 0.0)
    raise ValueError(f"unknown vllm_importance_sampling_mode: {mode}")


class DeferredImportanceSampling:
    """Mixin for ``GRPOTrainer``: the vLLM IS ratio from the training forward when generation is on-policy.

    Off-policy setups (``num_iterations > 1``, or generations reused across
    optimizer steps) keep TRL's own path unchanged. The logged metrics keep
    TRL's names (``sampling/sampling_logp_difference/*``,
    ``sampling/importance_sampling_ratio/*``).
    """

    def _defers_importance_sampling(self: Any) -> bool:
        generate_every = self.args.steps_per_generation * self.num_iterations
        return bool(self.use_vllm and self.vllm_importance_sampling_correction
                    and self.args.gradient_accumulation_steps % generate_every == 0)

    def _generate_and_score_completions(self: Any, inputs: Any) -> dict:
        if not self._defers_importance_sampling():
            return super()._generate_and_score_completions(inputs)
        self.vllm_importance_sampling_correction = False  # TRL: no old-logprob forward, no ratio here
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self.vllm_importance_sampling_correction = True
        output["deferred_importance_sampling"] = torch.tensor(True)  # 0-dim: TRL's batch splitting keeps it
        return output

    def _compute_loss(self: Any, model: Any, inputs: dict) -> torch.Tensor:
        flag = inputs.pop("deferred_importance_sampling", None)
        if flag is None or not bool(flag):
            return super()._compute_loss(model, inputs)
        forward = self._get_per_token_logps_and_entropies

        def forward_then_ratio(*args: Any, **kwargs: Any) -> Any:
            logps, *rest = forward(*args, **kwargs)
            inputs["importance_sampling_ratio"] = self._importance_ratio(logps.detach(), inputs)
            return (logps, *rest)

        shadowed = self.__dict__.get("_get_per_token_logps_and_entropies")  # an instance-level wrapper, if any
        self._get_per_token_logps_and_entropies = forward_then_ratio  # this call only
        try:
            return super()._compute_loss(model, inputs)
        finally:
            if shadowed is None:
                del self._get_per_token_logps_and_entropies
            else:
                self._get_per_token_logps_and_entropies = shadowed

    def _importance_ratio(self: Any, logps: torch.Tensor, inputs: dict) -> torch.Tensor:
        mask = inputs["completion_mask"]
        if "tool_mask" in inputs:
            mask = mask * inputs["tool_mask"]
        sampling = inputs["sampling_per_token_logps"]
        ratio = vllm_importance_ratio(logps, sampling, mask, self.vllm_importance_sampling_mode,
                                      self.vllm_importance_sampling_clip_min,
                                      self.vllm_importance_sampling_clip_max)
        self._log_importance(logps, sampling, mask.bool(), ratio)
        return ratio

    def _log_importance(self: Any, logps: torch.Tensor, sampling: torch.Tensor, mask: torch.Tensor,
                        ratio: torch.Tensor) -> None:
        metrics = self._metrics["train" if self.model.training else "eval"]
        delta = torch.abs(logps - sampling)[mask]
        delta = delta[~torch.isnan(delta)]
        flat = ratio.flatten() if ratio.size(-1) == 1 else ratio[mask]
        gather = self.accelerator.gather
        zero = torch.zeros((), device=logps.device)
        for key, values, reduce in (("sampling/sampling_logp_difference/mean", delta, torch.mean),
                                    ("sampling/sampling_logp_difference/max", delta, torch.max),
                                    ("sampling/importance_sampling_ratio/min", flat, torch.min),
                                    ("sampling/importance_sampling_ratio/mean", flat, torch.mean),
                                    ("sampling/importance_sampling_ratio/max", flat, torch.max)):
            local = reduce(values) if values.numel() else zero
            metrics[key].append(reduce(gather(local.reshape(1))).item())
