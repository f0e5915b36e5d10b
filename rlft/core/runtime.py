"""Process setup shared by the entry scripts: logging and quieter third-party output.

Example:
    >>> setup_logging("info")
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from rlft.core import accelerator
from rlft.core.console import configure
from rlft.core.errors import UserError

logger = logging.getLogger(__name__)


def setup_logging(level: str = "info", verbose: bool = False) -> None:
    """Log rlft's messages to stderr at ``level``, other libraries' warnings (all of it when ``verbose``).

    What rlft keeps off the console goes to the run's log: :mod:`rlft.core.console`.
    """
    numeric = getattr(logging, str(level).upper(), logging.INFO)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    configure(verbose)
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


def measure_bf16_slowdown(timer: Callable[[], float] = time.perf_counter) -> float:
    """Time a bfloat16 and a float32 matrix product on this CPU; their ratio (bf16 / float32).

    CPUs with AMX or AVX512-BF16 multiply bf16 natively (ratio below 1); on an
    AVX2-only CPU PyTorch falls back to a scalar kernel (measured here on an
    AMD EPYC with AVX2: 2.8 s vs 0.024 s for a 2048x576 @ 576x1536 product,
    ~118x). There is no public PyTorch query for "bf16 matmul is fast" (the
    ISA flags do not say which kernel runs), so rlft times a 256-wide product.

    The first products in a process are slow (thread pool and kernel set-up):
    with one warm-up call and the best of 3, the first probe of a process read
    41.8x on an AVX512-BF16 Xeon whose later probes read 1.9x, and under load
    53x, which silently turned a bf16 run into a float32 one. So both dtypes
    are warmed up three times and then timed in 10 interleaved rounds (the
    same background load falls on both), keeping each one's best time.

    Example:
        >>> ticks = iter(range(100))
        >>> measure_bf16_slowdown(timer=lambda: next(ticks))  # every product "takes" one tick
        1.0
    """
    import torch

    operands = {dtype: torch.ones(256, 256, dtype=dtype) for dtype in (torch.bfloat16, torch.float32)}
    for _ in range(3):
        for a in operands.values():
            a @ a  # warm-up
    best = dict.fromkeys(operands, float("inf"))
    for _ in range(10):
        for dtype, a in operands.items():
            start = timer()
            a @ a
            best[dtype] = min(best[dtype], timer() - start)
    return best[torch.bfloat16] / max(best[torch.float32], 1e-9)


def _machine_key() -> str:
    """This CPU model and flags, and torch's version: what the bf16 measurement depends on."""
    import torch

    try:
        with open("/proc/cpuinfo") as f:
            info = [line for line in f if line.startswith(("model name", "flags"))][:2]
    except OSError:
        info = [platform.processor()]
    return hashlib.sha256(("".join(info) + torch.__version__).encode()).hexdigest()[:16]


@functools.cache
def cpu_bf16_slowdown() -> float:
    """How many times slower bf16 matmul is than float32 here: measured once per machine, then read.

    Every process of a launch (and every later run on the machine) must make
    the same precision decision, so the first measurement
    (:func:`measure_bf16_slowdown`) is stored in
    ``~/.cache/rlft/bf16-slowdown-<cpu and torch>.json`` under a file lock:
    ranks started together wait for the first one's figure instead of timing
    their own (which under load can differ by tens of times).
    ``RLFT_BF16_SLOWDOWN=<ratio>`` sets the figure instead; delete the file to
    measure again.

    Example:
        >>> cpu_bf16_slowdown() > 0
        True
    """
    if os.environ.get("RLFT_BF16_SLOWDOWN"):
        return float(os.environ["RLFT_BF16_SLOWDOWN"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlft"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"bf16-slowdown-{_machine_key()}.json"
    with open(cache / ".bf16.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return float(json.loads(path.read_text())["slowdown"])
        except (OSError, ValueError, KeyError):
            slowdown = measure_bf16_slowdown()
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"slowdown": slowdown}) + "\n")
            tmp.replace(path)
            return slowdown


# bf16 is kept on CPU only where its matmul is about as fast as float32's or faster (AMX: ~0.3-0.6x).
# Measured on an AVX512-BF16 Xeon without AMX: the probe reads ~1.9x, and recipes/math.yaml's GRPO
# step took 28 s in bf16 vs 22 s in float32 (6 steps each, vLLM merged); AVX2-only CPUs read ~60-120x.
BF16_MAX_SLOWDOWN = 1.2

# Warnings found while the recipe is parsed (a precision change, a renamed key). They are
# logged by log_deferred_warnings() once the output directory is accepted, so a refused
# run prints its one-line error and nothing else.
_deferred: list[str] = []


