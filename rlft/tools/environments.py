"""The recipe's environment: a class the policy acts in over several turns (TRL's ``environment_factory``).

    environment: examples.guess_number.env:GuessNumber
    reward_funcs: [environment]     # the environment's get_reward(), weighted and logged like any reward
    max_turns: 6

The contract is TRL's, so one class works in both: ``reset(**row)`` starts
an episode from a dataset row and returns ``None`` or text appended to the
prompt; every public method is a tool the model may call (type hints and a
Google-style docstring, which is what the model is shown); an optional
``get_reward() -> float`` scores the finished episode.

:func:`load_environment` checks all of that before the model loads: the
class imports, ``reset`` works on the first training row, each method can be
shown to the model. TRL then builds one instance per rollout from
:func:`environment_factory`'s class, which wraps the user's: each tool call
runs with ``tool_timeout`` and is counted (:func:`rlft.tools.loading.timed`),
and ``get_reward`` is kept off the class so that TRL does not add it as a
hidden extra reward: the recipe says where it goes (the ``environment``
reward, :mod:`rewards.environment`).

Example:
    >>> from rlft.tools.loading import ToolStats
    >>> stats = ToolStats()
    >>> Env = load_environment("examples.guess_number.env:GuessNumber", 5.0, stats, {"secret": 3})
    >>> env = Env()
    >>> env.reset(secret=3), env.guess(number=5), env.guess(number=3), env.get_reward()
    (None, 'lower', 'correct', 0.9)
    >>> stats.snapshot()
    {'tools/guess/calls': 2}
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from rlft.core.errors import UserError
from rlft.core.tool_setup import ToolSetup
from rlft.tools.loading import ToolStats, check_schema, import_object, load_tools, timed

NOT_TOOLS = ("reset", "get_reward")


def tool_chat_template(tokenizer: Any, model_name: str) -> Any:
    """:func:`rlft.tools.chat.enable_tool_calls`, imported when a run first renders tools (it loads transformers,
    which the recipe's parse must not)."""
    from rlft.tools.chat import enable_tool_calls

    return enable_tool_calls(tokenizer, model_name)


def tool_names(cls: type) -> list[str]:
    """The methods TRL exposes as tools: public functions of the class other than ``reset`` and ``get_reward``."""
    return [name for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
            if name not in NOT_TOOLS and not name.startswith("_")]


def load_environment(path: str, timeout: float, stats: ToolStats, row: dict[str, Any]) -> type:
    """The environment class at ``path``, checked on ``row`` and wrapped (:func:`environment_factory`)."""
    cls = import_object(path, "environment")
    if not inspect.isclass(cls):
        raise UserError(f"environment: {path!r} is not a class (TRL builds one instance per rollout from it)")
    if not callable(getattr(cls, "reset", None)):
        raise UserError(f"environment: {path!r} has no reset(**row) method (it starts each episode)")
    names = tool_names(cls)
    if not names:
        raise UserError(f"environment: {path!r} has no public method for the model to call")
    try:
        probe = cls()
        observation = probe.reset(**row)
    except Exception as err:  # noqa: BLE001 - user code: one line, before the model loads
        raise UserError(f"environment: {path!r} failed to start on the first training row: "
                        f"{type(err).__name__}: {err}") from None
    if observation is not None and not isinstance(observation, str):
        raise UserError(f"environment: {path!r}.reset returned {type(observation).__name__}; it must return a "
                        "string (added to the prompt) or None")
    for name in names:
        check_schema(f"{path}.{name}", getattr(probe, name))
    return environment_factory(cls, timeout, stats)


def has_reward(env_class: type) -> bool:
    """Whether the (wrapped) environment scores its episodes (``get_reward``)."""
    return callable(getattr(getattr(env_class, "wrapped", env_class), "get_reward", None))


def environment_factory(cls: type, timeout: float, stats: ToolStats) -> type:
    """A class TRL can build per rollout: ``cls``'s tools, timed and counted; ``get_reward`` on the instance only.

    TRL reads tools and ``get_reward`` from the class (``inspect.getmembers``
    of the type), so the instance attribute ``get_reward`` stays rlft's to
    place in the recipe's rewards.
    """

    def __init__(self) -> None:
        self.env = cls()
        if callable(getattr(self.env, "get_reward", None)):
            self.get_reward = self.env.get_reward

    def reset(self, **row: Any) -> str | None:
        return self.env.reset(**row)

    namespace: dict[str, Any] = {"__init__": __init__, "reset": reset, "wrapped": cls, "__doc__": cls.__doc__,
                                 "__module__": cls.__module__}
    for name in tool_names(cls):
        namespace[name] = _timed_method(name, getattr(cls, name), timeout, stats)
    return type(cls.__name__, (), namespace)


def _timed_method(name: str, func: Callable[..., Any], timeout: float, stats: ToolStats) -> Callable[..., Any]:
    @functools.wraps(func)  # the model is shown the user's signature and docstring
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return timed(getattr(self.env, name), timeout, stats)(*args, **kwargs)

    return method


def episode(env_class: type, row: dict[str, Any]) -> tuple[Any, str | None, list[Callable[..., Any]]]:
    """A fresh instance of ``env_class`` started on ``row``: ``(environment, reset's observation, its tools)``."""
    env = env_class()
    observation = env.reset(**row)
    return env, observation, environment_tools(env)


def environment_tools(env: Any) -> list[Callable[..., Any]]:
    """The bound tool methods of one environment instance (what the model may call in its episode)."""
    return [getattr(env, name) for name in tool_names(type(env))]


def tool_setup(tool_args: Any, row: dict[str, Any], reward_funcs: list[str] | None = None) -> ToolSetup | None:
    """The recipe's tools and environment, loaded and checked once: a :class:`ToolSetup`, or ``None`` without.

    The one place a run's tools are built (GRPO, SFT, ``rlft eval``): each
    tool imported and checked as TRL will read it (:func:`load_tools`), the
    environment checked on ``row`` (:func:`load_environment`), no tool
    sharing a name with an environment method. With ``reward_funcs`` (a
    training stage's), the environment's ``get_reward`` and the
    ``environment`` reward must come together.

    Example:
        >>> from rlft.tools.loading import ToolArguments
        >>> setup = tool_setup(ToolArguments(tools=["rlft.tools:calculator"], max_turns=3), {})
        >>> setup.names, setup.max_turns, setup.episode
        (['calculator'], 3, None)
    """
    if not (tool_args.tools or tool_args.environment):
        return None
    stats = ToolStats()
    tools = load_tools(tool_args.tools, tool_args.tool_timeout, stats)
    if not tool_args.environment:
        return ToolSetup(tools, tool_args.max_turns, stats=stats, chat_template=tool_chat_template)
    env = load_environment(tool_args.environment, tool_args.tool_timeout, stats, row)
    clash = {t.__name__ for t in tools} & {t.__name__ for t in environment_tools(env())}
    if clash:
        raise UserError(f"tools: {', '.join(sorted(clash))} is both a tool and a method of the environment "
                        "(the model calls tools by name)")
    if reward_funcs is not None:
        named = "environment" in reward_funcs
        if has_reward(env) and not named:
            raise UserError(f"environment: {tool_args.environment} scores its episodes (get_reward), but "
                            "reward_funcs does not name it: add `environment` to reward_funcs")
        if named and not has_reward(env):
            raise UserError(f"reward_funcs names `environment`, but {tool_args.environment} has no get_reward()")
    return ToolSetup(tools, tool_args.max_turns, env, functools.partial(episode, env), stats, tool_chat_template)
