"""Every key a stage accepts is used, used only under a stated condition, or refused with one line."""

from __future__ import annotations

import importlib
import re
from dataclasses import fields
from pathlib import Path

import pytest

from rlft.stage import registry
from rlft.stage.parsing import idle_keys as check_settings
from rlft.stage.registry import rules_for
from rlft.stage.skeleton import StageArgs
from tests.conftest import run_cmd

STAGES = {name: registry.get(name).recipe for name in registry.names(is_stage=True)}  # stage: its recipe


def stage_args(stage: str, *extra: str, tmp_path) -> StageArgs:
    module = importlib.import_module(f"rlft.{stage}")
    return StageArgs(*module.parse([STAGES[stage], "--output_dir", str(tmp_path), *extra]))


@pytest.mark.parametrize("stage", list(STAGES))
def test_every_field_of_every_stage_has_a_rule(stage, tmp_path):
    args = stage_args(stage, tmp_path=tmp_path)
    accepted = {f.name for part in args.parts for f in fields(part)}
    rules = rules_for(stage)
    unlisted = sorted(accepted - set(rules))
    assert not unlisted, f"{stage} accepts keys nothing says it uses or refuses: {unlisted}"
    stale = sorted(set(rules) - accepted)
    assert not stale, f"rules for keys {stage} does not accept: {stale}"


@pytest.mark.parametrize(("stage", "flags", "named"), [
    ("grpo", ["--vllm_mode", "server"], "vllm_mode"),
    ("grpo", ["--data_seed", "3"], "data_seed: not used by rlft grpo: GRPO's prompts are ordered by TRL's"),
    ("grpo", ["--log_multimodal", "false"], "log_multimodal"),
    ("grpo", ["--sync_ref_model", "true"], "sync_ref_model: the reference model is a frozen copy only with full"),
    ("sft", ["--eval_strategy", "steps"], "eval_strategy"),
    ("dpo", ["--sft_target_column", "answer"], "sft_target_column"),
    ("orpo", ["--model_init_kwargs", "{\"device_map\": \"auto\"}"], "model_init_kwargs"),
    ("grpo", ["--resume_from_checkpoint", "runs/x/checkpoint-2"], "resume: true"),
    ("sft", ["--environment", "examples.guess_number.env:GuessNumber"], "environment: not used by rlft sft"),
])
def test_a_refused_key_is_one_line_on_stderr_and_exit_2(stage, flags, named, tmp_path):
    out = tmp_path / "run"
    proc = run_cmd(["python", "-m", f"rlft.{stage}", STAGES[stage], "--output_dir", str(out),
                    *flags], timeout=120)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and named in lines[0]
    assert not out.exists(), "a refused run must not create its output directory"


def test_refused_in_a_recipe_file_too(tmp_path):
    from rlft.core.errors import UserError

    recipe = tmp_path / "r.yaml"
    recipe.write_text(Path("recipes/sft.yaml").read_text() + "\ndo_eval: true\n")
    with pytest.raises(UserError, match="do_eval: not used by rlft sft"):  # by the parse, before TRL's config
        importlib.import_module("rlft.sft").parse([str(recipe), "--output_dir", str(tmp_path / "o")])


def test_keys_for_the_other_engine_are_named_not_refused(tmp_path):
    args = stage_args("grpo", "--engine", "hf", "--vllm_max_model_len", "512", "--min_p", "0.1", tmp_path=tmp_path)
    assert check_settings("grpo", args) == [  # math.yaml sets the engine's share of memory itself
        "vllm_gpu_memory_utilization (only with engine: vllm)", "vllm_max_model_len (only with engine: vllm)"]
    args = stage_args("grpo", "--engine", "vllm", "--cache_implementation", "static", tmp_path=tmp_path)
    assert check_settings("grpo", args) == ["cache_implementation (only with engine: hf)"]
    args = stage_args("sft", "--max_turns", "2", tmp_path=tmp_path)  # SFT without tools: no closing tool loop
    assert check_settings("sft", args) == ["max_turns (only with tools)"]
    args = stage_args("sft", "--use_peft", "false", tmp_path=tmp_path)  # sft.yaml sets lora_r and friends
    assert all("only with use_peft: true" in key for key in check_settings("sft", args))


def test_defaults_and_the_shipped_recipes_set_nothing_refused(tmp_path):
    for stage in STAGES:
        assert check_settings(stage, stage_args(stage, tmp_path=tmp_path)) == []


def test_keys_of_the_other_vllm_path_are_named_by_the_machine(tmp_path, monkeypatch):
    """On CPU TRL's colocate keys do nothing; on CUDA (mocked) rlft's engine's dtype does nothing."""
    args = stage_args("grpo", "--engine", "vllm", "--vllm_enable_sleep_mode", "true", "--vllm_dtype", "float32",
                      tmp_path=tmp_path)
    assert check_settings("grpo", args) == [
        "vllm_enable_sleep_mode (only with engine: vllm on CUDA (TRL's colocate mode))"]
    monkeypatch.setattr("rlft.core.accelerator.cuda_available", lambda: True)
    assert check_settings("grpo", args) == [
        "vllm_dtype (only with rlft's vLLM engine: engine: vllm on CPU, vllm_sync: adapter on CUDA)"]
    args = stage_args("grpo", "--engine", "vllm", "--vllm_sync", "adapter", "--vllm_dtype", "float32",
                      tmp_path=tmp_path)
    assert check_settings("grpo", args) == []  # rlft's own engine on CUDA reads vllm_dtype


