"""Greedy evaluation during training: logged at the right steps, equal to rlft eval, the best checkpoint kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cmd
from tests.helpers import tiny_model_dir


def logged(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("extra", "needle"), [
    (["--keep_best", "eval/accuracy"], "keep_best: eval/accuracy needs eval_steps: N"),
    (["--eval_steps", "2", "--final_model", "best"], "final_model: best needs keep_best"),
    (["--eval_steps", "2", "--keep_best", "accuracy"], "keep_best names an eval metric such as eval/accuracy"),
    (["--eval_steps", "0"], "eval_steps must be a positive integer, got 0"),
    (["--eval_steps", "2", "--early_stopping_patience", "2"], "early_stopping_patience needs keep_best"),
    (["--eval_steps", "2", "--keep_best", "eval/accuracy", "--save_strategy", "no"],
     "keep_best keeps a checkpoint: it needs save_strategy: steps (this run has no)"),
    (["--metric_for_best_model", "eval_accuracy"], "use keep_best: eval/accuracy"),
    (["--load_best_model_at_end", "true"], "use final_model: best"),
])
def test_bad_eval_settings_are_refused_in_one_line(extra, needle, tmp_path):
    out = tmp_path / "run"
    run = run_cmd([".venv/bin/rlft", "grpo", "recipes/math.yaml", "--output_dir", str(out), *extra])
    assert run.returncode == 2, run.stderr
    assert needle in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not out.exists()


@pytest.mark.slow
def test_keep_best_naming_a_metric_the_run_does_not_log_is_refused_before_the_model_loads(tmp_path):
    out = tmp_path / "run"
    run = run_cmd([".venv/bin/rlft", "sft", "recipes/sft.yaml", "--output_dir", str(out), "--eval_steps", "2",
                   "--keep_best", "eval/format"])
    assert run.returncode == 2, run.stderr
    assert "keep_best: eval/format is not logged by this run's evaluation; choose one of eval/accuracy" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and not out.exists()


TINY_MODEL = ["--model_name_or_path", str(tiny_model_dir())]  # mechanics: a 2-layer random Llama
EVAL_ROWS = ["--num_test_samples", "8", "--eval_samples", "8", "--eval_max_new_tokens", "24",
             "--eval_batch_size", "8"]


def rlft_eval_of(checkpoint: Path, tmp_path: Path, data: list[str]) -> dict:
    """``rlft eval`` (transformers generation) of one checkpoint on the run's test prompts."""
    from rlft import eval as rlft_eval

    recipe = tmp_path / f"eval-{checkpoint.name}.yaml"
    recipe.write_text("reward_funcs: [accuracy]\nengine: hf\ngeneral_suite: false\nseed: 42\n")
    results = rlft_eval.main([str(recipe), *data, *EVAL_ROWS, "--bootstrap_resamples", "100", "--models",
                              str(checkpoint), "--output_dir", str(tmp_path / f"eval-{checkpoint.name}")])
    [row] = [r for r in results["models"] if r["model"] == str(checkpoint)]
    texts = [json.loads(line)["outputs"][str(checkpoint)]["text"]
             for line in (tmp_path / f"eval-{checkpoint.name}" / "samples.jsonl").read_text().splitlines()]
    return {"accuracy": row["accuracy"], "texts": texts}


def eval_texts(out: Path, step: int) -> list[str]:
    return [json.loads(line)["output"] for line in (out / "evals" / f"step-{step}.jsonl").read_text().splitlines()]


