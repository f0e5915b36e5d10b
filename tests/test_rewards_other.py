"""Format, length, matching rewards; the registry and dotted paths; the testing kit; hostile input."""

from __future__ import annotations

import sys
import textwrap
import time

import pytest

from rewards import REWARDS, RewardInputError, resolve
from rewards.testing import assert_reward, assert_rewards, reward_table

# --- format ------------------------------------------------------------------

STRICT = [
    ("<think>\n2 + 2 = 4\n</think>\n<answer>\n4\n</answer>", 1.0),
    ("<think>one line</think><answer>4</answer>", 1.0),
    ("<think>\nline 1\nline 2\n\nline 4\n</think>\n\n<answer>\n4\n</answer>\n", 1.0),
    ("<think>x</think>\n<answer>4</answer> and more text", 0.0),  # text after the closing tag
    ("preamble <think>x</think><answer>4</answer>", 0.0),
    ("<think>x</think><think>y</think><answer>4</answer>", 0.0),  # two think blocks
    ("<answer>4</answer><think>x</think>", 0.0),  # wrong order
    ("<think></think><answer>4</answer>", 0.0),  # empty reasoning
    ("<think>x</think><answer> </answer>", 0.0),  # empty answer
    ("<think>x</think>", 0.0),
    ("", 0.0),
]


@pytest.mark.parametrize("completion,expected", STRICT)
def test_think_format(completion, expected):
    assert_reward(resolve("think_format"), completion, expected)


def test_regression_format_regex_handles_newlines():
    """Bug: a pattern without DOTALL scored every multi-line completion 0."""
    multi = "<think>\nstep 1\nstep 2\n</think>\n<answer>\n42\n</answer>"
    assert resolve("think_format")([multi]) == [1.0]


def test_tag_count_partial_credit():
    assert_rewards(resolve("tag_count"), [
        ("<think>a</think><answer>b</answer>", {}, 1.0),
        ("<think>a</think>", {}, 0.5),
        ("<think><think></think>", {}, 0.25),
        ("plain", {}, 0.0),
    ])


@pytest.mark.parametrize(
    "style,completion,expected",
    [
        ("hash", "6*7 = 42\n#### 42", 1.0),
        ("hash", "#### 42\nthen more words", 0.0),
        ("hash", "the answer is 42", 0.0),
        ("boxed", "so \\boxed{42}.", 1.0),
        ("boxed", "so \\boxed{42", 0.0),
        ("answer_tag", "<think>x</think><answer>42</answer>", 1.0),
        ("answer_tag", "<answer></answer>", 0.0),
        ("answer_is", "3 + 4 = 7. The answer is 7.", 1.0),
        ("answer_is", "The answer is 7. Then I kept going\nfor a while", 0.0),
    ],
)
def test_answer_format(style, completion, expected):
    assert_reward(resolve("answer_format", style=style), completion, expected)


def test_answer_format_bad_style():
    with pytest.raises(RewardInputError, match="style must be one of hash"):
        resolve("answer_format", style="xml")


# --- length and repetition ---------------------------------------------------


def test_soft_overlong_uses_token_ids():
    reward = resolve("soft_overlong", max_length=100, cache=20)
    ids = [[0] * 50, [0] * 80, [0] * 90, [0] * 100, [0] * 101]
    assert reward(["x"] * 5, completion_ids=ids) == [0.0, 0.0, -0.5, -1.0, -1.0]


def test_soft_overlong_settings_checked():
    with pytest.raises(RewardInputError, match="cache"):
        resolve("soft_overlong", max_length=10, cache=10)


def test_repetition_penalty():
    reward = resolve("repetition_penalty", ngram_size=2, max_penalty=-0.5)
    fresh, loop = reward(["the cat sat on the mat", "ha ha ha ha ha ha"])
    assert fresh == 0.0 and loop == pytest.approx(-0.5 * 4 / 5)
    assert reward([""]) == [0.0]


# --- matching ----------------------------------------------------------------


