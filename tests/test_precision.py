"""bf16 on a CPU where it is slower than float32: rlft trains and generates in float32 instead."""

from __future__ import annotations

import logging
import os

import pytest

from rlft import grpo
from rlft.core import runtime
from rlft.rollout.vllm_runtime import engine_dtype
from rlft.stage.run import StageRun


@pytest.fixture
def slow_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: 58.0)  # as measured on an AVX2-only EPYC


@pytest.fixture
def fast_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: 0.6)  # AMX: bf16 faster than float32


def test_recipe_bf16_falls_back_to_float32_with_one_warning(slow_bf16, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # as `accelerate launch --config_file launch/zero2.yaml` sets
    caplog.set_level(logging.WARNING, logger="rlft.core.runtime")
    (*_, run, cfg), recipe = grpo.parse(["recipes/math.yaml", "--bf16", "true", "--output_dir", str(tmp_path / "run")])
    assert cfg.bf16 is False and recipe["bf16"] is True  # the recipe on disk and in the manifest keeps asking
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "no"  # or DeepSpeed gets a bf16 config and refuses
    assert not caplog.records  # nothing yet: a refused output_dir prints its one-line error alone
    StageRun("grpo", recipe, run, None).check(cfg.output_dir)
    assert len(caplog.records) == 1 and "58.0x slower than float32" in caplog.text and "float32" in caplog.text


def test_float32_recipe_overrides_the_launchers_bf16(fast_bf16, monkeypatch):
    # launch/zero2.yaml says mixed_precision: bf16; recipes/math.yaml says bf16: false. Left as bf16, DeepSpeed
    # stops with "DeepSpeed config values that mismatch TrainingArguments values".
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    (*_, cfg), _ = grpo.parse(["recipes/math.yaml"])
    assert cfg.bf16 is False and os.environ["ACCELERATE_MIXED_PRECISION"] == "no"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    (*_, cfg), _ = grpo.parse(["recipes/math.yaml", "--bf16", "true"])  # a bf16 run keeps the launcher's bf16
    assert cfg.bf16 is True and os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_recipe_bf16_kept_where_the_cpu_has_it(fast_bf16, caplog):
    (*_, cfg), _ = grpo.parse(["recipes/math.yaml", "--bf16", "true"])
    assert cfg.bf16 is True and not caplog.records


def test_bf16_without_amx_is_float32_too(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: 1.9)  # AVX512-BF16 Xeon, no AMX: as measured here
    (*_, cfg), _ = grpo.parse(["recipes/math.yaml", "--bf16", "true"])
    assert cfg.bf16 is False and engine_dtype("auto", prefer_bf16=True) == "float32"


def test_engine_dtype_follows_the_trainer_on_cpu(slow_bf16):
    assert engine_dtype("auto", prefer_bf16=True) == "float32"
    assert engine_dtype("auto", prefer_bf16=False) == "float32"
    assert engine_dtype("bfloat16", prefer_bf16=False) == "bfloat16"  # asked for explicitly: honoured


def test_engine_dtype_uses_bf16_where_it_is_native(fast_bf16):
    assert engine_dtype("auto", prefer_bf16=True) == "bfloat16"
    assert engine_dtype("auto", prefer_bf16=False) == "float32"  # a float32 trainer gets a float32 engine


def test_measured_slowdown_is_a_positive_ratio():
    runtime.cpu_bf16_slowdown.cache_clear()
    assert runtime.cpu_bf16_slowdown() > 0