def test_the_closing_check_answers_eval_samples_rows_in_batches_of_eval_batch_size(tmp_path, monkeypatch):
    """``eval_samples``, ``eval_max_new_tokens`` and ``eval_batch_size`` reach the closing check's generation."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from datasets import Dataset

    from rewards import make_accuracy
    from rlft.core.arguments import EvalArguments, ModelArguments
    from rlft.evaluation import closing

    calls = []

    def hf_completions(model, tokenizer, prompts, max_new_tokens, batch_size, chat_template_kwargs):
        calls.append((len(prompts), max_new_tokens, batch_size))
        return ["The answer is 2."] * len(prompts)

    monkeypatch.setattr(closing, "hf_completions", hf_completions)
    model = SimpleNamespace(disable_adapter=nullcontext, device="cpu")  # a peft model: the base is it, disabled
    test = Dataset.from_list([{"prompt": [{"role": "user", "content": "1 + 1?"}], "answer": "2"}] * 12)
    eval_args = EvalArguments(eval_samples=10, eval_max_new_tokens=7, eval_batch_size=3)
    result = closing.evaluate_stage(model, None, test, eval_args, ModelArguments(), str(tmp_path), [make_accuracy()])
    assert calls == [(10, 7, 3), (10, 7, 3)]  # the starting model, then the trained one
    assert len((tmp_path / "before_after.jsonl").read_text().splitlines()) == 10 and result["table"]


@pytest.mark.slow
def test_sft_evaluates_at_the_right_steps_keeps_the_best_checkpoint_and_agrees_with_rlft_eval(tmp_path):
    from safetensors.torch import load_file

    from rlft import sft
    from tests import helpers

    out = tmp_path / "sft"
    helpers.FADING_CALLS[0] = 0  # its first evaluation (step 2) scores best, the later ones worse
    data = ["--dataset_name", "task:word_problems"]
    manifest = sft.main([
        "recipes/sft.yaml", *TINY_MODEL, "--output_dir", str(out), *data, *EVAL_ROWS, "--num_train_samples", "32",
        "--max_steps", "5", "--per_device_train_batch_size", "4", "--learning_rate", "2e-3", "--warmup_steps", "0",
        "--logging_steps", "1", "--save_steps", "1", "--save_total_limit", "2", "--eval_before_after", "false",
        "--reward_funcs", "[accuracy, tests.helpers:fading_reward]", "--eval_steps", "2",
        "--keep_best", "eval/fading_reward", "--final_model", "best", "--report_to", "tensorboard",
    ])
    assert "table" not in manifest["results"] and not (out / "before_after.jsonl").exists()  # eval_before_after
    evals = [e for e in logged(out) if "eval/accuracy" in e]
    assert [e["step"] for e in evals] == [2, 4, 5]  # every 2 steps, and after the last
    assert [e["eval/fading_reward"] for e in evals] == pytest.approx([1.0, 0.5, 1 / 3])
    assert all(e["eval/n"] == 8 and e["eval/seconds"] > 0 and "eval/tokens" in e for e in evals)
    assert not any("loss" in e for e in evals), "an eval entry must not swallow the pending training metrics"
    assert sum("loss" in e for e in logged(out)) == 5

    from tests.test_grpo import tensorboard_tags

    assert {"eval/accuracy", "eval/fading_reward", "train/loss"} <= tensorboard_tags(out)

    # save_total_limit 2 alone would keep checkpoints 4 and 5: the best (2) stays in place of 4, under its final path
    kept = sorted(p.name for p in out.glob("checkpoint-*"))
    assert kept == ["checkpoint-2", "checkpoint-5"], kept
    state = json.loads((out / "checkpoint-5" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"] == str(out / "checkpoint-2") and state["best_global_step"] == 2
    best = manifest["results"]["eval_during_training"]["best"]
    assert (best["step"], best["metric"], best["value"]) == (2, "eval/fading_reward", 1.0)
    assert manifest["results"]["eval_during_training"]["evals"] == 3

    # final_model: best -> the saved adapter is checkpoint-2's, not the last step's
    final, at_best, last = (load_file(p / "adapter_model.safetensors") for p in (out, out / "checkpoint-2",
                                                                                   out / "checkpoint-5"))
    assert all((final[k] == at_best[k]).all() for k in final)
    assert any((final[k] != last[k]).any() for k in final)

    # each logged eval/accuracy is what rlft eval says of that checkpoint, answer for answer
    for step in (2, 5):
        theirs = rlft_eval_of(out / f"checkpoint-{step}", tmp_path, data)
        assert eval_texts(out, step) == theirs["texts"]
        assert next(e["eval/accuracy"] for e in evals if e["step"] == step) == pytest.approx(theirs["accuracy"])


@pytest.mark.slow
def test_grpo_evaluates_through_the_synced_vllm_engine_like_transformers(tmp_path):
    from rlft import grpo
    from tests.test_grpo import TINY

    out = tmp_path / "grpo"
    data = ["--dataset_name", "task:arithmetic", "--task_kwargs",
            '{digits: 2, ops: "+-", instruction: "Give only the final number."}']
    manifest = grpo.main([*TINY, *data, *EVAL_ROWS, "--output_dir", str(out), "--engine", "vllm",
                          "--vllm_sync", "merged", "--eval_steps", "1", "--save_strategy", "steps",
                          "--save_steps", "1", "--eval_before_after", "false"])
    evals = [e for e in logged(out) if "eval/accuracy" in e]
    assert [e["step"] for e in evals] == [1, 2]
    rollout = manifest["results"]["rollout"]
    # the eval at step 1 made the sync step 2's rollouts needed (no second one); step 2's eval synced again
    assert rollout["engine"] == "vllm" and rollout["syncs"] == 2 and rollout["sync_check"]["checks"] == 2
    during = manifest["results"]["eval_during_training"]
    assert during["evals"] == 2 and during["eval_seconds_mean"] > 0
    for step in (1, 2):
        theirs = rlft_eval_of(out / f"checkpoint-{step}", tmp_path, data)
        assert eval_texts(out, step) == theirs["texts"], step
        assert evals[step - 1]["eval/accuracy"] == pytest.approx(theirs["accuracy"])


@pytest.mark.slow
def test_early_stopping_ends_the_run_after_patience_evaluations_without_a_new_best(tmp_path):
    from rlft import sft
    from tests import helpers

    out = tmp_path / "sft"
    helpers.FADING_CALLS[0] = 0  # 1.0, then worse at every evaluation
    manifest = sft.main([
        "recipes/sft.yaml", *TINY_MODEL, "--output_dir", str(out), *EVAL_ROWS, "--num_train_samples", "32",
        "--max_steps", "10",
        "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_steps", "100",
        "--eval_before_after", "false", "--report_to", "none", "--reward_funcs", "[tests.helpers:fading_reward]",
        "--eval_steps", "1", "--keep_best", "eval/fading_reward", "--early_stopping_patience", "2",
    ])
    assert [e["step"] for e in logged(out) if "eval/fading_reward" in e] == [1, 2, 3]
    during = manifest["results"]["eval_during_training"]
    assert during["stopped_early_at"] == 3 and during["best"]["step"] == 1
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]  # the best is kept
    assert (out / "adapter_model.safetensors").is_file()  # final_model: last -> step 3's weights, in the run dir


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "orpo"])
def test_preference_stages_evaluate_during_training_beside_their_own_metrics(stage, tmp_path):
    import importlib

    from tests.test_preference import STAGE_FAST, chat_pairs

    data = chat_pairs(tmp_path / "pairs.jsonl", n=10)  # 2 held out (test_size 0.2), with answers
    out = tmp_path / stage
    importlib.import_module(f"rlft.{stage}").main([f"recipes/{stage}.yaml", "--output_dir", str(out),
                                                   "--dataset_name", str(data), *STAGE_FAST, "--eval_steps", "1",
                                                   "--eval_before_after", "false"])
    history = logged(out)
    evals = [e for e in history if "eval/accuracy" in e]
    assert [e["step"] for e in evals] == [1, 2] and all(e["eval/n"] == 2 for e in evals)
    assert [e["step"] for e in history if "loss" in e and "rewards/margins" in e] == [1, 2]
    assert not any(key.startswith("eval/rewards") or key == "eval/loss" for e in evals for key in e)
