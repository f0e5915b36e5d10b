"""Math accuracy: 1.0 when the completion's final answer equals the gold answer.

Extraction and equivalence are :mod:`rewards.extraction` and
:mod:`rewards.verifiers` (the same code the evaluation scores with). Empty or
answer-less completions score 0.0; a gold answer that cannot be verified
gives ``None`` ("cannot verify, skip"), never 1.0. A gold in words
(``Monday``), or one math-verify cannot parse, is compared as normalized text
(``text_fallback: false``: ``None`` instead). Several *different*
``\\boxed{}`` answers in one completion score 0.0 by default, hedging must
not pay, unless the gold has as many parts (``3, 5``);
``allow_multiple_boxed: true`` takes the last box.

Example:
    >>> reward = make_accuracy()
    >>> reward(["The answer is \\\\boxed{\\\\frac{1}{2}}", "It is 0.4", ""], answer=["0.5", "0.5", "0.5"])
    [1.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any

from rewards.base import Reward, get_column, named, positive
from rewards.verifiers import (
    DEFAULT_TIMEOUT,
    STATS,
    equivalent_batch,
    find_answer,
    is_text_answer,
    read_gold,
    same_text,
    tail_text,
)


def make_accuracy(
    answer_column: str = "answer",
    fallback_last_number: bool = True,
    allow_multiple_boxed: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    text_fallback: bool = True,
) -> Reward:
    """Build the ``accuracy`` reward.

    Args:
        answer_column: dataset column with the gold answer (a bare answer, or a
            solution ending in ``#### x`` / ``\\boxed{x}``); with the default,
            rows with ``solution`` and no ``answer`` (TRL's and open-r1's data) are
            read from ``solution``.
        fallback_last_number: with no explicit answer marker, take the last number.
        allow_multiple_boxed: take the last of several different boxed answers
            instead of scoring the hedge 0.0 (or reading them as one
            multi-part answer when the gold has several parts).
        timeout: seconds allowed per sample for math-verify/sympy.
        text_fallback: compare a gold in words, or one math-verify cannot
            parse, as normalized text; ``False``: such a sample is ``None``.
    """
    positive(timeout, "timeout", "accuracy")

    def accuracy(completions: list[Any], **columns: Any) -> list[float | None]:
        column = answer_column
        if column == "answer" and "answer" not in columns and "solution" in columns:
            column = "solution"  # TRL's and open-r1's name for the gold (a bare answer or a worked solution)
        golds = get_column(columns, column, "accuracy", len(completions))
        texts = [tail_text(c) for c in completions]
        preds = [find_answer(text, fallback_last_number, allow_multiple_boxed) for text in texts]
        timeouts_before = STATS["timeouts"]
        read = [read_gold(g) for g in golds]
        verdicts = equivalent_batch(list(zip(preds, read)), timeout, text_fallback)
        # a completion that is its gold in words, word for word, is right however the two are read; a math gold is
        # never rescued by text (and the check, ~0.5 ms on a long completion, stays off the common path)
        verdicts = [True if v is False and r is not None and is_text_answer(r.text) and same_text(t, str(g)) else v
                    for v, t, g, r in zip(verdicts, texts, golds, read)]
        accuracy.stats["timeouts"] += STATS["timeouts"] - timeouts_before
        accuracy.stats["none"] += sum(v is None for v in verdicts)
        accuracy.stats["no_answer"] += sum(p is None or not p.found for p in preds)
        return [None if v is None else float(v) for v in verdicts]

    return named(accuracy, "accuracy")