def test_exact_match():
    assert_rewards(resolve("exact_match"), [
        ("The answer is Paris.", {"answer": "Paris"}, 1.0),
        ("  paris ", {"answer": "Paris"}, 1.0),
        ("Paris, France", {"answer": "Paris"}, 0.0),
        ("", {"answer": "Paris"}, 0.0),
        ("Paris", {"answer": ""}, None),
    ])
    assert resolve("exact_match", case_sensitive=True)(["paris"], answer=["Paris"]) == [0.0]


def test_regex_match_fixed_and_per_row():
    assert resolve("regex_match", pattern=r"^\s*yes\b", full=False)(["yes!", "no"]) == [1.0, 0.0]
    per_row = resolve("regex_match", pattern_column="pattern")
    assert per_row(["abc123", "abc"], pattern=[r"\d+", r"\d+"]) == [1.0, 0.0]
    with pytest.raises(RewardInputError, match="bad pattern"):
        resolve("regex_match", pattern="(")


def test_numeric_tolerance():
    reward = resolve("numeric_tolerance", rel_tol=0.01)
    assert reward(["3.14", "The answer is 3.2", "pi"], answer=["3.1416"] * 3) == [1.0, 0.0, 0.0]
    assert reward(["3"], answer=["three"]) == [None]


# --- registry and dotted paths -------------------------------------------------


def test_every_registered_reward_resolves_and_scores_a_batch():
    episode = type("Episode", (), {"get_reward": lambda self: 0.5})
    columns = {"answer": ["4", "5"], "tests": [["assert f() == 4"], ["assert f() == 5"]],
               "environments": [episode(), episode()]}  # what the environment reward reads (its episodes)
    settings = {"regex_match": {"pattern": "4"}}
    for name in REWARDS:
        reward = resolve(name, **settings.get(name, {}))
        out = reward(["The answer is 4", "def f():\n    return 5"], **columns)
        assert len(out) == 2 and all(v is None or isinstance(v, float) for v in out), name
        assert reward.__name__ == name


def test_unknown_reward_lists_names():
    with pytest.raises(RewardInputError) as info:
        resolve("acuracy")
    message = str(info.value)
    assert "did you mean 'accuracy'" in message and "think_format" in message and "\n" not in message


