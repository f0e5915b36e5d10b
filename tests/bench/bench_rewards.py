"""Benchmark: rlft's ``accuracy`` vs TRL's ``accuracy_reward`` (and math-verify's own parse/verify).

    make bench-rewards    # or: .venv/bin/python tests/bench/bench_rewards.py [--n 2000]

Two parts, one run, written to ``bench/results/rewards.json`` (committed;
``docs/benchmarks.md``'s table is made from it, ``make bench-docs``):

1. **Agreement on the project's case table** (``tests/math_cases.py``,
   competition-style answers by class): each verifier's verdict against the
   expected one, per class, and the time per sample (median of 5 passes over
   the table, after a warm-up). math-verify is called as its docs show:
   ``parse`` of the gold (wrapped in ``$...$`` when it has no delimiters, its
   documented input) and of the whole completion, LaTeX + expression
   extraction, then ``verify``; an unparsable gold counts as ``None``. TRL's
   ``accuracy_reward`` gets the gold as its ``solution`` column, as a user
   passes it.
2. **Throughput on 2,000 generated completions**, shaped like GRPO batches
   (8 completions per prompt share its gold):

   1 % of the completions are hostile (exponent towers, 1 MB texts, deep
   nesting). Both rewards score the same batch in this process, one after the
other;    the report gives completions per second for each, their ratio, the
   agreement between the two on the non-hostile samples, and how much the
   hostile samples stretched rlft's batch compared with its per-sample
   timeout.

Figures are from one run on one machine, never absolute targets.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout: tests.math_cases
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result

HOSTILE = [
    "\\boxed{9^{9^{9^{9^{9}}}}}",
    "x" * 1_000_000 + " so \\boxed{4}",
    "\\boxed{" + "{" * 3000 + "4" + "}" * 3000 + "}",
    "\\boxed{" * 100_000,
    "\\boxed{\\frac{" * 3000,
]


def make_batch(n: int, seed: int = 0, hostile_share: float = 0.01, group: int = 8) -> tuple[list[str], list[str], list[bool]]:
    """Completions, gold answers and a hostile flag per sample (seeded, so runs compare).

    Shaped like a GRPO batch: ``group`` completions in a row answer the same
    prompt (the same gold), each right or wrong at random.
    """
    rng = random.Random(seed)
    completions, golds, hostile = [], [], []
    n_hostile = round(n * hostile_share)
    for i in range(n - n_hostile):
        if i % group == 0:
            a, b = rng.randint(1, 99), rng.randint(2, 12)
        kind = (i // group) % 5
        if kind == 0:
            gold, right, wrong = str(a * b), f"{a * b:,}", str(a * b + 1)
        elif kind == 1:
            gold, right, wrong = f"\\frac{{{a}}}{{{b}}}", f"\\frac{{{2 * a}}}{{{2 * b}}}", f"\\frac{{{b}}}{{{a}}}"
        elif kind == 2:
            gold, right, wrong = str(a / 4), f"\\frac{{{a}}}{{4}}", str(a / 4 + 0.5)
        elif kind == 3:
            # TRL parses a gold expression only inside $...$; both sides get the same text
            gold, right, wrong = f"$x^2+{a}$", f"{a}+x^2", f"x^2-{a}"
        else:
            gold, right, wrong = f"-{a}", f"-{a}.0", f"{a}"
        answer = right if rng.random() < 0.5 else wrong
        completions.append(f"Let me work it out step by step. {a} and {b} give us... so the answer is $\\boxed{{{answer}}}$.")
        golds.append(gold)
        hostile.append(False)
    for i in range(n_hostile):
        pos = rng.randrange(len(completions) + 1)
        completions.insert(pos, HOSTILE[i % len(HOSTILE)])
        golds.insert(pos, "4")
        hostile.insert(pos, True)
    return completions, golds, hostile


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def math_verify_verdicts(cases) -> list[float | None]:
    """math-verify's own parse/verify on each (completion, gold), as its docs show it."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(), ExprExtractionConfig()]
    out: list[float | None] = []
    for completion, gold in cases:
        gold_parsed = parse(gold if "$" in gold or "\\boxed" in gold else f"${gold}$", extraction_config=config)
        out.append(float(verify(gold_parsed, parse(completion, extraction_config=config))) if gold_parsed else None)
    return out


