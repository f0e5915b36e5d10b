"""Verifiers: find the final answer in a completion, and decide if it equals the gold one.

``extract_answer(text)`` looks, in this order, for the last ``\\boxed{...}``
(nested braces), ``#### x``, ``<answer>x</answer>``, "The answer is x", and
optionally the last number. Only the last 20,000 characters are searched, so a
1 MB completion costs what a short one does.

``is_equivalent(pred, gold)`` is ``True``/``False``, or ``None`` when the gold
answer itself cannot be parsed (the sample cannot be verified: scoring it 1.0
or 0.0 would be a lie). Plain numbers (integers, thousands separators,
decimals, fractions, percentages, negatives) are compared exactly in-process
with :class:`fractions.Fraction`; everything else (LaTeX, expressions) goes to
math-verify + sympy in a worker process under a timeout
(:mod:`rewards.timeouts`), so a hostile answer costs at most the timeout and
never stalls the caller. Timeouts count as not equivalent.

Departures from math-verify's defaults: answers are parsed from the
extracted answer (wrapped as ``\\boxed{...}``), not from the whole text, so a
number in the reasoning is never taken for the answer; and a percentage
equals both its fraction and its bare number (``50%`` vs ``0.5`` or ``50``).

Example:
    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> is_equivalent("1,000", "1000"), is_equivalent("0.5", "1/2"), is_equivalent("7", "")
    (True, True, None)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from rewards.timeouts import TIMED_OUT, run_with_timeout

SEARCH_TAIL = 20_000  # characters from the end searched for an answer
MAX_BOXED = 50  # only the last this many \\boxed occurrences are read
MAX_ANSWER_CHARS = 1_000  # a longer "answer" is not an answer (and too costly to parse)
BOXED_SCAN = 4_000  # longest \boxed{...} body considered
DEFAULT_TIMEOUT = 5.0

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+"
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]*)")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[-+−]?)\s*(?:(?P<thousands>\d{1,3}(?:,\d{3})+)|(?P<digits>\d+))?(?P<frac>\.\d+)?\s*(?P<pct>\\?%)?"
)
_FRACTION = re.compile(r"(?P<sign>-?)\s*\\[dt]?frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}|(?P<sign2>-?)(?P<num2>\d+)\s*/\s*(?P<den2>\d+)")

#: counts since import (timeouts, unparsable gold, slow-path calls), for logging
STATS: Counter = Counter()


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
        return "".join(
            completion_text(m) for m in completion
            if not isinstance(m, dict) or m.get("role", "assistant") == "assistant"
        )
    return "" if completion is None else str(completion)


def tail_text(completion: Any) -> str:
    """The last ``SEARCH_TAIL`` characters of a completion's text: all any reward reads.

    Example:
        >>> len(tail_text("x" * 50_000))
        20000
    """
    return completion_text(completion)[-SEARCH_TAIL:]


def boxed_answers(text: str) -> list[str]:
    """Contents of every complete ``\\boxed{...}`` in ``text`` (nested braces kept), in order.

    Example:
        >>> boxed_answers("\\\\boxed{\\\\frac{1}{2}} and \\\\boxed{3}")
        ['\\\\frac{1}{2}', '3']
    """
    found = []
    for match in list(re.finditer(r"\\boxed\s*\{", text))[-MAX_BOXED:]:
        depth, start = 1, match.end()
        for j in range(start, min(len(text), start + BOXED_SCAN)):
            char = text[j]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:j].strip())
                    break
    return found


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``, or ``None``."""
    boxed = boxed_answers(text)
    return boxed[-1] if boxed else None


def _clean(answer: str) -> str:
    answer = answer.strip()
    answer = re.sub(r"^\$+|\$+$", "", answer).strip()
    answer = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", answer)
    answer = answer.replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    return answer.rstrip(".").strip()


def extract_answer(text: Any, fallback_last_number: bool = True) -> str | None:
    """The final answer ``text`` commits to, or ``None`` when it commits to none.

    Example:
        >>> extract_answer("36 - 5 = 31. The answer is 31.")
        '31'
        >>> extract_answer("no digits here") is None
        True
    """
    text = tail_text(text)
    if not text.strip():
        return None
    boxed = last_boxed(text)
    if boxed:
        return _clean(boxed)
    for pattern in (_HASHES, _TAG, _ANSWER_IS):
        found = [_clean(f) for f in pattern.findall(text)]
        found = [f for f in found if f]
        if found:
            value = found[-1]
            if pattern is _ANSWER_IS:  # "The answer is 31 apples because ..." -> "31"
                number = re.match(rf"\s*({_NUMBER})\s*(\\?%)?", value)
                if number:
                    return number.group(1) + (number.group(2) or "")
            return value
    if fallback_last_number:
        numbers = re.findall(_NUMBER, text)
        if numbers:
            return numbers[-1].rstrip(",")
    return None


