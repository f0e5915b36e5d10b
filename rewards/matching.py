"""Rewards for non-math tasks: exact match, regex match, numeric tolerance.

Every one compares against a dataset column (``answer`` by default). A row
whose gold is missing or empty scores ``None`` (cannot verify): an empty gold
must never make an empty answer "correct" (the substring-matching bug, where
``"" in anything`` is true, rewarded empty answers).

Example:
    >>> make_exact_match()(["The answer is Paris.", "paris", ""], answer=["Paris", "Paris", "Paris"])
    [1.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from rewards.base import Reward, RewardInputError, get_column, named
from rewards.verifiers import as_number, completion_text, extract_answer, tail_text


def normalize(text: str, case_sensitive: bool = False) -> str:
    """Unicode-normalize, trim, collapse spaces, drop surrounding quotes and a final period."""
    text = unicodedata.normalize("NFKC", text).strip().strip("\"'`").strip()
    text = re.sub(r"\s+", " ", text).rstrip(".").strip()
    return text if case_sensitive else text.casefold()


def make_exact_match(
    answer_column: str = "answer", case_sensitive: bool = False, extract: bool = True
) -> Reward:
    """Build ``exact_match``: 1.0 when the (extracted) answer equals the gold after normalization.

    With ``extract`` the answer comes from :func:`rewards.extract_answer`
    without the last-number fallback, else the whole completion is compared.
    """

    def exact_match(completions: list[Any], **columns: Any) -> list[float | None]:
        golds = get_column(columns, answer_column, "exact_match", len(completions))
        out: list[float | None] = []
        for completion, gold in zip(completions, golds):
            if gold is None or not normalize(str(gold)):
                out.append(None)
                continue
            text = completion_text(completion)
            pred = (extract_answer(text, fallback_last_number=False) or text) if extract else text
            out.append(float(bool(pred.strip()) and normalize(pred, case_sensitive) == normalize(str(gold), case_sensitive)))
        return out

    return named(exact_match, "exact_match")


def make_regex_match(pattern: str | None = None, pattern_column: str | None = None, full: bool = False) -> Reward:
    """Build ``regex_match``: 1.0 when the completion matches ``pattern`` (or the row's pattern).

    Example:
        >>> make_regex_match(r"\\d{4}-\\d{2}-\\d{2}")(["on 2024-01-31", "tomorrow"])
        [1.0, 0.0]
    """
    if (pattern is None) == (pattern_column is None):
        raise RewardInputError("reward 'regex_match': give exactly one of pattern or pattern_column")
    try:
        fixed = re.compile(pattern, re.DOTALL) if pattern is not None else None
    except re.error as err:
        raise RewardInputError(f"reward 'regex_match': bad pattern {pattern!r}: {err}") from None

    def regex_match(completions: list[Any], **columns: Any) -> list[float | None]:
        rows = get_column(columns, pattern_column, "regex_match", len(completions)) if pattern_column else None
        out: list[float | None] = []
        for i, completion in enumerate(completions):
            try:
                regex = fixed or re.compile(rows[i], re.DOTALL)
            except (re.error, TypeError):
                out.append(None)
                continue
            text = tail_text(completion)
            hit = regex.fullmatch(text.strip()) if full else regex.search(text)
            out.append(float(hit is not None))
        return out

    return named(regex_match, "regex_match")


def make_numeric_tolerance(answer_column: str = "answer", rel_tol: float = 1e-6, abs_tol: float = 0.0) -> Reward:
    """Build ``numeric_tolerance``: 1.0 when the extracted number is within tolerance of the gold.

    Example:
        >>> make_numeric_tolerance(rel_tol=0.01)(["about 3.14", "3.3"], answer=["3.1416", "3.1416"])
        [1.0, 0.0]
    """
    if rel_tol < 0 or abs_tol < 0:
        raise RewardInputError("reward 'numeric_tolerance': rel_tol and abs_tol must be >= 0")

    def numeric_tolerance(completions: list[Any], **columns: Any) -> list[float | None]:
        golds = get_column(columns, answer_column, "numeric_tolerance", len(completions))
        out: list[float | None] = []
        for completion, gold in zip(completions, golds):
            g = as_number(str(gold)) if gold is not None else None
            if g is None:
                out.append(None)
                continue
            pred = extract_answer(completion)
            p = as_number(pred) if pred else None
            out.append(float(p is not None and math.isclose(float(p[0]), float(g[0]), rel_tol=rel_tol, abs_tol=abs_tol)))
        return out

    return named(numeric_tolerance, "numeric_tolerance")
