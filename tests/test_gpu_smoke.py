"""The GPU smoke check's parts on CPU: its tiny model trains in every stage, and its checks fail only on the device."""

from __future__ import annotations

import pytest

from tests.conftest import run_cmd
from tests.gpu import smoke


def test_tiny_model_is_a_small_llama_with_a_chat_template(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smoke.build_model(tmp_path / "m")
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "llama" and sum(p.numel() for p in model.parameters()) < 1_000_000
    text = tok.apply_chat_template([{"role": "user", "content": "12+30?"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\n12+30?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(tok(text)["input_ids"]) == text  # every character round-trips


def test_without_a_gpu_it_skips_in_one_line():
    proc = run_cmd(["python", "tests/gpu/smoke.py"], timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "gpu-smoke: skipped (no CUDA device visible)"


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(smoke.STAGES))
def test_each_stage_trains_the_tiny_model_and_only_the_cuda_checks_fail_on_cpu(stage, tmp_path):
    model, pairs = smoke.build_model(tmp_path / "m"), smoke.write_pairs(tmp_path / "pairs.jsonl")
    problems, _ = smoke.run_stage(stage, model, pairs, tmp_path, extra=("--bf16", "false"))
    assert problems == ["trained on 'cpu', not CUDA", "closing check generated on 'cpu', not CUDA"]
