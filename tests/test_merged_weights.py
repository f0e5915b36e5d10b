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


# -- DoRA: the merged file holds peft's own merge (magnitude vector included) ---------------------


def with_dora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", use_dora=True,
                                            init_lora_weights=False))


def peft_merged(model):
    """peft's ``merge_and_unload`` on a deep copy: the reference DoRA merge."""
    import copy

    return copy.deepcopy(model).merge_and_unload().state_dict()


def assert_matches_peft(stored, model):
    expected = peft_merged(model)
    assert set(stored) <= set(expected)
    for key, tensor in stored.items():
        torch.testing.assert_close(tensor, expected[key], rtol=0, atol=1e-6, msg=key)


def train_dora_step(model, scale=0.1):
    """Move every trainable tensor (A, B and the magnitude vector), as an optimizer step would."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * scale)


def test_dora_merge_equals_peft_merge_and_unload(tmp_path):
    model = with_dora(tiny_llama(tie=False)).eval()
    train_dora_step(model)  # magnitudes away from the weight norms: the magnitude vector now matters
    live = {k: v.clone() for k, v in model.state_dict().items()}
    merged = merged_state_dict(model)
    assert_matches_peft(merged, model)
    without_magnitude = model.get_base_model().model.layers[0].self_attn.q_proj
    plain = without_magnitude.base_layer.weight + without_magnitude.get_delta_weight("default")
    assert not torch.allclose(merged["model.layers.0.self_attn.q_proj.weight"], plain, atol=1e-3), \
        "W + BA alone must differ, or this test proves nothing about the magnitude vector"
    for key, value in model.state_dict().items():
        assert torch.equal(value, live[key]), f"merging changed the live model's {key}"
    ids = torch.randint(0, 64, (1, 12))
    reference = type(model.get_base_model())(model.get_base_model().config).eval()
    reference.load_state_dict(merged, strict=False)
    with torch.no_grad():  # the merged weights compute what the adapter computes
        torch.testing.assert_close(reference(ids).logits, model(ids).logits, rtol=0, atol=1e-5)


def test_dora_in_place_updates_equal_peft_merge(tmp_path):
    model = with_dora(tiny_llama(tie=True)).eval()
    file = MergedWeightsFile(model, tmp_path, tmp_path / "merged")
    try:
        for _ in range(2):
            train_dora_step(model)
            file.update(model)
            assert_matches_peft(load_file(tmp_path / "merged" / "model.safetensors"), model)
    finally:
        file.close()


# -- QLoRA: a 4-bit base is written dequantized ---------------------------------------------------

FOUR_BIT = {"bits": 4, "quant_type": "nf4", "double_quant": True}


def quantized_tiny_llama(tmp_path, quantization=FOUR_BIT):
    """A tiny llama saved in float32, then loaded quantized (default: 4-bit nf4, double quantization) by rlft."""
    pytest.importorskip("bitsandbytes")
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlft.core.loading import LoadOptions, is_quantized
    from rlft.core.models import load_model

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "float")
    model = load_model(str(tmp_path / "float"), "float32", options=LoadOptions(quantization=quantization))
    assert is_quantized(model)
    return model


def test_a_qlora_policy_is_written_as_the_float_model_it_computes(tmp_path):
    """What vLLM loads for a QLoRA run: dequantized base + LoRA, the float names, no quant-state tensors.

    LoRA targets only q_proj, so the other quantized layers are written dequantized on their own. Loaded
    into a plain float llama, the file computes the QLoRA policy's logits.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, LlamaForCausalLM

    policy = get_peft_model(quantized_tiny_llama(tmp_path),
                            LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights=False)).eval()
    ids = torch.tensor([[1, 5, 9, 13, 2, 40]])
    with torch.no_grad():
        expected = policy(input_ids=ids).logits
        file = MergedWeightsFile(policy, tmp_path / "float", tmp_path / "merged")
    plain = LlamaForCausalLM(AutoConfig.from_pretrained(tmp_path / "float"))
    stored = load_file(tmp_path / "merged" / "model.safetensors")
    assert set(stored) == set(plain.state_dict()), "quant-state entries or missing weights in the file"
    plain.load_state_dict(stored)
    with torch.no_grad():
        gap = (plain(input_ids=ids).logits - expected).abs().max().item()
    assert gap < 1e-4, f"the written float model is {gap} away from the QLoRA policy"
    float_base = LlamaForCausalLM.from_pretrained(tmp_path / "float")
    quantization_error = (stored["model.layers.0.mlp.up_proj.weight"]
                          - float_base.model.layers[0].mlp.up_proj.weight).abs().max().item()
    assert quantization_error > 1e-3, "an untargeted layer was written from the float checkpoint, not dequantized"

    with torch.no_grad():  # a training step later, the in-place update follows the adapter on the same base
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)
        expected = policy(input_ids=ids).logits
    file.update(policy)
    plain.load_state_dict(load_file(tmp_path / "merged" / "model.safetensors"))
    with torch.no_grad():
        assert (plain(input_ids=ids).logits - expected).abs().max().item() < 1e-4
    file.close()


def test_forwards_without_gradients_keep_the_training_numerics(tmp_path):
    """bitsandbytes' CPU inference kernel would repack the weights on the first no-grad eval forward."""
    from rlft.core.loading import float_weight

    model = quantized_tiny_llama(tmp_path).eval()
    layer = model.model.layers[0].self_attn.q_proj
    before = float_weight(layer).clone()
    ids = torch.tensor([[1, 5, 9, 13]])
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    trained = model(inputs_embeds=embeds).logits.detach()  # activations with gradients: the training path
    with torch.no_grad():
        inferred = model(input_ids=ids).logits
    assert torch.equal(float_weight(layer), before)
    assert (trained - inferred).abs().max().item() < 1e-5