def defer_warning(message: str) -> None:
    """Queue a warning found while parsing, for :func:`log_deferred_warnings` (each message once).

    Example:
        >>> defer_warning("recipe key 'a' is now called 'b'")
        >>> log_deferred_warnings()
    """
    if message not in _deferred:
        _deferred.append(message)


def cpu_precision(values: dict) -> dict:
    """The recipe's precision checked against the machine: the values to run with.

    On a CPU where bf16 is slower than float32, ``bf16`` is turned off with a
    warning, so a recipe written for a bf16-capable machine still runs at
    float32 speed instead of tens of times slower. On a GPU without
    bfloat16 (compute capability below 8.0: T4, V100) ``bf16: true`` is
    refused in one line (:func:`gpu_precision`). Called once per run, after
    the recipe is parsed (:meth:`rlft.stage.skeleton.TrainingStage.settle`).

    Example:
        >>> cpu_precision({"bf16": False})
        {'bf16': False}
    """
    if values.get("bf16") and values.get("use_cpu"):
        slowdown = cpu_bf16_slowdown()
        if slowdown >= BF16_MAX_SLOWDOWN:
            defer_warning(f"bf16: bfloat16 matmul is {slowdown:.1f}x slower than float32 on this CPU "
                                    "(measured); training in float32 instead (set bf16: false to silence this)")
            values = {**values, "bf16": False}
    elif values.get("bf16"):
        gpu_precision()
    return values


def gpu_precision() -> None:
    """Refuse ``bf16: true`` on a CUDA device without bfloat16, in one line that says what to use.

    transformers would otherwise stop deep in its setup, or the run would
    emulate bf16 slowly. No effect without CUDA.

    Example:
        >>> gpu_precision()  # no CUDA here, or one with bf16
    """
    if not accelerator.cuda_available():
        return
    import torch

    if not torch.cuda.is_bf16_supported(including_emulation=False):
        major, minor = torch.cuda.get_device_capability()
        raise UserError(f"bf16: {torch.cuda.get_device_name()} (compute capability {major}.{minor}) has no "
                        "bfloat16; set bf16: false and fp16: true, or use a GPU of compute capability 8.0 or newer")


@contextlib.contextmanager
def launcher_precision() -> Iterator[None]:
    """Scope :func:`launcher_follows_recipe`'s change to the block that builds the recipe's dataclasses.

    transformers reads ``ACCELERATE_MIXED_PRECISION`` when its
    ``TrainingArguments`` are built (and builds the DeepSpeed plugin from it
    there); afterwards the Trainer passes the arguments' own precision on. So
    the variable only has to be right while the recipe is parsed, and parsing
    leaves the environment as it found it.

    Example:
        >>> os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16"
        >>> with launcher_precision():
        ...     launcher_follows_recipe({"bf16": False})
        ...     os.environ["ACCELERATE_MIXED_PRECISION"]
        'no'
        >>> os.environ.pop("ACCELERATE_MIXED_PRECISION")
        'bf16'
    """
    before = os.environ.get("ACCELERATE_MIXED_PRECISION")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("ACCELERATE_MIXED_PRECISION", None)
        else:
            os.environ["ACCELERATE_MIXED_PRECISION"] = before


def launcher_follows_recipe(values: dict) -> None:
    """Set ``accelerate launch``'s mixed precision to the recipe's (``bf16``, ``fp16`` or ``no``).

    ``launch/zero2.yaml`` and its siblings say ``mixed_precision: bf16``
    (``ACCELERATE_MIXED_PRECISION`` in the launched processes). With a recipe
    that says ``bf16: false`` (``recipes/math.yaml``), or one rlft moved to
    float32, transformers would hand DeepSpeed a bf16 config that contradicts
    the float32 run and stop ("DeepSpeed config values that mismatch
    TrainingArguments values"). The recipe is the more specific of the two.

    Example:
        >>> os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16"
        >>> launcher_follows_recipe({"bf16": False})
        >>> os.environ.pop("ACCELERATE_MIXED_PRECISION")
        'no'
    """
    launched = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launched is None:
        return
    wanted = "bf16" if values.get("bf16") else "fp16" if values.get("fp16") else "no"
    if launched != wanted:  # e.g. a recipe with fp16: true under launch/zero2.yaml's bf16
        os.environ["ACCELERATE_MIXED_PRECISION"] = wanted


def log_deferred_warnings() -> None:
    """Log (once) what parsing the recipe queued: :func:`cpu_precision`'s changes, renamed keys.

    Example:
        >>> log_deferred_warnings()
    """
    while _deferred:
        logger.warning(_deferred.pop(0))


def discard_deferred_warnings() -> None:
    """Forget what parsing queued (a process that parses recipes for later runs, which log their own).

    Example:
        >>> defer_warning("recipe key 'a' is now called 'b'")
        >>> discard_deferred_warnings()
        >>> log_deferred_warnings()  # nothing left to log
    """
    _deferred.clear()
