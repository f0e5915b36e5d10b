"""QLoRA on CPU: the base loads in 4 bits, LoRA trains on it, and every later load answers like HF+peft.

A QLoRA adapter learned against the dequantized 4-bit weights; loading the run
(``rlft eval``, ``rlft merge``, the next stage) must merge it into exactly
those weights, not into the original float ones.
"""

from __future__ import annotations

import json

import pytest
import torch

from rlft import sft
from rlft.core.loading import LoadOptions, is_quantized

pytest.importorskip("bitsandbytes")
pytestmark = pytest.mark.slow

FAST = ["--num_train_samples", "16", "--num_test_samples", "4", "--per_device_train_batch_size", "4",
        "--max_steps", "2", "--logging_steps", "1", "--save_strategy", "no", "--eval_before_after", "false",
        "--learning_rate", "5e-3", "--report_to", "none", "--load_in_4bit", "true", "--use_bnb_nested_quant", "true"]
PROMPTS = [[{"role": "user", "content": q}] for q in ("What is 2 + 3?", "Name a colour.", "What is 12 - 5?")]


@pytest.fixture(scope="module")
def qlora_run(tmp_path_factory, bundled_dir):
    out = tmp_path_factory.mktemp("qlora") / "run"
    manifest = sft.main(["recipes/sft.yaml", "--output_dir", str(out), *FAST])
    return out, manifest


def greedy(model, tokenizer):
    from rlft.evaluation.generation import hf_completions

    return hf_completions(model, tokenizer, PROMPTS, max_new_tokens=16, batch_size=3)


def test_qlora_trains_an_adapter_on_a_4bit_base_and_records_it(qlora_run):
    from safetensors.torch import load_file

    out, manifest = qlora_run
    assert manifest["load_options"]["quantization"] == {"bits": 4, "quant_type": "nf4", "double_quant": True,
                                                        "storage": None}
    lora_b = [t for k, t in load_file(out / "adapter_model.safetensors").items() if "lora_B" in k]
    assert lora_b and all(torch.count_nonzero(t) > 0 for t in lora_b), "training must move LoRA B off zero"
    log = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2]


def test_loading_the_run_merges_into_the_dequantized_base(qlora_run, bundled_dir, bundled_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rlft.core.models import load_model

    out, _ = qlora_run
    options = LoadOptions(quantization={"bits": 4, "quant_type": "nf4", "double_quant": True})
    four_bit = AutoModelForCausalLM.from_pretrained(bundled_dir, dtype=torch.float32,
                                                    **options.from_pretrained_kwargs(torch.float32))
    assert is_quantized(four_bit)
    reference = PeftModel.from_pretrained(four_bit, str(out))  # HF + peft on the 4-bit base, as trained
    ids = bundled_tokenizer.apply_chat_template(PROMPTS[0], add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
    # Training numerics: with activations that need gradients (as training, with input grads enabled),
    # bitsandbytes dequantizes and multiplies in float32. A forward without them, on CPU, takes its
    # inference kernel instead, which repacks the weights in place and differs by up to ~1 logit on
    # this model; so the training-numerics forward comes first.
    reference.enable_input_require_grads()
    trained_logits = reference(**ids).logits.detach()
    merged = load_model(str(out), "float32")  # what rlft eval / merge / the next stage load
    assert not is_quantized(merged) and not hasattr(merged, "peft_config")
    with torch.no_grad():
        gap = (trained_logits - merged(**ids).logits).abs().max().item()
        naive = PeftModel.from_pretrained(load_model("bundled:smollm2-135m-instruct", "float32"), str(out))
        naive_gap = (trained_logits - naive.merge_and_unload()(**ids).logits).abs().max().item()
    assert gap < 1e-3, f"merged QLoRA model's logits differ from HF+peft's by {gap}"
    assert naive_gap > 0.1, "merging into the original float weights leaves the quantization error out"
    assert greedy(merged, bundled_tokenizer) == greedy(reference, bundled_tokenizer)
    from rlft.commands.merge import merge

    merge(str(out), out.parent / "merged")  # rlft merge: the same dequantized merge, saved as a plain model
    saved = AutoModelForCausalLM.from_pretrained(out.parent / "merged", dtype=torch.float32)
    with torch.no_grad():
        assert (saved(**ids).logits - merged(**ids).logits).abs().max().item() < 1e-5


def test_quantized_full_fine_tuning_is_refused(tmp_path):
    from tests.conftest import run_cmd

    proc = run_cmd([".venv/bin/python", "-m", "rlft.sft", "recipes/sft.yaml", "--output_dir", str(tmp_path / "r"),
                    "--load_in_4bit", "true", "--use_peft", "false"])
    assert proc.returncode == 2 and "use_peft: true" in proc.stderr.strip().splitlines()[-1]


def test_revision_and_attention_reach_from_pretrained(monkeypatch, bundled_dir):
    """``model_revision`` and ``attn_implementation`` were accepted and dropped; they reach the loader now."""
    from transformers import AutoModelForCausalLM

    from rlft.core.arguments import ModelArguments
    from rlft.core.models import load_model

    seen = {}
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda path, **kw: seen.update(kw) or torch.nn.Module())
    options = LoadOptions.from_args(ModelArguments(model_revision="v1.1", attn_implementation="sdpa"))
    load_model("bundled:smollm2-135m-instruct", options=options)
    assert seen["revision"] == "v1.1" and seen["attn_implementation"] == "sdpa" and "quantization_config" not in seen
    load_model("bundled:smollm2-135m-instruct",
               options=LoadOptions.from_args(ModelArguments(load_in_4bit=True, use_peft=True)))
    assert seen["quantization_config"].load_in_4bit and seen["device_map"] == {"": "cpu"}


def test_eight_bit_is_refused_naming_why(tmp_path):
    from tests.conftest import run_cmd

    proc = run_cmd([".venv/bin/python", "-m", "rlft.sft", "recipes/sft.yaml", "--output_dir", str(tmp_path / "r"),
                    "--load_in_8bit", "true"])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "LLM.int8 quantizes activations" in proc.stderr and "load_in_4bit" in proc.stderr
    assert not (tmp_path / "r").exists()
