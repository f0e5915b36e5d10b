"""An ablation's result: per setting, accuracy over seeds with intervals, the change against a baseline, plots.

Each cell of an ablation (one setting, one seed) is an ordinary run
directory whose closing check scored the base and the trained model on the
same held-out prompts (``before_after.jsonl``). Chance enters twice — which
seed trained the model, and which prompts it was tested on — so every
interval here is a two-level bootstrap: seeds are drawn with replacement,
then prompts within each drawn seed (:func:`nested_bootstrap`). A setting's
change against the baseline is paired: the same seed and the same prompt on
both sides, seeds present in both.

Example:
    >>> nested_bootstrap([[0.0, 0.0], [1.0, 1.0]], resamples=2000)
    {'mean': 0.5, 'low': 0.0, 'high': 1.0}
"""

from __future__ import annotations

import base64
import html
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from rlft.core.files import write_atomic
from rlft.core.manifest import read_manifest
from rlft.evaluation.report import png_bytes


def nested_bootstrap(groups: Sequence[Sequence[float]], resamples: int = 2000, seed: int = 0,
                     confidence: float = 0.95) -> dict[str, float]:
    """Mean over groups (seeds) of each group's mean (over prompts), with a two-level percentile interval.

    Each resample draws as many groups as there are, with replacement, and
    within each drawn group as many values as it has, with replacement. One
    group is an ordinary bootstrap over its values. Seeded: reruns agree.

    Example:
        >>> nested_bootstrap([[1.0, 0.0, 1.0, 1.0]], resamples=500)["mean"]
        0.75
    """
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        raise ValueError("nested_bootstrap needs at least one non-empty group")
    rng = random.Random(seed)

    def mean_of(gs: Sequence[Sequence[float]]) -> float:
        return sum(sum(g) / len(g) for g in gs) / len(gs)

    draws = []
    for _ in range(resamples):
        picked = [groups[rng.randrange(len(groups))] for _ in groups]
        draws.append(mean_of([[g[rng.randrange(len(g))] for _ in g] for g in picked]))
    draws.sort()
    tail = (1.0 - confidence) / 2
    return {"mean": mean_of(groups), "low": draws[int(tail * (resamples - 1))],
            "high": draws[int((1 - tail) * (resamples - 1))]}


def read_cell(run_dir: Path) -> dict[str, Any] | None:
    """A finished cell's per-prompt scores, eval curve and wall time; ``None`` if it has not finished.

    Reads ``rlft_manifest.json`` (status ``complete``), ``before_after.jsonl``
    (per prompt: base and trained score; ``None`` = could not verify),
    ``log_history.jsonl`` (``eval/accuracy`` per step, when the run evaluated
    during training) and ``ablate_cell.json`` (wall seconds of its runs).
    """
    if read_manifest(run_dir).get("status") != "complete" or not (run_dir / "before_after.jsonl").is_file():
        return None
    samples = [json.loads(line) for line in (run_dir / "before_after.jsonl").read_text().splitlines()]
    history = []
    if (run_dir / "log_history.jsonl").is_file():
        history = [json.loads(line) for line in (run_dir / "log_history.jsonl").read_text().splitlines()]
    timing = run_dir / "ablate_cell.json"
    seconds = json.loads(timing.read_text()).get("seconds") if timing.is_file() else None
    return {"base": [s["score_base"] for s in samples], "trained": [s["score_trained"] for s in samples],
            "curve": [(e["step"], e["eval/accuracy"]) for e in history if "eval/accuracy" in e],
            "seconds": seconds}


def _scored(pairs: Sequence[tuple[float | None, float | None]]) -> list[tuple[float, float]]:
    return [(a, b) for a, b in pairs if a is not None and b is not None]


