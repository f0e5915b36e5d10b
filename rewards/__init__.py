"""Reward functions and verifiers for rlft (importable without torch).

A reward is TRL-compatible and batched: ``f(completions, **columns) -> list[float | None]``.
Verifiers are separate (``extract_answer``, ``is_equivalent``) so evaluation
scores with exactly the same logic as training.

Example:
    >>> from rewards import extract_answer, is_equivalent
    >>> is_equivalent(extract_answer("3 + 4 = 7. The answer is 7."), "7")
    True
"""

from rewards.verifiers import completion_text, extract_answer, is_equivalent

__all__ = ["completion_text", "extract_answer", "is_equivalent"]
