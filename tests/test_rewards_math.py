"""The math accuracy reward and its verifier, on literal completions.

Includes a regression test for each verifier bug reported in the field:
an unparsable gold scored 1.0; a format regex that ignored newlines scored
everything 0; substring matching rewarded empty answers; signal-based
timeouts did nothing off the main thread.
"""

from __future__ import annotations

import threading
import time

import pytest

from rewards import equivalent_batch, extract_answer, is_equivalent, resolve
from rewards.testing import assert_reward
from rewards.verifiers import STATS, gold_answer
from tests.math_cases import CASES as COMPETITION  # shared with make bench-rewards

accuracy = resolve("accuracy")

# (completion, gold, expected reward)
CASES = [
    # integers and answer markers
    ("The answer is 42.", "42", 1.0),
    ("The answer is 42 apples because 6 x 7 = 42", "42", 1.0),
    ("so the final answer: 17", "17", 1.0),
    ("6 * 7 = 42\n#### 42", "42", 1.0),
    ("<answer>42</answer>", "42", 1.0),
    ("<think>6*7</think>\n<answer>\n42\n</answer>", "42", 1.0),
    ("Therefore $\\boxed{42}$.", "42", 1.0),
    ("\\boxed{ 42 }", "42", 1.0),
    ("I computed 40 + 2 and got 42", "42", 1.0),  # last-number fallback
    # thousands separators, decimals, negatives, percentages
    ("The answer is 1,000.", "1000", 1.0),
    ("#### 1,234,567", "1234567", 1.0),
    ("The answer is 1000", "1,000", 1.0),
    ("\\boxed{-7}", "-7", 1.0),
    ("The answer is −7", "-7", 1.0),
    ("\\boxed{3.50}", "3.5", 1.0),
    ("\\boxed{31.0}", "31", 1.0),
    ("\\boxed{0.5}", "\\frac{1}{2}", 1.0),
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
    ("\\boxed{1/2}", "0.5", 1.0),
    ("\\boxed{\\dfrac{3}{4}}", "0.75", 1.0),
    ("\\boxed{-\\frac{1}{4}}", "-0.25", 1.0),
    ("The answer is 50%", "0.5", 1.0),
    ("The answer is 50%", "50", 1.0),
    ("\\boxed{50\\%}", "50", 1.0),
    ("\\boxed{25\\%}", "\\frac{1}{4}", 1.0),
    # LaTeX and simple expressions (math-verify path)
    ("\\boxed{\\sqrt{2}}", "2^{1/2}", 1.0),
    ("\\boxed{x^2+1}", "1+x^2", 1.0),
    ("\\boxed{2\\pi}", "2\\pi", 1.0),
    ("\\boxed{\\frac{\\pi}{2}}", "\\pi/2", 1.0),
    ("\\boxed{\\text{12}}", "12", 1.0),
    ("\\boxed{12\\text{ cm}}", "12", 1.0),
    ("\\boxed{(1, 2)}", "(1,2)", 1.0),
    ("\\boxed{2(x+1)}", "2x+2", 1.0),
    ("\\boxed{\\frac{6}{4}}", "\\frac{3}{2}", 1.0),
    ("\\boxed{1.5}", "\\frac{3}{2}", 1.0),
    ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", 1.0),
    ("answer is \\boxed{{{5}}}", "5", 1.0),  # nested braces
    # wrong answers that look right
    ("The answer is 310.", "31", 0.0),
    ("The answer is 3.1", "31", 0.0),
    ("\\boxed{-31}", "31", 0.0),
    ("\\boxed{1/31}", "31", 0.0),
    ("The answer is 41.", "42", 0.0),
    ("\\boxed{0.05}", "0.5", 0.0),
    ("\\boxed{\\frac{2}{1}}", "\\frac{1}{2}", 0.0),
    ("\\boxed{1,000.5}", "1000", 0.0),
    ("\\boxed{x^2-1}", "x^2+1", 0.0),
    ("\\boxed{\\sqrt{3}}", "2^{1/2}", 0.0),
    ("\\boxed{5\\%}", "0.5", 0.0),
    # answers hidden in the reasoning: only the final answer counts
    ("Is it 42? No. 6 * 8 = 48. The answer is 48.", "42", 0.0),
    ("42 is tempting, but the answer is 41", "42", 0.0),
    ("First \\boxed{42}... wait, no: the answer is 48 \\boxed{48}", "42", 0.0),
    ("The answer is 48.\n(Some say 42.)", "42", 0.0),  # marker beats the trailing number
    # multiple different boxed answers: a hedge scores 0
    ("\\boxed{41} or \\boxed{42}", "42", 0.0),
    ("\\boxed{42} so again \\boxed{42}", "42", 1.0),  # the same answer twice is fine
    # empty and answer-less completions
    ("", "42", 0.0),
    ("   \n  ", "42", 0.0),
    ("I don't know.", "42", 0.0),
    ("The answer is", "42", 0.0),
    ("\\boxed{}", "42", 0.0),
    ("\\boxed{42", "42", 1.0),  # unclosed box: falls back to the last number
    # gold given as a worked solution (GSM8K / MATH style)
    ("The answer is 72", "Natalia sold 48/2 = 24 clips. 48+24 = 72. #### 72", 1.0),
    ("\\boxed{72}", "So she sold $\\boxed{72}$ clips.", 1.0),
    ("The answer is 24", "Natalia sold 48/2 = 24 clips. 48+24 = 72. #### 72", 0.0),
]


