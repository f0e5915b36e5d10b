"""A run's tools as one value: what training's tool loop and every evaluation with tools are given.

Built in one place, :func:`rlft.tools.environments.tool_setup`, from a
recipe's ``tools``, ``environment``, ``max_turns`` and ``tool_timeout``; read
by the GRPO and SFT stages, the closing check, evaluation during training
and ``rlft eval``. It lives in ``core`` because every layer passes it on and
none but ``tools`` builds it.

Example:
    >>> setup = ToolSetup([len], max_turns=3)
    >>> setup.names, setup.has_environment
    (['len'], False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolSetup:
    """The tools a run offers the model, checked and wrapped with their timeout.

    ``functions``: the recipe's tool functions (TRL's ``tools``);
    ``max_turns``: model turns per answer (tool rounds + 1);
    ``environment``: the recipe's environment class, wrapped (TRL's
    ``environment_factory``), or ``None``; ``episode(row)``: a fresh
    environment started on ``row``, as ``(environment, reset's observation,
    its tool methods)``, or ``None`` without an environment; ``stats``:
    the counters of calls, errors and timeouts every tool call adds to;
    ``chat_template(tokenizer, model_name)``: makes the tokenizer render the
    tools and parse calls, in place, or refuses in one line
    (:func:`rlft.tools.chat.enable_tool_calls`).
    """

    functions: list[Callable[..., Any]]
    max_turns: int
    environment: type | None = None
    episode: Callable[[dict[str, Any]], tuple[Any, str | None, list[Callable[..., Any]]]] | None = None
    stats: Any = field(default=None, compare=False)
    chat_template: Callable[[Any, str], Any] | None = field(default=None, compare=False)

    @property
    def names(self) -> list[str]:
        """The tool functions' names, as the model calls them."""
        return [getattr(f, "__name__", "") for f in self.functions]

    @property
    def has_environment(self) -> bool:
        return self.environment is not None
