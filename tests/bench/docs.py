"""The docs' benchmark tables, generated from the committed results in ``bench/results/``.

    make bench-docs         # rewrite the marked blocks in README.md and docs/benchmarks.md
    .venv/bin/python tests/bench/docs.py --check   # exit 1 when a block differs from its result file

A block is the text between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->``; NAME is a result file (``bench/results/NAME.json``)
and a renderer below. ``tests/test_bench_docs.py`` fails when a block no
longer matches its file, so every number in those blocks traces to a file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
DOCS = (ROOT / "README.md", ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "stages.md")


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def pts(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}"


def span(row: dict, key: str, points: bool = True) -> str:
    form = pts if points else pct
    if row.get(key) is None:
        return "-"
    return f"{form(row[key])} [{form(row[key + '_low'])}, {form(row[key + '_high'])}]"


def measured_on(result: dict) -> str:
    m = result["machine"]
    commit = m["commit"][:12] + (" with uncommitted changes" if m["commit"].endswith("+dirty") else "")
    return f"Measured on {m['cpu']} ({m['cores']} cores) at commit `{commit}`, {m['date'][:10]}: `{m['command']}`."


def learning_table(result: dict) -> str:
    """docs/benchmarks.md: both comparisons with intervals, then each seed's runs."""
    lines = [measured_on(result), "",
             ("| comparison | seeds | rlft: accuracy, gain over base | stock TRL: accuracy, gain over base "
              "| rlft − stock TRL (paired) |"), "|---|---|---|---|---|"]
    for key, label in (("equal_time", "equal wall time, stock TRL's schedule fitted to it"),
                       ("equal_steps", "equal steps (last checkpoint both saved)")):
        rows = {r["setting"]: r for r in result.get(key, [])}
        if not rows:
            continue
        ours, theirs = rows["rlft"], rows["stock-trl"]
        lines.append(f"| {label} | {len(ours['seeds'])} | {pct(ours['accuracy'])}, {span(ours, 'gain')} "
                     f"| {pct(theirs['accuracy'])}, {span(theirs, 'gain')} | {span(ours, 'vs_baseline')} |")
    lines += ["", "| seed | budget | rlft | stock TRL (fitted `max_steps`) | equal step | rlft evals |",
              "|---|---|---|---|---|---|"]
    for seed, run in result["runs"].items():
        acc = result["accuracy"][seed]
        ours, theirs = run["rlft"], run["stock-trl"]
        finished = "" if theirs["schedule_finished"] else ", stopped at the budget"
        step = (f"step {run['equal_step']}: rlft {pct(acc['rlft@step'])}, stock {pct(acc['stock-trl@step'])}"
                if run["equal_step"] else "none saved by both")
        lines.append(
            f"| {seed} | {run['budget_s']:.0f} s | {ours['steps']} steps, {pct(acc['rlft'])} (base {pct(acc['base'])}), "
            f"median step {ours['median_step_s']} s | {theirs['steps']} of {theirs['max_steps']} steps{finished}, "
            f"{pct(acc['stock-trl'])}, median step {theirs['median_step_s']} s | {step} | {ours['evals']} in "
            f"{ours['eval_seconds']:.0f} s |")
    lines += ["", f"Stock TRL with vLLM: not run: {result['stock_trl_vllm']}."]
    return "\n".join(lines)


def learning_readme(result: dict) -> str:
    """README: the demo recipe over seeds, and the same-time comparison, with their intervals."""
    rows = {r["setting"]: r for r in result["equal_time"]}
    ours = rows["rlft"]
    return (f"Over {len(ours['seeds'])} seeds ({', '.join(map(str, ours['seeds']))}) the recipe's greedy accuracy goes "
            f"from {pct(ours['base'])} to {pct(ours['accuracy'])}: a gain of {span(ours, 'gain')} points; stock TRL "
            f"given the same wall time and a schedule that fits it gains {span(rows['stock-trl'], 'gain')}, and the "
            f"paired difference is {span(ours, 'vs_baseline')} (95 % intervals over seeds and prompts; "
            "`bench/results/learning.json`, [docs/benchmarks.md](docs/benchmarks.md)).")


