"""The memory plan: the model's shape from its config, refusals before the model loads, `rlft plan`.

How close the plan is to a measured peak is a benchmark (tests/bench/bench_memory.py,
bench/results/memory.json), not a test: these check what the plan is made of and what a run does with it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import replace

import pytest

from rlft.stage.memory_plan import GB, ModelShape, Workload, cheaper, estimate
from tests.conftest import run_cmd
from tests.helpers import tiny_model_dir


def tensor_elements(path) -> int:
    """Elements of every tensor in a safetensors file, from its JSON header (no torch)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    total = 0
    for name, info in header.items():
        if name != "__metadata__":
            count = 1
            for dim in info["shape"]:
                count *= dim
            total += count
    return total


@pytest.mark.parametrize("which", ["bundled", "tiny"])
def test_the_shape_counts_the_parameters_the_checkpoint_holds(which, bundled_dir):
    """Tied (the bundled model) and untied (the tiny one) embeddings: the count is the weights file's."""
    model_dir = bundled_dir if which == "bundled" else tiny_model_dir()
    assert ModelShape.of_model_dir(model_dir).params == tensor_elements(model_dir / "model.safetensors")


SHAPE = ModelShape(params=134_515_008, layers=30, hidden=576, intermediate=1536, kv_dim=192, vocab=49152)


def test_more_tokens_need_more_memory_and_checkpointing_and_lora_need_less():
    small, large = (estimate(SHAPE, Workload(sequences=n, tokens=256), 64 * GB).peak for n in (4, 16))
    checkpointed = estimate(SHAPE, Workload(sequences=16, tokens=256, gradient_checkpointing=True), 64 * GB).peak
    lora = estimate(SHAPE, Workload(sequences=16, tokens=256, trained_params=5_000_000), 64 * GB).peak
    assert small < large and checkpointed < large and lora < large


def test_the_vllm_share_is_of_the_machines_memory():
    plan = estimate(SHAPE, Workload(sequences=4, tokens=128, engine="vllm", engine_fraction=0.2,
                                    machine_bytes=24 * GB), 64 * GB)
    [engine] = [p for p in plan.parts if p.name == "engine"]
    assert engine.bytes >= 0.2 * 24 * GB and "0.2 of 24.0 GB" in engine.why


def test_the_suggested_change_fits_and_none_is_suggested_when_nothing_would():
    plan = estimate(SHAPE, Workload(sequences=32, tokens=512), 8 * GB)
    assert not plan.fits
    change = cheaper(plan)
    batch = int(change.split("per_device_train_batch_size: ")[1].split()[0])
    assert estimate(SHAPE, Workload(sequences=batch, tokens=512), 8 * GB).fits
    assert cheaper(estimate(SHAPE, Workload(sequences=1, tokens=512), 1 * GB)).startswith("no micro-batch")


