"""Benchmark: learning over seeds, rlft vs stock TRL on the same recipe, at equal wall time and at equal steps.

    make bench-learning                               # recipes/math.yaml, seeds 42 1 2
    .venv/bin/python tests/bench/bench_learning.py [--recipe recipes/math.yaml] [--seeds 42 1 2] [--work DIR]

Per seed (the seed sets the training prompts' draw, the held-out split and the sampling):

1. **rlft** trains the recipe as ``make demo`` does (vLLM engine), evaluating
   greedily every 10 steps (``eval_steps``: the eval-during-training cost is
   measured here). Its budget is its process wall time less those evaluations.
2. **Stock TRL** (``stock_trl_grpo.py``: plain ``GRPOTrainer``, TRL's own
   generation) runs the same recipe for a few probe steps; from the probe's
   start-up and step times, ``max_steps`` is set to what it completes within
   rlft's budget, so its cosine schedule decays fully (the old benchmark cut a
   30-step schedule off near its peak). It then trains with that schedule,
   stopped at the budget in case its steps slow down.
3. Both sides save every 5 steps; each side's final adapter and its
   checkpoint at the last step both saved (equal steps) are scored greedily
   with the recipe's reward on the seed's held-out prompts, with the base.

Stock TRL's own vLLM path needs CUDA (its colocate and server modes); on CPU
there is no stock-TRL-with-vLLM side, and the report says so.

The result (:mod:`rlft.evaluation.ablation`): per side, mean accuracy and gain
over the base over seeds, and the paired difference rlft - stock TRL (same
seed, same prompt), each with a 95 % bootstrap interval over seeds and
prompts; per seed, steps, wall time, step times. Written to
``bench/results/learning.json`` (committed; ``make bench-docs`` renders the
docs' tables from it) and ``<work>/report.html``. Finished runs are reused
when ``--work`` is given again. About 30 minutes per seed on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, median, python, read_log_history, run_measured, step_times, write_result

PROBE_STEPS = 3
SAVE_STEPS = 5
EVAL_STEPS = 10
NO_TRL_VLLM = ("TRL's own vLLM generation (use_vllm, colocate or server mode) needs CUDA, and this machine has "
               "none; stock TRL generates with transformers")


def evaluate(recipe: str, seed: int, models: dict[str, str | None]) -> dict[str, list]:
    """Per-prompt greedy scores of the base (``None``) and each adapter dir, on the seed's held-out rows."""
    from peft import PeftModel

    from rlft.core import data
    from rlft.core import models as rlft_models
    from rlft.core.arguments import RewardArguments
    from rlft.evaluation.generation import hf_completions
    from rlft.evaluation.scoring import score_outputs
    from rlft.grpo import parse
    from rlft.stage.skeleton import StageArgs

    args = StageArgs(*parse([recipe, "--seed", str(seed)]))
    reward_funcs = args.get(RewardArguments).build()
    test = data.load_splits(args.data, seed=seed)["test"]
    rows = test.select(range(min(args.eval.eval_samples, len(test))))
    prompts = list(rows["prompt"])
    columns = {c: list(rows[c]) for c in rows.column_names}
    tokenizer = rlft_models.load_tokenizer(args.model.model_name_or_path)
    out = {}
    for name, adapter in models.items():
        model = rlft_models.load_model(args.model.model_name_or_path, args.model.dtype)
        if adapter:
            model = PeftModel.from_pretrained(model, adapter)
        texts = hf_completions(model, tokenizer, prompts, max_new_tokens=args.eval.eval_max_new_tokens,
                               batch_size=args.eval.eval_batch_size, chat_template_kwargs=args.model.chat_template_kwargs)
        out[name] = score_outputs(texts, prompts, columns, reward_funcs, tokenizer)["scores"]
        print(name, sum(s or 0 for s in out[name]) / len(prompts), flush=True)
    return out


def done(run_dir: Path) -> bool:
    return (run_dir / "measured.json").is_file()


def measured(cmd: list[str], run_dir: Path) -> dict:
    """Run ``cmd`` once into ``run_dir`` (its wall time and memory kept in ``measured.json``; reused if there)."""
    if done(run_dir):
        return json.loads((run_dir / "measured.json").read_text())
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    figures = run_measured(cmd, run_dir.parent / f"{run_dir.name}.log")
    (run_dir / "measured.json").write_text(json.dumps(figures) + "\n")
    return figures


def describe(run_dir: Path, figures: dict) -> dict:
    history = read_log_history(run_dir)
    lengths = [r["completions/mean_length"] for r in history if "completions/mean_length" in r]
    evals = [r["eval/seconds"] for r in history if "eval/seconds" in r]
    return {**figures, "steps": max((r.get("step", 0) for r in history), default=0),
            "median_step_s": median(step_times(history)),
            "completion_tokens_last5": round(sum(lengths[-5:]) / len(lengths[-5:]), 1) if lengths else None,
            "evals": len(evals), "eval_seconds": round(sum(evals), 1),
            "eval_accuracy": [(r["step"], r["eval/accuracy"]) for r in history if "eval/accuracy" in r]}


def fitted_steps(probe: dict, probe_dir: Path, budget: float) -> tuple[int, dict]:
    """Stock TRL's ``max_steps`` for ``budget`` seconds, from its probe: start-up, then its median step time."""
    history = read_log_history(probe_dir)
    steps = [r["step_time"] for r in history if "step_time" in r]
    per_step = median(steps[1:] or steps)
    startup = probe["wall_s"] - sum(steps)
    fit = {"probe_steps": len(steps), "probe_startup_s": round(startup, 1), "probe_step_s": per_step}
    return max(1, math.floor((budget - startup) / per_step)), fit