def rewards_table(result: dict) -> str:
    """docs/benchmarks.md: agreement per class of the case table, time per sample, then batch throughput."""
    table, names = result["case_table"], list(result["case_table"]["verifiers"])
    lines = [measured_on(result), "", "| class | cases | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for kind, row in table["classes"].items():
        lines.append(f"| {kind} | {row['n']} | " + " | ".join(str(row[n]) for n in names) + " |")
    lines.append(f"| **all** | {table['cases']} | "
                 + " | ".join(f"**{table['verifiers'][n]['agree']}**" for n in names) + " |")
    lines.append("| ms per sample | | " + " | ".join(str(table["verifiers"][n]["ms_per_sample"]) for n in names) + " |")
    misses = ", ".join(f"`{n}` {len(table['verifiers'][n]['misses'])}" for n in names)
    lines += ["", f"Cases missed: {misses} (each miss, with its completion and gold, is in the result file).", "",
              (f"Throughput on {result['n']} generated completions shaped like GRPO batches (8 per prompt share a "
              f"gold; {result['hostile']} hostile ones: exponent towers, 1 MB texts, deep nesting), both in the same "
              f"process one after the other, rlft with {result['workers']} workers: rlft "
              f"{result['rlft_per_s']} completions/s, TRL {result['trl_per_s']}/s (**{result['speedup']}x**); they "
              f"agree on {100 * result['agreement_non_hostile']:.1f} % of the {result['n'] - result['hostile']} "
              f"non-hostile samples; the hostile samples stretched rlft's batch by {result['hostile_stretch_s']} s "
              f"({result['hostile_stretch_per_sample_s']} s each, per-sample timeout {result['timeout_s']} s).")]
    return "\n".join(lines)


def refusal_table(result: dict) -> str:
    """docs/benchmarks.md: each bad input's seconds and stderr lines, the baseline commit beside now."""
    lines = [measured_on(result), "", (f"Median of {result['repeats']} fresh processes each; baseline "
             f"`{result['baseline']}` (the same interpreter and packages)."), "",
             "| bad input | before | now | what it says now |", "|---|---|---|---|"]
    for name, now in result["now"].items():
        before = result["before"][name]
        lines.append(f"| {name} | {before['median_seconds']} s, {before['stderr_lines']} lines, exit {before['rc']} "
                     f"| {now['median_seconds']} s, {now['stderr_lines']} "
                     f"line{'s' if now['stderr_lines'] != 1 else ''}, exit {now['rc']} | `{now['last_line'][:90]}` |")
    return "\n".join(lines)


def memory_table(result: dict) -> str:
    """docs/benchmarks.md: each cell's plan beside its measured peak."""
    cells = result["cells"]
    over = [c["cell"] for c in cells if c["plan_over_measured"] > 1.25]
    lines = [measured_on(result), "", "| cell | what | rows x tokens | plan | measured peak | plan / measured |",
             "|---|---|---|---|---|---|"]
    for c in cells:
        work = c["workload"]
        lines.append(f"| {c['cell']} | {c['what']} | {work['sequences']} x {work['tokens']} "
                     f"| {c['plan_bytes'] / 2**30:.2f} GB | {c['measured_bytes'] / 2**30:.2f} GB "
                     f"| {c['plan_over_measured']:.2f} |")
    lines += ["", f"Never below the measured peak: {'yes' if result['never_below'] else '**no**'}; within 25 % "
              f"above it: {len(cells) - len(over)} of {len(cells)} cells"
              + (f" (over: {', '.join(over)})." if over else ".")]
    return "\n".join(lines)


ROLLOUT_NAMES = {"hf": "HF generate", "vllm-merged": "vLLM, merged reload", "vllm-adapter": "vLLM, adapter hot-swap"}


def rollout_table(result: dict) -> str:
    """docs/benchmarks.md: tokens per second of each engine on the recipe's rounds, and the ratio to HF."""
    setup = result["setup"]
    lines = [measured_on(result), "",
             (f"{setup['prompts']} prompts x {setup['generations']} completions of up to {setup['max_tokens']} "
              f"tokens from `{setup['recipe']}`, in rounds of {setup['per_round']} prompts with one sync each; "
              f"{setup['model']}."), "",
             "| engine | tokens/s | vs HF | seconds per round | sync per round | engine start-up (apart) |",
             "|---|---|---|---|---|---|"]
    for row in result["results"]:
        name = row["engine"]
        speed = "1.00x" if name == "hf" else f"**{result['speedup_vs_hf'][name]}x**"
        lines.append(f"| {ROLLOUT_NAMES.get(name, name)} | {row['tokens_per_s']} | {speed} | {row['round_s_mean']} s "
                     f"| {row['sync_s_mean']} s | {row['engine_start_s']} s |")
    return "\n".join(lines)


STEP_NAMES = {"stock-trl": "stock TRL `GRPOTrainer` (transformers generate)",
              "rlft-vllm-merged": "rlft, vLLM engine, merged sync (the recipe)",
              "rlft-vllm-adapter": "rlft, vLLM engine, adapter hot-swap",
              "rlft-vllm-merged-all-rows": "rlft, merged sync, every row in one padded pass (no skipping, no buckets)"}


def step_table(result: dict) -> str:
    """docs/benchmarks.md: median step time and peak memory per side, with the ratios to stock TRL."""
    lines = [measured_on(result), "",
             (f"`{result['setup']['recipe']}` for {result['setup']['steps']} steps per side, each in its own process; "
              "median of the steps after the first (TRL's `step_time`); peak memory is the PSS of the whole process "
              "tree."), "",
             "| side | median step | vs stock TRL | peak memory | vs stock TRL | rows skipped (zero advantage) | wall |",
             "|---|---|---|---|---|---|---|"]
    for row in result["results"]:
        side = row["side"]
        time_ratio = result["step_time_vs_stock_trl"].get(side)
        mem_ratio = result["peak_mem_vs_stock_trl"].get(side)
        skipped = "-" if row.get("rows_skipped_mean") is None else f"{100 * row['rows_skipped_mean']:.0f} %"
        lines.append(f"| {STEP_NAMES.get(side, side)} | {row['median_step_s']} s "
                     f"| {'-' if time_ratio is None else f'**{time_ratio}x**'} | {row['peak_mem_mib']} MiB "
                     f"| {'-' if mem_ratio is None else f'{mem_ratio}x'} | {skipped} | {row['wall_s']} s |")
    return "\n".join(lines)


def buckets_table(result: dict) -> str:
    """docs/benchmarks.md: the replayed run's training passes, one padded pass vs length buckets."""
    secs, toks = result["seconds"], result["tokens"]
    return "\n".join([
        measured_on(result), "",
        f"Replaying the {result['setup']['steps']} steps of `{result['setup']['run']}` (`{result['setup']['recipe']}`):", "",
        "| training pass | tokens | seconds |", "|---|---|---|",
        f"| TRL's single padded pass | {toks['one-pass']} | {secs['one-pass']} s |",
        (f"| length buckets | {toks['buckets']} ({result['tokens_vs_one_pass']}x) "
         f"| {secs['buckets']} s (**{result['time_vs_one_pass']}x**) |")])


def canary_table(result: dict) -> str:
    """docs/stages.md: per engine dtype and statistic, a synced engine's largest figure vs a step-behind one's."""
    lines = [measured_on(result), "",
             "| engine dtype | statistic | synced engine, largest | one step behind, smallest | separation |",
             "|---|---|---|---|---|"]
    for dtype, data in result["dtypes"].items():
        for name, row in data["summary"].items():
            apart = f"{row['separation']:,.0f}" if row["separation"] >= 10 else f"{row['separation']:.2f}"
            lines.append(f"| {dtype} | {name} | {row['synced_max']:.2g} | {row['behind_min']:.2g} | {apart}x |")
    syncs = {dtype: len(data["syncs"]) for dtype, data in result["dtypes"].items()}
    return "\n".join([*lines, "", "Syncs measured (after a step that trained): " +
                      ", ".join(f"{dtype} {n}" for dtype, n in syncs.items()) + "."])


def losses_table(result: dict) -> str:
    """docs/stages.md: each GRPO loss variant's two steps on the bundled model with the vLLM engine."""
    lines = [measured_on(result), "",
             "| variant | engine | losses (steps 1, 2) | adapter moved | sync gap (tolerance) | seconds |",
             "|---|---|---|---|---|---|"]
    for row in result["variants"]:
        gap = "-" if row["sync_gap"] is None else f"{row['sync_gap']:.2g} ({row['sync_tolerance']:g})"
        lines.append(f"| {row['variant']} | {row['engine']} | {', '.join(f'{v:.4g}' for v in row['losses'])} | "
                     f"{'yes' if row['adapter_moved'] else '**no**'} | {gap} | {row['seconds']} |")
    return "\n".join(lines)


TARGETS = {"grpo_step": "bench-step", "length_buckets": "bench-buckets"}  # make targets whose name differs
RENDER: dict[tuple[str, str], Callable[[dict], str]] = {
    ("docs/benchmarks.md", "refusal"): refusal_table,
    ("docs/benchmarks.md", "memory"): memory_table,
    ("docs/benchmarks.md", "rewards"): rewards_table,
    ("docs/benchmarks.md", "learning"): learning_table,
    ("docs/benchmarks.md", "rollout"): rollout_table,
    ("docs/benchmarks.md", "grpo_step"): step_table,
    ("docs/benchmarks.md", "length_buckets"): buckets_table,
    ("README.md", "learning"): learning_readme,
    ("docs/stages.md", "canary"): canary_table,
    ("docs/stages.md", "losses"): losses_table,
}


def rendered(path: Path) -> str:
    """``path``'s text with every marked block regenerated from its result file."""
    text = path.read_text()
    rel = path.relative_to(ROOT).as_posix()

    def fill(match: re.Match) -> str:
        name = match.group(1)
        render = RENDER.get((rel, name))
        source = RESULTS / f"{name}.json"
        if render is None:
            raise SystemExit(f"{rel}: block {name!r} has no renderer")
        body = (render(json.loads(source.read_text())) if source.is_file()
                else f"No result committed yet: `make {TARGETS.get(name, 'bench-' + name)}` writes "
                f"`bench/results/{name}.json`.")
        return f"<!-- results:{name} -->\n{body}\n<!-- /results:{name} -->"

    return re.sub(r"<!-- results:(\w+) -->\n(?:.*?\n)?<!-- /results:\1 -->", fill, text, flags=re.DOTALL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ from their results")
    args = parser.parse_args()
    stale = []
    for path in DOCS:
        new = rendered(path)
        if new != path.read_text():
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"out of date with bench/results: {', '.join(stale)} (run make bench-docs)", file=sys.stderr)
        return 1
    print("\n".join(f"rewrote {p}" for p in stale) if stale else "docs match bench/results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
