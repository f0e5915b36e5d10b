"""`rlft rewards`: a user debugs a recipe's rewards on literal completions."""

from __future__ import annotations

import json

from rlft.commands import score_samples
from tests.conftest import run_cmd

RECIPE = """# rlft grpo recipes/x.yaml
learning_rate: 1.0e-5
reward_funcs: [accuracy, answer_format]
reward_kwargs:
  answer_format: {style: answer_is}
reward_weights: [1.0, 0.5]
"""


def write(tmp_path):
    (tmp_path / "r.yaml").write_text(RECIPE)
    samples = [
        {"completion": "3 + 4 = 7. The answer is 7.", "answer": "7"},
        {"completion": [{"role": "assistant", "content": "I think 8"}], "answer": "7"},
        {"completion": "The answer is 5", "answer": ""},
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    return str(tmp_path / "r.yaml"), str(tmp_path / "s.jsonl")


def test_scores_every_sample_with_every_reward(tmp_path, capsys):
    recipe, samples = write(tmp_path)
    results = score_samples.main([recipe, "--samples", samples])
    assert [r["scores"]["accuracy"] for r in results] == [1.0, 0.0, None]
    assert [r["scores"]["answer_format"] for r in results] == [1.0, 0.0, 1.0]
    assert [r["total"] for r in results] == [1.5, 0.0, 0.5]  # None rewards are left out of the total
    assert [r["extracted"] for r in results] == ["7", "8", "5"]
    assert [r["found_by"] for r in results] == ["sentence", "last number", "sentence"]
    out = capsys.readouterr().out
    assert "accuracy: mean 0.500 over 2 samples, 1 None" in out
    assert "found by" in out.splitlines()[0]


def test_each_sample_says_how_its_answer_was_found(tmp_path, capsys):
    """Why a sample scored what it did: the path, under the recipe's accuracy settings."""
    (tmp_path / "r.yaml").write_text("reward_funcs: [accuracy]\n")
    rows = [("So \\boxed{\\frac{7}{4}}", "1.75", "boxed"), ("work\n#### 9", "9", "hash"),
            ("<answer>3</answer>", "3", "tag"), ("We get\n$\\frac{7}{4}$", "7/4", "latex"),
            ("So\n7/4", "1.75", "expression"), ("the area is $24$ square units", "24", "latex text"),
            ("I think 8", "8", "last number"), ("no idea", "8", "none")]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"completion": c, "answer": a}) + "\n" for c, a, _ in rows))
    results = score_samples.main([str(tmp_path / "r.yaml"), "--samples", str(tmp_path / "s.jsonl")])
    assert [r["found_by"] for r in results] == [p for *_, p in rows]
    assert [r["scores"]["accuracy"] for r in results] == [1.0] * 7 + [0.0]
    assert results[5]["extracted"] == "24"  # the math math-verify reads in the prose
    strict = tmp_path / "strict.yaml"
    strict.write_text("reward_funcs: [accuracy]\nreward_kwargs: {accuracy: {fallback_last_number: false}}\n")
    results = score_samples.main([str(strict), "--samples", str(tmp_path / "s.jsonl")])
    assert [r["found_by"] for r in results][:3] == ["boxed", "hash", "tag"]
    assert {r["found_by"] for r in results[3:]} == {"none"}


def test_cli_errors_are_one_line(tmp_path):
    recipe, samples = write(tmp_path)
    result = run_cmd(["rlft", "rewards", recipe, "--samples", samples, "--reward_funcs", "[acuracy, answer_format]"], timeout=120)
    assert result.returncode == 2 and "did you mean 'accuracy'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cmd(["rlft", "rewards", recipe, "--samples", str(tmp_path / "none.jsonl")], timeout=120)
    assert result.returncode == 2 and "samples file not found" in result.stderr
    result = run_cmd(["rlft", "rewards", recipe, "--samples", samples, "--reward_weights", "[1]"], timeout=120)
    assert result.returncode == 2 and "reward_weights has 1 values for 2 reward_funcs" in result.stderr
