"""The tools rlft ships: exact arithmetic and sandboxed Python, in TRL's tool contract.

A tool is a plain function with type hints and a Google-style docstring:
TRL (through transformers' ``get_json_schema``) turns them into the JSON
schema the model sees in its system prompt, so the docstring is written for
the model. A tool returns a string (the tool message's content) and raises
on bad input; the rollout loop turns the exception into an error message the
model reads, and counts it.

Example:
    >>> calculator("123 * 45")
    '5535'
    >>> calculator("1/3 + 1/6")
    '1/2'
"""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

MAX_DIGITS = 1000  # results and exponents beyond this are refused, not computed (a model can ask for 9**9**9)
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly.

    Supports + - * / // % ** and parentheses on integers and decimals. Division gives an exact fraction
    such as 1/3, never a rounded decimal.

    Args:
        expression: The arithmetic expression to evaluate, for example "123 * 45" or "(7 + 5) / 8".

    Returns:
        The exact result: an integer, or a fraction in lowest terms.
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    value = _evaluate(tree.body)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _evaluate(node: ast.AST) -> Fraction:
    # A walk over the parsed tree that knows only numbers and the operators above: no eval, no names,
    # no attributes, no calls (Python's eval, even with empty globals, reaches object internals).
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(str(node.value)) if isinstance(node.value, float) else Fraction(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ValueError("division by zero")
        return _checked(_BINARY[type(node.op)](left, right))
    raise ValueError(f"only numbers and + - * / // % ** ( ) are allowed, not {_describe(node)}")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise ValueError("only whole-number exponents are allowed (no roots: the result would not be exact)")
    if base == 0 and exponent < 0:
        raise ValueError("division by zero")
    size = abs(exponent.numerator) * max(len(str(base.numerator)), len(str(base.denominator)))
    if size > MAX_DIGITS:
        raise ValueError(f"the result would have more than {MAX_DIGITS} digits")
    return _checked(base ** exponent.numerator)


def _checked(value: Fraction) -> Fraction:
    if len(str(value.numerator)) > MAX_DIGITS or len(str(value.denominator)) > MAX_DIGITS:
        raise ValueError(f"the result has more than {MAX_DIGITS} digits")
    return value


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return f"the attribute {node.attr!r}"
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Constant):
        return f"the constant {node.value!r}"
    return f"an expression of type {type(node).__name__}"


def python(code: str) -> str:
    """Run a Python program in a sandbox and return what it printed.

    The program has no network and no access to your files, and is stopped after a few seconds. Use print()
    to show results.

    Args:
        code: The complete Python program to run.

    Returns:
        The program's standard output, followed by its error output if it failed.
    """
    from rewards.sandbox import run_python

    result = run_python(code, timeout=5.0)
    if result.status == "timeout":
        raise TimeoutError("the program ran longer than 5 seconds and was stopped")
    out = result.stdout
    if result.status != "ok":
        out += result.stderr[-2000:]
    return out if out else "(no output)"
