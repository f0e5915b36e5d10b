"""The docs' benchmark tables are generated from the committed results, and say what the results say."""

from __future__ import annotations

import sys

from rlft.evaluation.ablation import summarize
from tests.conftest import REPO, run_cmd

sys.path.insert(0, str(REPO / "tests" / "bench"))
import docs  # tests/bench/docs.py


def test_every_results_block_in_the_docs_matches_its_result_file():
    run = run_cmd([sys.executable, "tests/bench/docs.py", "--check"])
    assert run.returncode == 0, run.stderr


def _learning_result() -> dict:
    def cell(base, trained):
        return {"base": base, "trained": trained, "curve": [], "seconds": None}

    seeds = {1: ([0, 0, 0, 1], [1, 1, 0, 1], [1, 0, 0, 1]), 2: ([0, 0, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0])}
    time_cells = {"stock-trl": {s: cell(b, t) for s, (b, _, t) in seeds.items()},
                  "rlft": {s: cell(b, r) for s, (b, r, _) in seeds.items()}}
    run = {"budget_s": 600.0, "equal_step": 10,
           "rlft": {"steps": 30, "median_step_s": 19.0, "evals": 3, "eval_seconds": 45.0},
           "stock-trl": {"steps": 12, "max_steps": 12, "median_step_s": 45.0, "schedule_finished": True}}
    return {"machine": {"cpu": "Test CPU", "cores": 2, "commit": "0123456789abcdef+dirty", "date": "2026-12-02T10:00",
                        "command": "tests/bench/bench_learning.py"},
            "runs": {"1": run, "2": run}, "stock_trl_vllm": "TRL's vLLM path needs CUDA",
            "accuracy": {"1": {"base": 0.25, "rlft": 0.75, "stock-trl": 0.5, "rlft@step": 0.5, "stock-trl@step": 0.25},
                         "2": {"base": 0.25, "rlft": 1.0, "stock-trl": 0.5, "rlft@step": 0.75, "stock-trl@step": 0.5}},
            "equal_time": summarize(time_cells, baseline="stock-trl", resamples=200), "equal_steps": []}


def test_the_learning_tables_show_each_side_with_its_interval_and_the_paired_difference():
    result = _learning_result()
    table = docs.learning_table(result)
    assert "at commit `0123456789ab with uncommitted changes`" in table
    row = next(line for line in table.splitlines() if line.startswith("| equal wall time"))
    rlft = next(r for r in result["equal_time"] if r["setting"] == "rlft")
    assert f"{100 * rlft['accuracy']:.1f} %" == "87.5 %" and "87.5 %, +62.5 [" in row  # (3/4 + 4/4) / 2, minus base
    assert row.endswith(f"| {docs.span(rlft, 'vs_baseline')} |") and "+37.5 [" in row  # rlft - stock, paired
    assert "| 1 | 600 s | 30 steps, 75.0 % (base 25.0 %)" in table and "step 10: rlft 50.0 %, stock 25.0 %" in table
    readme = docs.learning_readme(result)
    assert readme.startswith("Over 2 seeds (1, 2) the recipe's greedy accuracy goes from 25.0 % to 87.5 %")
