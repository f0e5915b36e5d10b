"""The bundled model, model resolution and tokenizers."""

from __future__ import annotations

import json
import time

import pytest

from rlft.core import models
from rlft.core.errors import UserError

pytestmark = pytest.mark.slow


def test_bundled_materializes_and_reloads_from_cache(bundled_dir):
    assert (bundled_dir / models.COMPLETE_MARKER).exists()
    assert (bundled_dir / "model.safetensors").stat().st_size > 100_000_000
    stamp = (bundled_dir / "model.safetensors").stat().st_mtime
    start = time.perf_counter()
    assert models.bundled_model_dir() == bundled_dir
    assert time.perf_counter() - start < 5, "second call must reuse the cache, not dequantize again"
    assert (bundled_dir / "model.safetensors").stat().st_mtime == stamp


def test_interrupted_materialization_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RLFT_CACHE", str(tmp_path))

    def dies_halfway(gguf, out_dir):
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt  # e.g. Ctrl-C during the first run

    monkeypatch.setattr(models, "_dequantize_gguf", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        models.bundled_model_dir()
    target = tmp_path / "models" / "smollm2-135m-instruct"
    assert not target.exists()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".smollm2") and "tmp" in p.name]


def test_bundled_model_answers_a_chat_prompt(bundled_model, bundled_tokenizer):
    from rlft.evaluation.generation import hf_completions

    assert type(bundled_model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in bundled_model.parameters()) < 140e6
    (out,) = hf_completions(bundled_model, bundled_tokenizer,
                            [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=20)
    assert "Paris" in out


def test_pad_token_without_resizing(bundled_model, bundled_tokenizer):
    assert bundled_tokenizer.pad_token is not None
    assert bundled_model.get_input_embeddings().weight.shape[0] == len(bundled_tokenizer)


def test_missing_pad_token_is_filled_without_new_tokens(bundled_dir, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bundled_dir)
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.pop("pad_token", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "config.json").write_text((bundled_dir / "config.json").read_text())
    fixed = models.load_tokenizer(str(tmp_path))
    assert fixed.pad_token == "<|endoftext|>" and len(fixed) == len(tok)


def test_resolve_errors(tmp_path):
    with pytest.raises(UserError, match="model path not found"):
        models.resolve_model(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="neither config.json nor adapter_config.json"):
        models.resolve_model(str(tmp_path))
    with pytest.raises(UserError, match="unknown bundled model"):
        models.resolve_model("bundled:gpt-5")
    assert models.resolve_model("org/model").base == "org/model"


def test_chat_template_kwargs_pass_through(bundled_tokenizer):
    from rlft.evaluation.generation import render_prompts

    msgs = [[{"role": "user", "content": "hi"}]]
    plain = render_prompts(bundled_tokenizer, msgs)[0]
    # SmolLM2's template ignores unknown variables; Qwen3 reads enable_thinking the same way.
    assert render_prompts(bundled_tokenizer, msgs, {"enable_thinking": False})[0] == plain
    assert plain.endswith("<|im_start|>assistant\n")