def test_bad_settings_are_named():
    with pytest.raises(RewardInputError, match="bad settings"):
        resolve("accuracy", fallback=False)
    with pytest.raises(RewardInputError, match="takes no settings"):
        resolve("think_format", strict=True)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(textwrap.dedent('''
        def exact_digits(completions, answer, **kwargs):
            return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer)]

        def make_length_cap(limit=10):
            def length_cap(completions, **kwargs):
                return [0.0 if len(c) > limit else 1.0 for c in completions]
            return length_cap
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_rewards"
    sys.modules.pop("my_rewards", None)


def test_dotted_path_plain_and_factory(user_module):
    assert resolve(f"{user_module}:exact_digits")(["42", "4"], answer=["42", "42"]) == [1.0, 0.0]
    cap = resolve(f"{user_module}:make_length_cap", limit=3)
    assert cap(["abc", "abcd"]) == [1.0, 0.0]


@pytest.mark.parametrize(
    "path,needle",
    [
        ("no_such_module_xyz:f", "cannot import reward"),
        ("rewards.accuracy:nope", "has no attribute 'nope'"),
        ("rewards.accuracy", "unknown reward"),
        (":f", "must look like"),
    ],
)
def test_bad_dotted_paths(path, needle):
    with pytest.raises(RewardInputError, match=needle):
        resolve(path)


def test_missing_column_is_named():
    with pytest.raises(RewardInputError, match="needs a dataset column 'answer'; the rows have: question"):
        resolve("accuracy")(["4"], question=["2+2?"])


def test_accuracy_reads_a_solution_column_when_there_is_no_answer():  # TRL's and open-r1's data
    assert resolve("accuracy")(["so \\boxed{1/2}", "0.4"], solution=["Halving 1 gives $\\boxed{0.5}$.", "0.5"]) == [1.0, 0.0]
    assert resolve("accuracy", answer_column="solution")(["4"], solution=["4"], answer=["5"]) == [1.0]
    assert resolve("accuracy")(["4"], solution=["4"], answer=["5"]) == [0.0]  # answer first, when both are there


# --- the testing kit -----------------------------------------------------------


def test_assert_reward_failure_message_is_readable():
    with pytest.raises(AssertionError) as info:
        assert_reward(resolve("accuracy"), "The answer is 5", 1.0, answer="4")
    assert "accuracy(text completion='The answer is 5', answer='4') returned 0.0, expected 1.0" in str(info.value)


def test_assert_rewards_lists_all_failures():
    with pytest.raises(AssertionError) as info:
        assert_rewards(resolve("accuracy"), [("4", {"answer": "4"}, 1.0), ("5", {"answer": "4"}, 1.0),
                                             ("6", {"answer": "4"}, 1.0)])
    text = str(info.value)
    assert text.startswith("2 of 3 cases failed") and text.count("NO") == 2


def test_reward_table():
    table = reward_table(resolve("accuracy"), [("It is 4", {"answer": "4"}, 1.0)])
    assert "yes" in table.splitlines()[1]


def test_assert_reward_checks_return_shape():
    def broken(completions, **kwargs):
        return 1.0

    with pytest.raises(AssertionError, match="one value per completion"):
        assert_reward(broken, "x", 1.0)


# --- hostile input -----------------------------------------------------------

HOSTILE = [
    "\\boxed{9^{9^{9^{9^{9}}}}}",
    "x" * 1_000_000 + " The answer is 4",
    "\\boxed{" + "{" * 5000 + "4" + "}" * 5000 + "}",
    "\\boxed{" * 200_000,
    "1" * 200_000,
    "<think>" * 100_000,
    "\\boxed{\\frac{" * 5000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_hostile_completions_finish_within_the_timeout(text):
    timeout = 2.0
    reward = resolve("accuracy", timeout=timeout)
    start = time.perf_counter()
    out = reward([text, "The answer is 4"], answer=["4", "4"])
    elapsed = time.perf_counter() - start
    assert out[1] == 1.0 and out[0] in (0.0, 1.0, None)
    assert elapsed < timeout + 10, f"took {elapsed:.1f}s"  # worker restart costs a few seconds at most
    for name in ("think_format", "tag_count", "answer_format", "repetition_penalty", "exact_match"):
        start = time.perf_counter()
        resolve(name)([text], answer=["4"])
        assert time.perf_counter() - start < 5, name


def test_timeouts_are_counted():
    reward = resolve("accuracy", timeout=1.0)
    reward(["\\boxed{9^{9^{9^{9^{9}}}}}"], answer=["\\sqrt{2}"])
    assert reward.stats["timeouts"] == 1


def test_script_without_main_guard_gets_a_clear_error(tmp_path):
    """Reward workers re-import the main script: one that loads a model at import time must fail fast and say why."""
    import subprocess
    from pathlib import Path

    body = """
        from rewards.timeouts import refuse_in_worker_bootstrap, run_with_timeout
        refuse_in_worker_bootstrap("a model")  # what rlft.core.models.load_model does first
        print(run_with_timeout(pow, [(2, 10)], timeout=5.0))
    """
    head = f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
    unguarded, guarded = tmp_path / "train_noguard.py", tmp_path / "train_guarded.py"
    unguarded.write_text(head + textwrap.dedent(body))
    guarded.write_text(head + "if __name__ == '__main__':\n" + textwrap.indent(textwrap.dedent(body), "    "))

    proc = subprocess.run([sys.executable, str(unguarded)], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "[1024]" not in proc.stdout
    assert "a model is being built while a worker process re-imports the main script" in proc.stderr  # the worker
    assert "WorkersFailed" in proc.stderr and "(train_noguard.py)" in proc.stderr, proc.stderr[-600:]  # the parent
    proc = subprocess.run([sys.executable, str(guarded)], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "[1024]" in proc.stdout, proc.stderr[-600:]
