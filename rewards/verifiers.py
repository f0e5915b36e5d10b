"""Verifiers: find the final answer in a completion, and decide if it equals the gold one.

Extraction is :mod:`rewards.extraction` (``find_answer``, re-exported here
with ``extract_answer``, ``gold_answer`` and the text helpers).

``equivalent_batch`` / ``is_equivalent`` decide ``True``/``False``, or
``None`` when the gold answer itself cannot be verified (scoring it 1.0 or
0.0 would be a lie). In order:

- A gold that is words (``Monday``, ``even``, ``\\text{yes}``) is compared
  as text, normalized (case, spacing, ``\\text{}``, ``$``, a final period),
  against the answer, or the completion's last line when it marked none.
  math-verify would read ``Monday`` as the product of six symbols, which
  equals ``dynamo``.
- Plain numbers (integers, thousands separators, decimals, fractions,
  percentages, negatives) are compared exactly in-process with
  :class:`fractions.Fraction`.
- Everything else (LaTeX, intervals, sets, tuples, matrices, equations,
  identities) goes to math-verify + sympy in a worker process under a
  timeout (:mod:`rewards.timeouts`), so a hostile answer costs at most the
  timeout and never stalls the caller. Timeouts count as not equivalent. A
  gold math-verify cannot parse falls back to the text comparison
  (``text_fallback``, default on) or is ``None``.

Departures from math-verify's own parse/verify: the answer is parsed from
what rlft extracted (wrapped as ``\\boxed{...}``), not from the whole text,
so a number in the reasoning is never taken for the answer (only a completion
with no marker and LaTeX in its prose is read whole by math-verify); a
percentage equals both its fraction and its bare number (``50%`` vs ``0.5``
or ``50``); several different boxed answers are one answer only when the gold
has several parts (``\\boxed{3}\\boxed{5}`` for ``3, 5``), else a hedge
that scores 0; the last explicit statement of an answer is the answer (a
closing "The final answer is 15." over a box in the working, where math-verify
prefers the box); plain numbers are exact, and a decimal of 6 or more places
stands only for a value whose expansion never ends, rounded *or cut off* there
(math-verify rounds both sides to 6 places: ``0.1250001`` would be ``1/8``, and
``0.666666`` would not be ``2/3``); a gold in words is text, and a completion
that is its gold word for word is right (math-verify reads prose as symbols).
A gold with several boxes is read by math-verify's own parse, as it reads it.

Example:
    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}")
    '\\\\frac{1}{2}'
    >>> is_equivalent("1,000", "1000"), is_equivalent("0.5", "1/2"), is_equivalent("7", "")
    (True, True, None)
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from rewards.extraction import (  # noqa: F401 - the verifier API, re-exported
    SEARCH_TAIL,
    Answer,
    as_list,
    boxed_answers,
    clean,
    completion_text,
    extract_answer,
    find_answer,
    gold_answer,
    last_boxed,
    read_gold,
    tail_text,
    unevaluated,
)
from rewards.timeouts import TIMED_OUT, run_with_timeout

MAX_ANSWER_CHARS = 1_000  # a longer "answer" is not an answer (and too costly to parse)
DEFAULT_TIMEOUT = 5.0

_PLAIN_NUMBER = re.compile(
    r"(?P<sign>[-+−]?)\s*(?:(?P<thousands>\d{1,3}(?:,\d{3})+)|(?P<digits>\d+))?(?P<frac>\.\d+)?\s*(?P<pct>\\?%)?"
)
_FRACTION = re.compile(r"(?P<sign>-?)\s*\\[dt]?frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}|(?P<sign2>-?)(?P<num2>\d+)\s*/\s*(?P<den2>\d+)")
_WORDS = re.compile(r"[A-Za-z][A-Za-z'\-, ]*[A-Za-z]")
_MATH_NAMES = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "infty", "inf", "oo",
               "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "det", "gcd", "lcm", "mod", "max", "min"}

_LATEX_MARKS = re.compile(r"[\\{}^_]")  # a gold with these is broken math, not text: unverifiable

#: counts since import (timeouts, unparsable gold, slow-path calls), for logging
STATS: Counter = Counter()


def is_text_answer(gold: str) -> bool:
    """Whether a (cleaned) gold answer is words rather than math: compared as text, not by math-verify.

    Example:
        >>> is_text_answer("Monday"), is_text_answer("even"), is_text_answer("x"), is_text_answer("\\\\pi")
        (True, True, False, False)
    """
    gold = gold.strip().rstrip(".").strip()
    if not _WORDS.fullmatch(gold):
        return False
    words = re.findall(r"[A-Za-z]+", gold)
    return any(len(w) >= 3 and w.lower() not in _MATH_NAMES for w in words) or gold.lower() in ("no", "ok")


def normalize_text(answer: str) -> str:
    """An answer as text for comparison: ``$`` and ``\\text{}`` gone, lower case, single spaces, no final period.

    Example:
        >>> normalize_text("  $\\\\text{The  Red car}$. ")
        'the red car'
    """
    text = clean(answer).replace("{", "").replace("}", "")
    return " ".join(text.lower().split()).strip(" .,;:!\"'")


def same_text(answer: str, gold: str) -> bool:
    """Whether a completion is its gold word for word (case, spacing and ``$``/``\\text{}`` aside).

    Example:
        >>> same_text("The answer is forty two.", "the answer is  forty two"), same_text("", "")
        (True, False)
    """
    return bool(gold.strip()) and normalize_text(answer) == normalize_text(gold)


def gold_parts(gold: str) -> int:
    """How many top-level, comma-separated parts a gold answer has (``1`` for ``[2,5)`` or ``1,000``).

    Example:
        >>> gold_parts("3, 5"), gold_parts("(3,4),(4,3)"), gold_parts("[2,5)"), gold_parts("1,000")
        (2, 2, 1, 1)
    """
    if as_number(gold) is not None:
        return 1
    text = re.sub(r"^\\\{|\\\}$", "", gold.strip())
    depth, parts = 0, 1
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts += 1
    return parts


def as_number(answer: str) -> tuple[Fraction, bool] | None:
    """``answer`` as an exact number and whether it was a percentage; ``None`` if not a plain number.

    Example:
        >>> as_number("-1,234.5"), as_number("\\\\frac{3}{4}"), as_number("12%")
        ((Fraction(-2469, 2), False), (Fraction(3, 4), False), (Fraction(12, 1), True))
    """
    text = clean(answer).replace("−", "-")
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


APPROXIMATE_PLACES = 6  # math-verify's float_rounding: a decimal this long may stand for a value it cannot write


def decimal_places(answer: str) -> int:
    """Digits after the decimal point of a plain decimal (``0`` for anything else).

    Example:
        >>> decimal_places("0.1428571"), decimal_places("-2.50"), decimal_places("\\frac{1}{7}")
        (7, 2, 0)
    """
    match = re.fullmatch(r"[-+−]?[\d,]*\.(\d+)", clean(answer).strip())
    return len(match.group(1)) if match else 0


def approximates(decimal: Fraction, places: int, exact: Fraction) -> bool:
    """Whether a decimal of ``places`` digits is ``exact`` rounded or cut off there, for a value with no end.

    A value whose decimal expansion ends (``1/8``, ``2.5``) must be written exactly; ``1/7`` has no last digit,
    so ``0.142857`` (cut off) and ``0.1428571`` (rounded) are it, from ``APPROXIMATE_PLACES`` places on.

    Example:
        >>> approximates(Fraction("0.1428571"), 7, Fraction(1, 7)), approximates(Fraction("0.333"), 3, Fraction(1, 3))
        (True, False)
        >>> approximates(Fraction("0.6666667"), 7, Fraction(2, 3)), approximates(Fraction("0.1250001"), 7, Fraction(1, 8))
        (True, False)
    """
    den = exact.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if places < APPROXIMATE_PLACES or den == 1:
        return False
    unit = Fraction(1, 10**places)
    cut = abs(exact) // unit * unit
    return abs(decimal) in (cut, cut + unit if abs(exact) - cut >= unit / 2 else cut) and \
        (decimal < 0) == (exact < 0)


def _numbers_equal(pred: tuple[Fraction, bool], gold: tuple[Fraction, bool], places: tuple[int, int] = (0, 0)) -> bool:
    (p, p_pct), (g, g_pct) = pred, gold
    if p == g or approximates(p, places[0], g) or approximates(g, places[1], p):
        return True
    if p_pct and not g_pct:  # "50%" answers a gold of 0.5
        return p / 100 == g
    if g_pct and not p_pct:
        return g / 100 == p
    return False


def _math_verify_equal(pred: str, gold: str, read_whole: bool = False, gold_whole: bool = False) -> bool | None:
    """math-verify's verdict (runs in a worker process). ``None``: the gold does not parse.

    ``read_whole``: ``pred`` is a completion's text with no answer marker,
    and math-verify's own extraction finds its answer (its LaTeX and
    expression patterns, as its parse does). ``gold_whole``: the same for
    a gold with several boxes.
    """
    from math_verify import parse, verify

    gold_parsed = _parsed_gold(gold, gold_whole)
    if not gold_parsed:
        return None
    if not pred.strip():
        return False
    pred_parsed = parse(pred if read_whole else f"\\boxed{{{pred}}}", extraction_config=_config(),
                        parsing_timeout=None)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


@functools.lru_cache(maxsize=1)
def _config() -> list:
    import logging

    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled": the pool enforces it
    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


# A GRPO batch scores each gold once per generation (8 times in the math recipe): each worker parses a gold once.
@functools.lru_cache(maxsize=4096)
def _parsed_gold(gold: str, whole: bool = False) -> list:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    # no_fallback: a gold that sympy cannot parse is "unverifiable", not a raw string to compare
    if whole:  # several boxes: math-verify's own reading of them, with its default configuration
        return parse(gold, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
                     fallback_mode="no_fallback", parsing_timeout=None)
    return parse(f"\\boxed{{{gold}}}", extraction_config=_config(), fallback_mode="no_fallback",
                 parsing_timeout=None)


def _as_answer(pred: Answer | str | None) -> Answer | None:
    if pred is None or isinstance(pred, Answer):
        return pred
    return Answer(pred, "given", line=pred)


def _text_verdict(pred: Answer | None, gold: str) -> bool:
    """A text gold against the answer, or against the last line when the completion marked no answer."""
    if pred is None:
        return False
    marked = pred.path in ("boxed", "hash", "tag", "sentence", "given")
    return normalize_text(pred.text if marked else pred.line) == normalize_text(gold)


def _no_answer(pred: Answer | None) -> bool:
    return pred is None or not pred.found or not pred.text.strip()


def _fast_verdict(pred: Answer | None, gold: Answer | None, text_fallback: bool) -> bool | None | str:
    """The verdict without sympy, or ``"slow"`` when math-verify must decide.

    A plain-number gold against a plain-number answer and a text gold are
    decided here; any other gold goes to math-verify, which first checks that
    it parses (text equality alone would score an unparsable gold 1.0
    against a copy of itself).
    """
    if gold is None or not gold.text.strip():
        return None
    if gold.whole:  # several boxes: math-verify reads them (and a multi-value answer against one value is wrong)
        return "slow"
    text = gold.text
    if is_text_answer(text):
        return _text_verdict(pred, text) if text_fallback else None
    if pred is not None and pred.multiple and gold_parts(as_list(text)) < 2:
        return False  # several different boxed answers to a one-answer question: a hedge
    if _no_answer(pred):
        return False if as_number(text) is not None else "slow"  # the worker checks the gold parses
    if not pred.whole and len(pred.text) > MAX_ANSWER_CHARS:
        return False
    if unevaluated(pred.stated) and not unevaluated(text):
        return False  # "69 + 88" for 157: the question restated, not answered (math-verify would evaluate it)
    g = as_number(text)
    if g is None:
        return "slow"
    p = as_number(pred.text) if not pred.whole else None
    places = (decimal_places(pred.text), decimal_places(text))
    return _numbers_equal(p, g, places) if p is not None else "slow"


def _as_gold(gold: Answer | str | None) -> Answer | None:
    if gold is None or isinstance(gold, Answer):
        return gold
    return Answer(gold, "gold", line=gold)


def _slow_call(pred: Answer | None, gold: Answer) -> tuple[str, str, bool, bool]:
    """The worker's arguments: answers joined by words ("x=2 or x=-2") as the list math-verify reads."""
    text = "" if _no_answer(pred) else pred.text if pred.whole else as_list(pred.text)
    return text, gold.text if gold.whole else as_list(gold.text), bool(pred and pred.whole), gold.whole


