"""Benchmark: GRPO rollout throughput, HF generate vs rlft's vLLM engine with each sync strategy.

    make bench                                   # all benchmarks
    .venv/bin/python tests/bench/bench_rollout.py [--prompts 32 --generations 8 --tokens 64]

The bundled model with a LoRA adapter (r=16, all linear layers) in the dtype
``recipes/math.yaml`` trains in here (``--dtype auto``: float32 where the recipe
says ``bf16: false``; with ``bf16: true``, bf16 where it is fast, as
:func:`rlft.core.runtime.cpu_precision`), the math recipe's prompts and sampling
settings. The prompts are generated in rounds of ``--per-round`` prompts x
``--generations`` completions (default: the recipe's prompts per optimizer
step, which TRL generates in one call), as GRPO steps would ask for them;
before every vLLM round the adapter is perturbed
(as an optimizer step would) and the engine syncs, and that sync is timed
inside the round. HF generates exactly as TRL's own generation does
(``model.generate`` on the whole batch, sampling). Each engine runs in its own
process. Reported: generated tokens per second (EOS-terminated completions
count their real length), seconds per round, sync seconds, engine start-up
(once per run, reported apart), and the ratios to HF.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, python, ratio, write_report

ENGINES = ("hf", "vllm-merged", "vllm-adapter")


def setup(args: argparse.Namespace):
    """Tokenizer, LoRA model and the benchmark's prompt rounds."""
    import torch
    from peft import LoraConfig, get_peft_model

    from rlft.core import models, tasks
    from rlft.core.recipe import load_recipe_file

    torch.manual_seed(0)
    tokenizer = models.load_tokenizer("bundled:smollm2-135m-instruct")
    model = models.load_model("bundled:smollm2-135m-instruct", args.dtype)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    task_kwargs = load_recipe_file(ROOT / args.recipe).get("task_kwargs", {})
    rows = tasks.generate("arithmetic", "train", args.prompts, seed=0, **task_kwargs)
    prompts = [row["prompt"] for row in rows]
    rounds = [prompts[i:i + args.per_round] for i in range(0, len(prompts), args.per_round)]
    return tokenizer, model, rounds


def recipe_defaults(recipe: str) -> tuple[str, int]:
    """The recipe's training dtype on this machine and its prompts per optimizer step (one generation call).

    Example (the math recipe: 32 completions x 2 micro-batches / 8 completions per prompt):
        >>> recipe_defaults("recipes/math.yaml")[1]
        8
    """
    from rlft.core.recipe import load_recipe_file
    from rlft.rollout.vllm_runtime import engine_dtype

    values = load_recipe_file(ROOT / recipe)
    dtype = engine_dtype("auto", prefer_bf16=bool(values.get("bf16", False)))  # "auto" on GPU: bf16 there
    completions = values["per_device_train_batch_size"] * values.get("gradient_accumulation_steps", 1)
    return ("bfloat16" if dtype == "auto" else dtype), completions // values["num_generations"]


def perturb(model) -> None:
    """Move every LoRA B matrix a little, as an optimizer step would."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(torch.randn_like(param) * 1e-3)


def run_hf(args: argparse.Namespace) -> dict:
    import torch

    tokenizer, model, rounds = setup(args)
    tokenizer.padding_side = "left"
    model.eval()
    tokens, seconds = 0, []
    for batch in rounds:
        perturb(model)
        start = time.perf_counter()
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in batch]
        texts = [t for t in texts for _ in range(args.generations)]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=0.8, top_p=1.0, top_k=0,
                                 max_new_tokens=args.tokens, pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]  # [B, T_new]
        for row in new.tolist():
            tokens += row.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in row else len(row)
        seconds.append(time.perf_counter() - start)
    return {"tokens": tokens, "round_seconds": seconds, "sync_seconds": [], "start_seconds": 0.0}


def run_vllm(args: argparse.Namespace, sync: str) -> dict:
    from rlft.rollout.engine import RolloutArguments, VLLMEngine

    tokenizer, model, rounds = setup(args)
    cfg = SimpleNamespace(seed=0, vllm_gpu_memory_utilization=0.15, per_device_train_batch_size=args.per_round
                          * args.generations, steps_per_generation=1, temperature=0.8, top_p=1.0, top_k=0, max_completion_length=args.tokens,
                          repetition_penalty=1.0, min_p=None, generation_kwargs=None, bf16=args.dtype == "bfloat16")
    model_args = SimpleNamespace(model_name_or_path="bundled:smollm2-135m-instruct", lora_r=16,
                                 chat_template_kwargs=None)
    start = time.perf_counter()
    engine = VLLMEngine(RolloutArguments(engine="vllm"), cfg, model_args, tokenizer, sync)
    started = time.perf_counter() - start
    trainer = SimpleNamespace(model=model, num_generations=args.generations)  # what rollout_func reads
    tokens, seconds = 0, []
    for batch in rounds:
        perturb(model)
        begin = time.perf_counter()
        engine.sync_weights(model)
        out = engine.rollout_func([p for p in batch for _ in range(args.generations)], trainer)
        tokens += sum(len(ids) for ids in out["completion_ids"])
        seconds.append(time.perf_counter() - begin)
    syncs = list(engine.sync_seconds)
    engine.close()
    return {"tokens": tokens, "round_seconds": seconds, "sync_seconds": syncs, "start_seconds": started}


def summarize(name: str, raw: dict) -> dict:
    total = sum(raw["round_seconds"])
    syncs = raw["sync_seconds"]
    return {
        "engine": name, "tokens": raw["tokens"], "seconds": round(total, 1),
        "tokens_per_s": round(raw["tokens"] / total, 1),
        "round_s_mean": round(total / len(raw["round_seconds"]), 2),
        "sync_s_mean": round(sum(syncs) / len(syncs), 2) if syncs else 0.0,
        "engine_start_s": round(raw["start_seconds"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--recipe", default="recipes/math.yaml", help="where --dtype auto and --per-round come from")
    parser.add_argument("--per-round", type=int, default=None,
                        help="prompts per GRPO step, one sync each (default: the recipe's)")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto")
    args = parser.parse_args()
    if args.dtype == "auto" or args.per_round is None:  # children get both resolved: no second bf16 probe
        dtype, per_round = recipe_defaults(args.recipe)
        args.dtype = dtype if args.dtype == "auto" else args.dtype
        args.per_round = args.per_round or per_round

    if args.child:  # one engine, in a fresh process; raw figures on stdout's last line
        raw = run_hf(args) if args.child == "hf" else run_vllm(args, args.child.removeprefix("vllm-"))
        print(json.dumps(raw))
        return

    results = {}
    for name in args.engines:
        cmd = [python(), __file__, "--child", name, "--recipe", args.recipe, "--prompts", str(args.prompts), "--per-round",
               str(args.per_round), "--generations", str(args.generations), "--tokens", str(args.tokens),
               "--dtype", args.dtype]  # resolved once here: every engine runs in the same dtype
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        if proc.returncode != 0:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        results[name] = summarize(name, json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[name]), flush=True)
    hf = results.get("hf", {}).get("tokens_per_s")
    report = {
        "setup": {"recipe": args.recipe, "prompts": args.prompts, "per_round": args.per_round, "generations": args.generations,
                  "max_tokens": args.tokens, "model": f"bundled smollm2-135m-instruct + LoRA r16 ({args.dtype})"},
        "results": list(results.values()),
        "speedup_vs_hf": {name: ratio(r["tokens_per_s"], hf) for name, r in results.items() if name != "hf"},
    }
    write_report(args.out, "rollout", report)


if __name__ == "__main__":
    main()
