"""Preference stage: pairs from verifiable rewards, DPO and ORPO on the bundled model, SFT -> DPO -> GRPO chaining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlft.commands.pairs import PairsArguments, build_pairs, weighted_scores
from rlft.core.errors import UserError, run_cli
from tests.helpers import tiny_model_dir

ROWS = [{"prompt": "What is 2 + 2?", "answer": "4"}, {"prompt": "What is 3 + 5?", "answer": "8"},
        {"prompt": "What is 9 - 1?", "answer": "8"}]


# -- pairs: pure functions ------------------------------------------------------------------------


def test_pairs_keep_only_prompts_whose_best_beats_worst_by_the_gap():
    texts = ["4", "5", "4",   "7", "9", "6",   "8", "8", "8"]  # three groups of k=3
    scores = [1.0, 0.0, 1.0,   0.0, 0.0, 0.0,   1.0, 1.0, 1.0]
    pairs = build_pairs(ROWS, texts, scores, k=3, min_gap=0.5, source={"seed": 1})
    assert [p["prompt"] for p in pairs] == ["What is 2 + 2?"]  # all-wrong and all-right groups make no pair
    pair = pairs[0]
    assert (pair["chosen"], pair["rejected"], pair["score_chosen"], pair["score_rejected"]) == ("4", "5", 1.0, 0.0)
    assert pair["answer"] == "4" and pair["source"] == {"seed": 1}


def test_pairs_ties_take_the_earliest_sample_and_unverifiable_ones_are_skipped():
    texts = ["a", "b", "c", "d"]
    pairs = build_pairs(ROWS[:1], texts, [None, 0.2, 0.9, 0.9], k=4, min_gap=0.5, source={})
    assert (pairs[0]["chosen"], pairs[0]["rejected"]) == ("c", "b")
    assert build_pairs(ROWS[:1], texts, [None, None, None, 1.0], k=4, min_gap=0.5, source={}) == []


def test_weighted_scores_call_rewards_like_trl_and_propagate_none():
    seen = {}

    def right(completions, prompts, answer, **_):
        seen.update(prompts=prompts, answer=answer)
        return [1.0 if c == a else (None if c == "?" else 0.0) for c, a in zip(completions, answer)]

    def short(completions, **_):
        return [-len(c) / 10 for c in completions]

    scores = weighted_scores([right, short], [1.0, 0.5], ROWS[:1], ["4", "44", "?"], k=3)
    assert scores[:2] == pytest.approx([1.0 - 0.05, 0.0 - 0.1])
    assert scores[2] is None and seen["prompts"] == ["What is 2 + 2?"] * 3 and seen["answer"] == ["4"] * 3
    with pytest.raises(UserError, match="reward_weights has 1 values for 2 reward_funcs"):
        weighted_scores([right, short], [1.0], ROWS[:1], ["4"], k=1)


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("samples_per_prompt", 1, "at least 2"), ("temperature", 0.0, "temperature must be > 0"),
    ("min_score_gap", 0.0, "min_score_gap must be > 0"),
])
def test_pairs_arguments_refuse_settings_that_cannot_make_pairs(key, value, needle):
    with pytest.raises(UserError, match=needle):
        PairsArguments(**{key: value})


# -- stages on the tiny model (mechanics; tests/helpers.tiny_model_dir) ----------------------------

TINY_MODEL = ["--model_name_or_path", str(tiny_model_dir())]
PAIRS_FAST = [*TINY_MODEL, "--num_train_samples", "6", "--samples_per_prompt", "4",
              "--max_new_tokens", "12", "--engine", "hf", "--min_score_gap", "0.01",
              "--reward_funcs", "[accuracy, tests.helpers:length_reward]"]
STAGE_FAST = [*TINY_MODEL, "--max_steps", "2", "--per_device_train_batch_size", "2", "--logging_steps", "1",
              "--save_strategy", "no", "--eval_samples", "2", "--eval_max_new_tokens", "8",
              "--learning_rate", "1e-3", "--max_length", "96", "--test_size", "0.2"]


def lora_b_nonzero(out: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(out / "adapter_model.safetensors")
    return any(torch.count_nonzero(t) > 0 for k, t in weights.items() if "lora_B" in k)


def logged(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    from rlft.commands import pairs

    out = tmp_path_factory.mktemp("pairs") / "run"
    pairs.main(["recipes/pairs.yaml", "--output_dir", str(out), *PAIRS_FAST])
    return out / "pairs.jsonl"


@pytest.mark.slow
def test_pairs_are_deterministic_for_a_seed_and_chosen_beats_rejected(pairs_file, tmp_path):
    from rlft.commands import pairs

    again = tmp_path / "again"
    manifest = pairs.main(["recipes/pairs.yaml", "--output_dir", str(again), *PAIRS_FAST])
    assert (again / "pairs.jsonl").read_bytes() == pairs_file.read_bytes()
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    assert rows and all(r["score_chosen"] - r["score_rejected"] >= 0.01 for r in rows)
    assert all(r["chosen"][0]["role"] == "assistant" and r["source"]["seed"] == 42 for r in rows)
    assert manifest["results"]["pairs"] == len(rows) and manifest["stage"] == "pairs"


@pytest.mark.slow
def test_dpo_trains_with_lora_and_one_model_in_memory(pairs_file, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    from rlft import dpo
    from rlft.core import models

    loads = []  # every model load goes through PreTrainedModel.from_pretrained (Auto classes and TRL's too)
    original = PreTrainedModel.from_pretrained.__func__
    monkeypatch.setattr(PreTrainedModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a[0]) or original(cls, *a, **k)))
    out = tmp_path / "dpo"
    manifest = dpo.main(["recipes/dpo.yaml", "--output_dir", str(out), "--dataset_name", str(pairs_file),
                         "--eval_before_after", "false", *STAGE_FAST])
    assert len(loads) == 1, "LoRA DPO must use the policy with its adapter disabled as the reference"
    steps = [e for e in logged(out) if "loss" in e and "rewards/margins" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert steps[0]["rewards/chosen"] == 0.0 and steps[0]["rewards/rejected"] == 0.0  # policy == reference at start
    assert lora_b_nonzero(out) and manifest["results"]["margins"]["rewards/margins"] == steps[-1]["rewards/margins"]
    assert type(models.load_model(str(out))).__name__ == "LlamaForCausalLM"


@pytest.mark.slow
def test_dpo_takes_a_standard_plain_text_preference_file(tmp_path):
    """A user's own pairs: plain strings, no `answer` column (the default accuracy cannot score the closing table:
    refused before training, not skipped after it), no rlft provenance."""
    from rlft import dpo

    rows = [{"prompt": f"Name a colour number {i}.", "chosen": " Blue.", "rejected": " I cannot answer that."}
            for i in range(8)]
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "dpo"
    with pytest.raises(UserError, match="the before/after table cannot be scored: reward 'accuracy' needs a dataset "
                                        "column 'answer'.*or eval_before_after: false"):
        dpo.main(["recipes/dpo.yaml", "--output_dir", str(out), "--dataset_name", str(data), *STAGE_FAST])
    manifest = dpo.main(["recipes/dpo.yaml", "--output_dir", str(out), "--dataset_name", str(data), *STAGE_FAST,
                         "--eval_before_after", "false"])
    steps = [e for e in logged(out) if "rewards/margins" in e]
    assert [e["step"] for e in steps] == [1, 2] and lora_b_nonzero(out)
    assert manifest["status"] == "complete" and "table" not in manifest["results"]


def test_preference_data_without_a_rejected_column_is_one_line_exit_2(tmp_path, capsys):
    from rlft import dpo

    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Hi {i}", "chosen": "Hello"}) + "\n" for i in range(10)))
    code = run_cli(dpo.main, ["recipes/dpo.yaml", "--output_dir", str(tmp_path / "out"), "--dataset_name", str(data)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "missing: rejected" in err[-1] and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_orpo_trains_from_the_base_model(pairs_file, tmp_path):
    from rlft import orpo
    from rlft.core import models

    out = tmp_path / "orpo"
    manifest = orpo.main(["recipes/orpo.yaml", "--output_dir", str(out), "--dataset_name", str(pairs_file),
                          *STAGE_FAST])
    steps = [e for e in logged(out) if "loss" in e and "rewards/margins" in e]
    assert [e["step"] for e in steps] == [1, 2] and all(e["loss"] == e["loss"] for e in steps)  # not NaN
    assert lora_b_nonzero(out) and manifest["results"]["table"][0]["model"] == "base"
    assert type(models.load_model(str(out))).__name__ == "LlamaForCausalLM"


def chat_pairs(path: Path, n: int = 6) -> Path:
    path.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
                                        "chosen": [{"role": "assistant", "content": f"The answer is {i + 1}."}],
                                        "rejected": [{"role": "assistant", "content": "I don't know."}],
                                        "answer": str(i + 1)}) + "\n" for i in range(n)))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "orpo"])
def test_enable_thinking_off_reaches_the_preference_tokens(stage, thinking_tokenizer, tmp_path):
    """DPO and ORPO render prompt, chosen and rejected with the recipe's chat_template_kwargs (no training)."""
    import importlib

    from rlft.core import data
    from rlft.core.models import load_model
    from rlft.stage.skeleton import StageArgs
    from tests.conftest import THINKING_OFF

    module = importlib.import_module(f"rlft.{stage}")
    argv = [f"recipes/{stage}.yaml", "--output_dir", str(tmp_path / "out"), *STAGE_FAST,
            "--dataset_name", str(chat_pairs(tmp_path / "prefs.jsonl")), "--chat_template_kwargs",
            "{enable_thinking: false}"]
    args = StageArgs(*module.parse(argv))
    splits = data.load_splits(args.data, seed=args.train.seed)
    trainer = getattr(module, stage.upper())().build_trainer(args, splits, thinking_tokenizer, load_model(args.model.model_name_or_path))
    batch = next(iter(trainer.get_train_dataloader()))  # what a training step gets
    ids = batch["input_ids"] if stage == "dpo" else batch["chosen_input_ids"]
    bos = thinking_tokenizer.bos_token if stage == "orpo" else ""  # TRL's ORPO puts the BOS token first
    texts = [text.removeprefix(bos) for text in thinking_tokenizer.batch_decode(ids)]
    assert texts and all(text.startswith(f"{THINKING_OFF}\n<|im_start|>system") for text in texts), texts