def test_auto_keeps_the_optimizer_step_and_takes_the_fastest_setting_that_fits():
    from rlft.core.errors import UserError
    from rlft.stage.memory_check import choose

    work = Workload(sequences=8, tokens=512, accumulation=4)
    roomy = choose(estimate(SHAPE, work, 64 * GB), ["per_device_train_batch_size"], "error")
    assert (roomy.examples, roomy.accumulation, roomy.checkpointing) == (32, 1, False)  # the whole step at once
    tight = choose(estimate(SHAPE, work, 6 * GB), ["per_device_train_batch_size", "gradient_checkpointing"], "error")
    assert tight.plan.fits and tight.examples * tight.accumulation == 32 and not tight.checkpointing
    bigger = estimate(SHAPE, replace(work, sequences=tight.examples * 2, accumulation=tight.accumulation // 2), 6 * GB)
    assert not bigger.fits  # the next larger micro-batch would not have fit
    assert choose(estimate(SHAPE, work, 6 * GB), ["per_device_train_batch_size"], "error", divides=8).examples <= 8
    with pytest.raises(UserError, match="per_device_train_batch_size: auto: no setting fits"):
        choose(estimate(SHAPE, work, 1 * GB), ["per_device_train_batch_size"], "error")
    with pytest.raises(UserError, match="made for CPU runs"):
        choose(None, ["gradient_checkpointing"], "error")


def test_rlft_plan_says_what_auto_chose():
    run = run_cmd([".venv/bin/rlft", "plan", "recipes/sft.yaml", "--per_device_train_batch_size", "auto",
                   "--gradient_checkpointing", "auto"], env={"RLFT_MEMORY_GB": "3"})
    assert run.returncode == 0, run.stderr[-2000:]
    chose = run.stdout.strip().splitlines()[-1]
    assert chose == ("auto chose per_device_train_batch_size: 4, gradient_accumulation_steps: 2, "
                     "gradient_checkpointing: false"), run.stdout  # 8 rows do not fit in 3 GB, 4 do
    wrong = run_cmd([".venv/bin/rlft", "plan", "recipes/sft.yaml", "--per_device_train_batch_size", "big"])
    assert wrong.returncode == 2 and "must be int or one of 'auto', got 'big'" in wrong.stderr


def test_a_run_that_cannot_fit_is_refused_in_one_line_before_the_model_loads(tmp_path):
    out = tmp_path / "run"
    run = run_cmd([".venv/bin/rlft", "sft", "recipes/sft.yaml", "--output_dir", str(out)],
                  env={"RLFT_MEMORY_GB": "2.5"})
    assert run.returncode == 2, run.stderr[-2000:]
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("error: memory plan: this run needs about ") and "2.5 GB is available" in line
    assert "per_device_train_batch_size: " in line and "would fit (memory_check: warn" in line
    assert not out.exists()


def test_rlft_plan_prints_the_parts_and_says_what_would_fit():
    fits = run_cmd([".venv/bin/rlft", "plan", "recipes/math.yaml"], env={"RLFT_MEMORY_GB": "64"})
    assert fits.returncode == 0, fits.stderr[-2000:]
    for part in ("runtime", "weights", "optimizer", "activations", "logits", "engine", "peak", "available"):
        assert f"  {part} " in fits.stdout, part
    assert "micro-batch 32 rows" in fits.stdout and "fits (" in fits.stdout
    tight = run_cmd([".venv/bin/rlft", "plan", "recipes/math.yaml"], env={"RLFT_MEMORY_GB": "3"})
    assert tight.returncode == 1 and "does not fit: no micro-batch" in tight.stdout, tight.stdout


@pytest.mark.slow
def test_memory_check_warn_runs_anyway_and_records_the_plan(tmp_path):
    from rlft import sft

    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLFT_MEMORY_GB", "0.5")
        manifest = sft.main(["recipes/sft.yaml", "--model_name_or_path", str(tiny_model_dir()), "--max_steps", "1",
                             "--num_train_samples", "8", "--num_test_samples", "2", "--eval_before_after", "false",
                             "--save_strategy", "no", "--memory_check", "warn", "--output_dir", str(out)])
    plan = manifest["results"]["memory_plan"]
    assert manifest["status"] == "complete" and plan["fits"] is False and plan["available_bytes"] == GB // 2
    assert plan["workload"]["sequences"] == 8 and plan["workload"]["tokens"] <= 256  # the recipe's max_length
    assert "memory plan: this run needs about" in (out / "run.log").read_text()


@pytest.mark.slow
def test_an_auto_micro_batch_trains_as_chosen_and_the_manifest_says_why(tmp_path):
    from rlft import sft

    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RLFT_MEMORY_GB", "1.85")  # the tiny model: 8 rows need 1.95 GB or more, 2 at most 1.75
        manifest = sft.main(["recipes/sft.yaml", "--model_name_or_path", str(tiny_model_dir()), "--max_steps", "1",
                             "--num_train_samples", "16", "--num_test_samples", "2", "--eval_before_after", "false",
                             "--save_strategy", "no", "--per_device_train_batch_size", "auto",
                             "--output_dir", str(out)])
    settled, plan = manifest["settled"], manifest["results"]["memory_plan"]
    batch, steps = (settled[k]["value"] for k in ("per_device_train_batch_size", "gradient_accumulation_steps"))
    assert batch < 8 and batch * steps == 8 and settled["per_device_train_batch_size"]["why"].startswith("auto")
    assert plan["fits"] and plan["workload"]["sequences"] == batch
    assert f"per_device_train_batch_size: auto chose per_device_train_batch_size: {batch}," in (out / "run.log").read_text()


def test_a_config_without_llama_style_names_skips_the_plan_and_says_so(tmp_path, caplog):
    from types import SimpleNamespace

    from rlft.stage.memory_check import plan_run

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 64, "n_layer": 2,
                                                      "n_head": 2, "vocab_size": 100}))
    args = SimpleNamespace(model=SimpleNamespace(model_name_or_path=str(tmp_path), trust_remote_code=False),
                           train=SimpleNamespace(use_cpu=True))
    assert plan_run(args, {"sequences": 1, "tokens": 8}) is None
    assert "memory plan: not made for" in caplog.text and "memory_check skipped" in caplog.text
