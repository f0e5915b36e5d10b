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


MACHINE = {"cpu": "Test CPU", "cores": 2, "commit": "0123456789abcdef", "date": "2026-12-02T10:00",
           "command": "tests/bench/bench_x.py"}


def test_the_rewards_table_counts_each_verifier_per_class_and_states_the_throughput():
    verifiers = {"rlft accuracy": {"agree": 3, "ms_per_sample": 2.5, "misses": []},
                 "math-verify": {"agree": 1, "ms_per_sample": 9.0, "misses": [{}, {}]}}
    result = {"machine": MACHINE, "n": 100, "hostile": 4, "workers": 2, "timeout_s": 5.0, "rlft_per_s": 150.0,
              "trl_per_s": 15.0, "speedup": 10.0, "agreement_non_hostile": 1.0, "hostile_stretch_s": 2.0,
              "hostile_stretch_per_sample_s": 0.5,
              "case_table": {"cases": 3, "verifiers": verifiers,
                             "classes": {"latex": {"n": 2, "rlft accuracy": 2, "math-verify": 1},
                                         "text": {"n": 1, "rlft accuracy": 1, "math-verify": 0}}}}
    table = docs.rewards_table(result)
    assert "| latex | 2 | 2 | 1 |" in table and "| text | 1 | 1 | 0 |" in table
    assert "| **all** | 3 | **3** | **1** |" in table and "| ms per sample | | 2.5 | 9.0 |" in table
    assert "`rlft accuracy` 0, `math-verify` 2" in table  # misses per verifier
    assert "rlft 150.0 completions/s, TRL 15.0/s (**10.0x**)" in table and "of the 96 non-hostile" in table


def test_the_refusal_table_puts_the_baseline_beside_now():
    def side(seconds, lines):
        return {"unknown key": {"median_seconds": seconds, "stderr_lines": lines, "rc": 2,
                                "last_line": "error: unknown recipe key 'x'"}}

    table = docs.refusal_table({"machine": MACHINE, "baseline": "4c76848", "repeats": 3, "now": side(0.3, 1),
                                "before": side(5.8, 2)})
    assert "| unknown key | 5.8 s, 2 lines, exit 2 | 0.3 s, 1 line, exit 2 | `error: unknown recipe key 'x'` |" in table
    assert "baseline `4c76848`" in table and "Median of 3 fresh processes" in table


def test_the_rollout_table_gives_each_engine_its_speed_and_ratio_to_hf():
    def row(engine, speed, sync):
        return {"engine": engine, "tokens_per_s": speed, "round_s_mean": 10.0, "sync_s_mean": sync,
                "engine_start_s": 0.0 if engine == "hf" else 20.5}

    result = {"machine": MACHINE, "setup": {"recipe": "recipes/math.yaml", "prompts": 32, "per_round": 8,
                                            "generations": 8, "max_tokens": 64, "model": "tiny (float32)"},
              "results": [row("hf", 80.0, 0.0), row("vllm-merged", 180.0, 0.7)],
              "speedup_vs_hf": {"vllm-merged": 2.25}}
    table = docs.rollout_table(result)
    assert "| HF generate | 80.0 | 1.00x | 10.0 s | 0.0 s | 0.0 s |" in table
    assert "| vLLM, merged reload | 180.0 | **2.25x** | 10.0 s | 0.7 s | 20.5 s |" in table
    assert "in rounds of 8 prompts with one sync each" in table


def test_the_step_table_states_each_side_against_stock_trl():
    def row(side, step, mem, skipped):
        return {"side": side, "median_step_s": step, "peak_mem_mib": mem, "rows_skipped_mean": skipped, "wall_s": 99.0}

    result = {"machine": MACHINE, "setup": {"recipe": "recipes/math.yaml", "steps": 6},
              "results": [row("stock-trl", 60.0, 10000, None), row("rlft-vllm-merged", 15.0, 12000, 0.75)],
              "step_time_vs_stock_trl": {"rlft-vllm-merged": 0.25}, "peak_mem_vs_stock_trl": {"rlft-vllm-merged": 1.2}}
    table = docs.step_table(result)
    assert "| stock TRL `GRPOTrainer` (transformers generate) | 60.0 s | - | 10000 MiB | - | - | 99.0 s |" in table
    assert "| 15.0 s | **0.25x** | 12000 MiB | 1.2x | 75 % | 99.0 s |" in table


def test_the_buckets_table_and_a_missing_result_name_the_make_target():
    result = {"machine": MACHINE, "setup": {"run": "runs/math", "recipe": "recipes/math.yaml", "steps": 30},
              "seconds": {"one-pass": 600.0, "buckets": 360.0}, "tokens": {"one-pass": 1000, "buckets": 700},
              "time_vs_one_pass": 0.6, "tokens_vs_one_pass": 0.7}
    table = docs.buckets_table(result)
    assert "| length buckets | 700 (0.7x) | 360.0 s (**0.6x**) |" in table and "the 30 steps of `runs/math`" in table
    makefile = (REPO / "Makefile").read_text()
    for name in ("grpo_step", "length_buckets", "rollout"):  # the placeholder names a target that exists
        assert f"\n{docs.TARGETS.get(name, 'bench-' + name)}: setup" in makefile
