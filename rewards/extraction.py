"""Finding the final answer a completion commits to, and saying how it was found.

:func:`find_answer` looks, in this order, for:

1. ``\\boxed{...}`` (nested braces; several *different* boxes are kept
   together, ``multiple``: a hedge for a one-answer question, the answer for
   a multi-answer one, :mod:`rewards.verifiers` decides against the gold);
2. ``#### x``, then ``<answer>x</answer>``;
3. "The answer is x" / "Final Answer: x" (a number right after it is the
   answer; a sentence is read for its math: ``sentence``);
4. with no marker (unless ``fallback_last_number`` is off: then nothing),
   the last line when it is only a LaTeX span (``$\\frac{7}{4}$``:
   ``latex``) or a bare expression (``7/4``, ``x = 5``: ``expression``);
   else, when the text has LaTeX math, math-verify's own extraction over the
   text (``latex text``); else the last number (``last number``).

Why not math-verify's extraction alone: it takes the last number of a text,
so "36 - 5 = 31 apples. #### 31" and GSM8K-style outputs lose their marker,
and it reads ``1,000`` as a set; rlft's markers come first and plain numbers
stay exact. Only the last 20,000 characters are searched, so a 1 MB
completion costs what a short one does.

Example:
    >>> find_answer("so \\\\boxed{\\\\frac{1}{2}}")
    Answer(text='\\\\frac{1}{2}', path='boxed', multiple=False, line='so \\\\boxed{\\\\frac{1}{2}}', whole=False)
    >>> find_answer("The sum is\\n$\\\\frac{7}{4}$").path, find_answer("It is 3, or 4").path
    ('latex', 'last number')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SEARCH_TAIL = 20_000  # characters from the end searched for an answer
MAX_BOXED = 50  # only the last this many \\boxed occurrences are read
BOXED_SCAN = 4_000  # longest \boxed{...} body considered
MAX_LINE = 200  # a longer last line is not a bare answer
MARKERS = ("boxed", "hash", "tag", "sentence")  # the paths of an explicitly stated answer

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+"
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]*)")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_PLAIN = re.compile(r"-?[\d,]*\.?\d+%?")
# spans are bounded (1,000 characters) and "$" spans hold no "$": a text of 7,000 unclosed "\\(" took 1 s unbounded
_LATEX_SPAN = re.compile(r"\$\$([^$]{1,1000}?)\$\$|\$([^$]{1,1000}?)\$|\\\((.{1,1000}?)\\\)|\\\[(.{1,1000}?)\\\]", re.DOTALL)
# a bare expression: numbers, single-letter variables, operators, brackets and math function names
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "infty", "inf", "oo"}
_BARE = re.compile(r"[\w\s+\-*/^().,=<>\[\]|!]+")


@dataclass(frozen=True)
class Answer:
    """An extracted answer: its text, the path that found it, and how the verifier must read it.

    ``multiple``: several different boxes, joined. ``whole``: ``text`` is
    prose (a sentence after "the answer is", or a whole completion with LaTeX
    in it) that math-verify's own extraction reads. ``line`` is the
    completion's last line (a text gold is compared with it when no marker
    was found). ``path`` ``none``: nothing was found (``text`` is empty).
    """

    text: str
    path: str  # boxed | hash | tag | sentence | latex | expression | latex text | last number | none
    multiple: bool = False
    line: str = ""
    whole: bool = False

    @property
    def found(self) -> bool:
        """Whether the completion committed to an answer."""
        return self.path != "none"

    @property
    def stated(self) -> str | None:
        """The answer as a reader would quote it: the last LaTeX span for ``latex text``; ``None`` when none was found."""
        if not self.found:
            return None
        return clean(math_spans(self.text)[-1]) if self.path == "latex text" else self.text

    @property
    def marked(self) -> bool:
        """Whether an explicit marker (``\\boxed``, ``####``, ``<answer>``, "the answer is") stated it."""
        return self.path in MARKERS


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


def clean(answer: str) -> str:
    """An answer without its dressing: ``$``, ``\\text{}``, LaTeX spacing and thousands marks, a final period.

    Example:
        >>> clean("$2,\\\\! 024,\\\\! 000$."), clean("\\\\text{even}")
        ('2,024,000', 'even')
    """
    answer = answer.strip().rstrip(".").strip().replace("−", "-")
    answer = re.sub(r"^\$+|\$+$", "", answer).strip()
    answer = re.sub(r"^\\\(|\\\)$", "", answer).strip()
    answer = re.sub(r"(?<=\d)(?:,\\!\s*|\{,\}\s*)(?=\d{3})", ",", answer)  # 2,\! 024 and 2{,}024: thousands
    answer = re.sub(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}", r"\1", answer)
    answer = answer.replace("\\!", "").replace("\\,", "").replace("\\ ", " ").replace("\\dfrac", "\\frac")
    return answer.rstrip(".").strip()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _latex_only(line: str) -> str | None:
    """The math of a line that is one LaTeX span and nothing else (a final period allowed)."""
    match = _LATEX_SPAN.fullmatch(line.rstrip(". "))
    return next((g for g in match.groups() if g), None) if match else None


def math_spans(text: str) -> list[str]:
    """The contents of the LaTeX math spans in ``text`` (``$...$``, ``\\(...\\)``, ...), not dollar amounts.

    A "span" with words in it is prose between two prices ("$12 for apples and $5"), not math.

    Example:
        >>> math_spans("It costs $12 for apples and $5 for pears."), math_spans("so $x = \\\\frac{1}{2}$")
        ([], ['x = \\\\frac{1}{2}'])
    """
    spans = (next(g for g in match if g) for match in _LATEX_SPAN.findall(text))
    return [span.strip() for span in spans if span.strip() and not _is_prose(span)]


_OPERAND = r"\(?\s*[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*\)?"
_OPERATOR = r"(?:[-+*×÷−]|\\times|\\cdot|\\div)"
_ARITHMETIC = re.compile(rf"{_OPERAND}(?:\s*{_OPERATOR}\s*{_OPERAND})+")


def unevaluated(answer: str) -> bool:
    """Whether ``answer`` is arithmetic on numbers left undone (``69 + 88``, ``3 \\times 4``): a question restated.

    A verifier that evaluates expressions would score ``69 + 88`` right for
    157, and a policy trained on it learns to copy the question (the bundled
    model did, in 20 GRPO steps: 99.5 % "accuracy" answering ``69 + 88``).
    Fractions, powers, roots and anything with a variable are values, not this.

    Example:
        >>> unevaluated("69 + 88"), unevaluated("3 * 4"), unevaluated("-31"), unevaluated("7/4")
        (True, True, False, False)
        >>> unevaluated("3 + 2\\sqrt{2}"), unevaluated("x + 1"), unevaluated("2^{10}")
        (False, False, False)
    """
    text = clean(answer).strip().rstrip(".")
    return bool(_ARITHMETIC.fullmatch(text))


def bare_expression(line: str) -> bool:
    """Whether ``line`` is math alone: numbers, one-letter names, operators, math functions; no words.

    Example:
        >>> bare_expression("a/3 + 5/3"), bare_expression("x = 5"), bare_expression("(C)"), bare_expression("So it is 5")
        (True, True, True, False)
    """
    line = line.rstrip(". ")
    if re.fullmatch(r"\(?[A-Z]\)", line) or re.fullmatch(r"[A-Z]", line):  # a choice: "C" or "(C)"
        return True
    if not line or len(line) > MAX_LINE or not _BARE.fullmatch(line) or not re.search(r"[\d+\-*/^=<>]", line):
        return False
    return all(len(w) == 1 or w.lower() in _MATH_WORDS for w in re.findall(r"[A-Za-z]+", line))


def _sentence(value: str, line: str) -> Answer:
    """What follows "the answer is": a number right after it, else the sentence, read for its math."""
    number = re.match(rf"\s*({_NUMBER})\s*(\\?%)?(?![\w^/*(\\{{])", value)
    if number:
        return Answer(number.group(1).rstrip(",") + (number.group(2) or ""), "sentence", line=line)
    latex = _latex_only(value)
    if latex is not None or bare_expression(value) or not _is_prose(value):
        return Answer(clean(latex if latex is not None else value), "sentence", line=line)
    return Answer(value, "sentence", line=line, whole=True)


def _is_prose(value: str) -> bool:
    """Words in it (a run of 2+ letters that is no LaTeX command or math function): not an answer by itself."""
    return any(w.lower() not in _MATH_WORDS for w in re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", value))


def find_answer(text: Any, fallback_last_number: bool = True, allow_multiple_boxed: bool = False) -> Answer | None:
    """The final answer ``text`` commits to and how it was found (see the module doc).

    ``None`` for an empty text; path ``none`` when the text commits to no answer.

    ``allow_multiple_boxed`` takes the last of several different boxes
    instead of keeping them together.

    Example:
        >>> find_answer("36 - 5 = 31. The answer is 31 apples.").text
        '31'
        >>> find_answer("\\\\boxed{3} and \\\\boxed{5}").multiple
        True
        >>> find_answer("no digits here").path, find_answer("  ") is None
        ('none', True)
    """
    text = tail_text(text)
    if not text.strip():
        return None
    line = _last_line(text)
    boxes = list(dict.fromkeys(clean(b) for b in boxed_answers(text)))
    boxes = [b for b in boxes if b]
    if boxes:
        if len(boxes) == 1 or allow_multiple_boxed:
            return Answer(boxes[-1], "boxed", line=line)
        return Answer(", ".join(boxes), "boxed", multiple=True, line=line)
    for pattern, path in ((_HASHES, "hash"), (_TAG, "tag"), (_ANSWER_IS, "sentence")):
        found = [f for f in (clean(v) for v in pattern.findall(text)) if f]
        if found:
            return _sentence(found[-1], line) if path == "sentence" else Answer(found[-1], path, line=line)
    if not fallback_last_number:  # only an explicitly stated answer counts
        return Answer("", "none", line=line)
    latex = _latex_only(line)
    if latex is not None and clean(latex) and not _is_prose(latex):
        return Answer(clean(latex), "latex", line=line)
    if bare_expression(line):
        result = line.rstrip(". ").rsplit("=", 1)[-1].strip()  # "12 + 5 = 17": the number it comes to
        return Answer(result if _PLAIN.fullmatch(result) else clean(line), "expression", line=line)
    if math_spans(text):
        return Answer(text, "latex text", line=line, whole=True)  # math-verify's extraction reads the text
    numbers = re.findall(_NUMBER, text)
    if numbers:
        return Answer(numbers[-1].rstrip(","), "last number", line=line)
    return Answer("", "none", line=line)


def extract_answer(text: Any, fallback_last_number: bool = True) -> str | None:
    """The final answer's text (:func:`find_answer`), or ``None`` when ``text`` commits to none.

    For ``latex text`` (math only inside the prose) this is the last LaTeX
    span; the verifier reads the whole text with math-verify.

    Example:
        >>> extract_answer("36 - 5 = 31. The answer is 31.")
        '31'
        >>> extract_answer("no digits here") is None
        True
    """
    found = find_answer(text, fallback_last_number, allow_multiple_boxed=True)
    return found.stated if found else None


def gold_answer(gold: Any) -> str | None:
    """The gold answer from a dataset column: a bare answer, or a solution with a marker.

    Example:
        >>> gold_answer("Natalia sold 48/2 = 24 clips. #### 72"), gold_answer(" $5$ ")
        ('72', '5')
    """
    if gold is None:
        return None
    text = str(gold).strip()
    if not text:
        return None
    if last_boxed(text) or _HASHES.search(text) or _TAG.search(text):
        found = find_answer(text, fallback_last_number=False)
        return found.text if found and found.found else None
    return clean(text)
