"""Settings this machine cannot honour, found before anything loads: one line each, what to do instead.

A recipe written on another machine asks for things this one may lack: an
attention kernel whose package is not installed, a logging integration not
installed, a Hub push with no token or no way to reach the Hub, a fused-kernel
library, a compiler for ``torch_compile``. Each would otherwise fail as a
traceback after data loading, after the engine started, or at the end of
training. :func:`machine_problems` lists every one (``rlft check``);
:func:`refuse_machine` raises the first (the stages' parse).

Example:
    >>> machine_problems({"report_to": ["none"], "attn_implementation": "sdpa"})
    []
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from rlft.core.errors import UserError

#: report_to name -> the module transformers needs for it (transformers.integrations.INTEGRATION_TO_CALLBACK)
INTEGRATIONS = {
    "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow", "comet_ml": "comet_ml", "neptune": "neptune",
    "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab", "codecarbon": "codecarbon",
    "dagshub": "dagshub", "azure_ml": "azureml", "flyte": "flytekit", "kubeflow": "kubeflow",
    "tensorboard": "tensorboard",
}
FLASH = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
HUB_TIMEOUT = 3.0  # seconds to reach the Hub before push_to_hub is refused


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _attention(given: dict[str, Any]) -> str | None:
    kernel = given.get("attn_implementation")
    if kernel not in FLASH:
        return None
    if not installed(FLASH[kernel]):
        return (f"attn_implementation: {kernel} needs the {FLASH[kernel]} package, which is not installed here; "
                "use sdpa (PyTorch's own, on CPU and GPU) or install it on a CUDA machine")
    import torch

    if not torch.cuda.is_available():
        return f"attn_implementation: {kernel} runs on CUDA GPUs only; this machine has none: use sdpa"
    return None


def _report_to(given: dict[str, Any]) -> str | None:
    names = given.get("report_to") or []
    names = [names] if isinstance(names, str) else names
    missing = [n for n in names if n in INTEGRATIONS and not installed(INTEGRATIONS[n])]
    if not missing:
        return None
    return (f"report_to: {', '.join(missing)} is not installed here (pip install {' '.join(INTEGRATIONS[n] for n in missing)}"
            "), or drop it: rlft writes TensorBoard logs and the run's log.jsonl without it")


def _push(given: dict[str, Any]) -> str | None:
    if not given.get("push_to_hub"):
        return None
    from huggingface_hub import constants, get_token

    if not (given.get("hub_token") or get_token()):
        return ("push_to_hub: no Hugging Face token here (huggingface-cli login, or HF_TOKEN); or drop it and "
                "publish the finished run with rlft push")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "push_to_hub: HF_HUB_OFFLINE is set; drop it and publish the finished run later with rlft push"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=HUB_TIMEOUT).close()
    except OSError:
        return (f"push_to_hub: the Hub ({host}) cannot be reached from this machine; drop it and publish the "
                "finished run later with rlft push")
    return None


def _liger(given: dict[str, Any]) -> str | None:
    if given.get("use_liger_kernel") and not installed("liger_kernel"):
        return "use_liger_kernel: the liger-kernel package is not installed here (pip install liger-kernel, on CUDA)"
    return None


def _compile(given: dict[str, Any]) -> str | None:
    if given.get("torch_compile") and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        return "torch_compile: it needs a C++ compiler, and none is on PATH here; drop it or install one (g++)"
    return None


def _process_group(given: dict[str, Any]) -> str | None:
    # transformers starts the backend's process group while it builds the config: with one process it crashed
    # the parse with "Default process group has not been initialized"
    if given.get("ddp_backend") and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return (f"ddp_backend: {given['ddp_backend']} is for a launch of several processes (accelerate launch "
                "--num_processes N, launch/*.yaml); this is one process: drop it")
    return None


CHECKS: list[Callable[[dict[str, Any]], str | None]] = [_attention, _report_to, _push, _liger, _compile,
                                                        _process_group]


def machine_problems(given: dict[str, Any]) -> list[str]:
    """Every setting in ``given`` (a recipe's values) this machine cannot honour, one line each."""
    return [problem for check in CHECKS if (problem := check(given))]


def refuse_machine(given: dict[str, Any]) -> None:
    """Raise the first of :func:`machine_problems` as the one-line :class:`UserError`."""
    problems = machine_problems(given)
    if problems:
        raise UserError(problems[0])
