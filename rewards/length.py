"""Length and repetition shaping: DAPO's soft overlong punishment, n-gram repetition penalty.

Both return values <= 0 (penalties), meant to be added to a correctness reward
with a weight (``reward_weights``), never used alone.

Example:
    >>> make_soft_overlong(max_length=10, cache=4)(["x"] * 3, completion_ids=[[0] * 5, [0] * 8, [0] * 12])
    [0.0, -0.5, -1.0]
"""

from __future__ import annotations

import re
from typing import Any

from rewards.base import Reward, RewardInputError, named, positive
from rewards.verifiers import completion_text, tail_text


def _lengths(completions: list[Any], completion_ids: list | None) -> list[int]:
    """Token counts from TRL's ``completion_ids``; whitespace words when called without them."""
    if completion_ids is not None:
        return [len(ids) for ids in completion_ids]
    return [len(completion_text(c).split()) for c in completions]


def make_soft_overlong(max_length: int = 512, cache: int = 128) -> Reward:
    """Build ``soft_overlong`` (DAPO eq. 13): 0 up to ``max_length - cache`` tokens,
    then a linear ramp down to -1 at ``max_length``, and -1 beyond.

    Lengths are tokens (TRL passes ``completion_ids``); without ids, words.
    """
    positive(max_length, "max_length", "soft_overlong")
    if not 0 <= cache < max_length:
        raise RewardInputError(f"reward 'soft_overlong': cache must be in [0, max_length), got {cache!r}")
    start = max_length - cache

    def soft_overlong(completions: list[Any], completion_ids: list | None = None, **columns: Any) -> list[float]:
        out = []
        for length in _lengths(completions, completion_ids):
            if length <= start:
                out.append(0.0)
            elif length <= max_length:
                out.append((start - length) / cache)
            else:
                out.append(-1.0)
        return out

    return named(soft_overlong, "soft_overlong")


def repetition_fraction(text: str, n: int) -> float:
    """Share of the word ``n``-grams in ``text`` that repeat an earlier one (0 for short texts).

    Example:
        >>> repetition_fraction("a b c a b c a b c", 3)
        0.5714285714285714
    """
    words = re.findall(r"\S+", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def make_repetition_penalty(ngram_size: int = 3, max_penalty: float = -1.0) -> Reward:
    """Build ``repetition_penalty``: ``max_penalty`` × the share of repeated word n-grams.

    Example:
        >>> make_repetition_penalty(3, -1.0)(["one two three four five", "go go go go go"])
        [-0.0, -0.6666666666666667]
    """
    if not isinstance(ngram_size, int) or ngram_size < 1:
        raise RewardInputError(f"reward 'repetition_penalty': ngram_size must be an integer >= 1, got {ngram_size!r}")
    if max_penalty > 0:
        raise RewardInputError(f"reward 'repetition_penalty': max_penalty must be <= 0, got {max_penalty!r}")

    def repetition_penalty(completions: list[Any], **columns: Any) -> list[float]:
        return [max_penalty * repetition_fraction(tail_text(c), ngram_size) for c in completions]

    return named(repetition_penalty, "repetition_penalty")
