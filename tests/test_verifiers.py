"""The verifier the before/after check uses (the reward issue extends it)."""

from __future__ import annotations

import pytest

from rewards import completion_text, extract_answer, is_equivalent


@pytest.mark.parametrize(
    "text,expected",
    [
        ("3 × 12 = 36. 36 - 5 = 31. The answer is 31.", "31"),
        ("so the result is \\boxed{\\frac{1}{2}} indeed", "\\frac{1}{2}"),
        ("\\boxed{a_{1}} then \\boxed{42}", "42"),
        ("work...\n#### 1,234", "1,234"),
        ("<answer> 7 </answer>", "7"),
        ("I think 12 and then 15", "15"),
        ("The answer is: -3.5%", "-3.5%"),
        ("", None),
        ("no numbers at all", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "pred,gold,expected",
    [
        ("1,000", "1000", True),
        ("0.5", "\\frac{1}{2}", True),
        ("50%", "0.5", True),
        ("31", "31", True),
        ("31.0", "31", True),
        ("32", "31", False),
        ("", "0", False),
        (None, "1", False),
    ],
)
def test_is_equivalent(pred, gold, expected):
    assert is_equivalent(pred, gold) is expected


def test_chat_completion_text():
    assert completion_text([{"role": "assistant", "content": "The answer is 4."}]) == "The answer is 4."
    assert extract_answer([{"role": "assistant", "content": "The answer is 4."}]) == "4"


def test_rewards_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, rewards; assert 'torch' not in sys.modules, 'rewards imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


# The question restated as the answer: an evaluating verifier scored it right, and GRPO on the bundled
# model learned to answer "69 + 88" (99.5 % "accuracy" in one make demo run). It must score 0.
RESTATED = ["69 + 88", "\\boxed{69 + 88}", "The answer is 69+88.", "So it is $69 + 88$.", "#### 69 + 88",
            "69 \\times 1 + 88"]
STILL_RIGHT = [("157", "157"), ("69 + 88 = 157", "157"), ("\\boxed{157}", "157"), ("\\boxed{\\frac{1}{2}}", "0.5"),
               ("\\boxed{3 + 2\\sqrt{2}}", "2\\sqrt{2} + 3"), ("x = 5", "5"), ("7/4", "\\frac{7}{4}")]


def test_a_restated_question_scores_zero_and_final_values_still_score_one():
    import rewards

    accuracy = rewards.resolve("accuracy")
    wrong = accuracy(completions=[[{"role": "assistant", "content": c}] for c in RESTATED], answer=["157"] * 6)
    assert wrong == [0.0] * len(RESTATED), list(zip(RESTATED, wrong))
    right = accuracy(completions=[[{"role": "assistant", "content": c}] for c, _ in STILL_RIGHT],
                     answer=[g for _, g in STILL_RIGHT])
    assert right == [1.0] * len(STILL_RIGHT), list(zip(STILL_RIGHT, right))
    # a gold that is itself an expression is compared as before
    assert accuracy(completions=["2 + 3"], answer=["2 + 3"]) == [1.0]
