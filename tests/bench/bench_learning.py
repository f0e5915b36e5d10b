"""Benchmark: learning per wall-clock minute, rlft vs stock TRL on the same recipe and time budget.

    make bench                                      # all benchmarks
    .venv/bin/python tests/bench/bench_learning.py [--recipe recipes/math.yaml]

1. rlft trains the recipe as ``make demo`` does (vLLM engine, the platform's
   sync), without its closing check; its process wall time is the budget.
   With ``--seeds``, one pair per seed (the seed sets the training prompts'
   draw and the sampling; single runs differ by several points).
2. Stock TRL (``stock_trl_grpo.py``: plain ``GRPOTrainer``, TRL's own
   generation) trains the same recipe, ``max_steps`` and learning-rate
   schedule included, until that budget, counted from its process start,
   would be exceeded. (What a user gets running the recipe on stock TRL for
   the same time; its schedule is cut short where it takes fewer steps.)
3. The base model and both adapters are scored greedily on the same held-out
   prompts with the same verifier as the recipe's closing check; so are both
   runs' checkpoints at the last step they both saved (learning per step).

Reported: per seed, steps, wall seconds, median step seconds, mean completion
length over the last 5 steps (step time follows it), peak memory, accuracy
and gain over base for each side, and the gap between them; the mean gain of each side.
About 30-40 minutes per seed on 2 CPU cores with the math recipe (both runs, plus scoring).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, median, python, read_log_history, run_measured, step_times, write_report


def last_step(log_history: list[dict]) -> int:
    return max((row.get("step", 0) for row in log_history), default=0)


def checkpoints(run_dir: Path) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()}


def evaluate(recipe: str, models: dict[str, str | None]) -> dict[str, dict]:
    """Greedy scores for the base (``None``) and each adapter dir, on the recipe's held-out rows."""
    import torch
    from peft import PeftModel

    from rlft.core import data
    from rlft.core import models as rlft_models
    from rlft.core.arguments import RewardArguments
    from rlft.evaluation.generation import hf_completions
    from rlft.evaluation.scoring import score_outputs, table_rows
    from rlft.grpo import parse

    parts, _ = parse([recipe])
    (data_args, eval_args, model_args, *_, cfg) = parts
    reward_funcs = next(p for p in parts if isinstance(p, RewardArguments)).build()
    splits = data.load_splits(data_args, seed=cfg.seed)
    rows = splits["test"].select(range(min(eval_args.eval_samples, len(splits["test"]))))
    prompts = list(rows["prompt"])
    columns = {c: list(rows[c]) for c in rows.column_names}
    tokenizer = rlft_models.load_tokenizer(model_args.model_name_or_path)
    out = {}
    for name, adapter in models.items():
        model = rlft_models.load_model(model_args.model_name_or_path, model_args.dtype)
        if adapter:
            model = PeftModel.from_pretrained(model, adapter)
        torch.manual_seed(0)
        texts = hf_completions(model, tokenizer, prompts, max_new_tokens=eval_args.eval_max_new_tokens,
                                          batch_size=eval_args.eval_batch_size,
                                          chat_template_kwargs=model_args.chat_template_kwargs)
        out[name] = table_rows({name: score_outputs(texts, prompts, columns, reward_funcs, tokenizer)}, base=None)[0]
        print(name, out[name], flush=True)
    return out


def train_pair(recipe: str, seed: int, work: Path) -> dict[str, tuple[dict, Path]]:
    """rlft, then stock TRL within rlft's wall time, both at ``seed``: {side: (figures, run dir)}."""
    rlft_dir, trl_dir = work / "rlft", work / "stock-trl"
    common = ["--seed", str(seed), "--report_to", "none", "--log_completions", "false"]
    rlft = run_measured([python(), "-m", "rlft.grpo", recipe, "--eval_before_after", "false",
                         "--output_dir", str(rlft_dir), *common], work / "rlft.log")
    print(f"seed {seed} rlft", rlft, flush=True)
    trl = run_measured([python(), str(Path(__file__).with_name("stock_trl_grpo.py")), recipe,
                        "--budget-seconds", str(rlft["wall_s"]), "--output_dir", str(trl_dir), *common],
                       work / "stock-trl.log")
    print(f"seed {seed} stock TRL", trl, flush=True)
    runs = {"rlft": (rlft, rlft_dir), "stock-trl": (trl, trl_dir)}
    for figures, run_dir in runs.values():
        history = read_log_history(run_dir)
        figures["steps"] = last_step(history)
        figures["median_step_s"] = median(step_times(history))
        lengths = [row["completions/mean_length"] for row in history if "completions/mean_length" in row]
        figures["completion_tokens_last5"] = round(sum(lengths[-5:]) / len(lengths[-5:]), 1) if lengths else None
    return runs


def adapters_to_score(seed: int, runs: dict[str, tuple[dict, Path]]) -> dict[str, str]:
    """Both final adapters, and both runs at the last step both saved a checkpoint (learning per step)."""
    out = {f"{side}/{seed}": str(run_dir) for side, (_, run_dir) in runs.items()}
    shared = sorted(set(checkpoints(runs["rlft"][1])) & set(checkpoints(runs["stock-trl"][1])))
    for side, (figures, run_dir) in runs.items():
        if shared and shared[-1] != figures["steps"]:
            out[f"{side}@{shared[-1]}/{seed}"] = str(checkpoints(run_dir)[shared[-1]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/math.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42],
                        help="one rlft / stock TRL pair per seed (~30-40 min each with the math recipe)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temp dir)")
    parser.add_argument("--eval-json", help=argparse.SUPPRESS)  # child mode: {name: adapter dir or null}
    args = parser.parse_args()

    if args.eval_json:
        print(json.dumps(evaluate(args.recipe, json.loads(args.eval_json))))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-learning-"))
    pairs, to_score = {}, {"base": None}
    for seed in args.seeds:
        (work / f"seed-{seed}").mkdir(parents=True, exist_ok=True)
        pairs[seed] = train_pair(args.recipe, seed, work / f"seed-{seed}")
        to_score.update(adapters_to_score(seed, pairs[seed]))
    # the held-out rows are the recipe's (its own seed), whatever seed trained
    proc = subprocess.run([python(), __file__, "--recipe", args.recipe, "--eval-json", json.dumps(to_score)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"evaluation failed:\n{proc.stderr[-3000:]}")
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    base = scores["base"]["accuracy"]
    gain = {name: round(100 * (s["accuracy"] - base), 1) for name, s in scores.items() if name != "base"}
    mean_gain = {side: round(sum(gain[f"{side}/{seed}"] for seed in args.seeds) / len(args.seeds), 1)
                 for side in ("rlft", "stock-trl")}
    report = {
        "setup": {"recipe": args.recipe, "seeds": args.seeds, "work": str(work), "eval_prompts": scores["base"]["n"],
                  "budget_s": {seed: pair["rlft"][0]["wall_s"] for seed, pair in pairs.items()}},
        "base_accuracy": base,
        "runs": {seed: {side: figures for side, (figures, _) in pair.items()} for seed, pair in pairs.items()},
        "accuracy": {name: s["accuracy"] for name, s in scores.items()},
        "gain_points": gain,
        "mean_gain_points": mean_gain,
        "rlft_minus_stock_points": {seed: round(gain[f"rlft/{seed}"] - gain[f"stock-trl/{seed}"], 1)
                                    for seed in args.seeds},
    }
    write_report(args.out, "learning", report)


if __name__ == "__main__":
    main()
