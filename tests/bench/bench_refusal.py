"""How a bad recipe is refused, as a user sees it in a fresh shell: stderr lines and seconds to exit 2.

Each bad input runs ``python -m rlft.<stage> ...`` in a new process, three
times, for the working tree and for a baseline commit (default: the last one
before the trust work, ``4c76848``), checked out in a temporary worktree and
run with the same interpreter (``python -m`` imports the checkout's own
``rlft`` first). Reported per input: exit code, stderr line count and the
median wall time, side by side.

    python tests/bench/bench_refusal.py [--baseline REF] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, python, write_report

BAD = {
    "unknown key": ["grpo", "recipes/math.yaml", "--no_such_key", "1"],
    "bad value": ["grpo", "recipes/math.yaml", "--max_completion_length", "0"],
    "wrong type": ["dpo", "recipes/dpo.yaml", "--beta", "abc"],
    "bad LoRA rank": ["sft", "recipes/sft.yaml", "--lora_r", "-1"],
    "bad reward": ["grpo", "recipes/math.yaml", "--reward_funcs", "[no_such_reward]"],
}


def refuse(checkout: Path, argv: list[str], out: Path) -> dict:
    stage, *rest = argv
    start = time.perf_counter()
    proc = subprocess.run([python(), "-m", f"rlft.{stage}", *rest, "--output_dir", str(out)], cwd=checkout,
                          capture_output=True, text=True, timeout=300, check=False)
    return {"seconds": time.perf_counter() - start, "rc": proc.returncode,
            "stderr_lines": len(proc.stderr.splitlines()), "last_line": (proc.stderr.splitlines() or [""])[-1][:160]}


def measure(checkout: Path, repeats: int, scratch: Path) -> dict:
    results = {}
    for name, argv in BAD.items():
        runs = [refuse(checkout, argv, scratch / f"{name.replace(' ', '-')}-{i}") for i in range(repeats)]
        results[name] = {"median_seconds": round(statistics.median(r["seconds"] for r in runs), 2),
                         "rc": runs[0]["rc"], "stderr_lines": runs[0]["stderr_lines"],
                         "last_line": runs[0]["last_line"]}
        print(checkout.name, name, results[name], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="4c76848")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            report = {"baseline": args.baseline, "repeats": args.repeats,
                      "now": measure(ROOT, args.repeats, Path(tmp) / "now"),
                      "before": measure(base, args.repeats, Path(tmp) / "before")}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    print(f"{'input':<16} {'before s':>9} {'lines':>6} {'now s':>7} {'lines':>6}")
    for name in BAD:
        b, n = report["before"][name], report["now"][name]
        print(f"{name:<16} {b['median_seconds']:>9} {b['stderr_lines']:>6} {n['median_seconds']:>7} {n['stderr_lines']:>6}")
    write_report(ROOT / "runs" / "bench", "refusal", report)  # and bench/results/refusal.json: docs/benchmarks.md


if __name__ == "__main__":
    main()
