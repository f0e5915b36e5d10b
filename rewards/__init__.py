"""Reward functions and verifiers for rlft (importable without torch).

A reward is TRL-compatible and batched: ``f(completions, **columns) -> list[float | None]``.
``completions`` are strings or chat messages; dataset columns (``answer``, ...)
arrive as keyword arguments; ``None`` means "cannot verify this sample".

``REWARDS`` maps each name to a factory that takes the reward's settings
(the recipe's ``reward_kwargs`` block) and returns the reward.
:func:`resolve` turns a recipe entry (a name, or a dotted path to the user's
own code) into the callable. Verifiers are separate (:func:`extract_answer`,
:func:`is_equivalent`) so evaluation scores with the training logic.

Example:
    >>> accuracy = resolve("accuracy")
    >>> accuracy(["... so the answer is \\\\boxed{\\\\frac{1}{2}}"], answer=["0.5"])
    [1.0]
    >>> is_equivalent(extract_answer("3 + 4 = 7. The answer is 7."), "7")
    True
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewards.accuracy import make_accuracy
from rewards.base import RewardInputError
from rewards.environment import environment
from rewards.length import make_repetition_penalty, make_soft_overlong
from rewards.matching import make_exact_match, make_numeric_tolerance, make_regex_match
from rewards.structure import make_answer_format, tag_count, think_format
from rewards.verifiers import completion_text, equivalent_batch, extract_answer, is_equivalent


def _plain(fn: Callable) -> Callable[..., Callable]:
    """A factory for a reward without settings."""

    def factory(**settings: Any) -> Callable:
        if settings:
            raise RewardInputError(f"reward '{fn.__name__}' takes no settings, got {', '.join(settings)}")
        return fn

    factory.__doc__ = fn.__doc__
    return factory


def _code_tests(**settings: Any) -> Callable:
    from rewards.code import make_code_tests  # subprocess sandbox: only loaded when asked for

    return make_code_tests(**settings)


#: name -> factory(**settings) -> reward
REWARDS: dict[str, Callable[..., Callable]] = {
    "accuracy": make_accuracy,
    "think_format": _plain(think_format),
    "tag_count": _plain(tag_count),
    "answer_format": make_answer_format,
    "soft_overlong": make_soft_overlong,
    "repetition_penalty": make_repetition_penalty,
    "exact_match": make_exact_match,
    "regex_match": make_regex_match,
    "numeric_tolerance": make_numeric_tolerance,
    "code_tests": _code_tests,
    "environment": _plain(environment),
}


def _import_user_module(name: str) -> Any:
    """Import ``name``, also from the working directory: ``rlft grpo`` is a console script, which (unlike
    ``python -m`` or ``python script.py``) does not put it on ``sys.path``, yet a user's rewards module sits
    there beside the recipe. It is appended, so an installed package of the same name still wins."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        top = name.split(".")[0]
        here = os.getcwd()
        if err.name != top or here in sys.path or not (Path(top + ".py").is_file() or Path(top).is_dir()):
            raise
        sys.path.append(here)
        return importlib.import_module(name)


def _load_dotted(path: str) -> Callable:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise RewardInputError(f"reward path {path!r} must look like 'package.module:function'")
    try:
        module = _import_user_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure of user code is reported the same way
        raise RewardInputError(
            f"cannot import reward {path!r}: {type(err).__name__}: {err} (is the module on PYTHONPATH?)"
        ) from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise RewardInputError(f"module {module_name!r} has no attribute {attr!r} (reward {path!r})") from None
    if not callable(obj):
        raise RewardInputError(f"reward {path!r} is not callable")
    return obj


def _is_reward(fn: Callable) -> bool:
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return True
    return bool(params) and params[0] in ("completions", "prompts")


def resolve(name_or_path: str, **settings: Any) -> Callable:
    """The reward named ``name_or_path``, built with ``settings``.

    A registry name (``accuracy``), or ``package.module:function`` for user
    code — importing it runs that code. A dotted path to a plain reward
    (first parameter ``completions``) is used as is; any other callable is a
    factory called with ``settings``. Raises :class:`RewardInputError` (one
    line, listing the available names) for an unknown name or a bad path.

    Example:
        >>> resolve("answer_format", style="boxed")(["\\\\boxed{3}"])
        [1.0]
    """
    if ":" in name_or_path:
        obj = _load_dotted(name_or_path)
        if _is_reward(obj):
            if settings:
                raise RewardInputError(f"reward {name_or_path!r} is a plain reward and takes no settings")
            return obj
        reward = _call_factory(obj, name_or_path, settings)
    else:
        if name_or_path not in REWARDS:
            close = difflib.get_close_matches(name_or_path, REWARDS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise RewardInputError(
                f"unknown reward {name_or_path!r}; {hint}available: {', '.join(REWARDS)} "
                "(or a dotted path package.module:function)"
            )
        reward = _call_factory(REWARDS[name_or_path], name_or_path, settings)
    if not callable(reward):
        raise RewardInputError(f"reward factory {name_or_path!r} returned {type(reward).__name__}, not a function")
    return reward


def _call_factory(factory: Callable, name: str, settings: dict[str, Any]) -> Callable:
    try:
        inspect.signature(factory).bind(**settings)
    except TypeError as err:
        raise RewardInputError(f"reward {name!r}: bad settings {sorted(settings)}: {err}") from None
    return factory(**settings)


__all__ = [
    "REWARDS",
    "RewardInputError",
    "completion_text",
    "equivalent_batch",
    "extract_answer",
    "is_equivalent",
    "resolve",
]
