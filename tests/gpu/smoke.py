"""GPU smoke check: SFT, DPO and GRPO for two steps each in bf16 on CUDA, on a tiny random Llama built here.

    make gpu-smoke                      # or: python tests/gpu/smoke.py [--work DIR] [--keep]

Needs only torch, transformers, peft, accelerate, trl, datasets and
math-verify: no vLLM, no hub, no bundled model. The model (2 layers, a
character-level tokenizer with a ChatML template) is written from a config
in this file, so the check runs on a machine without network. Each stage
runs as its own ``python -m rlft.<stage>`` process (the way users run it)
on the offline ``task:arithmetic`` problems; DPO trains on pairs written
here (the correct answer over a wrong one). For each stage it checks that:

- every logged loss is finite;
- the LoRA adapter changed (every ``lora_B`` is non-zero; peft starts them at 0);
- the run trained on the GPU and the closing check generated there
  (the manifest's ``launch.device`` and ``results.eval_device``);
- the closing table was written.

It also writes a peft model's merged weights from the GPU into a mapped
file (``rlft.rollout.merged_weights.MergedWeightsFile``, what rlft's own vLLM
engine reloads) and reads them back. Where no CUDA device is visible it
prints one line and exits 0. Exit 1 names each failed check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# ChatML, as Qwen2.5 and SmolLM2 use: prompts render as the stages expect
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
COMMON = ["--model_name_or_path", "{model}", "--dtype", "bfloat16", "--bf16", "true", "--max_steps", "2",
          "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--eval_samples", "4",
          "--eval_max_new_tokens", "8", "--eval_batch_size", "4", "--seed", "0"]
STAGES = {
    "sft": ["recipes/sft.yaml", "--dataset_name", "task:arithmetic", "--num_train_samples", "16",
            "--num_test_samples", "8", "--per_device_train_batch_size", "4", "--max_length", "96"],
    "dpo": ["recipes/dpo.yaml", "--dataset_name", "{pairs}", "--test_size", "0.25",
            "--per_device_train_batch_size", "4", "--max_length", "96"],
    "grpo": ["recipes/math.yaml", "--engine", "hf", "--num_train_samples", "16", "--num_test_samples", "8",
             "--per_device_train_batch_size",
             "8", "--gradient_accumulation_steps", "1", "--num_generations", "4", "--max_completion_length", "16",
             "--log_completions", "false", "--warmup_steps", "0", "--learning_rate", "1e-3",
             # a random model answers nothing right: the length reward gives the groups a spread to learn from
             "--reward_funcs", "[accuracy, tests.helpers:length_reward]", "--reward_weights", "[1.0, 1.0]"],
}


def build_tokenizer(path: Path):
    """A character-level tokenizer (printable ASCII + ChatML specials) with a chat template, saved to ``path``.

    Example:
        >>> import tempfile
        >>> tok = build_tokenizer(Path(tempfile.mkdtemp()))
        >>> tok.decode(tok("12+30=42")["input_ids"])
        '12+30=42'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {token: i for i, token in enumerate(SPECIAL + chars)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # every character its own token
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>", unk_token="<unk>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return tokenizer


def build_model(path: Path, seed: int = 0) -> Path:
    """A 2-layer random Llama (about 0.2 M parameters) and its tokenizer, saved to ``path`` in bf16.

    Example:
        >>> from transformers import AutoConfig
        >>> config = AutoConfig.from_pretrained(build_model(Path("/tmp/tiny-llama")))  # doctest: +SKIP
        >>> config.model_type, config.num_hidden_layers  # doctest: +SKIP
        ('llama', 2)

    (tested in ``tests/test_gpu_smoke.py``: saving imports DeepSpeed, which prints to stdout)
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(path)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(path)
    return path


def write_pairs(path: Path, n: int = 16) -> Path:
    """DPO pairs from ``task:arithmetic``: the gold answer chosen over a wrong one (chat format, with ``answer``).

    Example:
        >>> import tempfile
        >>> row = json.loads(write_pairs(Path(tempfile.mkdtemp()) / "p.jsonl", n=1).read_text())
        >>> sorted(row)
        ['answer', 'chosen', 'prompt', 'rejected']
    """
    from rlft.core.tasks import generate

    rows = generate("arithmetic", "train", n=n, seed=0)
    lines = []
    for row in rows:
        wrong = str(int(row["answer"]) + 1)
        lines.append(json.dumps({"prompt": row["prompt"], "answer": row["answer"],
                                 "chosen": [{"role": "assistant", "content": f"\\boxed{{{row['answer']}}}"}],
                                 "rejected": [{"role": "assistant", "content": f"\\boxed{{{wrong}}}"}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def stage_problems(out: Path) -> list[str]:
    """What is wrong with a finished stage's run directory (empty: all checks passed)."""
    from safetensors.torch import load_file

    problems = []
    manifest = json.loads((out / "rlft_manifest.json").read_text())
    losses = [e["loss"] for e in map(json.loads, (out / "log_history.jsonl").read_text().splitlines()) if "loss" in e]
    if not losses or not all(math.isfinite(x) for x in losses):
        problems.append(f"losses not all finite: {losses}")
    lora_b = [t for k, t in load_file(out / "adapter_model.safetensors").items() if "lora_B" in k]
    if not lora_b or any(int(t.count_nonzero()) == 0 for t in lora_b):
        problems.append(f"adapter unchanged: {sum(int(t.count_nonzero()) == 0 for t in lora_b)} of "
                        f"{len(lora_b)} lora_B still zero")
    device = manifest.get("launch", {}).get("device", "")
    if not device.startswith("cuda"):
        problems.append(f"trained on {device!r}, not CUDA")
    results = manifest.get("results", {})
    if not str(results.get("eval_device", "")).startswith("cuda"):
        problems.append(f"closing check generated on {results.get('eval_device')!r}, not CUDA")
    if not results.get("table"):
        problems.append("no closing table")
    return problems


def merged_weights_problems(model_dir: Path, work: Path) -> list[str]:
    """A LoRA model on the GPU: its merged weights written into the mapped file match a merge done on the GPU."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from rlft.rollout.merged_weights import MergedWeightsFile

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).cuda()
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    file = MergedWeightsFile(model, model_dir, work / "merged")
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.01)
    file.update(model)
    file.close()
    written = load_file(work / "merged" / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    expected = model.merge_and_unload().state_dict()[key].cpu()
    gap = (written[key] - expected).abs().max().item()
    return [] if gap < 1e-5 else [f"merged weights written from the GPU are off by {gap:.3g}"]


def run_stage(name: str, model: Path, pairs: Path, work: Path, extra: tuple[str, ...] = ()) -> tuple[list[str], float]:
    """Run one stage on the tiny model; its problems (:func:`stage_problems`) and its seconds."""
    out = work / name
    args = [a.format(model=model, pairs=pairs) for a in STAGES[name] + COMMON] + list(extra)
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", f"rlft.{name}", *args, "--output_dir", str(out), "--overwrite"],
                          cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        return [f"exit {proc.returncode}: {tail}"], seconds
    return stage_problems(out), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the runs (default: delete them)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu-smoke: skipped (no CUDA device visible)")
        return 0
    sys.path.insert(0, str(REPO))
    work = args.work or Path(tempfile.mkdtemp(prefix="rlft-gpu-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"gpu-smoke: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"Python {sys.version.split()[0]}")
    model = build_model(work / "tiny-llama")
    pairs = write_pairs(work / "pairs.jsonl")
    failed = 0
    for name in STAGES:
        problems, seconds = run_stage(name, model, pairs, work)
        failed += bool(problems)
        print(f"{name}: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)} ({seconds:.0f} s)")
    problems = merged_weights_problems(model, work)
    failed += bool(problems)
    print(f"merged weights from the GPU: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"gpu-smoke: {'passed' if not failed else f'{failed} FAILED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
