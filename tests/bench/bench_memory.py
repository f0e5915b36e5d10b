"""The memory plan against the measured peak: a grid of short runs on the bundled model.

    python tests/bench/bench_memory.py [--cells NAME ...] [--out DIR]

Each cell runs one stage for 2 optimizer steps (``memory_check: off``, no
closing check, no checkpoint) in its own process tree, sampling the tree's
proportional set size (PSS) every 0.25 s (:class:`common.TreeMemory`), and
reads the plan the run recorded in its manifest. The plan must never be
below the measured peak, and within 25 % above it
(``bench/results/memory.json``; the docs' table comes from it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, TreeMemory, python, write_result

SHORT = ["--max_steps", "2", "--save_strategy", "no", "--eval_before_after", "false", "--report_to", "none",
         "--logging_steps", "1", "--memory_check", "off", "--num_train_samples", "64", "--warmup_steps", "0"]
# GRPO's peak depends on its samples: rows with no reward spread are skipped (skip_zero_advantage), short
# completions are trained in length buckets. The plan bounds the worst case, so these cells force it: every
# completion max_completion_length long (min_tokens), every row trained, in one pass.
WORST = ["--reward_funcs", "[tests.helpers:length_reward]", "--reward_weights", "[1.0]",
         "--skip_zero_advantage", "false", "--length_buckets", "false", "--log_completions", "false",
         "--gradient_accumulation_steps", "1", "--num_generations", "8", "--vllm_gpu_memory_utilization", "0.1"]
GRPO = ["grpo", "recipes/math.yaml", *WORST]
TOOLS = ["grpo", "recipes/tools/grpo.yaml", "--model_name_or_path", "bundled:smollm2-135m-instruct", *WORST]


def longest(n: int, engine: str = "vllm") -> list[str]:
    """Completions of exactly ``n`` tokens: the sampler may not stop earlier."""
    key = "min_tokens" if engine == "vllm" else "min_new_tokens"
    return ["--max_completion_length", str(n), "--generation_kwargs", json.dumps({key: n})]

# name: (argv after `python -m rlft.`, what varies)
CELLS = {
    "sft-b4": (["sft", "recipes/sft.yaml", "--per_device_train_batch_size", "4"], "SFT, LoRA"),
    "sft-b16": (["sft", "recipes/sft.yaml", "--per_device_train_batch_size", "16"], "SFT, larger micro-batch"),
    "sft-b16-fp32": (["sft", "recipes/sft.yaml", "--per_device_train_batch_size", "16", "--bf16", "false"],
                     "SFT, float32"),
    "sft-b16-fp32-ckpt": (["sft", "recipes/sft.yaml", "--per_device_train_batch_size", "16", "--bf16", "false",
                           "--gradient_checkpointing", "true"], "SFT, float32, gradient checkpointing"),
    "sft-b16-full": (["sft", "recipes/sft.yaml", "--per_device_train_batch_size", "16", "--use_peft", "false",
                      "--learning_rate", "1e-5"], "SFT, full fine-tuning"),
    "sft-b16-ckpt": (["sft", "recipes/sft.yaml", "--per_device_train_batch_size", "16",
                      "--gradient_checkpointing", "true"], "SFT, gradient checkpointing"),
    "dpo-b4": (["dpo", "recipes/dpo.yaml", "--per_device_train_batch_size", "4", "--dataset_name", "{pairs}"],
               "DPO, LoRA (reference: the adapter disabled)"),
    "grpo-hf-b16-c64": ([*GRPO, "--engine", "hf", "--per_device_train_batch_size", "16", *longest(64, "hf")],
                        "GRPO, transformers generation"),
    "grpo-vllm-b16-c64": ([*GRPO, "--engine", "vllm", "--per_device_train_batch_size", "16", *longest(64)],
                          "GRPO, vLLM engine"),
    "grpo-vllm-b16-c128": ([*GRPO, "--engine", "vllm", "--per_device_train_batch_size", "16", *longest(128)],
                           "GRPO, vLLM, longer completions"),
    "grpo-vllm-b16-c128-bf16": ([*GRPO, "--engine", "vllm", "--per_device_train_batch_size", "16", *longest(128),
                                 "--bf16", "true"], "GRPO, vLLM, bf16 autocast"),
    "grpo-vllm-b16-c128-ckpt": ([*GRPO, "--engine", "vllm", "--per_device_train_batch_size", "16", *longest(128),
                                 "--gradient_checkpointing", "true"], "GRPO, vLLM, gradient checkpointing"),
    "tools-sft-b8": (["sft", "recipes/tools/sft.yaml", "--per_device_train_batch_size", "8"],
                     "SFT on tool transcripts (the tool schema in every row), as make demo-tools runs it"),
    "tools-b8-c128": ([*TOOLS, "--per_device_train_batch_size", "8", *longest(128), "--bf16", "false"],
                       "GRPO with the calculator (tool schema in every prompt)"),
}


def pairs_file(scratch: Path) -> Path:
    """Preference pairs (the gold answer over a wrong one) from the offline arithmetic task."""
    sys.path.insert(0, str(ROOT))
    from tests.gpu.smoke import write_pairs

    return write_pairs(scratch / "pairs.jsonl", n=64)


def measure(name: str, argv: list[str], scratch: Path) -> dict:
    import subprocess

    out = scratch / name
    argv = [a.replace("{pairs}", str(scratch / "pairs.jsonl")) for a in argv]
    cmd = [python(), "-m", f"rlft.{argv[0]}", *argv[1:], *SHORT, "--output_dir", str(out), "--overwrite"]
    log = scratch / f"{name}.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        with TreeMemory(proc.pid, interval=0.25) as mem:
            code = proc.wait()
    if code != 0:
        raise RuntimeError(f"{name} exited {code}:\n" + "\n".join(log.read_text().splitlines()[-15:]))
    plan = json.loads((out / "rlft_manifest.json").read_text())["results"]["memory_plan"]
    measured = mem.peak_mib * 2**20
    return {"cell": name, "plan_bytes": plan["peak_bytes"], "measured_bytes": int(measured),
            "plan_over_measured": round(plan["peak_bytes"] / measured, 3), "parts": plan["parts"],
            "workload": plan["workload"]}


def replan() -> int:
    """The committed cells with their plans recomputed by the current :func:`estimate` (measurements kept)."""
    sys.path.insert(0, str(ROOT))
    from rlft.core.models import bundled_model_dir
    from rlft.stage.memory_plan import ModelShape, Workload, estimate

    shape = ModelShape.of_model_dir(bundled_model_dir())
    result = json.loads((ROOT / "bench/results/memory.json").read_text())
    for row in result["cells"]:
        plan = estimate(shape, Workload(**row["workload"]), 2**60)
        row.update(plan_bytes=plan.peak, parts={p.name: p.bytes for p in plan.parts},
                   plan_over_measured=round(plan.peak / row["measured_bytes"], 3))
    return finish(result["cells"], replanned=True)


def finish(rows: list[dict], replanned: bool = False) -> int:
    ratios = [r["plan_over_measured"] for r in rows]
    write_result("memory", {
        "what": "rlft's memory plan (before the model loads) against the measured peak PSS of the run's process "
                "tree, 2 optimizer steps per cell on the bundled model"
                + ("; plans recomputed from the recorded workloads (--replan)" if replanned else ""),
        "target": "plan >= measured in every cell, and plan <= 1.25 x measured",
        "never_below": all(r >= 1.0 for r in ratios), "within_25_percent": all(r <= 1.25 for r in ratios),
        "cells": rows,
    })
    return 0 if all(1.0 <= r <= 1.25 for r in ratios) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="*", default=list(CELLS), choices=list(CELLS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true",
                        help="keep the committed result's other cells (a partial rerun replaces only its own)")
    parser.add_argument("--replan", action="store_true",
                        help="run nothing: recompute every committed cell's plan from its recorded workload with "
                             "the current coefficients (the plan is arithmetic on the workload; peaks stay measured)")
    args = parser.parse_args()
    if args.replan:
        return replan()
    scratch = args.out or Path(tempfile.mkdtemp(prefix="rlft-bench-memory-"))
    scratch.mkdir(parents=True, exist_ok=True)
    pairs_file(scratch)
    rows = []
    for name in args.cells:
        row = measure(name, CELLS[name][0], scratch)
        row["what"] = CELLS[name][1]
        rows.append(row)
        print(f"{name}: plan {row['plan_bytes'] / 2**30:.2f} GB, measured {row['measured_bytes'] / 2**30:.2f} GB "
              f"({row['plan_over_measured']:.2f}x)", flush=True)
    if args.keep:
        previous = json.loads((ROOT / "bench/results/memory.json").read_text())["cells"]
        ran = {r["cell"] for r in rows}
        rows = [r for r in previous if r["cell"] not in ran and r["cell"] in CELLS] + rows
        rows.sort(key=lambda r: list(CELLS).index(r["cell"]))
    return finish(rows)


if __name__ == "__main__":
    sys.exit(main())