def case_table(passes: int = 5) -> dict:
    """Agreement per class and seconds per sample for the three verifiers on ``tests/math_cases.py``."""
    from trl.rewards import accuracy_reward

    from rewards import resolve
    from tests.math_cases import CASES

    ours = resolve("accuracy")
    pairs = [(c, g) for _, c, g, _ in CASES]
    verifiers = {
        "rlft accuracy": lambda: ours([c for c, _ in pairs], answer=[g for _, g in pairs]),
        "trl accuracy_reward": lambda: accuracy_reward([[{"role": "assistant", "content": c}] for c, _ in pairs],
                                                       [g for _, g in pairs]),
        "math-verify parse/verify": lambda: math_verify_verdicts(pairs),
    }
    report: dict = {"cases": len(CASES), "classes": {}, "verifiers": {}}
    for name, run in verifiers.items():
        verdicts = run()  # the warm-up pass is also the verdicts (every verifier is deterministic)
        seconds = [timed(run)[1] for _ in range(passes)]
        agree = [v == e for v, (*_, e) in zip(verdicts, CASES, strict=True)]
        report["verifiers"][name] = {"agree": sum(agree), "ms_per_sample": round(
            1000 * statistics.median(seconds) / len(CASES), 2), "misses": [
            {"class": k, "completion": c, "gold": g, "expected": e, "got": v}
            for (k, c, g, e), v, ok in zip(CASES, verdicts, agree, strict=True) if not ok]}
        for kind in dict.fromkeys(k for k, *_ in CASES):
            row = report["classes"].setdefault(kind, {"n": sum(k == kind for k, *_ in CASES)})
            row[name] = sum(ok for (k, *_), ok in zip(CASES, agree, strict=True) if k == kind)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=5.0, help="rlft's per-sample timeout (s)")
    parser.add_argument("--out", default="runs/bench/rewards.json")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # math-verify's timeout chatter

    from trl.rewards import accuracy_reward

    from rewards import resolve
    from rewards.timeouts import default_workers

    table = case_table()
    names = list(table["verifiers"])
    print(f"agreement on the case table ({table['cases']} cases, tests/math_cases.py):")
    print(f"  {'class':<18}{'n':>4}" + "".join(f"{n:>26}" for n in names))
    for kind, row in table["classes"].items():
        print(f"  {kind:<18}{row['n']:>4}" + "".join(f"{row[n]:>26}" for n in names))
    print(f"  {'all':<18}{table['cases']:>4}" + "".join(f"{table['verifiers'][n]['agree']:>26}" for n in names))
    print(f"  {'ms per sample':<22}" + "".join(f"{table['verifiers'][n]['ms_per_sample']:>26}" for n in names))

    ours = resolve("accuracy", timeout=args.timeout)
    completions, golds, hostile = make_batch(args.n)
    chat = [[{"role": "assistant", "content": c}] for c in completions]

    # warm both up (imports, rlft's worker pool) outside the timings
    ours(completions[:8], answer=golds[:8])
    accuracy_reward(chat[:8], golds[:8])

    ours_scores, ours_s = timed(ours, completions, answer=golds)
    trl_scores, trl_s = timed(accuracy_reward, chat, golds)
    clean = [i for i, h in enumerate(hostile) if not h]
    _, ours_clean_s = timed(ours, [completions[i] for i in clean], answer=[golds[i] for i in clean])
    agree = sum(ours_scores[i] == trl_scores[i] for i in clean) / len(clean)
    n_hostile = sum(hostile)
    stretch = ours_s - ours_clean_s
    report = {
        "n": args.n,
        "hostile": n_hostile,
        "workers": default_workers(),
        "timeout_s": args.timeout,
        "rlft_s": round(ours_s, 2),
        "trl_s": round(trl_s, 2),
        "rlft_per_s": round(args.n / ours_s, 1),
        "trl_per_s": round(args.n / trl_s, 1),
        "speedup": round(trl_s / ours_s, 2),
        "agreement_non_hostile": round(agree, 4),
        "rlft_clean_s": round(ours_clean_s, 2),
        "hostile_stretch_s": round(stretch, 2),
        "hostile_stretch_per_sample_s": round(stretch / max(n_hostile, 1), 2),
        "rlft_accuracy_mean": round(sum(v or 0 for v in ours_scores) / args.n, 4),
        "rlft_timeouts": ours.stats["timeouts"],
        "case_table": table,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    write_result("rewards", report)  # bench/results/rewards.json, with the machine: docs/benchmarks.md's table
    print(f"accuracy on {args.n} completions ({n_hostile} hostile), {report['workers']} workers:")
    print(f"  rlft accuracy        {ours_s:8.2f} s  {report['rlft_per_s']:8.1f} completions/s")
    print(f"  trl accuracy_reward  {trl_s:8.2f} s  {report['trl_per_s']:8.1f} completions/s")
    print(f"  speedup (trl time / rlft time): {report['speedup']}x")
    print(f"  agreement on the {len(clean)} non-hostile samples: {agree:.2%}")
    print(f"  hostile samples stretched rlft's batch by {stretch:.2f} s "
          f"({report['hostile_stretch_per_sample_s']} s each; per-sample timeout {args.timeout} s)")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
