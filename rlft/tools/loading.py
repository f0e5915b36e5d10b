"""The recipe's tools: named as ``module:function``, checked before anything loads, run with a timeout and counted.

    tools: [rlft.tools:calculator, my_pkg.tools:lookup]
    max_turns: 4          # model turns per completion: up to 3 rounds of tool calls, then an answer
    tool_timeout: 10      # seconds per call

Each tool is wrapped (:func:`timed`) so that one call runs off the main
thread and is abandoned after ``tool_timeout`` seconds (``TimeoutError``,
which TRL's tool loop hands the model as an error message, as it does any
exception a tool raises). The wrapper keeps the tool's name, signature and
docstring, which is what the model is shown. Per tool, :class:`ToolStats`
counts calls, errors and timeouts for the training log.

Example:
    >>> stats = ToolStats()
    >>> [calc] = load_tools(["rlft.tools:calculator"], timeout=5.0, stats=stats)
    >>> calc(expression="6 * 7"), stats.snapshot()
    ('42', {'tools/calculator/calls': 1})
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlft.core.errors import UserError


@dataclass
class ToolArguments:
    """Which tools (or environment) the policy may call during GRPO rollouts, for how many turns, how long each call may take."""

    tools: list[str] = field(
        default_factory=list,
        metadata={"help": "Tools as module:function (e.g. rlft.tools:calculator): typed, Google-style docstring."},
    )
    environment: str | None = field(
        default=None,
        metadata={"help": "A multi-turn environment as module:Class: reset(**row), tool methods, optional "
                          "get_reward() (the `environment` reward). See rlft.tools.environments."},
    )
    max_turns: int = field(
        default=4, metadata={"help": "Model turns per completion: a turn ends in tool calls or in the answer."},
    )
    tool_timeout: float = field(default=10.0, metadata={"help": "Seconds one tool call may take before it fails."})

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise UserError(f"max_turns must be at least 1 (one turn: the answer), got {self.max_turns}")
        if self.tool_timeout <= 0:
            raise UserError(f"tool_timeout must be > 0 seconds, got {self.tool_timeout}")


class ToolStats:
    """Per-tool counters (``calls``, ``errors``, ``timeouts``), safe to bump from the tools' threads."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {}
        self._lock = threading.Lock()

    def add(self, tool: str, what: str) -> None:
        with self._lock:
            self.counts.setdefault(tool, Counter())[what] += 1

    def snapshot(self) -> dict[str, int]:
        """Every counter so far, keyed as the training log shows it (``tools/<name>/<what>``)."""
        with self._lock:
            return {f"tools/{tool}/{what}": n for tool, c in sorted(self.counts.items()) for what, n in c.items()}


def load_tools(names: list[str], timeout: float, stats: ToolStats) -> list[Callable[..., Any]]:
    """The recipe's tools, imported, checked as TRL will read them, and wrapped by :func:`timed`."""
    loaded = [import_object(name, "tools") for name in names]
    seen: set[str] = set()
    for name, func in zip(names, loaded, strict=True):
        check_schema(name, func)
        if func.__name__ in seen:
            raise UserError(f"tools: two tools are called {func.__name__!r} (the model calls tools by name)")
        seen.add(func.__name__)
    return [timed(func, timeout, stats) for func in loaded]


def import_object(path: str, what: str) -> Any:
    """The object at ``package.module:name`` (a one-line :class:`UserError` naming ``what`` if it cannot be had)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UserError(f"{what}: {path!r} must look like 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure of user code is reported the same way
        raise UserError(f"{what}: cannot import {path!r}: {type(err).__name__}: {err} (is it on PYTHONPATH?)") from None
    obj = getattr(module, attr, None)
    if not callable(obj):
        raise UserError(f"{what}: module {module_name!r} has no {'class' if what == 'environment' else 'function'} "
                        f"{attr!r}")
    return obj


def check_schema(path: str, func: Callable[..., Any]) -> None:
    """Refuse a tool that TRL could not show the model (transformers' ``get_json_schema`` fails on it)."""
    # TRL builds each tool's JSON schema with transformers' get_json_schema while the trainer is built: a
    # missing type hint or argument description would stop it there, after the model has loaded
    from transformers.utils import get_json_schema

    try:
        get_json_schema(func)
    except Exception as err:  # noqa: BLE001 - transformers raises several types for a bad docstring
        raise UserError(f"tools: {path!r} cannot be shown to the model: {err} (a tool needs type hints and a "
                        "Google-style docstring with an Args: line per argument)") from None


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="rlft-tool")


def timed(func: Callable[..., Any], timeout: float, stats: ToolStats) -> Callable[..., Any]:
    """``func`` run on a worker thread, abandoned after ``timeout`` seconds, its calls and failures counted.

    A timed-out call raises ``TimeoutError`` at once; its thread runs on to
    its end in the background (Python cannot stop a thread), so a tool that
    can hang for good should bound itself, as ``rlft.tools:python`` does (its
    sandbox kills the program).

    Example:
        >>> import time
        >>> def slow(seconds: float) -> str:
        ...     '''Sleep.
        ...
        ...     Args:
        ...         seconds: how long.
        ...     '''
        ...     time.sleep(seconds)
        ...     return "done"
        >>> stats = ToolStats()
        >>> timed(slow, 0.05, stats)(seconds=0.5)
        Traceback (most recent call last):
        ...
        TimeoutError: slow took longer than 0.05 s (tool_timeout)
        >>> stats.snapshot()
        {'tools/slow/calls': 1, 'tools/slow/timeouts': 1}
    """
    name = func.__name__

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        stats.add(name, "calls")
        future = _POOL.submit(func, *args, **kwargs)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            stats.add(name, "timeouts")
            if future.done():  # the tool's own timeout (the python tool's sandbox stopped the program)
                raise
            raise TimeoutError(f"{name} took longer than {timeout:g} s (tool_timeout)") from None
        except Exception:
            stats.add(name, "errors")
            raise

    return call