def equivalent_batch(
    pairs: Sequence[tuple[Answer | str | None, Answer | str | None]], timeout: float = DEFAULT_TIMEOUT,
    text_fallback: bool = True,
) -> list[bool | None]:
    """:func:`is_equivalent` for many ``(pred, gold)`` pairs, the slow ones in parallel.

    ``pred`` is an answer string or a :class:`rewards.extraction.Answer`
    (``find_answer``'s, so a completion without a marker is read whole);
    ``gold`` a gold answer's text or ``read_gold``'s answer.

    Example:
        >>> equivalent_batch([("2", "2"), ("3", "2"), ("\\\\frac{2}{4}", "0.5"), ("even", "\\\\text{even}")])
        [True, False, True, True]
    """
    answers = [_as_answer(p) for p, _ in pairs]
    golds = [_as_gold(g) for _, g in pairs]
    verdicts: list[Any] = [_fast_verdict(a, g, text_fallback) for a, g in zip(answers, golds, strict=True)]
    slow = [i for i, v in enumerate(verdicts) if v == "slow"]
    if slow:
        STATS["slow_path"] += len(slow)
        results = run_with_timeout(_math_verify_equal, [_slow_call(answers[i], golds[i]) for i in slow], timeout)
        for i, result in zip(slow, results, strict=True):
            if result is TIMED_OUT:
                STATS["timeouts"] += 1
                verdicts[i] = False
            elif result is None and text_fallback and not _LATEX_MARKS.search(golds[i].text):
                verdicts[i] = _text_verdict(answers[i], golds[i].text)  # not math, and math-verify cannot read it
            else:
                verdicts[i] = result
    STATS["unparsable_gold"] += sum(v is None for v in verdicts)
    return verdicts


def is_equivalent(pred: Answer | str | None, gold: str | None, timeout: float = DEFAULT_TIMEOUT,
                  text_fallback: bool = True) -> bool | None:
    """Whether ``pred`` and ``gold`` denote the same answer; ``None`` if ``gold`` cannot be verified.

    Example:
        >>> is_equivalent("\\\\frac{1}{2}", "0.5"), is_equivalent("", "0"), is_equivalent("-31", "31")
        (True, False, False)
        >>> is_equivalent("[2,5)", "(2,5)"), is_equivalent("monday", "Monday")
        (False, True)
    """
    return equivalent_batch([(pred, gold)], timeout, text_fallback)[0]
