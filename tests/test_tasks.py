"""Built-in task generators: deterministic, disjoint splits, correct answers."""

from __future__ import annotations

import ast
import operator
import re

import pytest

from rewards import extract_answer, is_equivalent
from rlft.core.errors import UserError
from rlft.core.tasks import generate

OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def evaluate(expression: str) -> int:
    """Evaluate + - * // on integers by walking the AST (no eval)."""

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in OPS:
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        raise ValueError(f"unexpected node {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval"))


TASKS = [("arithmetic", {}), ("arithmetic", {"digits": 3, "ops": "+-"}), ("word_problems", {}),
         ("multiplication", {}), ("multiplication", {"digits": [2, 2]})]


@pytest.mark.parametrize("task,kwargs", TASKS)
def test_same_seed_same_rows(task, kwargs):
    assert generate(task, "train", 50, seed=7, **kwargs) == generate(task, "train", 50, seed=7, **kwargs)
    assert generate(task, "train", 50, seed=7, **kwargs) != generate(task, "train", 50, seed=8, **kwargs)


@pytest.mark.parametrize("task,kwargs", TASKS)
def test_train_and_test_are_disjoint(task, kwargs):
    def key(row):
        return row["prompt"][0]["content"]

    train = {key(r) for seed in (0, 1, 2) for r in generate(task, "train", 400, seed=seed, **kwargs)}
    test = {key(r) for seed in (0, 1) for r in generate(task, "test", 200, seed=seed, **kwargs)}
    assert train and test and not train & test


@pytest.mark.parametrize("task,kwargs", TASKS)
def test_answers_are_correct(task, kwargs):
    for row in generate(task, "test", 200, seed=3, **kwargs):
        assert str(evaluate(row["expression"])) == row["answer"], row
        # every step written in the worked solution is true arithmetic
        for a, op, b, result in re.findall(r"(\d+) ([-+×÷]) (\d+) = (\d+)", row["solution"]):
            py = {"+": "+", "-": "-", "×": "*", "÷": "//"}[op]
            assert evaluate(f"{a} {py} {b}") == int(result), row["solution"]
        assert row["solution"].endswith(f"The answer is {row['answer']}.")
        assert is_equivalent(extract_answer(row["solution"]), row["answer"])
        assert row["prompt"][0]["role"] == "user"


def test_rows_are_distinct_within_a_split():
    rows = generate("word_problems", "train", 500, seed=0)
    assert len({r["prompt"][0]["content"] for r in rows}) == 500


def test_too_many_rows_is_a_clear_error():
    with pytest.raises(UserError, match="fewer than"):
        generate("arithmetic", "test", 100, seed=0, digits=1, ops="+")


def test_unknown_task():
    with pytest.raises(UserError, match="task:arithmetic"):
        generate("algebra", "train", 1)


def test_multiplication_is_three_digits_by_two_by_default():
    for row in generate("multiplication", "test", 50, seed=0):
        a, b = row["expression"].split(" * ")
        assert len(a) == 3 and len(b) == 2 and row["answer"] == str(int(a) * int(b))


@pytest.mark.parametrize(("kwargs", "says"), [({"ops": "+"}, "no option 'ops'"), ({"digits": 3}, "digits: [A, B]")])
def test_multiplication_options_are_checked(kwargs, says):
    with pytest.raises(UserError, match=re.escape(says)):
        generate("multiplication", "test", 5, seed=0, **kwargs)


@pytest.mark.parametrize("task", ["multiplication", "arithmetic", "word_problems"])
def test_tool_transcripts_call_the_calculator_on_the_problem(task):
    from rlft.tools import calculator

    for row in generate(task, "train", 20, seed=1, tool_transcript=True):
        user, call, result, answer = row["messages"]
        assert user == row["prompt"][0] and call["role"] == "assistant"
        [function] = [c["function"] for c in call["tool_calls"]]
        assert function == {"name": "calculator", "arguments": {"expression": row["expression"]}}
        # the tool turn holds what the real calculator returns, and that is the gold answer
        assert result == {"role": "tool", "name": "calculator", "content": calculator(row["expression"])}
        assert result["content"] == row["answer"] and answer == {"role": "assistant", "content": row["solution"]}
    assert "messages" not in generate(task, "train", 1, seed=1)[0]  # only when asked for


def test_tool_transcript_takes_a_boolean():
    with pytest.raises(UserError, match="tool_transcript takes true or false, got 'yes'"):
        generate("multiplication", "train", 1, tool_transcript="yes")