def gold_answer(gold: Any) -> str | None:
    """The gold answer from a dataset column: a bare answer, or a solution with a marker.

    Example:
        >>> gold_answer("Natalia sold 48/2 = 24 clips. #### 72"), gold_answer(" 5 ")
        ('72', '5')
    """
    if gold is None:
        return None
    text = str(gold).strip()
    if not text:
        return None
    if last_boxed(text) or _HASHES.search(text) or _TAG.search(text):
        return extract_answer(text, fallback_last_number=False)
    return _clean(text)


def as_number(answer: str) -> tuple[Fraction, bool] | None:
    """``answer`` as an exact number and whether it was a percentage; ``None`` if not a plain number.

    Example:
        >>> as_number("-1,234.5"), as_number("\\\\frac{3}{4}"), as_number("12%")
        ((Fraction(-2469, 2), False), (Fraction(3, 4), False), (Fraction(12, 1), True))
    """
    text = _clean(answer).replace("−", "-")
    if len(text) > 300:  # int() refuses >4300 digits; no real answer is this long
        return None
    frac = _FRACTION.fullmatch(text.replace(" ", ""))
    if frac:
        sign = frac.group("sign") or frac.group("sign2") or ""
        num, den = int(frac.group("num") or frac.group("num2")), int(frac.group("den") or frac.group("den2"))
        if den == 0:
            return None
        return Fraction(-num if sign else num, den), False
    match = _PLAIN_NUMBER.fullmatch(text)
    if not match or not (match.group("thousands") or match.group("digits") or match.group("frac")):
        return None
    whole = (match.group("thousands") or match.group("digits") or "0").replace(",", "")
    value = Fraction(whole + (match.group("frac") or ""))
    if match.group("sign") in ("-", "−"):
        value = -value
    return value, bool(match.group("pct"))


def _numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool]) -> bool:
    (p, p_pct), (g, g_pct) = pred, gold
    if p == g:
        return True
    if p_pct and not g_pct:  # "50%" answers a gold of 0.5
        return p / 100 == g
    if g_pct and not p_pct:
        return g / 100 == p
    return False


def _math_verify_equal(pred: str, gold: str) -> bool | None:
    """math-verify's verdict (runs in a worker process). ``None``: the gold does not parse."""
    import logging

    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled": the pool enforces it
    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    # no_fallback: a gold that sympy cannot parse is "unverifiable", not a raw string to compare
    gold_parsed = parse(f"\\boxed{{{gold}}}", extraction_config=config, fallback_mode="no_fallback",
                        parsing_timeout=None)
    if not gold_parsed:
        return None
    if not pred.strip():
        return False
    pred_parsed = parse(f"\\boxed{{{pred}}}", extraction_config=config, parsing_timeout=None)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _fast_verdict(pred: str | None, gold: str | None) -> bool | None | str:
    """The verdict without sympy, or ``"slow"`` when math-verify must decide.

    Only a plain-number gold is decided here: any other gold goes to
    math-verify, which first checks that it parses (text equality alone would
    score an unparsable gold 1.0 against a copy of itself).
    """
    if gold is None or not gold.strip():
        return None
    if pred is not None and len(pred) > MAX_ANSWER_CHARS:
        return False
    g = as_number(gold)
    if g is None:
        return "slow"  # pred length is checked in the worker
    if pred is None or not pred.strip():
        return False
    p = as_number(pred)
    return _numbers_equal(p, g) if p is not None else "slow"


def equivalent_batch(
    pairs: Sequence[tuple[str | None, str | None]], timeout: float = DEFAULT_TIMEOUT
) -> list[bool | None]:
    """:func:`is_equivalent` for many ``(pred, gold)`` pairs, the slow ones in parallel.

    Example:
        >>> equivalent_batch([("2", "2"), ("3", "2"), ("\\\\frac{2}{4}", "0.5")])
        [True, False, True]
    """
    verdicts: list[Any] = [_fast_verdict(p, g) for p, g in pairs]
    slow = [i for i, v in enumerate(verdicts) if v == "slow"]
    if slow:
        STATS["slow_path"] += len(slow)
        calls = [(pairs[i][0] or "", pairs[i][1]) for i in slow]
        results = run_with_timeout(_math_verify_equal, calls, timeout)
        for i, result in zip(slow, results, strict=True):
            if result is TIMED_OUT:
                STATS["timeouts"] += 1
                verdicts[i] = False
            else:
                verdicts[i] = result
    STATS["unparsable_gold"] += sum(v is None for v in verdicts)
    return verdicts


def is_equivalent(pred: str | None, gold: str | None, timeout: float = DEFAULT_TIMEOUT) -> bool | None:
    """Whether ``pred`` and ``gold`` denote the same answer; ``None`` if ``gold`` is unparsable.

    Example:
        >>> is_equivalent("\\\\frac{1}{2}", "0.5"), is_equivalent("", "0"), is_equivalent("-31", "31")
        (True, False, False)
    """
    return equivalent_batch([(pred, gold)], timeout)[0]
