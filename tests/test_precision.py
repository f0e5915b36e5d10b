"""bf16 on a CPU where it is slower than float32: rlft trains and generates in float32 instead."""

from __future__ import annotations

import logging
import os

import pytest

from rlft import grpo
from rlft.core import runtime
from rlft.rollout.vllm_runtime import engine_dtype
from rlft.stage.run import StageRun
from rlft.stage.skeleton import StageArgs


def settled(argv):
    """The GRPO arguments that run on this machine: parsed, then settled (where the precision is decided)."""
    args = grpo.GRPO().settle(StageArgs(*grpo.parse(argv)))
    return args.parts, args.recipe


@pytest.fixture
def slow_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: 58.0)  # as measured on an AVX2-only EPYC


@pytest.fixture
def fast_bf16(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: 0.6)  # AMX: bf16 faster than float32


def test_recipe_bf16_falls_back_to_float32_with_one_warning(slow_bf16, caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # as `accelerate launch --config_file launch/zero2.yaml` sets
    caplog.set_level(logging.WARNING, logger="rlft.core.runtime")
    assert grpo.parse(["recipes/math.yaml", "--bf16", "true"])[0][-1].bf16 is True  # parsing measures nothing
    assert not caplog.records
    (*_, run, cfg), recipe = settled(["recipes/math.yaml", "--bf16", "true", "--output_dir", str(tmp_path / "run")])
    assert cfg.bf16 is False and recipe["bf16"] is True  # the recipe on disk and in the manifest keeps asking
    assert cfg.mixed_precision == "no"  # or DeepSpeed gets a bf16 config and refuses
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"  # parsing leaves the environment as it was
    assert not caplog.records  # nothing yet: a refused output_dir prints its one-line error alone
    StageRun("grpo", recipe, run, None).check(cfg.output_dir)
    assert len(caplog.records) == 1 and "58.0x slower than float32" in caplog.text and "float32" in caplog.text


def test_float32_recipe_overrides_the_launchers_bf16(fast_bf16, monkeypatch):
    # launch/zero2.yaml says mixed_precision: bf16; recipes/math.yaml says bf16: false. Left as bf16, DeepSpeed
    # stops with "DeepSpeed config values that mismatch TrainingArguments values".
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    (*_, cfg), _ = settled(["recipes/math.yaml"])
    assert cfg.bf16 is False and cfg.mixed_precision == "no"
    (*_, cfg), _ = settled(["recipes/math.yaml", "--bf16", "true"])  # a bf16 run keeps the launcher's bf16
    assert cfg.bf16 is True and cfg.mixed_precision == "bf16"
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == "bf16"


def test_recipe_bf16_kept_where_the_cpu_has_it(fast_bf16, caplog):
    (*_, cfg), _ = settled(["recipes/math.yaml", "--bf16", "true"])
    assert cfg.bf16 is True and not caplog.records


def test_bf16_without_amx_is_float32_too(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: 1.9)  # AVX512-BF16 Xeon, no AMX: as measured here
    (*_, cfg), _ = settled(["recipes/math.yaml", "--bf16", "true"])
    assert cfg.bf16 is False and engine_dtype("auto", prefer_bf16=True) == "float32"


def test_engine_dtype_follows_the_trainer_on_cpu(slow_bf16):
    assert engine_dtype("auto", prefer_bf16=True) == "float32"
    assert engine_dtype("auto", prefer_bf16=False) == "float32"
    assert engine_dtype("bfloat16", prefer_bf16=False) == "bfloat16"  # asked for explicitly: honoured


def test_engine_dtype_uses_bf16_where_it_is_native(fast_bf16):
    assert engine_dtype("auto", prefer_bf16=True) == "bfloat16"
    assert engine_dtype("auto", prefer_bf16=False) == "float32"  # a float32 trainer gets a float32 engine


def fake_timer(bf16_ticks: int, fp32_ticks: int):
    """A clock under which every bf16 product takes ``bf16_ticks`` and every float32 one ``fp32_ticks``.

    ``measure_bf16_slowdown`` times bf16 then float32, alternating, 10 rounds; each product reads the clock twice.
    """
    now, calls = [0], [0]

    def timer():
        calls[0] += 1
        if calls[0] % 2 == 0:  # the reading after a product: advance by that product's cost
            now[0] += bf16_ticks if (calls[0] // 2) % 2 == 1 else fp32_ticks
        return now[0]

    return timer


@pytest.mark.parametrize(("bf16", "fp32", "ratio", "keeps_bf16"), [(3, 1, 3.0, False), (1, 2, 0.5, True),
                                                                    (6, 5, 1.2, False)])
def test_the_probe_decides_from_its_timing(bf16, fp32, ratio, keeps_bf16, monkeypatch, tmp_path):
    assert runtime.measure_bf16_slowdown(timer=fake_timer(bf16, fp32)) == pytest.approx(ratio)
    monkeypatch.setattr(runtime, "cpu_bf16_slowdown", lambda: runtime.measure_bf16_slowdown(fake_timer(bf16, fp32)))
    (*_, cfg), _ = settled(["recipes/math.yaml", "--bf16", "true", "--output_dir", str(tmp_path)])
    assert cfg.bf16 is keeps_bf16  # at BF16_MAX_SLOWDOWN (1.2x) and above: float32


def test_every_process_reads_the_machines_one_measurement(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RLFT_BF16_SLOWDOWN", raising=False)
    measured = []
    monkeypatch.setattr(runtime, "measure_bf16_slowdown", lambda: measured.append(1) or 58.0)
    runtime.cpu_bf16_slowdown.cache_clear()
    try:
        assert runtime.cpu_bf16_slowdown() == 58.0
        runtime.cpu_bf16_slowdown.cache_clear()  # as a second rank (a new process) would start
        monkeypatch.setattr(runtime, "measure_bf16_slowdown", lambda: pytest.fail("measured twice"))
        assert runtime.cpu_bf16_slowdown() == 58.0 and measured == [1]
        assert list((tmp_path / "rlft").glob("bf16-slowdown-*.json"))
        runtime.cpu_bf16_slowdown.cache_clear()
        monkeypatch.setenv("RLFT_BF16_SLOWDOWN", "0.5")  # the override wins
        assert runtime.cpu_bf16_slowdown() == 0.5
    finally:
        runtime.cpu_bf16_slowdown.cache_clear()


def test_bf16_on_a_gpu_without_bfloat16_is_refused_naming_the_card(monkeypatch):
    import torch

    from rlft.core.errors import UserError

    monkeypatch.setattr("rlft.core.accelerator.cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla T4")
    with pytest.raises(UserError, match=r"bf16: Tesla T4 \(compute capability 7.5\) has no bfloat16; set bf16: "
                                        "false and fp16: true"):
        runtime.cpu_precision({"bf16": True, "use_cpu": False})
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert runtime.cpu_precision({"bf16": True, "use_cpu": False}) == {"bf16": True, "use_cpu": False}


@pytest.mark.parametrize(("launched", "recipe", "becomes"), [
    ("bf16", {"fp16": True}, "fp16"), ("no", {"bf16": True}, "bf16"), ("fp16", {}, "no"), ("bf16", {"bf16": True}, "bf16"),
])
def test_the_launchers_precision_follows_the_recipe(launched, recipe, becomes, monkeypatch):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", launched)
    runtime.launcher_follows_recipe(recipe)
    assert os.environ["ACCELERATE_MIXED_PRECISION"] == becomes
