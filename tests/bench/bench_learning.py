"""Benchmark: learning per wall-clock minute, rlft vs stock TRL on the same recipe and time budget.

    make bench                                      # all benchmarks
    .venv/bin/python tests/bench/bench_learning.py [--recipe recipes/math.yaml]

1. rlft trains the recipe as ``make demo`` does (vLLM engine, the platform's
   sync), without its closing check; its process wall time is the budget.
2. Stock TRL (``stock_trl_grpo.py``: plain ``GRPOTrainer``, TRL's own
   generation) trains the same recipe, ``max_steps`` and learning-rate
   schedule included, until that budget, counted from its process start,
   would be exceeded. (What a user gets running the recipe on stock TRL for
   the same time; its schedule is cut short where it takes fewer steps.)
3. The base model and both adapters are scored greedily on the same held-out
   prompts with the same verifier as the recipe's closing check; so are both
   runs' checkpoints at the last step they both saved (learning per step).

Reported: steps, wall seconds, peak memory, accuracy and gain over base for each side.
About 45 minutes on 2 CPU cores with the math recipe.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, python, read_log_history, run_measured, write_report


def last_step(log_history: list[dict]) -> int:
    return max((row.get("step", 0) for row in log_history), default=0)


def checkpoints(run_dir: Path) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()}


def evaluate(recipe: str, models: dict[str, str | None]) -> dict[str, dict]:
    """Greedy scores for the base (``None``) and each adapter dir, on the recipe's held-out rows."""
    import torch
    from peft import PeftModel

    from rlft import data, greedy
    from rlft import models as rlft_models
    from rlft.grpo import parse

    (data_args, eval_args, model_args, *_, cfg), _ = parse([recipe])
    splits = data.load_splits(data_args, seed=cfg.seed)
    rows = splits["test"].select(range(min(eval_args.eval_samples, len(splits["test"]))))
    prompts, answers = list(rows["prompt"]), [str(a) for a in rows["answer"]]
    tokenizer = rlft_models.load_tokenizer(model_args.model_name_or_path)
    out = {}
    for name, adapter in models.items():
        model = rlft_models.load_model(model_args.model_name_or_path, model_args.dtype)
        if adapter:
            model = PeftModel.from_pretrained(model, adapter)
        torch.manual_seed(0)
        texts = greedy.greedy_completions(model, tokenizer, prompts, max_new_tokens=eval_args.eval_max_new_tokens,
                                          batch_size=eval_args.eval_batch_size,
                                          chat_template_kwargs=model_args.chat_template_kwargs)
        out[name] = greedy.score(texts, answers)
        print(name, out[name], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/math.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--work", type=Path, default=None, help="where the two runs go (default: a temp dir)")
    parser.add_argument("--eval-json", help=argparse.SUPPRESS)  # child mode: {name: adapter dir or null}
    args = parser.parse_args()

    if args.eval_json:
        print(json.dumps(evaluate(args.recipe, json.loads(args.eval_json))))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-learning-"))
    work.mkdir(parents=True, exist_ok=True)
    rlft_dir, trl_dir = work / "rlft", work / "stock-trl"
    quiet = ["--report_to", "none", "--log_completions", "false"]
    rlft = run_measured([python(), "-m", "rlft.grpo", args.recipe, "--eval_before_after", "false",
                         "--output_dir", str(rlft_dir), *quiet], work / "rlft.log")
    print("rlft", rlft, flush=True)
    trl = run_measured([python(), str(Path(__file__).with_name("stock_trl_grpo.py")), args.recipe,
                        "--budget-seconds", str(rlft["wall_s"]),
                        "--output_dir", str(trl_dir), *quiet], work / "stock-trl.log")
    print("stock TRL", trl, flush=True)
    runs = {"rlft": (rlft, rlft_dir), "stock-trl": (trl, trl_dir)}
    for figures, run_dir in runs.values():
        figures["steps"] = last_step(read_log_history(run_dir))

    # the final adapters, and both runs at the last step both saved a checkpoint (learning per step)
    to_score: dict[str, str | None] = {"base": None, "rlft": str(rlft_dir), "stock-trl": str(trl_dir)}
    shared = sorted(set(checkpoints(rlft_dir)) & set(checkpoints(trl_dir)))
    for side, (figures, run_dir) in runs.items():
        if shared and shared[-1] != figures["steps"]:
            to_score[f"{side}@{shared[-1]}"] = str(checkpoints(run_dir)[shared[-1]])
    proc = subprocess.run([python(), __file__, "--recipe", args.recipe, "--eval-json", json.dumps(to_score)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"evaluation failed:\n{proc.stderr[-3000:]}")
    scores = json.loads(proc.stdout.strip().splitlines()[-1])
    base = scores["base"]["accuracy"]
    report = {
        "setup": {"recipe": args.recipe, "budget_s": rlft["wall_s"], "work": str(work),
                  "eval_prompts": scores["base"]["n"]},
        "base_accuracy": base,
        "runs": {"rlft": rlft, "stock-trl": trl},
        "accuracy": {name: s["accuracy"] for name, s in scores.items()},
        "gain_points": {name: round(100 * (s["accuracy"] - base), 1) for name, s in scores.items() if name != "base"},
    }
    write_report(args.out, "learning", report)


if __name__ == "__main__":
    main()
