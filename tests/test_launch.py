"""`accelerate launch` with the shipped configs, on CPU (DeepSpeed picks its CPU accelerator)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cmd
from tests.helpers import tiny_model_dir

pytestmark = pytest.mark.slow

TINY = ["--model_name_or_path", str(tiny_model_dir()), "--num_train_samples", "16", "--per_device_train_batch_size", "2", "--logging_steps", "1",
        "--save_strategy", "no", "--eval_before_after", "false"]


@pytest.mark.parametrize("config", ["launch/zero2.yaml", None], ids=["zero2", "default-config"])
def test_accelerate_launch_sft(config, tmp_path):
    out = tmp_path / "run"
    launcher = ["accelerate", "launch", *(["--config_file", config] if config else [])]
    result = run_cmd([*launcher, "rlft/sft.py", "recipes/sft.yaml",
                      "--max_steps", "2", "--output_dir", str(out), *TINY], timeout=900,
                     env={"HF_HOME": str(tmp_path / "hf")})  # no user accelerate config: the defaults
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "adapter_model.safetensors").exists()
    log = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]
    launch = json.loads((out / "rlft_manifest.json").read_text())["launch"]
    if config and "zero2" in config:
        assert launch["distributed_type"] == "DEEPSPEED" and launch["zero_stage"] == 2
    else:
        assert launch["num_processes"] == 1 and launch["device"] == "cpu"


def test_launch_configs_are_valid_yaml():
    import yaml

    from tests.conftest import REPO

    for path in sorted((REPO / "launch").glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        assert cfg["num_processes"] >= 1 and cfg["distributed_type"] in ("NO", "DEEPSPEED", "MULTI_GPU")
        if cfg["distributed_type"] == "DEEPSPEED":
            assert cfg["deepspeed_config"]["zero_stage"] in (2, 3)
            assert cfg["mixed_precision"] == "bf16"


GRPO_TINY = ["--model_name_or_path", str(tiny_model_dir()), "--max_steps", "2", "--per_device_train_batch_size", "4", "--num_generations", "4",
             "--max_completion_length", "16", "--num_train_samples", "32", "--num_test_samples", "4",
             "--eval_before_after", "false", "--save_strategy", "no", "--report_to", "none",
             "--log_completions", "false", "--engine", "hf"]


VLLM = ["--engine", "vllm", "--vllm_gpu_memory_utilization", "0.15", "--vllm_max_model_len", "256"]


@pytest.mark.parametrize(
    "launcher,expected,engine",
    [
        (["--config_file", "launch/zero2.yaml"], {"zero_stage": 2, "num_processes": 1}, []),
        # rlft's own vLLM engine under ZeRO-2 (one process: parameters are not partitioned)
        (["--config_file", "launch/zero2.yaml"], {"zero_stage": 2, "num_processes": 1}, VLLM),
        # two processes standing in for two GPUs: rlft's CPU defaults add use_cpu + gloo
        (["--config_file", "launch/zero3_multi.yaml", "--num_processes", "2"], {"zero_stage": 3, "num_processes": 2},
         []),
    ],
    ids=["zero2", "zero2-vllm", "zero3-2proc"],
)
def test_grpo_under_deepspeed(launcher, expected, engine, tmp_path):
    if engine:
        pytest.importorskip("vllm")
    out = tmp_path / "run"
    result = run_cmd(["accelerate", "launch", *launcher, "rlft/grpo.py", "recipes/math.yaml", *GRPO_TINY, *engine,
                      "--output_dir", str(out)], timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    launch = json.loads((out / "rlft_manifest.json").read_text())["launch"]
    assert launch["distributed_type"] == "DEEPSPEED"
    assert {k: launch[k] for k in expected} == expected
    log = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]
    rollout = json.loads((out / "rlft_manifest.json").read_text())["results"]["rollout"]
    assert rollout["engine"] == ("vllm" if engine else "hf") and "fallback_from" not in rollout


def test_the_closing_check_under_zero3_across_processes_is_refused_before_anything_loads(monkeypatch, tmp_path):
    from rlft import sft
    from rlft.core.errors import UserError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    with pytest.raises(UserError, match="eval_before_after: ZeRO-3 splits the model across the 2 processes"):
        sft.main(["recipes/sft.yaml", "--output_dir", str(tmp_path / "o")])
    assert not (tmp_path / "o" / "rlft_manifest.json").exists()
