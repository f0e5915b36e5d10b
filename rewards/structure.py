"""Format rewards: the think/answer tag structure and the requested answer format.

- ``think_format``: 1.0 when the completion is exactly ``<think>…</think>``
  followed by ``<answer>…</answer>`` (newlines inside and between allowed,
  each tag exactly once, nothing but whitespace after ``</answer>``), else 0.0.
  The regex runs with DOTALL: the classic bug was a pattern whose ``.`` did not
  match newlines, so every multi-line completion scored 0.
- ``tag_count``: partial credit, 0.25 for each of the four tags present exactly once.
- ``answer_format``: 1.0 when the completion states its answer the requested
  way (``hash``: a final ``#### x`` line; ``boxed``; ``answer_tag``; ``answer_is``).

Example:
    >>> think_format(["<think>\\n2+2\\n</think>\\n<answer>\\n4\\n</answer>", "<answer>4</answer>"])
    [1.0, 0.0]
"""

from __future__ import annotations

import re
from typing import Any

from rewards.base import Reward, RewardInputError, named
from rewards.verifiers import boxed_answers, completion_text, tail_text

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
_STRICT = re.compile(r"\s*<think>(?P<think>.*?)</think>\s*<answer>(?P<answer>.*?)</answer>\s*", re.DOTALL)


def _strict_ok(text: str) -> bool:
    if any(text.count(tag) != 1 for tag in TAGS):
        return False
    match = _STRICT.fullmatch(text)
    return bool(match and match.group("think").strip() and match.group("answer").strip())


def think_format(completions: list[Any], **columns: Any) -> list[float]:
    """1.0 for exactly one non-empty think block followed by one non-empty answer block.

    Example:
        >>> think_format(["<think>a</think><answer>b</answer> trailing"])
        [0.0]
    """
    return [float(_strict_ok(completion_text(c))) for c in completions]


def tag_count(completions: list[Any], **columns: Any) -> list[float]:
    """0.25 per tag (``<think>``, ``</think>``, ``<answer>``, ``</answer>``) present exactly once.

    Example:
        >>> tag_count(["<think>x</think>", "<think><think>"])
        [0.5, 0.0]
    """
    return [float(sum(0.25 for tag in TAGS if completion_text(c).count(tag) == 1)) for c in completions]


_STYLES = {
    "hash": lambda t: re.search(r"####\s*\S[^\n]*\s*\Z", t) is not None,
    "boxed": lambda t: len(boxed_answers(t)) >= 1,
    "answer_tag": lambda t: re.search(r"<answer>\s*\S.*?</answer>\s*\Z", t, re.DOTALL) is not None,
    "answer_is": lambda t: re.search(r"answer is:?\s*\S[^\n]*\s*\Z", t, re.IGNORECASE) is not None,
}


def make_answer_format(style: str = "hash") -> Reward:
    """Build ``answer_format``: 1.0 when the final answer is given in ``style``.

    Styles: ``hash`` (ends with ``#### x``), ``boxed`` (has ``\\boxed{x}``),
    ``answer_tag`` (ends with ``<answer>x</answer>``), ``answer_is`` (ends with
    "The answer is x").

    Example:
        >>> make_answer_format("hash")(["so 4\\n#### 4", "#### \\n"])
        [1.0, 0.0]
    """
    if style not in _STYLES:
        raise RewardInputError(f"reward 'answer_format': style must be one of {', '.join(_STYLES)}, got {style!r}")
    check = _STYLES[style]

    def answer_format(completions: list[Any], **columns: Any) -> list[float]:
        return [float(check(tail_text(c))) for c in completions]

    return named(answer_format, "answer_format")
