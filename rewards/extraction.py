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

from rewards.expressions import MAX_LINE, as_list, bare_expression, is_prose, latex_expression  # noqa: F401 - re-exported

SEARCH_TAIL = 20_000  # characters from the end searched for an answer
MAX_BOXED = 50  # only the last this many \\boxed occurrences are read
BOXED_SCAN = 4_000  # longest \boxed{...} body considered
MARKERS = ("boxed", "hash", "tag", "sentence")  # the paths of an explicitly stated answer

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+"
_ANSWER_IS = re.compile(r"answer\s*(?:is|:)\s*:?\s*([^\n]*)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*([^\n]*)")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_PLAIN = re.compile(r"-?[\d,]*\.?\d+%?")
# spans are bounded (1,000 characters) and "$" spans hold no "$": a text of 7,000 unclosed "\\(" took 1 s unbounded
_LATEX_SPAN = re.compile(r"\$\$([^$]{1,1000}?)\$\$|\$([^$]{1,1000}?)\$|\\\((.{1,1000}?)\\\)|\\\[(.{1,1000}?)\\\]", re.DOTALL)


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
    path: str  # boxed | hash | tag | sentence | latex | expression | latex text | last number | none | gold
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
    return [body for _, body in _boxes(text)]


def _boxes(text: str) -> list[tuple[int, str]]:
    """``(position, body)`` of every complete ``\\boxed{...}``, in order."""
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
                    found.append((match.start(), text[start:j].strip()))
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
    # spacing commands (\\! \\, \\ ), not the second half of a matrix row break "\\\\ "
    answer = re.sub(r"(?<!\\)\\[!,]", "", answer)
    answer = re.sub(r"(?<!\\)\\ ", " ", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
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
    return [span.strip() for span in spans if span.strip() and not is_prose(span)]


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


def _sentence(value: str, line: str) -> Answer:
    """What follows "the answer is": a number or a LaTeX span right after it, else the sentence, read for its math.

    Minerva's closing line nests two ("Final Answer: The final answer is $1,250$. I hope it is correct."): the
    innermost is read.
    """
    while (inner := _ANSWER_IS.search(value)) and inner.group(1).strip():
        value = inner.group(1)
    span = _LATEX_SPAN.match(value.strip())
    if span and not is_prose(next(g for g in span.groups() if g)):
        value = next(g for g in span.groups() if g)  # "$1,250$. I hope it is correct": the span
    value = clean(value)
    number = re.match(rf"\s*({_NUMBER})\s*(\\?%)?(?![\w^/*(\\{{])", value)
    if number:
        return Answer(number.group(1).rstrip(",") + (number.group(2) or ""), "sentence", line=line)
    latex = _latex_only(value)
    if latex is not None or bare_expression(value) or latex_expression(value) or not is_prose(value):
        return Answer(clean(latex if latex is not None else value), "sentence", line=line)
    return Answer(value, "sentence", line=line, whole=True)


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
    stated = _last_statement(text, line, allow_multiple_boxed)
    if stated is not None:
        return stated
    if not fallback_last_number:  # only an explicitly stated answer counts
        return Answer("", "none", line=line)
    latex = _latex_only(line)
    if latex is not None and clean(latex) and not is_prose(latex):
        return Answer(clean(latex), "latex", line=line)
    if bare_expression(line) or latex_expression(line.rstrip(". ")):
        result = line.rstrip(". ").rsplit("=", 1)[-1].strip()  # "12 + 5 = 17": the number it comes to
        several = as_list(line) != line  # "x = 2 or x = -2": both, not what the last "=" comes to
        return Answer(result if _PLAIN.fullmatch(result) and not several else clean(line), "expression", line=line)
    if math_spans(text):
        return Answer(text, "latex text", line=line, whole=True)  # math-verify's extraction reads the text
    tail = line.rstrip(". ").rsplit("=", 1)[-1].strip() if "=" in line else ""
    if "\\" in tail and latex_expression(tail):  # "So x = \\frac{7}{3}": not the 3 inside it
        return Answer(clean(tail), "expression", line=line)
    numbers = re.findall(_NUMBER, text)
    if numbers:
        return Answer(numbers[-1].rstrip(","), "last number", line=line)
    return Answer("", "none", line=line)


def _last_statement(text: str, line: str, allow_multiple_boxed: bool) -> Answer | None:
    """The completion's last explicit statement of its answer (a box, ``####``, ``<answer>``, "the answer is").

    The latest in the text wins, so a closing "The final answer is $1,250$." overrides a box earlier in the
    working; a sentence that states no value ("this answer is reasonable") overrides nothing. Different boxes
    are read together (``multiple``) unless ``allow_multiple_boxed``.
    """
    found: list[tuple[int, Answer]] = []
    boxes = [(at, clean(body)) for at, body in _boxes(text)]
    boxes = [(at, body) for at, body in boxes if body]
    if boxes:
        values = list(dict.fromkeys(body for _, body in boxes))
        multiple = len(values) > 1 and not allow_multiple_boxed
        found.append((boxes[-1][0], Answer(", ".join(values) if multiple else boxes[-1][1], "boxed",
                                           multiple=multiple, line=line)))
    for pattern, path in ((_HASHES, "hash"), (_TAG, "tag"), (_ANSWER_IS, "sentence")):
        matches = [m for m in pattern.finditer(text) if clean(m.group(1))]
        if matches:
            value = matches[-1].group(1)
            found.append((matches[-1].start(), _sentence(value, line) if path == "sentence"
                          else Answer(clean(value), path, line=line)))
    stating = [(at, answer) for at, answer in found if not answer.whole]
    return max(stating or found, key=lambda f: f[0])[1] if found else None


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
    if last_boxed(text) or _HASHES.search(text) or _TAG.search(text) or _ANSWER_IS.search(text):
        found = find_answer(text, fallback_last_number=False)
        return found.text if found and found.found else None
    return clean(text)


def read_gold(gold: Any) -> Answer | None:
    """The gold answer as the verifier reads it (``path`` ``gold``); ``None`` when there is none.

    :func:`gold_answer`'s text, except a gold with several different boxes: math-verify's own parse reads it
    (``whole``), as it would on its own, so the boxes are one answer only where they are written as one
    (``\\boxed{12 cm} and \\boxed{5}``), and a box that prose sets apart is not a part of it.

    Example:
        >>> read_gold("#### 72").text, read_gold("First $\\\\boxed{3}$, and the answer is $\\\\boxed{5}$").whole
        ('72', True)
    """
    text = gold_answer(gold)
    if text is None:
        return None
    raw = str(gold).strip()
    if len({clean(body) for body in boxed_answers(raw)} - {""}) > 1:
        return Answer(raw, "gold", line=raw, whole=True)
    return Answer(text, "gold", line=text)
