"""Benchmark: GRPO step time and peak memory, rlft (vLLM engine, each sync) vs stock TRL ``GRPOTrainer``.

    make bench                                     # all benchmarks
    .venv/bin/python tests/bench/bench_grpo_step.py [--steps 6]

Each side trains ``recipes/math.yaml`` (bundled model, LoRA r=16 on all
linear layers, 4 prompts x 8 generations of up to 64 tokens per step) for
``--steps`` steps in its own process, saving nothing, with no before/after
check. Step time is TRL's own ``step_time`` metric (generation, reward,
loss and backward of one optimizer step), the same code on both sides; the
median leaves out the first (warm-up) step. Peak memory is the proportional
set size (PSS) of the whole process tree (vLLM's engine runs in a child
process), sampled every 2 s. Wall time includes loading and, for rlft, starting vLLM.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ROOT,
    median,
    python,
    ratio,
    read_log_history,
    run_measured,
    step_times,
    write_report,
)

RLFT = ["-m", "rlft.grpo"]
SIDES = {  # program, then options after the recipe
    "stock-trl": ([str(Path(__file__).with_name("stock_trl_grpo.py"))], []),
    "rlft-vllm-merged": (RLFT, ["--vllm_sync", "merged", "--eval_before_after", "false"]),
    "rlft-vllm-adapter": (RLFT, ["--vllm_sync", "adapter", "--eval_before_after", "false"]),
    # what the engine alone buys: every row through one padded training pass, as in stock TRL
    "rlft-vllm-merged-all-rows": (RLFT, ["--vllm_sync", "merged", "--eval_before_after", "false",
                                         "--skip_zero_advantage", "false", "--length_buckets", "false"]),
}


def command(side: str, recipe: str, steps: int, out: Path) -> list[str]:
    program, options = SIDES[side]
    return [python(), *program, recipe, *options, "--max_steps", str(steps), "--output_dir", str(out),
            "--save_strategy", "no", "--report_to", "none", "--log_completions", "false"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/math.yaml")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-grpo-step-"))
    results = {}
    for side in args.sides:
        run_dir = work / side
        measured = run_measured(command(side, args.recipe, args.steps, run_dir), work / f"{side}.log")
        history = read_log_history(run_dir)
        times = step_times(history)
        skipped = [row["zero_advantage/skipped"] for row in history if "zero_advantage/skipped" in row]
        results[side] = {"side": side, "median_step_s": median(times), "steps_timed": len(times),
                         "step_s": [round(t, 1) for t in times], **measured,
                         "frac_reward_zero_std": [round(r["frac_reward_zero_std"], 2) for r in history
                                                  if "frac_reward_zero_std" in r],
                         "rows_skipped_mean": round(sum(skipped) / len(skipped), 3) if skipped else None}
        print(results[side], flush=True)
    trl = results.get("stock-trl", {})
    report = {
        "setup": {"recipe": args.recipe, "steps": args.steps, "logs": str(work)},
        "results": list(results.values()),
        "step_time_vs_stock_trl": {s: ratio(r["median_step_s"], trl.get("median_step_s"))
                                   for s, r in results.items() if s != "stock-trl"},
        "peak_mem_vs_stock_trl": {s: ratio(r["peak_mem_mib"], trl.get("peak_mem_mib"))
                                  for s, r in results.items() if s != "stock-trl"},
    }
    write_report(args.out, "grpo_step", report)


if __name__ == "__main__":
    main()
