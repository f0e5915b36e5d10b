"""``rlft export``: a run as one GGUF file for llama.cpp and Ollama, checked by loading it back.

    rlft export runs/math --gguf runs/math.gguf                 # f16
    rlft export runs/math --gguf runs/math-q8.gguf --quant q8_0

The run's adapter chain is merged into its base (as ``rlft merge`` does) and
written with the ``gguf`` package: hyperparameters under the architecture's
keys, tensors under llama.cpp's names (``gguf``'s own ``TensorNameMap``), the
tokenizer (byte-level BPE: tokens, types, merges, special ids) and the chat
template embedded, and an Ollama ``Modelfile`` beside it (``<name>.Modelfile``:
``ollama create NAME -f runs/math.Modelfile``). Llama and Qwen2
architectures only; others are refused with one line.

Why the writer is rlft's: the converter that does this (llama.cpp's
``convert_hf_to_gguf.py``) is a script in llama.cpp's repository, not part of
any installable package; ``gguf`` supplies the format, the names and the
quantization, and rlft supplies the mapping for the two architectures it tests.

Then the file is loaded back with transformers' GGUF loader and answers the
same prompts greedily as the merged model: the greedy texts that agree and
the largest logit difference are printed and written to ``<file>.json``
(f16 is expected to agree on every prompt; ``q8_0`` reports its agreement).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.core.errors import UserError, run_cli
from rlft.core.models import load_model, load_tokenizer
from rlft.core.recipe import parse_command
from rlft.core.runtime import setup_logging
from rlft.evaluation import generation

ARCHES = {"llama": "LLAMA", "qwen2": "QWEN2"}
# llama.cpp's pre-tokenizer names, by the model family whose byte-level BPE they split like
PRE_TOKENIZERS = {("llama", 49152): "smollm", ("llama", 128256): "llama-bpe", ("qwen2", None): "qwen2"}
QUANTS = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}
FILE_TYPES = {"F32": 0, "F16": 1, "Q8_0": 7}  # llama.cpp's LLAMA_FTYPE_MOSTLY_*
CHECK_PROMPTS = ["What is 12 + 30?", "Name three colours.", "What is the capital of France?", "Write a haiku about rain.",
                 "What is 7 times 8?", "Explain what a prime number is.", "What is 100 - 37?", "Say hello in Spanish.",
                 "What is 3 squared?", "List two fruits.", "What is 15 divided by 3?", "What day comes after Monday?",
                 "What is 9 + 10?", "Is 17 a prime number?", "What is half of 50?", "Name a planet.",
                 "What is 2 to the power 5?", "Spell 'cat' backwards.", "What is 81 divided by 9?", "What is 6 + 7?"]


@dataclass
class ExportArguments:
    gguf: str = field(default="", metadata={"help": "The GGUF file to write."})
    quant: str = field(default="f16", metadata={"help": "f16 (default), q8_0 or f32; q4_k_m needs llama.cpp."})
    verify: bool = field(default=True, metadata={"help": "Load the file back and compare greedy text and logits."})
    check_tokens: int = field(default=24, metadata={"help": "Greedy tokens per check prompt."})


def parse(argv: Sequence[str] | None) -> tuple[str, ExportArguments]:
    run, args = parse_command(argv, ExportArguments, "rlft export", "RUN_DIR")
    if not args.gguf.endswith(".gguf"):
        raise UserError(f"--gguf must name a .gguf file, got {args.gguf!r}")
    if args.quant not in QUANTS:
        why = " (a llama.cpp mix of K-quants: write f16 here, then run llama.cpp's llama-quantize)" \
            if args.quant.startswith(("q4_k", "q5_k", "q6_k", "q3_k", "q2_k")) else ""
        raise UserError(f"--quant {args.quant} is not written by rlft{why}; choose one of {', '.join(QUANTS)}")
    return run, args


def architecture(config: Any) -> str:
    """The GGUF architecture name for a transformers config; one line for anything but Llama and Qwen2."""
    if config.model_type not in ARCHES:
        raise UserError(f"rlft export writes Llama and Qwen2 models; this one is {config.model_type!r} "
                        "(llama.cpp's convert_hf_to_gguf.py covers more)")
    return config.model_type


def _permute(weight: Any, heads: int) -> Any:
    """Llama's q/k rows in llama.cpp's rotary layout (transformers' GGUF loader undoes exactly this)."""
    return weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def write_gguf(model: Any, tokenizer: Any, path: Path, quant: str, name: str) -> None:
    """Write ``model`` (a merged transformers model) and ``tokenizer`` as a GGUF file at ``path``."""
    import gguf
    import numpy as np
    from gguf import quants

    config = model.config
    arch = architecture(config)
    gguf_arch = getattr(gguf.MODEL_ARCH, ARCHES[arch])
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf_arch])
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(FILE_TYPES[QUANTS[quant]])
    _write_tokenizer(writer, tokenizer, arch, config.vocab_size)

    qtype = getattr(gguf.GGMLQuantizationType, QUANTS[quant])
    names = gguf.get_tensor_name_map(gguf_arch, config.num_hidden_layers)
    for key, tensor in model.state_dict().items():
        if key == "lm_head.weight" and config.tie_word_embeddings:
            continue  # llama.cpp reads tied embeddings from token_embd
        target = names.get_name(key, try_suffixes=(".weight", ".bias"))
        if target is None:
            raise UserError(f"rlft export has no GGUF name for tensor {key!r}")
        data = tensor.detach().float().cpu().numpy()
        if arch == "llama" and key.endswith("q_proj.weight"):
            data = _permute(data, config.num_attention_heads)
        elif arch == "llama" and key.endswith("k_proj.weight"):
            data = _permute(data, config.num_key_value_heads)
        if data.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(target, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(target, data.astype(np.float16))
        else:
            writer.add_tensor(target, quants.quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _write_tokenizer(writer: Any, tokenizer: Any, arch: str, vocab_size: int) -> None:
    """A byte-level BPE tokenizer as llama.cpp's ``gpt2`` model: tokens, types, merges, special ids, template."""
    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    if spec["model"]["type"] != "BPE":
        raise UserError(f"rlft export writes byte-level BPE tokenizers; this one is {spec['model']['type']}")
    pre = PRE_TOKENIZERS.get((arch, vocab_size)) or PRE_TOKENIZERS.get((arch, None))
    if pre is None:
        raise UserError(f"rlft export does not know llama.cpp's pre-tokenizer for this {arch} tokenizer "
                        f"(vocabulary {vocab_size}); llama.cpp's convert_hf_to_gguf.py does")
    added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
    vocab = {token: i for token, i in tokenizer.get_vocab().items()}
    by_id = {i: token for token, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i, f"[PAD{i}]")
        tokens.append(token)
        special = added.get(token)
        types.append(gguf.TokenType.CONTROL if special is not None and special.special
                     else gguf.TokenType.USER_DEFINED if special is not None else gguf.TokenType.NORMAL
                     if i in by_id else gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for role, token_id in (("bos", tokenizer.bos_token_id), ("eos", tokenizer.eos_token_id),
                           ("unk", tokenizer.unk_token_id), ("pad", tokenizer.pad_token_id)):
        if token_id is not None:
            getattr(writer, f"add_{role}_token_id")(int(token_id))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def modelfile(gguf_name: str, tokenizer: Any) -> str:
    """An Ollama ``Modelfile`` for the file (ChatML template where the model's template is ChatML).

    Example:
        >>> print(modelfile("m.gguf", None).splitlines()[0])
        FROM ./m.gguf
    """
    lines = [f"FROM ./{gguf_name}"]
    if tokenizer is not None and "<|im_start|>" in (tokenizer.chat_template or ""):
        lines += [('TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
                  '{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n'
                  '{{ .Response }}<|im_end|>\n"""'), 'PARAMETER stop "<|im_end|>"']
    return "\n".join(lines) + "\n"


def verify(model: Any, tokenizer: Any, path: Path, max_new_tokens: int) -> dict[str, Any]:
    """Load ``path`` back (transformers' GGUF loader) and compare its greedy answers and logits with ``model``'s."""
    import torch
    from transformers import AutoModelForCausalLM

    # transformers' GGUF loader draws a plain tqdm bar per tensor that its progress-bar switch does not reach
    with contextlib.redirect_stderr(io.StringIO()):
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    prompts = [[{"role": "user", "content": p}] for p in CHECK_PROMPTS]
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": len(prompts)}
    ours = generation.hf_completions(model, tokenizer, prompts, **kwargs)
    theirs = generation.hf_completions(loaded, tokenizer, prompts, **kwargs)
    ids = tokenizer.apply_chat_template(prompts[0], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gap = (model(**ids).logits - loaded(**ids).logits).abs().max().item()
    return {"prompts": len(prompts), "greedy_agree": sum(a == b for a, b in zip(ours, theirs, strict=True)),
            "max_logit_gap": round(gap, 6), "first_difference": next(
                ({"merged": a, "gguf": b} for a, b in zip(ours, theirs, strict=True) if a != b), None)}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Export the run; returns what was written and the check's figures."""
    from transformers.utils import logging as hf_logging

    run, args = parse(argv)
    setup_logging("warning")  # what was written and the check's figures: no loading bars
    hf_logging.disable_progress_bar()  # the GGUF loader's dequantizing bar too
    model, tokenizer = load_model(run, "float32"), load_tokenizer(run)
    architecture(model.config)  # refused before anything is written
    out = Path(args.gguf)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".partial-{out.name}")
    write_gguf(model, tokenizer, partial, args.quant, Path(run).name)
    os.replace(partial, out)
    out.with_suffix(".Modelfile").write_text(modelfile(out.name, tokenizer))  # ollama create NAME -f <it>
    result: dict[str, Any] = {"gguf": str(out), "quant": args.quant, "bytes": out.stat().st_size}
    if args.verify:
        result["check"] = verify(model, tokenizer, out, args.check_tokens)
        out.with_suffix(".gguf.json").write_text(json.dumps(result, indent=2) + "\n")
    check = result.get("check")
    print(f"wrote {out} ({result['bytes'] / 2**20:.1f} MiB, {args.quant}) and {out.with_suffix('.Modelfile')}")
    if check:
        print(f"loaded back: greedy text agrees on {check['greedy_agree']} of {check['prompts']} prompts, "
              f"largest logit difference {check['max_logit_gap']}")
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main))