def run_seed(recipe: str, seed: int, work: Path) -> dict:
    """Train both sides at ``seed``; returns their figures and the adapters to score."""
    common = ["--seed", str(seed), "--report_to", "none", "--log_completions", "false"]
    saving = ["--save_strategy", "steps", "--save_steps", str(SAVE_STEPS)]
    stock = [python(), str(Path(__file__).with_name("stock_trl_grpo.py")), recipe]
    rlft_dir, probe_dir, trl_dir = work / "rlft", work / "stock-probe", work / "stock-trl"
    rlft = describe(rlft_dir, measured([python(), "-m", "rlft.grpo", recipe, *common, *saving, "--eval_before_after", "false",
                                        "--eval_steps", str(EVAL_STEPS), "--output_dir", str(rlft_dir)], rlft_dir))
    budget = round(rlft["wall_s"] - rlft["eval_seconds"], 1)
    probe = measured([*stock, *common, "--max_steps", str(PROBE_STEPS), "--save_strategy", "no",
                      "--output_dir", str(probe_dir)], probe_dir)
    max_steps, fit = fitted_steps(probe, probe_dir, budget)
    trl = describe(trl_dir, measured([*stock, "--budget-seconds", str(budget), *common, *saving,
                                      "--max_steps", str(max_steps), "--output_dir", str(trl_dir)], trl_dir))
    trl.update(fit, max_steps=max_steps, schedule_finished=trl["steps"] == max_steps)
    shared = sorted(set(checkpoints(rlft_dir)) & set(checkpoints(trl_dir)))
    step = shared[-1] if shared else None
    models = {"base": None, "rlft": str(rlft_dir), "stock-trl": str(trl_dir)}
    if step:
        models.update({"rlft@step": str(rlft_dir / f"checkpoint-{step}"),
                       "stock-trl@step": str(trl_dir / f"checkpoint-{step}")})
    print(f"seed {seed}: budget {budget}s, rlft {rlft['steps']} steps, stock TRL {trl['steps']}/{max_steps}",
          flush=True)
    return {"budget_s": budget, "rlft": rlft, "stock-trl": trl, "equal_step": step, "models": models}


def checkpoints(run_dir: Path) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in run_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()}


def scores_for(recipe: str, seed: int, models: dict, work: Path) -> dict[str, list]:
    """Scores from a child process (its memory gone afterwards), kept in ``scores.json`` for reruns."""
    path = work / "scores.json"
    if path.is_file() and set(json.loads(path.read_text())) == set(models):
        return json.loads(path.read_text())
    proc = subprocess.run([python(), __file__, "--recipe", recipe, "--eval-json", json.dumps(models),
                           "--eval-seed", str(seed)], capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        sys.exit(f"evaluation failed:\n{proc.stderr[-3000:]}")
    path.write_text(proc.stdout.strip().splitlines()[-1] + "\n")
    return json.loads(path.read_text())


def summary(seeds: dict[int, dict], scores: dict[int, dict]) -> dict:
    """Both comparisons with intervals: equal wall time (final adapters) and equal steps (shared checkpoint)."""
    from rlft.evaluation.ablation import summarize

    def cell(seed: int, side: str) -> dict:
        return {"base": scores[seed]["base"], "trained": scores[seed][side], "curve": [], "seconds": None}

    time_cells = {side: {s: cell(s, side) for s in seeds} for side in ("stock-trl", "rlft")}
    with_step = [s for s in seeds if seeds[s]["equal_step"]]
    step_cells = {side: {s: cell(s, f"{side}@step") for s in with_step} for side in ("stock-trl", "rlft")}
    return {"equal_time": summarize(time_cells, baseline="stock-trl"),
            "equal_steps": summarize(step_cells, baseline="stock-trl") if with_step else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/math.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temp dir)")
    parser.add_argument("--eval-json", help=argparse.SUPPRESS)  # child mode: {name: adapter dir or null}
    parser.add_argument("--eval-seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.eval_json:
        print(json.dumps(evaluate(args.recipe, args.eval_seed, json.loads(args.eval_json))))
        return

    from rlft.commands.memory_ahead import (
        check_ahead,  # a recipe that cannot fit is refused before seed 1 trains
    )

    check_ahead([(f"bench-learning {args.recipe}", "grpo", [args.recipe, "--output_dir", "unused"])])
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-learning-"))
    seeds, scores = {}, {}
    for seed in args.seeds:
        seeds[seed] = run_seed(args.recipe, seed, work / f"seed-{seed}")
        scores[seed] = scores_for(args.recipe, seed, seeds[seed]["models"], work / f"seed-{seed}")
    result = {
        "recipe": args.recipe, "seeds": args.seeds, "work": str(work),
        "stock_trl_vllm": NO_TRL_VLLM,
        "runs": {seed: {k: v for k, v in s.items() if k != "models"} for seed, s in seeds.items()},
        "accuracy": {seed: {name: sum(v or 0 for v in vals) / len(vals) for name, vals in sc.items()}
                     for seed, sc in scores.items()},
        **summary(seeds, scores),
    }
    write_result("learning", result)


if __name__ == "__main__":
    main()
