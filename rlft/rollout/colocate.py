"""TRL's colocated vLLM (the CUDA path of ``engine: vllm``), with rlft's sync check and greedy evaluation on top.

On CUDA rlft does not run its own engine: it sets TRL's ``use_vllm`` and
``vllm_mode: colocate`` (:func:`colocate_settings`) and lets TRL start
vLLM, load the policy's weights in place after each optimizer step (merging
LoRA, gathering ZeRO-3's partitioned parameters), run one engine per rank
through vLLM's ``external_launcher`` and correct the sampling mismatch by
importance sampling: TRL's tested path. :class:`ColocateEngine` wraps
TRL's ``VLLMGeneration`` object in place (TRL keeps calling it under its own
name ``vllm_generation``) and adds what rlft's engine offers:

- the sync check (:mod:`rlft.training.sync_canary`): the probe is taken from
  the first rollout TRL generates; the engine side scores it with vLLM's
  prompt logprobs on TRL's ``llm``;
- greedy completions for evaluation during training (:meth:`greedy`);
- a manifest entry (:meth:`describe`).

Everything else is delegated to TRL's object unchanged.

Example:
    >>> sorted(colocate_settings(type("R", (), {"vllm_max_model_len": 1024})()))
    ['use_vllm', 'vllm_max_model_length', 'vllm_mode']
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from rlft.core.errors import UserError, one_line
from rlft.rollout.sync_check import (
    PROBE_COMPLETION_TOKENS,
    catches,
    probe_scores,
    sync_check_summary,
    sync_tolerance,
)
from rlft.rollout.vllm_runtime import encode_prompt

logger = logging.getLogger(__name__)


def colocate_settings(rollout: Any) -> dict[str, Any]:
    """The ``GRPOConfig`` fields that make TRL generate with its colocated vLLM.

    The recipe's ``vllm_gpu_memory_utilization``, ``vllm_tensor_parallel_size``,
    ``vllm_enable_sleep_mode`` and ``vllm_model_impl`` are TRL's own fields and
    pass through; rlft's ``vllm_max_model_len`` becomes TRL's ``vllm_max_model_length``.
    """
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": rollout.vllm_max_model_len}


class ColocateEngine:
    """TRL's ``VLLMGeneration`` (colocate mode) seen through rlft's engine interface.

    The trainer replaces its ``vllm_generation`` with this object; TRL's own
    calls (``generate``, ``sync_weights()``, ``llm``) reach the wrapped one.
    """

    sync = "trl-colocate"

    def __init__(self, generation: Any, rollout: Any, bf16: bool, chat_template_kwargs: dict | None = None) -> None:
        self.generation = generation
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        # TRL starts vLLM in the checkpoint's dtype ("auto"), which the tolerance must follow
        self.dtype = str(generation.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        self.sync_check = rollout.sync_check
        self.sync_tolerance = sync_tolerance(rollout.sync_check_tolerance, self.dtype, bf16)
        if self.sync_check:
            logger.info("sync check: tolerance %g nats/token, catches %s", self.sync_tolerance,
                        catches(self.sync_tolerance))
        self.probe: list[int] | None = None
        self.syncs = 0
        self.sync_checks: list[dict[str, float]] = []

    def __getattr__(self, name: str) -> Any:  # TRL's attributes (llm, mode, enable_sleep_mode, ...)
        return getattr(self.__dict__["generation"], name)

    def sync_weights(self, model: Any = None) -> None:
        """TRL's in-place weight load (``model`` is ignored: TRL reads the policy it was built with)."""
        self.generation.sync_weights()
        self.syncs += 1

    def generate(self, prompts: list, *args: Any, **kwargs: Any) -> Any:
        """TRL's generation; the first call also fixes the sync check's probe."""
        result = self.generation.generate(prompts, *args, **kwargs)
        if self.probe is None:
            prompt_ids, completion_ids = result[0], result[1]
            if prompt_ids and completion_ids:
                self.probe = self._same_in_tp_group(list(prompt_ids[0]) +
                                                    list(completion_ids[0][:PROBE_COMPLETION_TOKENS]))
        return result

    def _same_in_tp_group(self, probe: list[int]) -> list[int]:
        # With tensor parallelism every rank of a group must send vLLM the same requests: the group's first probe.
        size = getattr(self.generation, "tensor_parallel_size", 1)
        if size <= 1:
            return probe
        import torch

        gathered: list[Any] = [None] * size
        torch.distributed.all_gather_object(gathered, probe, group=self.generation.tp_group)
        return gathered[0]

    @contextlib.contextmanager
    def _awake(self) -> Iterator[None]:
        """vLLM awake for rlft's own requests when TRL runs it with sleep mode (as TRL's ``generate`` does)."""
        gen = self.generation
        if not getattr(gen, "enable_sleep_mode", False):
            yield
            return
        # TRL's flag: sleep level 2 dropped the weights, so they must be pushed again, not just woken
        if getattr(gen, "_llm_weights_sleeping", False):
            gen.sync_weights()
        gen.llm.wake_up(tags=["kv_cache"])
        try:
            yield
        finally:
            gen.llm.sleep(level=2)
            gen._llm_weights_sleeping = True

    def greedy(self, prompts: list, max_tokens: int) -> list[str]:
        """Greedy completions by the weights vLLM holds (evaluation during training)."""
        from vllm import SamplingParams

        tokenizer = self.generation.processing_class
        ids = [encode_prompt(tokenizer, p, self.chat_template_kwargs) for p in prompts]
        with self._awake():
            outputs = self.generation.llm.generate([{"prompt_token_ids": i} for i in ids],
                                                   SamplingParams(temperature=0.0, max_tokens=max_tokens),
                                                   use_tqdm=False)
        return [request.outputs[0].text for request in outputs]

    def probe_logprobs(self) -> list[float]:
        """vLLM's logprob of each probe token after the first (prompt logprobs: raw logits, no prefix cache)."""
        from vllm import SamplingParams

        if self.probe is None:
            raise RuntimeError("the sync check's probe is chosen at the first rollout; none ran yet")
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False)
        with self._awake():
            [result] = self.generation.llm.generate([{"prompt_token_ids": self.probe}], params, use_tqdm=False)
        return probe_scores(result, self.probe)

    def record_sync_check(self, gap: float, gap_max: float, seconds: float) -> None:
        """Keep one sync check's figures for :meth:`describe`."""
        self.sync_checks.append({"gap": gap, "gap_max": gap_max, "seconds": seconds})

    def describe(self) -> dict[str, Any]:
        """What generated the rollouts, for the run manifest."""
        gen = self.generation
        return {"engine": "vllm", "sync": self.sync, "backend": "TRL colocate",
                "tensor_parallel_size": getattr(gen, "tensor_parallel_size", 1),
                "sleep_mode": bool(getattr(gen, "enable_sleep_mode", False)), "syncs": self.syncs,
                "sync_check": sync_check_summary(self)}

    def close(self) -> None:
        """Nothing to stop: TRL owns the engine and its lifetime."""



def with_engine_start(build: Callable[[], Any]) -> Any:
    """``build()`` (the trainer); a failure inside TRL's vLLM start becomes a one-line ``UserError``.

    TRL starts its colocated vLLM while the trainer is built, after it has
    wrapped the model in its LoRA adapter, so rlft cannot build a second
    trainer with transformers generation from the same model: the run stops,
    naming the cause and ``engine: hf``.

    Example:
        >>> with_engine_start(lambda: "trainer")
        'trainer'
    """
    try:
        return build()
    except Exception as err:
        if not _raised_in_vllm_start(err.__traceback__):
            raise
        cause = one_line(f"{type(err).__name__}: {err}")[:300]
        raise UserError(f"engine: vllm (TRL's colocate mode) could not start: {cause}; "
                        "engine: hf generates with transformers") from err


def _raised_in_vllm_start(tb: Any) -> bool:
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if name.endswith("trl/generation/vllm_generation.py") or "/vllm/" in name:
            return True
        tb = tb.tb_next
    return False
