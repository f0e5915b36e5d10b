"""The fast pre-check: the precomputed key table matches the dataclasses, and it refuses exactly as the full parse.

A bad recipe is refused from ``rlft/stage/key_table.json`` before torch loads
(``make bench-refusal`` times it); these tests pin that it says what the full
parse says, accepts every shipped recipe, and stands aside when stale.
"""

from __future__ import annotations

import pytest

from rlft.core.errors import UserError
from rlft.stage import key_table

STAGE_RECIPES = {"sft": "recipes/sft.yaml", "dpo": "recipes/dpo.yaml", "orpo": "recipes/orpo.yaml",
                 "grpo": "recipes/math.yaml"}


def stage(name):
    from rlft.commands.key_table import STAGES

    return type(STAGES[name])()


def test_the_committed_table_is_what_the_dataclasses_give():
    from rlft.commands.key_table import table_text

    assert key_table.TABLE.read_text() == table_text(), (
        "rlft/stage/key_table.json is stale: run `python -m rlft.commands.key_table` and commit it")


BAD = [
    ("grpo", ["--no_such_key", "1"]),
    ("grpo", ["--max_completion_lenght", "64"]),  # a close match is named
    ("dpo", ["--beta", "abc"]),
    ("grpo", ["--engine", "sglang"]),  # a Literal's choices
    ("sft", ["--report_to", "[1, 2]", "--lr_scheduler_type", "nope"]),  # an enum's choices
    ("sft", ["--lora_r", "-1"]),
    ("grpo", ["--max_completion_length", "0"]),
    ("orpo", ["--max_steps", "0"]),
    ("dpo", ["--per_device_train_batch_size", "-2"]),
    ("grpo", ["--reward_funcs", "[accuracy, no_such_reward]"]),
    ("grpo", ["--metric_for_best_model", "eval_accuracy"]),  # refused by rlft.stage.settings
    ("grpo", ["--load_best_model_at_end", "true"]),  # refused before transformers' own check speaks
    ("sft", ["--eval_strategy", "steps"]),
    ("dpo", ["--sft_target_column", "answer"]),
    ("grpo", ["--rollout_engine", "vllm", "--engine", "hf"]),  # an old name beside its new one
]


def full_parse_error(name, argv, monkeypatch, tmp_path):
    """The error the full parse raises for ``argv`` (the pre-check switched off)."""
    monkeypatch.setattr(key_table, "_current", lambda stage: None)
    with pytest.raises(UserError) as err:
        stage(name).run(argv)
    monkeypatch.undo()
    return str(err.value)


@pytest.mark.parametrize(("name", "extra"), BAD, ids=[" ".join(b[1])[:40] for b in BAD])
def test_a_bad_recipe_is_refused_in_the_full_parse_words(name, extra, monkeypatch, tmp_path):
    argv = [STAGE_RECIPES[name], *extra, "--output_dir", str(tmp_path / "run")]
    with pytest.raises(UserError) as fast:
        key_table.precheck(name, list(argv))
    assert str(fast.value) == full_parse_error(name, argv, monkeypatch, tmp_path)
    assert not (tmp_path / "run").exists()


def test_an_unknown_key_in_the_recipe_file_names_the_file(tmp_path, monkeypatch):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1e-4\nlerning_rate: 2e-4\n")
    argv = [str(recipe), "--output_dir", str(tmp_path / "run")]
    with pytest.raises(UserError) as fast:
        key_table.precheck("sft", list(argv))
    assert f"in {recipe}" in str(fast.value) and "did you mean 'learning_rate'" in str(fast.value)
    assert str(fast.value) == full_parse_error("sft", argv, monkeypatch, tmp_path)


SHIPPED = [*STAGE_RECIPES.items(), ("grpo", "recipes/gpu/qwen2.5-0.5b-gsm8k.yaml"),
           ("grpo", "recipes/gpu/qwen2.5-1.5b-gsm8k.yaml")]


@pytest.mark.parametrize(("name", "recipe"), SHIPPED, ids=[r for _, r in SHIPPED])
def test_every_shipped_recipe_passes(name, recipe):
    key_table.precheck(name, [recipe, "--max_steps", "3", "--output_dir", "runs/x"])


def test_a_stale_table_stands_aside(monkeypatch):
    """Other TRL/transformers versions, or an edited argument module: the full parse decides alone."""
    monkeypatch.setattr(key_table, "_versions", lambda: {"trl": "0.0", "transformers": "0.0"})
    key_table.precheck("sft", ["--no_such_key", "1"])  # no error here; the full parse will refuse it
    monkeypatch.undo()
    real = key_table._fingerprint
    monkeypatch.setattr(key_table, "_fingerprint", lambda modules: {m: "edited" for m in real(modules)})
    key_table.precheck("sft", ["--no_such_key", "1"])