@pytest.mark.slow
def test_enable_thinking_off_reaches_the_prompts_pairs_samples_from(thinking_model_dir, tmp_path, rendered_prompts):
    from rlft.commands import pairs
    from rlft.evaluation import generation
    from tests.conftest import THINKING_OFF

    seen = rendered_prompts(generation)
    out = tmp_path / "pairs"
    pairs.main(["recipes/pairs.yaml", "--output_dir", str(out), *PAIRS_FAST, "--model_name_or_path",
                str(thinking_model_dir), "--chat_template_kwargs", "{enable_thinking: false}"])
    assert len(seen) == 6 and all(p.startswith(f"{THINKING_OFF}\n<|im_start|>system") for p in seen), seen[:1]
    rows = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert rows and all(r["prompt"][0]["role"] == "user" for r in rows), "pairs keep the prompt's own format"


@pytest.mark.slow
def test_sft_then_dpo_then_grpo_on_vllm(pairs_file, tmp_path):
    """DPO starts from (and is referenced to) the SFT model; GRPO and its vLLM engine start from the DPO chain."""
    from rlft import dpo, grpo, sft
    from rlft.commands import merge
    from rlft.core import models

    sft_dir, dpo_dir, grpo_dir = tmp_path / "sft", tmp_path / "dpo", tmp_path / "grpo"
    sft.main(["recipes/sft.yaml", *TINY_MODEL, "--output_dir", str(sft_dir), "--num_train_samples", "8", "--num_test_samples", "2",
              "--per_device_train_batch_size", "4", "--max_steps", "2", "--save_strategy", "no",
              "--eval_before_after", "false", "--learning_rate", "1e-3"])
    dpo.main(["recipes/dpo.yaml", "--output_dir", str(dpo_dir), "--dataset_name", str(pairs_file),
              "--eval_before_after", "false", *STAGE_FAST, "--model_name_or_path", str(sft_dir)])
    first = next(e for e in logged(dpo_dir) if "rewards/chosen" in e)
    assert first["rewards/chosen"] == 0.0, "the reference must be the SFT model (the policy's starting point)"
    resolved = models.resolve_model(str(dpo_dir))
    assert [Path(a).name for a in resolved.adapters] == ["sft", "dpo"]

    from tests.test_grpo import TINY

    manifest = grpo.main([*TINY, "--output_dir", str(grpo_dir), "--model_name_or_path", str(dpo_dir),
                          "--engine", "vllm", "--max_steps", "1"])
    assert manifest["results"]["rollout"]["engine"] == "vllm", "the vLLM engine must accept the DPO chain"
    # its closing check compares with where it started (the DPO chain), and says so: not "base"
    assert [r["model"] for r in manifest["results"]["table"]] == ["start", "trained"]
    assert [Path(a).name for a in models.resolve_model(str(grpo_dir)).adapters] == ["sft", "dpo", "grpo"]
    assert type(models.load_model(str(grpo_dir))).__name__ == "LlamaForCausalLM"

    # `rlft merge` turns the chain into a directory plain transformers loads, with the same outputs
    from transformers import AutoModelForCausalLM

    merged = tmp_path / "merged"
    assert run_cli(merge.main, [str(grpo_dir), str(merged)]) == 0
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        expected = models.load_model(str(grpo_dir)).eval()(ids).logits
        got = AutoModelForCausalLM.from_pretrained(merged).eval()(ids).logits
    torch.testing.assert_close(got, expected)
    assert [Path(a).name for a in json.loads((merged / "rlft_merged.json").read_text())["adapters"]] == ["sft", "dpo", "grpo"]
    assert (merged / "tokenizer_config.json").exists()
    assert run_cli(merge.main, [str(grpo_dir), str(merged)]) == 2  # an existing out_dir is never replaced silently


