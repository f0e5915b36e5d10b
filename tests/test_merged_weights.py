"""The merged-weights file vLLM reloads from: rewritten in place, it always holds base + current LoRA delta."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlft.rollout.merged_weights import MergedWeightsFile, merged_state_dict


def tiny_llama(tie: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=tie)
    return LlamaForCausalLM(config)


def with_lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))


def assert_file_holds(path, model):
    stored = load_file(path)
    expected = merged_state_dict(model)
    assert set(stored) <= set(expected)
    for key, tensor in stored.items():
        torch.testing.assert_close(tensor, expected[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("tie", [True, False], ids=["tied-embeddings", "untied"])
def test_in_place_updates_follow_the_lora_weights(tmp_path, tie):
    model = with_lora(tiny_llama(tie))
    file = MergedWeightsFile(model, tmp_path, tmp_path / "merged")
    first = {k: v.clone() for k, v in load_file(tmp_path / "merged" / "model.safetensors").items()}  # maps the file
    try:
        for step in range(2):  # two optimizer steps, each followed by a sync
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if "lora_" in name:
                        param.add_(torch.randn_like(param) * 0.1)
            file.update(model)
            assert_file_holds(tmp_path / "merged" / "model.safetensors", model)
    finally:
        file.close()
    changed = load_file(tmp_path / "merged" / "model.safetensors")
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(changed[q_proj], first[q_proj]), "the update must reach the file"
    assert ("lm_head.weight" in changed) is (not tie)  # tied heads are stored once, as safetensors wants


def test_in_place_updates_follow_full_fine_tuning(tmp_path):
    model = tiny_llama(tie=False)
    file = MergedWeightsFile(model, tmp_path, tmp_path / "merged")
    try:
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(1.5)
        file.update(model)
        assert_file_holds(tmp_path / "merged" / "model.safetensors", model)
    finally:
        file.close()
