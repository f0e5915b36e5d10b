"""Built-in task generators: verifiable problems that need no network.

``task:arithmetic`` (multi-digit addition, subtraction, multiplication),
``task:word_problems`` (short two-step stories) and ``task:multiplication``
(a 3-digit by a 2-digit number by default, ``digits: [3, 2]``: beyond a small
model's head, within a calculator's reach). Each row has:

- ``prompt``: chat messages (one user turn): the question, then the
  ``instruction`` option (default: "End your reply with: The answer is <number>."),
- ``answer``: the gold final answer as a string,
- ``solution``: a worked solution that ends in ``The answer is <answer>.`` (SFT target),
- ``expression``: the arithmetic the answer comes from (for independent checks),
- ``messages`` (with the option ``tool_transcript: true``): the whole conversation
  of a model that uses ``rlft.tools:calculator``: the question, an assistant
  turn that calls the calculator on ``expression``, the calculator's own
  result as a ``tool`` turn, and the worked solution (an SFT warm-start for
  GRPO with ``tools: [rlft.tools:calculator]``).

Splits are disjoint by construction: every problem has a canonical key (the
operands and the template), and a stable hash of that key decides once and for
all whether it belongs to ``train`` or ``test``. The same seed gives the same
rows; different splits never share a problem whatever the seeds.

Example:
    >>> rows = generate("arithmetic", "test", n=2, seed=0)
    >>> sorted(rows[0])
    ['answer', 'expression', 'prompt', 'solution', 'task']
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

from rlft.core.errors import UserError

TEST_FRACTION = 0.2
INSTRUCTION = "End your reply with: The answer is <number>."


def split_of(key: str) -> str:
    """``"test"`` for about 20 % of problem keys, ``"train"`` otherwise; never changes.

    Example:
        >>> split_of("add:12:30") in ("train", "test")
        True
    """
    digest = hashlib.sha256(key.encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < TEST_FRACTION else "train"


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _arithmetic(rng: random.Random, digits: int = 2, ops: str = "+-*", instruction: str = INSTRUCTION) -> dict[str, Any]:
    op = rng.choice(ops)
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    if op == "-" and b > a:
        a, b = b, a
    if op == "*":  # a digits-by-one-digit product keeps it within a small model's reach
        b = rng.randint(2, 9) if digits > 1 else b
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    sym = {"+": "+", "-": "-", "*": "×"}[op]
    expression = f"{a} {op} {b}"
    return {
        "key": f"arith:{a}{op}{b}",
        "question": f"What is {a} {sym} {b}? {instruction}".strip(),
        "solution": f"{a} {sym} {b} = {result}. The answer is {result}.",
        "answer": str(result),
        "expression": expression,
    }


def _multiplication(rng: random.Random, digits: tuple[int, int] = (3, 2), instruction: str = INSTRUCTION) -> dict:
    a = rng.randint(10 ** (digits[0] - 1), 10 ** digits[0] - 1)
    b = rng.randint(10 ** (digits[1] - 1), 10 ** digits[1] - 1)
    return {
        "key": f"mul:{a}*{b}",
        "question": f"What is {a} × {b}? {instruction}".strip(),
        "solution": f"{a} × {b} = {a * b}. The answer is {a * b}.",
        "answer": str(a * b),
        "expression": f"{a} * {b}",
    }


# Each template: (story, steps) where steps compute the answer from the numbers
# drawn for (a, b, c); every step is rendered as `x op y = z` in the solution.
_STORIES: list[tuple[str, str, Callable[[int, int, int], list[tuple[Any, str, int]]]]] = [
    ("crates", ("A shop has {a} crates with {b} apples each. It sells {c} apples. "
     "How many apples are left?"), lambda a, b, c: [(a, "*", b), (None, "-", c)]),
    ("pages", ("Mia reads {a} pages a day for {b} days, then {c} more pages. "
     "How many pages did she read?"), lambda a, b, c: [(a, "*", b), (None, "+", c)]),
    ("tickets", ("A class buys {a} tickets at {b} dollars each and gets a {c} dollar "
     "discount. How many dollars does the class pay?"),
     lambda a, b, c: [(a, "*", b), (None, "-", c)]),
    ("marbles", ("Sam has {a} marbles. He wins {b} more and then gives away {c}. "
     "How many marbles does he have now?"), lambda a, b, c: [(a, "+", b), (None, "-", c)]),
    ("buses", ("There are {a} buses with {b} seats each and {c} extra chairs. "
     "How many people can sit?"), lambda a, b, c: [(a, "*", b), (None, "+", c)]),
    ("savings", ("Lena saves {a} dollars a week for {b} weeks and spends {c} dollars. "
     "How many dollars does she have left?"), lambda a, b, c: [(a, "*", b), (None, "-", c)]),
    ("cookies", ("A baker makes {a} cookies in the morning and {b} in the afternoon. "
     "He packs them into boxes of {c}. How many full boxes can he fill?"),
     lambda a, b, c: [(a, "+", b), (None, "//", c)]),
    ("garden", ("A garden has {a} rows of {b} tulips. {c} tulips are picked. "
     "How many tulips remain?"), lambda a, b, c: [(a, "*", b), (None, "-", c)]),
]

_APPLY = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
          "//": lambda x, y: x // y}
_SHOW = {"+": "+", "-": "-", "*": "×", "//": "÷"}


def _word_problem(rng: random.Random, instruction: str = INSTRUCTION) -> dict[str, Any]:
    name, story, steps_of = rng.choice(_STORIES)
    while True:
        a, b, c = rng.randint(2, 12), rng.randint(2, 12), rng.randint(2, 20)
        lines, value, expr = [], None, ""
        for x, op, y in steps_of(a, b, c):
            x = value if x is None else x
            expr = f"({expr or x}) {op} {y}" if expr else f"{x} {op} {y}"
            value = _APPLY[op](x, y)
            lines.append(f"{x} {_SHOW[op]} {y} = {value}.")
        if value > 0:
            break
    return {
        "key": f"word:{name}:{a}:{b}:{c}",
        "question": f"{story.format(a=a, b=b, c=c)} {instruction}".strip(),
        "solution": " ".join(lines) + f" The answer is {value}.",
        "answer": str(value),
        "expression": expr,
    }


def calculator_transcript(question: str, expression: str, result: str, solution: str) -> list[dict[str, Any]]:
    """The conversation of a model that answers ``question`` with ``rlft.tools:calculator``.

    The assistant calls the calculator on ``expression`` (in the tool-call
    form chat templates render: transformers' ``tool_calls``), the tool turn
    holds ``result`` (what the calculator returns for it: the exact answer;
    ``tests/test_tasks.py`` checks it against the real tool), and the last
    turn is ``solution``.

    Example:
        >>> [m["role"] for m in calculator_transcript("What is 12 × 34?", "12 * 34", "408", "12 × 34 = 408.")]
        ['user', 'assistant', 'tool', 'assistant']
    """
    call = {"type": "function", "function": {"name": "calculator", "arguments": {"expression": expression}}}
    return [{"role": "user", "content": question},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "name": "calculator", "content": result},
            {"role": "assistant", "content": solution}]


OPTIONS = ("digits", "ops", "instruction", "tool_transcript")


def _make(task: str, kwargs: dict[str, Any]) -> Callable[[random.Random], dict[str, Any]]:
    unknown = set(kwargs) - set(OPTIONS)
    if unknown:
        raise UserError(f"task:{task} has no option {min(unknown)!r}; options: {', '.join(OPTIONS)}")
    if not isinstance(kwargs.get("tool_transcript", False), bool):
        raise UserError(f"task:{task}: tool_transcript takes true or false, got {kwargs['tool_transcript']!r}")
    instruction = str(kwargs.get("instruction", INSTRUCTION))
    if task == "arithmetic":
        digits = int(kwargs.get("digits", 2))
        ops = "".join(kwargs.get("ops", "+-*"))
        if digits < 1 or not ops or set(ops) - set("+-*"):
            raise UserError("task:arithmetic takes digits >= 1 and ops drawn from '+-*'")
        return lambda rng: _arithmetic(rng, digits=digits, ops=ops, instruction=instruction)
    if task == "word_problems":
        return lambda rng: _word_problem(rng, instruction=instruction)
    if task == "multiplication":
        if "ops" in kwargs:
            raise UserError("task:multiplication has no option 'ops' (it multiplies); options: digits, instruction, "
                            "tool_transcript")
        sizes = kwargs.get("digits", [3, 2])
        if not (isinstance(sizes, (list, tuple)) and len(sizes) == 2 and all(int(d) >= 1 for d in sizes)):
            raise UserError(f"task:multiplication takes digits: [A, B] (the digits of each factor), got {sizes!r}")
        return lambda rng: _multiplication(rng, digits=(int(sizes[0]), int(sizes[1])), instruction=instruction)
    raise UserError(f"unknown task 'task:{task}'; available: {', '.join('task:' + t for t in TASKS)}")


TASKS = ("arithmetic", "word_problems", "multiplication")


def generate(
    task: str, split: str, n: int, seed: int = 0, **task_kwargs: Any
) -> list[dict[str, Any]]:
    """Generate ``n`` distinct problems of ``task`` from ``split`` (``train``/``test``).

    Raises :class:`UserError` if the task's ``split`` has fewer than ``n``
    distinct problems.

    Example:
        >>> generate("word_problems", "train", n=1, seed=3)[0]["answer"].isdigit()
        True
    """
    if split not in ("train", "test"):
        raise UserError(f"task:{task} has splits 'train' and 'test', not {split!r}")
    draw = _make(task, task_kwargs)
    rng = random.Random(f"{task}:{split}:{seed}")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise UserError(
                f"task:{task} has fewer than {n} distinct {split} problems with these settings; "
                f"ask for fewer rows or widen the task (e.g. more digits)"
            )
        item = draw(rng)
        if item["key"] in seen or split_of(item["key"]) != split:
            continue
        seen.add(item["key"])
        row = {
            "prompt": _user(item["question"]),
            "answer": item["answer"],
            "solution": item["solution"],
            "expression": item["expression"],
            "task": task,
        }
        if task_kwargs.get("tool_transcript"):
            row["messages"] = calculator_transcript(item["question"], item["expression"], item["answer"],
                                                    item["solution"])
        rows.append(row)
    return rows