# -- the pipeline ---------------------------------------------------------------------------------


def test_pipeline_checks_every_stage_before_running_any(tmp_path):
    from rlft.commands import pipeline

    recipe = tmp_path / "p.yaml"
    recipe.write_text("output_dir: {}\nstages:\n  sft: {{recipe: recipes/sft.yaml, overrides: {{max_steps: 1}}}}\n"
                      "  dpo: {{recipe: recipes/dpo.yaml, overrides: {{model_name_or_path: '@sft', betta: 0.1}}}}\n"
                      .format(tmp_path / "out"))
    with pytest.raises(UserError, match="pipeline stage 'dpo': unknown recipe key 'betta'"):
        pipeline.main([str(recipe)])
    assert not (tmp_path / "out").exists(), "nothing may run when a later stage's recipe is wrong"


def test_pipeline_plans_the_memory_of_every_stage_before_running_any(tmp_path, monkeypatch):
    from rlft.commands import pipeline

    monkeypatch.setenv("RLFT_MEMORY_GB", "6")  # SFT's 8 rows fit; 256 rows of the same data do not
    recipe = tmp_path / "p.yaml"
    recipe.write_text("output_dir: {}\nstages:\n  sft: {{recipe: recipes/sft.yaml}}\n"
                      "  big: {{stage: sft, recipe: recipes/sft.yaml, overrides: {{model_name_or_path: '@sft', "
                      "per_device_train_batch_size: 256}}}}\n".format(tmp_path / "out"))
    with pytest.raises(UserError, match=r"pipeline stage 'big': memory plan: needs about .* 6.0 GB is available; "
                                        r"per_device_train_batch_size: \d+ and gradient_accumulation_steps: \d+ .*"
                                        r"would fit .*nothing has run"):
        pipeline.main([str(recipe)])
    assert not (tmp_path / "out").exists(), "nothing may run when a later stage cannot fit"