@pytest.mark.parametrize(("stage", "flags", "message"), [
    ("dpo", ["--loss_type", "[exo_pair]", "--loss_weights", "[1.0]"],
     "loss_type exo_pair needs label_smoothing above 0 (the EXO paper uses 1e-3)"),
    ("grpo", ["--loss_type", "luspo"], "loss_type luspo needs importance_sampling_level: sequence"),
    ("grpo", ["--loss_type", "vespo", "--engine", "vllm"],
     "loss_type vespo with engine: vllm needs vllm_importance_sampling_mode: token_truncate or token_mask"),
], ids=["exo_pair", "luspo", "vespo-vllm"])
def test_a_loss_that_needs_another_setting_is_refused_in_one_line_before_anything_loads(stage, flags, message,
                                                                                       tmp_path):
    """TRL raised these when the trainer was built, after the model (and engine) loaded, or trained another loss."""
    out = tmp_path / "run"
    proc = run_cmd([".venv/bin/rlft", stage, STAGES[stage], *flags, "--output_dir", str(out)])
    [line] = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and line.startswith(f"error: {message}"), line
    assert not out.exists()


@pytest.mark.parametrize(("stage", "value", "valid"), [
    ("grpo", "dapoo", "'grpo', 'dr_grpo', 'dapo'"),
    ("dpo", "[sigmoid, hing]", "a list, each one of 'sigmoid', 'hinge'"),
    ("sft", "nlll", "one of 'nll', 'dft', 'chunked_nll'"),
])
def test_a_misspelled_loss_type_is_one_line_listing_the_valid_ones_before_anything_loads(stage, value, valid,
                                                                                          tmp_path):
    out = tmp_path / "run"
    proc = run_cmd([".venv/bin/rlft", stage, STAGES[stage], "--loss_type", value, "--output_dir", str(out)])
    [line] = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "recipe key 'loss_type'" in line and valid in line, line
    assert not out.exists()


def test_the_loss_types_rlft_accepts_are_the_ones_trl_documents():
    from trl import DPOConfig, GRPOConfig, SFTConfig

    from rlft.stage.parsing import CHOICES

    for stage, config in (("grpo", GRPOConfig), ("dpo", DPOConfig), ("sft", SFTConfig)):
        field = {f.name: f for f in fields(config)}["loss_type"]
        documented = str(field.metadata.get("help", "")) + str(field.metadata.get("choices", ""))
        for value in CHOICES[stage]["loss_type"]:
            assert f"'{value}'" in documented, (stage, value)
        named = set(re.findall(r"'([a-z_]+)'", documented)) - set(CHOICES[stage]["loss_type"])
        assert not named - {"sequence", "token"}, (stage, named)  # importance_sampling_level, named in the help


def test_a_moving_reference_is_named_idle_without_sync_ref_model():
    args = stage_args("grpo", "--ref_model_mixup_alpha", "0.5", tmp_path=Path("/tmp/unused"))
    assert "ref_model_mixup_alpha (only with sync_ref_model: true)" in check_settings("grpo", args)


def test_data_keys_for_the_other_kind_of_data_are_named():
    args = stage_args("grpo", "--dataset_name", "my.jsonl", tmp_path=Path("/tmp/unused"))  # math.yaml: a task
    assert "task_kwargs (only with task: data)" in check_settings("grpo", args)
    args = stage_args("sft", "--test_size", "0.2", "--prompt_column", "question", tmp_path=Path("/tmp/unused"))
    idle = check_settings("sft", args)
    assert [i.split(" (")[0] for i in idle] == ["test_size", "prompt_column"], idle
    assert idle[0].endswith("(only with file or hub data (a task: generator makes its own splits and prompts))")


def test_keys_idle_on_this_data_or_machine_are_named():
    # prompt_instruction words the prompts prompt_column builds; rows that come with prompts keep theirs
    args = stage_args("grpo", "--dataset_name", "my.jsonl", "--prompt_instruction", "Box it.",
                      tmp_path=Path("/tmp/unused"))
    assert [i.split(" (")[0] for i in check_settings("grpo", args)] == ["task_kwargs", "prompt_instruction"]
    # transformers turns pinned memory off with use_cpu, rlft's default without CUDA
    args = stage_args("sft", "--dataloader_pin_memory", "false", tmp_path=Path("/tmp/unused"))
    assert check_settings("sft", args) == ["dataloader_pin_memory (only with a CUDA device)"]


def test_a_process_group_backend_in_one_process_is_one_line_naming_it(tmp_path):
    proc = run_cmd(["python", "-m", "rlft.sft", STAGES["sft"], "--ddp_backend", "gloo", "--output_dir",
                    str(tmp_path / "run")], timeout=120)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        ("error: ddp_backend: gloo is for a launch of several processes (accelerate launch --num_processes N, "
        "launch/*.yaml); this is one process: drop it")], proc.stderr
    assert not (tmp_path / "run").exists()
