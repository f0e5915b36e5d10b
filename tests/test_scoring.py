"""The one scorer: every column of the table pinned on literal outputs, and the closing check uses it."""

from __future__ import annotations

import pytest

import rewards
from rlft.core.arguments import RewardArguments
from rlft.evaluation.closing import closing_text
from rlft.evaluation.report import format_table
from rlft.evaluation.scoring import headline, score_outputs, table_rows


class WordTokenizer:
    """One token per whitespace-separated word: lengths in tokens are easy to count by eye."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


PROMPTS = ["q1", "q2", "q3", "q4"]
ANSWERS = {"answer": ["4", "4", "4", "1/2"]}


def test_accuracy_uses_the_recipes_reward_kwargs():
    outputs = ["It is 4", "The answer is 4.", "\\boxed{3} or \\boxed{4}", "\\boxed{\\frac{1}{2}}"]
    default = RewardArguments().build()
    strict = RewardArguments(reward_kwargs={"accuracy": {"fallback_last_number": False}}).build()
    assert score_outputs(outputs, PROMPTS, ANSWERS, default)["scores"] == [1.0, 1.0, 0.0, 1.0]  # hedging: 0
    assert score_outputs(outputs, PROMPTS, ANSWERS, strict)["scores"] == [0.0, 1.0, 0.0, 1.0]  # no marker: 0


def test_each_column_on_literal_outputs():
    base = ["I think 3", "The answer is 4.", "maybe five", "\\boxed{0.5}"]
    trained = ["#### 4", "The answer is 4.", "4", "\\boxed{1/2}"]
    funcs = RewardArguments(reward_funcs=["accuracy", "tag_count"]).build()
    scored = {name: score_outputs(out, PROMPTS, ANSWERS, funcs, WordTokenizer())
              for name, out in (("base", base), ("trained", trained))}
    rows = table_rows(scored, resamples=200)
    b, t = rows
    assert (b["accuracy"], t["accuracy"]) == (0.5, 1.0)         # base: "The answer is 4." and 0.5 == 1/2
    assert (b["marked"], t["marked"]) == (0.5, 0.75)            # markers: ####, "the answer is", \boxed
    assert (b["mean_tokens"], t["mean_tokens"]) == (2.5, 2.0)  # 10 and 8 words, not characters
    assert b["n"] == t["n"] == 4 and "diff" not in b
    assert t["diff"] == 0.5 and t["diff_low"] <= 0.5 <= t["diff_high"]
    assert b["low"] <= b["accuracy"] <= b["high"]
    assert "rewards/tag_count" in t and b["metric"] == "accuracy"


def test_unverifiable_gold_leaves_the_prompt_out_for_every_model():
    funcs = RewardArguments().build()
    cols = {"answer": ["4", "", "4"]}  # an empty gold cannot be verified: None, never 0.0 or 1.0
    scored = {name: score_outputs(out, ["a", "b", "c"], cols, funcs) for name, out in
              (("base", ["4", "4", "5"]), ("trained", ["4", "7", "4"]))}
    assert scored["base"]["scores"][1] is None
    rows = table_rows(scored, resamples=100)
    assert [(r["n"], r["n_unverified"], r["accuracy"]) for r in rows] == [(2, 1, 0.5), (2, 1, 1.0)]


def test_headline_is_accuracy_else_the_first_reward():
    assert headline([rewards.resolve("tag_count"), rewards.resolve("accuracy")]) == "accuracy"
    assert headline([rewards.resolve("tag_count")]) == "tag_count"
    scored = {"base": score_outputs(["<answer>4</answer>"], ["q"], {"answer": ["4"]}, [rewards.resolve("tag_count")])}
    assert format_table(table_rows(scored, resamples=50)).split()[1] == "tag_count"


def test_chat_prompts_hand_rewards_messages_as_trl_does():
    seen = []

    def spy(completions, **columns):
        seen.append((completions, sorted(columns)))
        return [1.0] * len(completions)

    spy.__name__ = "spy"
    score_outputs(["hi"], [[{"role": "user", "content": "q"}]], {"answer": ["1"], "prompt": ["x"]}, [spy])
    assert seen == [([[{"role": "assistant", "content": "hi"}]],  # and every keyword TRL 1.16 passes
                      ["answer", "completion_ids", "log_extra", "log_metric", "prompts", "trainer_state"])]


def test_closing_table_has_intervals_and_names_the_rollout_engine():
    funcs = RewardArguments().build()
    scored = {n: score_outputs(o, ["a", "b"], {"answer": ["1", "2"]}, funcs, WordTokenizer())
              for n, o in (("base", ["1", "3"]), ("trained", ["1", "2"]))}
    manifest = {"results": {"table": table_rows(scored, resamples=100),
                            "rollout": {"engine": "hf", "fallback_from": "vllm", "fallback_reason": "no vllm"}}}
    text = closing_text(manifest, "runs/x")
    header, base, trained, engine, saved = text.splitlines()
    assert header.split()[:4] == ["model", "accuracy", "95%", "CI"] and "vs base" in header
    assert "[0.0, 100.0]" in base and trained.split()[4] == "+50.0"
    assert engine == "rollouts: hf engine (fell back from vllm: no vllm)" and saved == "saved to runs/x"


@pytest.mark.parametrize("bad", [{"accuracy": {"no_such_setting": 1}}])
def test_a_bad_scoring_setting_is_a_user_error(bad):
    from rlft.core.errors import UserError

    with pytest.raises(UserError, match="no_such_setting"):
        RewardArguments(reward_kwargs=bad).build()


def test_paired_previous_compares_each_model_with_the_one_before_it():
    def model(scores):
        return {"headline": "accuracy", "scores": scores, "marked": [True] * len(scores)}

    rows = table_rows({"base": model([0.0, 0.0, 0.0, 0.0]), "sft": model([1.0, 1.0, 0.0, 0.0]),
                       "grpo": model([1.0, 1.0, 1.0, 1.0])}, resamples=200, previous=True)
    base, sft, grpo = rows
    assert "prev" not in base and sft["prev"] == "base" and grpo["prev"] == "sft"
    assert (sft["prev_diff"], grpo["prev_diff"], grpo["diff"]) == (0.5, 0.5, 1.0)
    assert grpo["prev_low"] <= 0.5 <= grpo["prev_high"] and grpo["prev_low"] >= 0.0
    table = format_table(rows)
    assert "vs previous" in table.splitlines()[0]
    assert "+50.0 [" in table.splitlines()[3] and "+100.0 [+100.0, +100.0]" in table.splitlines()[3]
    assert "vs previous" not in format_table(table_rows({"base": model([0.0]), "sft": model([1.0])}))


def test_the_closing_table_calls_an_earlier_run_start_and_a_base_model_base(tmp_path):
    """One meaning of "base": the raw base model. A stage started from an earlier run is compared with "start"."""
    from rlft.evaluation.closing import start_label

    run, adapter, plain = tmp_path / "run", tmp_path / "adapter", tmp_path / "plain"
    for path in (run, adapter, plain):
        path.mkdir()
    (run / "rlft_manifest.json").write_text("{}")
    (adapter / "adapter_config.json").write_text("{}")
    (plain / "config.json").write_text("{}")
    assert [start_label(str(p)) for p in (run, adapter, plain)] == ["start", "start", "base"]
    assert start_label("bundled:smollm2-135m-instruct") == "base"
    row = {"accuracy": 0.5, "low": 0.4, "high": 0.6, "marked": 1.0, "mean_tokens": 18.0, "n": 200}
    assert "vs start" in format_table([{**row, "model": "start"}, {**row, "model": "trained"}]).splitlines()[0]
    assert "vs base" in format_table([{**row, "model": "base"}, {**row, "model": "trained"}]).splitlines()[0]
