"""Tools for agentic GRPO: the built-in ones (``rlft.tools:calculator``, ``rlft.tools:python``).

Example:
    >>> from rlft.tools import calculator
    >>> calculator("2 ** 10")
    '1024'
"""

from rlft.tools.builtin import calculator, python

__all__ = ["calculator", "python"]
