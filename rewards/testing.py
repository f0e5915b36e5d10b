"""Helpers for unit-testing reward functions in plain pytest.

A reward is easy to get subtly wrong (a regex that ignores newlines, a gold
answer that never parses). These helpers call a reward the way TRL does —
batched, with dataset columns as keyword arguments, as plain strings *and* as
chat messages — and fail with a readable message.

Example (a complete test file)::

    from rewards.testing import assert_reward, assert_rewards

    from my_pkg.rewards import exact_digits

    def test_exact_digits():
        assert_reward(exact_digits, "The answer is 42", 1.0, answer="42")
        assert_rewards(exact_digits, [
            ("42", {"answer": "42"}, 1.0),
            ("41", {"answer": "42"}, 0.0),
            ("", {"answer": "42"}, 0.0),
        ])

    >>> from rewards import resolve
    >>> assert_reward(resolve("accuracy"), "\\\\boxed{1/2}", 1.0, answer="0.5")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Case = tuple[Any, dict[str, Any], float | None]


def score(reward: Callable, completion: Any, **columns: Any) -> float | None:
    """The reward of one completion (a string or chat messages), called as TRL calls it.

    Example:
        >>> from rewards import resolve
        >>> score(resolve("accuracy"), "The answer is 7.", answer="7")
        1.0
    """
    out = reward([completion], **{k: [v] for k, v in columns.items()})
    if not isinstance(out, list) or len(out) != 1:
        raise AssertionError(f"{_name(reward)} must return a list with one value per completion, got {out!r}")
    return out[0]


def _as_chat(completion: Any) -> Any:
    return [{"role": "assistant", "content": completion}] if isinstance(completion, str) else completion


def _same(got: float | None, expected: float | None, tol: float) -> bool:
    if expected is None or got is None:
        return got is expected
    return isinstance(got, (int, float)) and math.isclose(got, expected, abs_tol=tol)


def assert_reward(
    reward: Callable, completion: Any, expected: float | None, tol: float = 1e-6, **columns: Any
) -> None:
    """Assert ``reward`` gives ``expected`` for ``completion``, as text and as a chat message.

    ``expected=None`` asserts "cannot verify". Columns are the row's values.
    """
    for form in (completion, _as_chat(completion)):
        got = score(reward, form, **columns)
        if not _same(got, expected, tol):
            kind = "chat" if form is not completion else "text"
            raise AssertionError(
                f"{_name(reward)}({kind} completion={_short(completion)}, {_cols(columns)}) "
                f"returned {got!r}, expected {expected!r}"
            )


def assert_rewards(reward: Callable, cases: Iterable[Case], tol: float = 1e-6) -> None:
    """Assert every ``(completion, columns, expected)`` case, calling the reward on the whole batch.

    All failures are listed together, with the table of what came back.
    """
    cases = list(cases)
    completions = [c for c, _, _ in cases]
    keys = sorted({k for _, cols, _ in cases for k in cols})
    got = reward(completions, **{k: [cols.get(k) for _, cols, _ in cases] for k in keys})
    if len(got) != len(cases):
        raise AssertionError(f"{_name(reward)} returned {len(got)} values for {len(cases)} completions")
    bad = [i for i, (value, (_, _, want)) in enumerate(zip(got, cases)) if not _same(value, want, tol)]
    if bad:
        raise AssertionError(
            f"{len(bad)} of {len(cases)} cases failed for {_name(reward)}:\n"
            + reward_table(reward, cases, got=got, only=bad)
        )


def reward_table(
    reward: Callable, cases: Sequence[Case], got: Sequence[Any] | None = None, only: Iterable[int] | None = None
) -> str:
    """A text table of completion, columns, expected and returned score for ``cases``.

    Example:
        >>> from rewards import resolve
        >>> print(reward_table(resolve("accuracy"), [("It is 4", {"answer": "4"}, 1.0)]))  # doctest: +NORMALIZE_WHITESPACE
        completion   columns      expected  got   ok
        'It is 4'    answer='4'   1.0       1.0   yes
    """
    if got is None:
        keys = sorted({k for _, cols, _ in cases for k in cols})
        got = reward([c for c, _, _ in cases], **{k: [cols.get(k) for _, cols, _ in cases] for k in keys})
    rows = [("completion", "columns", "expected", "got", "ok")]
    for i in only if only is not None else range(len(cases)):
        completion, columns, expected = cases[i]
        rows.append((_short(completion, 40), _cols(columns), repr(expected), repr(got[i]),
                     "yes" if _same(got[i], expected, 1e-6) else "NO"))
    widths = [max(len(r[j]) for r in rows) for j in range(5)]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def _name(reward: Callable) -> str:
    return getattr(reward, "__name__", repr(reward))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cols(columns: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v, 30)}" for k, v in columns.items())
