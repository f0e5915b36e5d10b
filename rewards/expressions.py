"""Whether a piece of an answer is math or prose: the tests :mod:`rewards.extraction` reads a line with.

A last line is taken as the answer only when it is math alone (:func:`bare_expression`, or LaTeX written without
``$...$``: :func:`latex_expression`); a span or sentence with words in it (:func:`is_prose`) is read for its math
instead; answers joined by words are one list (:func:`as_list`).

Example:
    >>> bare_expression("x = 5"), latex_expression("\\\\frac{7}{3}"), is_prose("So it is 5"), as_list("2 or -2")
    (True, True, True, '2, -2')
"""

from __future__ import annotations

import re

MAX_LINE = 200  # a longer last line is not a bare answer
# a bare expression: numbers, single-letter variables, operators, brackets and math function names
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "pi", "infty", "inf", "oo"}
_BARE = re.compile(r"[\w\s+\-*/^().,=<>\[\]|!]+")


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
    return all(len(w) == 1 or w.lower() in _MATH_WORDS or w in _JOINING for w in re.findall(r"[A-Za-z]+", line))


# LaTeX that is math, not markup or prose: what an answer written without $...$ may contain
_LATEX_MATH = {"frac", "dfrac", "tfrac", "sqrt", "pi", "cdot", "times", "div", "pm", "mp", "left", "right", "infty",
               "le", "ge", "leq", "geq", "neq", "ne", "lt", "gt", "circ", "theta", "alpha", "beta", "ln", "log",
               "sin", "cos", "tan", "exp", "cup", "cap", "in", "emptyset", "varnothing", "%", "$"}


def latex_expression(line: str) -> bool:
    """Whether ``line`` is LaTeX math written without delimiters (``\\\\frac{7}{3}``, ``x = 2\\\\sqrt{2}``).

    Example:
        >>> latex_expression("\\\\frac{7}{3}"), latex_expression("x = \\\\dfrac{1}{2}"), latex_expression("\\\\text{so} 5")
        (True, True, False)
    """
    commands = re.findall(r"\\([A-Za-z]+|.)", line)
    if not commands or any(c not in _LATEX_MATH for c in commands):
        return False
    return bare_expression(re.sub(r"\\(?:[A-Za-z]+|.)|[{}]", " ", line).strip() or "x")


_JOINING = {"or", "and"}
# what joins several answers in one: "or"/"and" as words or as \text{ or }, a \quad
_JOINED = re.compile(r"\s*(?:\\text\{\s*(?:or|and)\s*\}|\\q?quad|(?<![A-Za-z\\])(?:or|and)(?![A-Za-z]))\s*")


def as_list(answer: str) -> str:
    """Several answers joined by words, as the comma-separated list math-verify reads; any other answer as it is.

    Example:
        >>> as_list("f(x)=2 \\\\text{ or } f(x)=-2"), as_list("x = 2 or x = -2"), as_list("rock and roll")
        ('f(x)=2, f(x)=-2', 'x = 2, x = -2', 'rock and roll')
    """
    parts = [part.strip(" ,") for part in _JOINED.split(answer)]
    if len(parts) < 2 or not all(parts) or any(is_prose(re.sub(r"\\[A-Za-z]+", " ", p)) for p in parts):
        return answer
    return ", ".join(parts)


def is_prose(value: str) -> bool:
    """Words in it (a run of 2+ letters that is no LaTeX command or math function): not an answer by itself.

    Example:
        >>> is_prose("x = \\\\frac{1}{2}"), is_prose("\\\\begin{pmatrix} 1 \\\\\\\\ 2 \\\\end{pmatrix}"), is_prose("two apples")
        (False, False, True)
    """
    value = _ENVIRONMENT.sub(" ", value)  # \\begin{pmatrix}: a matrix, not the word "pmatrix"
    return any(w.lower() not in _MATH_WORDS for w in re.findall(r"(?<![\\A-Za-z])[A-Za-z]{2,}", value))


_ENVIRONMENT = re.compile(r"\\(?:begin|end)\{[A-Za-z*]+\}")