def summarize(cells: dict[str, dict[int, dict[str, Any]]], baseline: str, resamples: int = 2000) -> list[dict]:
    """One row per setting: seeds finished, accuracy, gain over base and change vs ``baseline``, each with a 95 % CI.

    ``cells`` is ``{setting: {seed: read_cell(...)}}`` (finished cells only).

    Example:
        >>> cell = lambda base, trained: {"base": base, "trained": trained, "curve": [], "seconds": 60.0}
        >>> rows = summarize({"a": {1: cell([0, 0], [0, 1]), 2: cell([0, 0], [1, 0])},
        ...                   "b": {1: cell([0, 0], [1, 1]), 2: cell([0, 0], [1, 1])}}, baseline="a", resamples=200)
        >>> [(r["setting"], r["seeds"], r["accuracy"], r["gain"]) for r in rows]
        [('a', [1, 2], 0.5, 0.5), ('b', [1, 2], 1.0, 1.0)]
        >>> rows[1]["vs_baseline"], rows[1]["vs_baseline_seeds"]
        (0.5, [1, 2])
    """
    rows = []
    for setting, by_seed in cells.items():
        seeds = sorted(by_seed)
        row: dict[str, Any] = {"setting": setting, "seeds": seeds}
        if seeds:
            pairs = [_scored(list(zip(by_seed[s]["base"], by_seed[s]["trained"], strict=True))) for s in seeds]
            acc = nested_bootstrap([[t for _, t in p] for p in pairs], resamples)
            gain = nested_bootstrap([[t - b for b, t in p] for p in pairs], resamples)
            times = [by_seed[s]["seconds"] for s in seeds if by_seed[s]["seconds"] is not None]
            row.update(accuracy=acc["mean"], accuracy_low=acc["low"], accuracy_high=acc["high"], gain=gain["mean"],
                       gain_low=gain["low"], gain_high=gain["high"], base=nested_bootstrap(
                           [[b for b, _ in p] for p in pairs], resamples)["mean"],
                       seconds=sum(times) / len(times) if times else None)
        shared = sorted(set(seeds) & set(cells.get(baseline, {})))
        if setting != baseline and shared:
            diffs = [[t - ref for ref, t in _scored(list(zip(cells[baseline][s]["trained"], by_seed[s]["trained"],
                                                             strict=True)))] for s in shared]
            change = nested_bootstrap(diffs, resamples)
            row.update(vs_baseline=change["mean"], vs_baseline_low=change["low"], vs_baseline_high=change["high"],
                       vs_baseline_seeds=shared)
        rows.append(row)
    return rows


