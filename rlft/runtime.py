"""Process setup shared by the entry scripts: logging and quieter third-party output.

Example:
    >>> setup_logging("info")
"""

from __future__ import annotations

import logging
import os
import warnings


def setup_logging(level: str = "info") -> None:
    """Log rlft's messages to stderr at ``level``; keep library chatter at warnings."""
    numeric = getattr(logging, str(level).upper(), logging.INFO)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("rlft").setLevel(numeric)
    logging.getLogger("rewards").setLevel(numeric)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Known-harmless noise on CPU runs; real problems still surface as errors.
    warnings.filterwarnings("ignore", message=".*pin_memory.*no accelerator.*")


def is_main_process() -> bool:
    """True in the process that should print and write shared files (rank 0)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def platform_defaults() -> dict:
    """Recipe defaults that depend on the machine: ``use_cpu`` and gloo where no GPU is visible.

    Lets one recipe run unchanged on a GPU box and on a CPU-only one (where
    transformers otherwise refuses ``bf16: true`` unless ``use_cpu`` is set). Without
    ``use_cpu`` and the gloo backend, processes started by ``accelerate launch
    --num_processes 2`` on CPU each believe they are alone (world size 1).
    """
    import torch

    has_gpu = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    if has_gpu:
        return {}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a single process must not ask for a process group
        return {"use_cpu": True, "ddp_backend": "gloo"}
    return {"use_cpu": True}
