"""The key table: generated into the cache, never committed, and never a different message from a fresh one.

Every recipe is read through the stage's key table (:mod:`rlft.stage.parsing`);
these tests pin that a cached table and a freshly built one refuse in the same
words, that editing a docstring reuses the table (fast, no TRL import), that
changing a field builds a new one, and that the shipped recipes pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from rlft.core.errors import UserError
from rlft.stage import key_table, parsing, registry
from tests.conftest import REPO

STAGE_RECIPES = {name: registry.get(name).recipe for name in registry.names(is_stage=True)}


def test_no_key_table_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "key_table" in tracked and not [f for f in tracked.splitlines() if f.endswith(".json") and "key" in f]


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
    ("grpo", ["--metric_for_best_model", "eval_accuracy"]),  # refused by rlft.stage.key_rules
    ("grpo", ["--load_best_model_at_end", "true"]),  # refused before transformers' own check speaks
    ("sft", ["--eval_strategy", "steps"]),
    ("dpo", ["--sft_target_column", "answer"]),
    ("grpo", ["--rollout_engine", "vllm", "--engine", "hf"]),  # an old name beside its new one
]


def refusal(name, argv):
    with pytest.raises(UserError) as err:
        registry.get(name).stage().run(list(argv))
    return str(err.value)


@pytest.mark.parametrize(("name", "extra"), BAD, ids=[" ".join(b[1])[:40] for b in BAD])
def test_a_cached_and_a_freshly_built_table_refuse_in_the_same_words(name, extra, monkeypatch, tmp_path):
    argv = [STAGE_RECIPES[name], *extra, "--output_dir", str(tmp_path / "run")]
    cached = refusal(name, argv)
    monkeypatch.setenv("RLFT_CACHE", str(tmp_path / "empty-cache"))  # no table: the parse builds one
    assert refusal(name, argv) == cached
    assert len(list((tmp_path / "empty-cache" / "key-tables").glob(f"{name}-*.json"))) == 1
    assert not (tmp_path / "run").exists()


def test_an_unknown_key_in_the_recipe_file_names_the_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1e-4\nlerning_rate: 2e-4\n")
    message = refusal("sft", [str(recipe), "--output_dir", str(tmp_path / "run")])
    assert f"in {recipe}" in message and "did you mean 'learning_rate'" in message


SHIPPED = [*STAGE_RECIPES.items(), ("grpo", "recipes/gpu/qwen2.5-0.5b-gsm8k.yaml"),
           ("grpo", "recipes/gpu/qwen2.5-1.5b-gsm8k.yaml")]


@pytest.mark.parametrize(("name", "recipe"), SHIPPED, ids=[r for _, r in SHIPPED])
def test_every_shipped_recipe_passes(name, recipe):
    parsing.read_values(registry.get(name).stage(), [recipe, "--max_steps", "3", "--output_dir", "runs/x"])


def test_the_table_holds_the_dataclasses_keys_types_and_defaults():
    stage = registry.get("grpo").stage()
    assert key_table.table_for(stage) == key_table.build(stage.argument_types())


def test_other_library_versions_name_another_table(monkeypatch):
    stage = registry.get("sft").stage()
    before = key_table.path_for(stage)
    monkeypatch.setattr(key_table, "_version", lambda name: "0.0")
    assert key_table.path_for(stage) != before


# Run in a copy of the package: a docstring edited, or a field's default changed; the cache already warm.
PROBE = """
import sys, time
from rlft.core.errors import UserError
from rlft.stage import parsing, registry, key_table
stage = registry.get("grpo").stage()
try:
    parsing.read_values(stage, [sys.argv[1], "--max_completion_length", "0"])
except UserError as err:
    print(err)
print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
print(key_table.table_for(stage)["defaults"]["length_buckets"])
print(registry.__file__)
"""


def probe(copy, cache):
    """PROBE's lines, run in ``copy`` (first on sys.path) with ``cache`` as the rlft cache."""
    env = {**os.environ, "PYTHONPATH": str(copy), "RLFT_CACHE": str(cache), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "recipes" / "math.yaml")], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.slow
def test_an_edited_docstring_reuses_the_table_and_a_changed_field_builds_a_new_one(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(REPO / "rlft", copy / "rlft", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    first = probe(copy, cache)  # builds the table (imports TRL)
    tables = sorted((cache / "key-tables").iterdir())
    assert first[3] == str(copy / "rlft" / "stage" / "registry.py")  # the copy runs, not the checkout
    assert first[0] == "max_completion_length must be positive, got 0" and first[2] == "None"

    buckets = copy / "rlft" / "training" / "length_buckets.py"
    buckets.write_text(buckets.read_text().replace('"""', '"""Edited. ', 1))  # the module's docstring
    assert probe(copy, cache)[:3] == [first[0], "[]", "None"]  # same words, from the cached table: nothing heavy loaded
    assert sorted((cache / "key-tables").iterdir()) == tables

    text = buckets.read_text()
    old = "length_buckets: bool | None = field(\n        default=None,"
    assert old in text
    buckets.write_text(text.replace(old, old.replace("None,", "True,")))
    changed = probe(copy, cache)
    assert changed[0] == first[0] and changed[2] == "True"  # a new table, with the new default
    assert len(list((cache / "key-tables").iterdir())) == len(tables) + 1
    assert json.loads(tables[0].read_text())["defaults"]["length_buckets"] is None
