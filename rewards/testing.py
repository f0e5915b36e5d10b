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

Checking a verifier against your own dataset's answer styles: write down
(completion, gold, expected) triples as they occur in your data and print
:func:`disagreements`, which lists each case the reward decides otherwise,
with how its answer was found::

    from rewards.testing import disagreements

    print(disagreements([
        ("... so $\\boxed{[2,5)}$", "[2,5)", 1.0),
        ("The answer is (B).", "\\text{B}", 1.0),
    ]))
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


class Disagreements:
    """The cases a reward decided otherwise than expected, printable as a table (:func:`disagreements`)."""

    def __init__(self, rows: list[tuple[str, str, str, str, str]], total: int, name: str) -> None:
        self.rows, self.total, self.name = rows, total, name

    @property
    def count(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        head = f"{self.name}: agrees on {self.total - self.count} of {self.total} cases"
        if not self.rows:
            return head
        table = [("completion", "gold", "expected", "got", "found by"), *self.rows]
        widths = [max(len(r[j]) for r in table) for j in range(5)]
        lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
        return head + f"; {self.count} disagree:\n" + "\n".join(lines)


def disagreements(cases: Iterable[tuple[Any, Any, float | None]], reward: Callable | None = None,
                  column: str = "answer", tol: float = 1e-6) -> Disagreements:
    """Run ``(completion, gold, expected)`` cases through ``reward`` (default: ``accuracy``) in one batch.

    ``expected`` is 1.0, 0.0 or ``None`` (the gold cannot be verified). The
    gold goes to the reward as the ``column`` column. The result prints as
    a table of the disagreements, each with the path its answer was found by
    (:func:`rewards.extraction.find_answer`).

    Example:
        >>> result = disagreements([("The answer is 4", "4", 1.0), ("\\\\boxed{(2,5)}", "[2,5)", 1.0)])
        >>> result.count, str(result).splitlines()[0]
        (1, 'accuracy: agrees on 1 of 2 cases; 1 disagree:')
    """
    from rewards import resolve
    from rewards.extraction import find_answer

    cases = list(cases)
    reward = reward or resolve("accuracy")
    got = reward([c for c, _, _ in cases], **{column: [g for _, g, _ in cases]})
    rows = []
    for (completion, gold, expected), value in zip(cases, got, strict=True):
        if not _same(value, expected, tol):
            found = find_answer(completion)
            rows.append((_short(completion, 48), _short(gold, 24), repr(expected), repr(value),
                         found.path if found else "none"))
    return Disagreements(rows, len(cases), _name(reward))


def _name(reward: Callable) -> str:
    return getattr(reward, "__name__", repr(reward))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cols(columns: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v, 30)}" for k, v in columns.items())
