"""Answer extraction and equivalence for final answers.

``extract_answer`` finds the final answer a completion commits to, in this
order: the last ``\\boxed{...}`` (nested braces), ``#### x``,
``<answer>x</answer>``, "The answer is x", and (optionally) the last number.
``is_equivalent`` compares a predicted answer with the gold one: exact text
after normalization, else as numbers (thousands separators, fractions,
percentages, decimals).

Example:
    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> is_equivalent("1,000", "1000"), is_equivalent("0.5", "1/2")
    (True, True)
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*\$?\s*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]*)")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)


def completion_text(completion: Any) -> str:
    """The text of a completion as TRL passes it (a string, or chat messages).

    Example:
        >>> completion_text([{"role": "assistant", "content": "42"}])
        '42'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, list):
        return "".join(completion_text(m) for m in completion if not isinstance(m, dict) or m.get("role", "assistant") == "assistant")
    return "" if completion is None else str(completion)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, nested braces included."""
    start = text.rfind("\\boxed")
    while start != -1:
        i = text.find("{", start)
        if i != -1 and text[start + len("\\boxed"):i].strip() == "":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1:j].strip()
        start = text.rfind("\\boxed", 0, start)
    return None


def _clean(answer: str) -> str:
    answer = answer.strip().strip("$").strip()
    answer = re.sub(r"\\(?:text|mathrm)\{([^}]*)\}", r"\1", answer)
    return answer.rstrip(".").strip()


def extract_answer(text: Any, fallback_last_number: bool = True) -> str | None:
    """The final answer ``text`` commits to, or ``None`` when it commits to none.

    Example:
        >>> extract_answer("36 - 5 = 31. The answer is 31.")
        '31'
        >>> extract_answer("no digits here") is None
        True
    """
    text = completion_text(text)
    if not text.strip():
        return None
    boxed = last_boxed(text)
    if boxed:
        return _clean(boxed)
    for pattern in (_HASHES, _TAG, _ANSWER_IS):
        found = pattern.findall(text)
        if found and _clean(found[-1]):
            value = _clean(found[-1])
            number = re.match(rf"\s*({_NUMBER})\s*(%?)", value)
            return number.group(1) + number.group(2) if number and pattern is _ANSWER_IS else value
    if fallback_last_number:
        numbers = re.findall(_NUMBER, text)
        if numbers:
            return numbers[-1]
    return None


def _as_number(text: str) -> Fraction | None:
    text = _clean(text).replace(",", "").replace(" ", "")
    frac = re.fullmatch(r"\\d?frac\{(-?\d+)\}\{(-?\d+)\}", text)
    if frac:
        text = f"{frac.group(1)}/{frac.group(2)}"
    percent = text.endswith("%") or text.endswith("\\%")
    text = text.rstrip("%").rstrip("\\")
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if percent else value


def is_equivalent(pred: str | None, gold: str | None) -> bool:
    """Whether ``pred`` and ``gold`` denote the same answer.

    Example:
        >>> is_equivalent("\\\\frac{1}{2}", "0.5"), is_equivalent("", "0")
        (True, False)
    """
    if pred is None or gold is None or not str(pred).strip():
        return False
    if _clean(str(pred)).lower() == _clean(str(gold)).lower():
        return True
    a, b = _as_number(str(pred)), _as_number(str(gold))
    return a is not None and b is not None and a == b
