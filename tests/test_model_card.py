"""Every finished run's README.md: a Hugging Face model card with the evidence (the run's own figures)."""

from __future__ import annotations

import json

from huggingface_hub import ModelCard

from rlft.stage.model_card import model_card, write_model_card

TABLE = [{"model": "base", "metric": "accuracy", "accuracy": 0.25, "low": 0.1, "high": 0.4, "n": 4, "n_unverified": 0,
          "marked": 0.5, "mean_tokens": 10.0},
         {"model": "trained", "metric": "accuracy", "accuracy": 0.75, "low": 0.5, "high": 1.0, "n": 4,
          "n_unverified": 0, "marked": 1.0, "mean_tokens": 8.0, "diff": 0.5, "diff_low": 0.25, "diff_high": 0.75}]


def fake_run(path, stage, base, table=None):
    path.mkdir(parents=True)
    manifest = {"stage": stage, "base_model": base, "seed": 7, "command": f"rlft {stage} recipes/{stage}.yaml",
                "git_commit": "abc123", "versions": {"trl": "1.16.0"}, "launch": {"num_processes": 1},
                "results": {"table": table} if table else {}}
    (path / "rlft_manifest.json").write_text(json.dumps(manifest))
    (path / "recipe.yaml").write_text(f"# rlft {stage}\nlearning_rate: 0.0003\ndataset_name: openai/gsm8k\n")
    (path / "adapter_config.json").write_text("{}")
    return manifest


def test_the_card_has_metadata_the_chain_the_table_samples_and_the_commands(tmp_path):
    fake_run(tmp_path / "sft", "sft", "bundled:smollm2-135m-instruct")
    manifest = fake_run(tmp_path / "grpo", "grpo", str(tmp_path / "sft"), TABLE)
    (tmp_path / "grpo" / "before_after.jsonl").write_text(json.dumps(
        {"prompt": [{"role": "user", "content": "What is 2 + 2?"}], "answer": "4", "base": "5", "trained": "4",
         "score_base": 0.0, "score_trained": 1.0}) + "\n")
    card = ModelCard.load(write_model_card(tmp_path / "grpo", manifest))
    data = card.data.to_dict()
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and data["license"] == "apache-2.0"
    assert data["library_name"] == "peft" and data["datasets"] == ["openai/gsm8k"]
    assert data["tags"] == ["rlft", "sft", "grpo", "lora"]
    text = card.text
    assert f"base → sft (`{tmp_path / 'sft'}`) → grpo (`{tmp_path / 'grpo'}`)" in text
    assert "trained    75.0%   [50.0, 100.0] +50.0 [+25.0, +75.0]" in text
    assert "**Prompt:** What is 2 + 2?" in text and '- trained (1.0): "4"' in text
    assert "git checkout abc123\nrlft grpo recipes/grpo.yaml" in text and "learning_rate: 0.0003" in text


def test_a_local_base_is_no_hub_id_and_its_own_card_gives_the_license(tmp_path):
    base = tmp_path / "my-base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\n---\n# my base\n")
    manifest = fake_run(tmp_path / "run", "dpo", str(base))
    data = ModelCard(model_card(tmp_path / "run", manifest)).data.to_dict()
    assert "base_model" not in data and data["license"] == "mit" and data["tags"] == ["rlft", "dpo", "lora"]


def test_a_run_trained_with_a_system_prompt_says_so_in_its_card(tmp_path):
    manifest = fake_run(tmp_path / "grpo", "grpo", "bundled:smollm2-135m-instruct", TABLE)
    with (tmp_path / "grpo" / "recipe.yaml").open("a") as f:
        f.write("system_prompt: Think in <think> tags, answer in <answer> tags.\n")
    text = model_card(tmp_path / "grpo", manifest)
    assert "## System prompt" in text and "```\nThink in <think> tags, answer in <answer> tags.\n```" in text
    fake_run(tmp_path / "plain", "grpo", "bundled:smollm2-135m-instruct", TABLE)
    assert "## System prompt" not in model_card(tmp_path / "plain", manifest)
