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
    out = capsys.readouterr().out
    assert "accuracy: mean 0.500 over 2 samples, 1 None" in out


def test_cli_errors_are_one_line(tmp_path):
    recipe, samples = write(tmp_path)
    result = run_cmd(["rlft", "rewards", recipe, "--samples", samples, "--reward_funcs", "[acuracy, answer_format]"], timeout=120)
    assert result.returncode == 2 and "did you mean 'accuracy'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cmd(["rlft", "rewards", recipe, "--samples", str(tmp_path / "none.jsonl")], timeout=120)
    assert result.returncode == 2 and "samples file not found" in result.stderr
    result = run_cmd(["rlft", "rewards", recipe, "--samples", samples, "--reward_weights", "[1]"], timeout=120)
    assert result.returncode == 2 and "reward_weights has 1 values for 2 reward_funcs" in result.stderr
