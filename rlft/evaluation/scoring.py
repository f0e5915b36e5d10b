"""What an output scores: the closing check's accuracy, and ``rlft eval``'s per-prompt scores.

- :func:`score` — the closing before/after check that ends a stage: the
  verifier (:func:`rewards.extract_answer` / :func:`rewards.is_equivalent`,
  batched), length in characters.
- :func:`score_task` / :func:`summarize` — ``rlft eval``: the recipe's
  ``accuracy`` reward (the same code as training), length in tokens.

Example:
    >>> score(["The answer is 4.", "5"], ["4", "4"])["accuracy"]
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewards.verifiers import equivalent_batch, extract_answer, gold_answer


def score(completions: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """Accuracy (verifier-equivalent final answer) and mean length in characters.

    Example:
        >>> score(["The answer is 4.", "5"], ["4", "4"])["accuracy"]
        0.5
    """
    pairs = [(extract_answer(c), gold_answer(a)) for c, a in zip(completions, answers, strict=True)]
    correct = [verdict is True for verdict in equivalent_batch(pairs)]
    n = len(correct)
    return {
        "accuracy": sum(correct) / n if n else 0.0,
        "n": n,
        "mean_len": sum(len(c) for c in completions) / n if n else 0.0,
    }


def score_task(outputs: list[str], answers: list[str], accuracy: Any) -> tuple[list[float], list[bool]]:
    """Per-prompt accuracy (the recipe's ``accuracy`` reward) and whether a final answer could be read."""
    from rewards.verifiers import extract_answer

    scores = [float(s or 0.0) for s in accuracy(outputs, answer=answers)]
    formatted = [extract_answer(o, fallback_last_number=False) is not None for o in outputs]
    return scores, formatted


def summarize(name: str, scores: list[float], formatted: list[bool], outputs: list[str], tokenizer: Any) -> dict:
    """One model's metrics on the task rows."""
    n = len(scores)
    lengths = [len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs]
    return {"model": name, "n": n, "accuracy": sum(scores) / n, "format": sum(formatted) / n,
            "mean_tokens": sum(lengths) / n}