def _pct(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else (f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}%")


def _span(row: dict, key: str, signed: bool = False) -> str:
    if row.get(key) is None:
        return "-"
    return f"{_pct(row[key], signed)} [{_pct(row[key + '_low'], signed)}, {_pct(row[key + '_high'], signed)}]"


def format_rows(rows: list[dict], baseline: str) -> str:
    """The ablation table as text (mean over seeds, 95 % two-level bootstrap intervals).

    Example:
        >>> print(format_rows([{"setting": "lr=1", "seeds": [1], "accuracy": 0.5, "accuracy_low": 0.4,
        ...     "accuracy_high": 0.6,
        ...     "gain": 0.2, "gain_low": 0.1, "gain_high": 0.3, "seconds": 90.0}], "lr=1"))  # doctest: +NORMALIZE_WHITESPACE
        setting  seeds  accuracy [95% CI]      gain over base [95% CI]  vs lr=1 (paired) [95% CI]  wall/run
        lr=1     1      50.0% [40.0%, 60.0%]   +20.0 [+10.0, +30.0]     baseline                   1m30s
    """
    width = max(len("setting"), *(len(r["setting"]) for r in rows))
    vs_head = f"vs {baseline} (paired) [95% CI]"
    vs_width = max(26, len(vs_head))
    lines = [f"{'setting':<{width}}  seeds  {'accuracy [95% CI]':<22} {'gain over base [95% CI]':<24} "
             + f"{vs_head:<{vs_width}} wall/run"]
    for r in rows:
        vs = "baseline" if r["setting"] == baseline else _span(r, "vs_baseline", signed=True)
        wall = "-" if r.get("seconds") is None else f"{int(r['seconds'] // 60)}m{int(r['seconds'] % 60):02d}s"
        lines.append(f"{r['setting']:<{width}}  {len(r['seeds']):<5}  {_span(r, 'accuracy'):<22} "
                     f"{_span(r, 'gain', signed=True):<24} {vs:<{vs_width}} {wall}")
    return "\n".join(lines)


def plots(rows: list[dict], cells: dict[str, dict[int, dict[str, Any]]]) -> dict[str, bytes]:
    """``accuracy.png`` (mean per setting, 95 % CI bars) and, when the cells evaluated during training,
    ``curves.png`` (``eval/accuracy`` per step, one line per seed)."""
    matplotlib.use("Agg")

    out = {}
    done = [r for r in rows if r["seeds"]]
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(done)), 3.2))
    acc = [100 * r["accuracy"] for r in done]
    err = [[a - 100 * r["accuracy_low"] for a, r in zip(acc, done, strict=True)],
           [100 * r["accuracy_high"] - a for a, r in zip(acc, done, strict=True)]]
    ax.errorbar(range(len(done)), acc, yerr=err, fmt="o", capsize=5, color="#3a7")
    for i, r in enumerate(done):
        ax.plot([i], [100 * r["base"]], "_", color="#999", markersize=18)
    ax.set_xticks(range(len(done)), [r["setting"][-24:] for r in done], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Greedy accuracy over seeds (95% CI; grey: base)")
    out["accuracy.png"] = png_bytes(fig)
    plt.close(fig)
    if any(c["curve"] for by_seed in cells.values() for c in by_seed.values()):
        fig, ax = plt.subplots(figsize=(6.5, 3.4))
        for i, (setting, by_seed) in enumerate(cells.items()):
            for j, (seed, cell) in enumerate(sorted(by_seed.items())):
                if cell["curve"]:
                    steps, values = zip(*cell["curve"], strict=True)
                    ax.plot(steps, [100 * v for v in values], color=f"C{i}", alpha=0.8,
                            label=setting[-24:] if j == 0 else None, marker=".")
        ax.set_xlabel("step")
        ax.set_ylabel("eval/accuracy (%)")
        ax.set_title("Greedy accuracy during training, one line per seed")
        ax.legend(fontsize=7)
        out["curves.png"] = png_bytes(fig)
        plt.close(fig)
    return out


def write_result(out: Path, rows: list[dict], cells: dict[str, dict[int, dict[str, Any]]],
                 meta: dict[str, Any]) -> str:
    """Write ``results.json``, ``report.md``, ``report.html`` (plots inlined) and the PNGs; returns the table."""
    baseline = meta["baseline"]
    table = format_rows(rows, baseline)
    images = plots(rows, cells)
    for name, data in images.items():
        (out / name).write_bytes(data)
    missing = meta.get("missing", [])
    note = f"{len(missing)} cell(s) not finished: {', '.join(missing)}" if missing else "every cell finished"
    write_atomic(out / "results.json", json.dumps({**meta, "rows": rows}, indent=2, default=str) + "\n")
    intro = (f"{meta['recipe']} ({meta['stage']}), seeds {meta['seeds']}; accuracy is greedy on the held-out "
             "prompts of each run's closing check; intervals: 95 % bootstrap over seeds and prompts; "
             f"{note}.")
    md = [f"# rlft ablation\n\n{intro}\n", "```", table, "```\n", *(f"![{n}]({n})\n" for n in images)]
    write_atomic(out / "report.md", "\n".join(md))
    imgs = "".join(f'<img alt="{n}" src="data:image/png;base64,{base64.b64encode(d).decode()}">'
                   for n, d in images.items())
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>rlft ablation</title><style>"
            "body{font-family:sans-serif;max-width:64em;margin:2em auto}pre{background:#f4f4f4;padding:1em}"
            f"</style></head><body><h1>rlft ablation</h1><p>{html.escape(intro)}</p><pre>{html.escape(table)}</pre>"
            f"{imgs}<h2>Setup</h2><pre>{html.escape(json.dumps(meta, indent=2, default=str))}</pre></body></html>\n")
    write_atomic(out / "report.html", page)
    return table