@pytest.mark.slow
def test_pipeline_runs_chains_evaluates_and_skips_finished_stages_on_rerun(tmp_path):
    """`rlft pipeline` end to end on a tiny chain: SFT -> DPO ("@sft" substituted), then one evaluation."""
    from tests.conftest import run_cmd

    out, pairs = tmp_path / "out", tmp_path / "prefs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"What is {i} + 1?"}],
                                         "chosen": [{"role": "assistant", "content": f"The answer is {i + 1}."}],
                                         "rejected": [{"role": "assistant", "content": "I don't know."}],
                                         "answer": str(i + 1)}) + "\n" for i in range(10)))
    tiny = str(tiny_model_dir())
    small = {"max_steps": 1, "per_device_train_batch_size": 2, "eval_before_after": False, "save_strategy": "no"}
    recipe = tmp_path / "pipeline.yaml"
    recipe.write_text(json.dumps({  # JSON is YAML
        "output_dir": str(out),
        "stages": {"sft": {"recipe": "recipes/sft.yaml", "overrides": {**small, "model_name_or_path": tiny,
                                                                       "num_train_samples": 8,
                                                                       "num_test_samples": 2}},
                   "dpo": {"recipe": "recipes/dpo.yaml", "overrides": {**small, "model_name_or_path": "@sft",
                                                                       "dataset_name": str(pairs),
                                                                       "max_length": 64}}},
        "evaluation": {"recipe": "recipes/eval_math.yaml", "models": ["base", "@sft", "@dpo"],
                       "overrides": {"model_name_or_path": tiny, "engine": "hf", "general_suite": False,
                                     "num_test_samples": 3,
                                     "eval_samples": 3, "eval_max_new_tokens": 8}},
    }))
    first = run_cmd(["rlft", "pipeline", str(recipe)], timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((out / "pipeline.json").read_text())
    assert list(summary["stages"]) == ["sft", "dpo", "eval"] and summary["stages"]["dpo"]["seconds"] > 0
    assert [m["model"] for m in summary["evaluation"]["models"]] == ["base", f"{out}/sft", f"{out}/dpo"]
    assert json.loads((out / "dpo" / "rlft_manifest.json").read_text())["base_model"].endswith("sft")
    assert "wall time" in first.stdout and f"{out}/dpo" in first.stdout  # the summary and the table are printed

    again = run_cmd(["rlft", "pipeline", str(recipe)], timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    stages = json.loads((out / "pipeline.json").read_text())["stages"]
    assert stages["sft"] == {"seconds": None, "skipped": True} and stages["dpo"]["skipped"]


@pytest.mark.parametrize("flags", [["--load_in_8bit", "true"], ["--lora_r", "8"], ["--use_peft", "true"]])
def test_pairs_refuses_training_keys_it_would_ignore(flags, tmp_path):
    from tests.conftest import run_cmd

    run = run_cmd([".venv/bin/rlft", "pairs", "recipes/pairs.yaml", *flags, "--output_dir", str(tmp_path / "p")])
    [line] = run.stderr.strip().splitlines()
    assert run.returncode == 2 and line.startswith(f"error: {flags[0][2:]}: not used by rlft pairs"), line


def test_pairs_loads_the_policy_with_the_recipes_revision_and_attention():
    from rlft.commands.pairs import load_options
    from rlft.core.arguments import ModelArguments

    options = load_options(ModelArguments(model_revision="v2", attn_implementation="eager"),
                           {"model_revision": "v2", "attn_implementation": "eager"})
    assert (options.revision, options.attn_implementation, options.quantization) == ("v2", "eager", {})


@pytest.mark.parametrize(("flags", "message"), [
    (["--num_test_samples", "5"], "num_test_samples: not used by rlft pairs: it samples from the train split only"),
    (["--memory_check", "warn"], "memory_check: not used by rlft pairs: it makes no memory plan"),
])
def test_keys_rlft_pairs_never_reads_are_refused_in_one_line(flags, message, tmp_path):
    from tests.conftest import run_cmd

    run = run_cmd([".venv/bin/rlft", "pairs", "recipes/pairs.yaml", *flags, "--output_dir", str(tmp_path / "p")])
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}"), run.stderr
    assert not (tmp_path / "p").exists()