@pytest.mark.parametrize("completion,gold,expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_accuracy_literal(completion, gold, expected):
    assert_reward(accuracy, completion, expected, answer=gold)


def test_there_are_at_least_60_literal_cases():
    assert len(CASES) >= 60


def test_accuracy_batch_matches_cases():
    got = accuracy([c for c, _, _ in CASES], answer=[g for _, g, _ in CASES])
    assert got == [e for _, _, e in CASES]


@pytest.mark.parametrize("gold", ["", "   ", None, "\\frac{", "}{"])
def test_regression_unparsable_gold_is_none_never_one(gold):
    """Bug: a gold answer that could not be parsed scored 1.0 (both sides parsed to nothing)."""
    for completion in ["", "\\boxed{}", "The answer is 5", gold or ""]:
        assert accuracy([completion], answer=[gold]) == [None]


def test_regression_empty_answer_is_not_rewarded():
    """Bug: substring matching (`pred in gold`) rewarded the empty answer."""
    assert accuracy([""], answer=["42"]) == [0.0]
    exact = resolve("exact_match")
    assert exact([""], answer=["Paris"]) == [0.0]
    assert exact(["Paris"], answer=[""]) == [None]


def in_worker_thread(reward, completions, answers):
    """``reward``'s scores and seconds when called from a thread other than the main one (as TRL may)."""
    results: list = []

    def work():
        start = time.perf_counter()
        results.append((reward(completions, answer=answers), time.perf_counter() - start))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "verification hung in a worker thread"
    return results[0]


def test_regression_timeout_works_off_the_main_thread():
    """Bug: math-verify's signal-based timeout does nothing off the main thread, so training stalled."""
    hostile = "\\boxed{9^{9^{9^{9^{9}}}}}"
    scores, elapsed = in_worker_thread(accuracy, [hostile, "\\boxed{2}"], ["\\sqrt{4}", "\\sqrt{4}"])
    assert scores == [0.0, 1.0]
    assert elapsed < 30


def test_unparsable_gold_counts_are_exposed():
    before = STATS["unparsable_gold"]
    equivalent_batch([("1", ""), ("1", None)])
    assert STATS["unparsable_gold"] == before + 2


def test_extract_and_gold_helpers():
    assert extract_answer("The answer is 31 apples.") == "31"
    assert extract_answer("#### 72") == "72"
    assert extract_answer("no answer", fallback_last_number=False) is None
    assert extract_answer("it is 5", fallback_last_number=False) is None
    assert gold_answer("... #### 1,000") == "1,000"
    assert is_equivalent("\\frac{1}{2}", "0.5") is True
    assert is_equivalent("2", "\\frac{") is None


def test_fallback_can_be_switched_off():
    strict = resolve("accuracy", fallback_last_number=False)
    assert strict(["I get 42"], answer=["42"]) == [0.0]
    assert strict(["The answer is 42"], answer=["42"]) == [1.0]


def test_multiple_boxed_can_be_allowed():
    lenient = resolve("accuracy", allow_multiple_boxed=True)
    assert lenient(["\\boxed{41} or \\boxed{42}"], answer=["42"]) == [1.0]


def test_answer_column_setting():
    reward = resolve("accuracy", answer_column="solution")
    assert reward(["\\boxed{3}"], solution=["#### 3"]) == [1.0]


# -- competition-style answers: the project's case table (tests/math_cases.py) ---------------------


def test_the_competition_table_covers_every_class_both_ways():
    assert len(COMPETITION) >= 60
    for kind in {k for k, *_ in COMPETITION}:
        verdicts = {e for k, _, _, e in COMPETITION if k == kind}
        assert {0.0, 1.0} <= verdicts, f"class {kind!r} needs right and wrong cases"


@pytest.mark.parametrize(("kind", "completion", "gold", "expected"), COMPETITION,
                         ids=[f"{k}-{i}" for i, (k, *_) in enumerate(COMPETITION)])
def test_competition_style_answers(kind, completion, gold, expected):
    assert_reward(accuracy, completion, expected, answer=gold)


def test_text_fallback_can_be_switched_off():
    """A gold in words is compared as text by default; without the fallback it cannot be verified."""
    strict = resolve("accuracy", text_fallback=False)
    assert strict(["The answer is Monday."], answer=["Monday"]) == [None]
    assert accuracy(["The answer is Monday."], answer=["Monday"]) == [1.0]
    assert accuracy(["Tuesday"], answer=["Monday"]) == [0.0]


def test_a_broken_latex_gold_stays_unverifiable_with_the_text_fallback():
    assert accuracy(["\\frac{", "\\boxed{5}"], answer=["\\frac{", "\\frac{"]) == [None, None]


@pytest.mark.parametrize(("completion", "path", "text"), [
    ("so \\boxed{\\frac{1}{2}}", "boxed", "\\frac{1}{2}"),
    ("\\boxed{3} and \\boxed{5}", "boxed", "3, 5"),
    ("work\n#### 1,234", "hash", "1,234"),
    ("<answer> 7 </answer>", "tag", "7"),
    ("The answer is 31 apples.", "sentence", "31"),
    ("We get\n$\\frac{7}{4}$", "latex", "\\frac{7}{4}"),
    ("So\n7/4", "expression", "7/4"),
    ("12 + 5 = 17", "expression", "17"),
    ("Thus the area is $24$ square units", "latex text", "Thus the area is $24$ square units"),
    ("She pays $12 for apples and $5 for pears, so 17", "last number", "17"),  # prices are not LaTeX
    ("no answer here", "none", ""),
    # the last explicit statement wins over a box in the working
    ("First \\boxed{1000}.\nFinal Answer: The final answer is $1,250$. I hope it is correct.", "sentence", "1,250"),
    ("The answer is 9, so\n\\boxed{10}", "boxed", "10"),
    ("So $\\boxed{7}$.\nThis answer is reasonable.", "boxed", "7"),  # a sentence with no value overrides nothing
    ("\\frac{7}{3}", "expression", "\\frac{7}{3}"),  # LaTeX without $...$
    ("So x = \\frac{7}{3}", "expression", "\\frac{7}{3}"),  # not the 3 inside it
    ("x = 2 or x = -2", "expression", "x = 2 or x = -2"),
])
def test_each_extraction_path(completion, path, text):
    from rewards.extraction import find_answer

    found = find_answer(completion)
    assert (found.path, found.text) == (path, text)


def test_hostile_prose_math_finishes_within_the_timeout_off_the_main_thread():
    """A completion without a marker is read whole by math-verify: still under the per-sample timeout."""
    hostile = "We find that $" + "9^{" * 40 + "9" + "}" * 40 + "$ is the count, and $" + "(" * 2000 + "$"
    scores, elapsed = in_worker_thread(resolve("accuracy", timeout=2.0), [hostile, "It is $4$ here"], ["4", "4"])
    assert scores == [0.0, 1.0] and elapsed < 20


def test_unclosed_latex_openers_do_not_make_extraction_quadratic():
    """7,000 unclosed "\\(" took 1 s to scan before spans were bounded; a hang guard, not a speed target."""
    from rewards.extraction import find_answer

    start = time.perf_counter()
    assert find_answer("\\(a" * 7000 + " so 4").path == "last number"
    assert time.perf_counter() - start < 10


def test_disagreements_lists_the_cases_a_verifier_decides_otherwise():
    from rewards.testing import disagreements

    mine = [("The answer is 4", "4", 1.0), ("\\boxed{(2,5)}", "[2,5)", 1.0), ("so 7", "8", None)]
    report = disagreements(mine)
    lines = str(report).splitlines()
    assert report.count == 2 and lines[0] == "accuracy: agrees on 1 of 3 cases; 2 disagree:"
    assert lines[1].split() == ["completion", "gold", "expected", "got", "found", "by"]
    assert "'[2,5)'" in lines[2] and lines[2].split()[-2:] == ["0.0", "boxed"]
    assert lines[3].split()[-4:] == ["None", "0.0", "last", "number"]
    table = [(c, g, e) for _, c, g, e in COMPETITION]
    assert str(disagreements(table)) == f"accuracy: agrees on {len(table)} of {len(table)} cases"


def test_a_gold_with_several_boxes_is_read_as_math_verify_reads_it():
    """Boxes written as one answer are its parts; a box that prose sets apart is not (issue: a false positive)."""
    from rewards.extraction import read_gold

    apart = r"$\boxed{3}$ apples, which is the answer; note $\boxed{5}$ was wrong"
    assert read_gold(apart).whole and read_gold("so \\boxed{3}").whole is False
    assert accuracy([r"\boxed{3, 5}", r"\boxed{5}"], answer=[apart, apart]) == [0.0, 1.0]
    parts = r"The side is \boxed{12 cm} and there are \boxed{5} of them."
    assert accuracy([r"The answer is \boxed{\{12 cm, 5\}}", r"\boxed{12 cm}"], answer=[parts, parts]) == [1.0, 0.0]


@pytest.mark.parametrize(("decimal", "exact", "right"), [
    ("0.142857", "1/7", True), ("0.1428571", "1/7", True), ("0.1428572", "1/7", False), ("0.14285", "1/7", False),
    ("0.666666", "2/3", True), ("0.666667", "2/3", True), ("0.666668", "2/3", False), ("-0.666667", "2/3", False),
    ("0.1250001", "1/8", False), ("0.125000", "1/8", True),
])
def test_a_decimal_stands_for_a_value_with_no_last_digit_from_six_places(decimal, exact, right):
    assert accuracy([f"\\boxed{{{decimal}}}"], answer=[exact]) == [float(right)]
