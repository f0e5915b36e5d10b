"""Evaluation reports: terminal table, ``report.md``, self-contained ``report.html`` with PNG plots.

The HTML embeds its plots as base64 PNGs, so the one file can be mailed or
attached to an issue. Plots: accuracy per model with 95 % bootstrap
intervals, and the reward and loss curves read from each run's
``log_history.jsonl`` (for models that are rlft run directories).

Example:
    >>> print(format_table([{"model": "base", "accuracy": 0.1, "marked": 0.5, "mean_tokens": 30.0,
    ...                      "n": 10, "low": 0.0, "high": 0.3}]))  # doctest: +NORMALIZE_WHITESPACE
    model        accuracy   95% CI        vs base     marked  tokens     n
    base            10.0%   [0.0, 30.0]   -           50.0%     30.0    10
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

from rlft.core.files import write_atomic


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _label(name: str, limit: int = 40) -> str:
    """A model's name for the table: whole up to ``limit`` characters, else its tail after an ellipsis."""
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per model: headline score with its interval, change vs base (with interval), marked, length.

    A stage's closing table starts from ``start`` (an earlier run) or ``base``: the change column says which.

    The rows are :func:`rlft.evaluation.scoring.table_rows`'. The first
    column is named after the headline reward (``accuracy`` unless the recipe
    has none); the model column is as wide as the longest name (run
    directories are shown whole up to 40 characters).

    Example:
        >>> row = {"accuracy": 0.5, "low": 0.4, "high": 0.6, "marked": 1.0, "mean_tokens": 18.0, "n": 200}
        >>> print(format_table([{**row, "model": "base"}, {**row, "model": "runs/pipeline/grpo", "diff": 0.1,
        ...                                              "diff_low": 0.05, "diff_high": 0.15}]))
        model              accuracy   95% CI        vs base                marked  tokens     n
        base                  50.0%   [40.0, 60.0]  -                      100.0%    18.0   200
        runs/pipeline/grpo    50.0%   [40.0, 60.0]  +10.0 [+5.0, +15.0]    100.0%    18.0   200
    """
    width = max([5] + [len(_label(r["model"])) for r in rows])
    metric = rows[0].get("metric", "accuracy") if rows else "accuracy"
    previous = any("prev_diff" in r for r in rows)  # rlft eval's paired_previous
    reference = "vs start" if rows and rows[0]["model"] == "start" else "vs base"  # a stage's closing check
    header = f"{'model':<{width}} {metric:>8}   {'95% CI':<13} {reference:<22} " + \
        (f"{'vs previous':<22} " if previous else "") + f"{'marked':>6} {'tokens':>7} {'n':>5}"
    lines = [header]
    for r in rows:
        ci = "-" if r.get("low") is None else f"[{100 * r['low']:.1f}, {100 * r['high']:.1f}]"
        vs = _change(r, "diff", "diff_low", "diff_high")
        prev = f"{_change(r, 'prev_diff', 'prev_low', 'prev_high'):<22} " if previous else ""
        best = " *" if r.get("best") else ""
        tokens = "-" if r.get("mean_tokens") is None else f"{r['mean_tokens']:.1f}"
        lines.append(f"{_label(r['model']):<{width}} {_pct(r['accuracy']):>8}   {ci:<13} {vs:<22} {prev}"
                     f"{_pct(r.get('marked')):>6} {tokens:>7} {r['n']:>5}{best}")
    return "\n".join(lines)


def _change(row: dict[str, Any], diff: str, low: str, high: str) -> str:
    if row.get(diff) is None:
        return "-"
    return f"{100 * row[diff]:+.1f} [{100 * row[low]:+.1f}, {100 * row[high]:+.1f}]"


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def accuracy_plot(rows: list[dict[str, Any]]) -> bytes:
    """Bar chart of accuracy per model with 95 % interval bars."""
    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(rows)), 3.2))
    acc = [100 * r["accuracy"] for r in rows]
    err = [[a - 100 * r.get("low", r["accuracy"]) for a, r in zip(acc, rows)],
           [100 * r.get("high", r["accuracy"]) - a for a, r in zip(acc, rows)]]
    ax.bar(range(len(rows)), acc, yerr=err, capsize=4, color=["#999" if r["model"] in ("base", "start") else "#3a7" for r in rows])
    ax.set_xticks(range(len(rows)), [r["model"][-18:] for r in rows], rotation=20, ha="right", fontsize=8)
    metric = rows[0].get("metric", "accuracy") if rows else "accuracy"
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"Greedy {metric} on held-out prompts (95% bootstrap CI)")
    data = png_bytes(fig)
    plt.close(fig)
    return data


def curves_plot(runs: dict[str, list[dict[str, Any]]]) -> bytes | None:
    """Reward and loss per step for each run with a log history (``None`` when there is none)."""
    runs = {k: v for k, v in runs.items() if any("loss" in r for r in v)}
    if not runs:
        return None

    matplotlib.use("Agg")

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, history in runs.items():
        steps = [r for r in history if "loss" in r]
        right.plot([r["step"] for r in steps], [r["loss"] for r in steps], label=name[-24:])
        rewarded = [r for r in steps if "reward" in r]
        if rewarded:
            left.plot([r["step"] for r in rewarded], [r["reward"] for r in rewarded], label=name[-24:])
    left.set_title("reward (training batches)")
    right.set_title("loss")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    data = png_bytes(fig)
    plt.close(fig)
    return data


def write_reports(out: Path, rows: list[dict[str, Any]], general: dict[str, dict[str, float]],
                  histories: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the PNG plots into ``out``; returns the paths."""
    plots = {"accuracy.png": accuracy_plot(rows), "curves.png": curves_plot(histories)}
    written = []
    for name, data in plots.items():
        if data:
            tmp = out / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(out / name)
            written.append(out / name)
    md = [f"# rlft evaluation\n\n{meta.get('summary', '')}\n", "```", format_table(rows), "```\n"]
    if general:
        md += ["## General skills (forgetting check): accuracy by category\n",
               "| model | " + " | ".join(next(iter(general.values()))) + " |",
               "|---|" + "---|" * len(next(iter(general.values())))]
        md += [f"| {m} | " + " | ".join(_pct(v) for v in cats.values()) + " |" for m, cats in general.items()]
        md.append("")
    md += ["![accuracy](accuracy.png)\n"] + (["![curves](curves.png)\n"] if plots["curves.png"] else [])
    write_atomic(out / "report.md", "\n".join(md) + "\n")
    written.append(out / "report.md")

    def img(name: str) -> str:
        data = plots.get(name)
        return f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">' if data else ""

    general_html = ""
    if general:
        cats = list(next(iter(general.values())))
        general_html = ("<h2>General skills (forgetting check)</h2><table><tr><th>model</th>"
                        + "".join(f"<th>{html.escape(c)}</th>" for c in cats) + "</tr>"
                        + "".join(f"<tr><td>{html.escape(m)}</td>" + "".join(f"<td>{_pct(v)}</td>" for v in c.values())
                                  + "</tr>" for m, c in general.items()) + "</table>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>rlft evaluation</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}</style></head><body>"
        f"<h1>rlft evaluation</h1><p>{html.escape(meta.get('summary', ''))}</p>"
        f"<pre>{html.escape(format_table(rows))}</pre>{general_html}{img('accuracy.png')}{img('curves.png')}"
        f"<h2>Setup</h2><pre>{html.escape(json.dumps(meta, indent=2, default=str))}</pre></body></html>\n"
    )
    write_atomic(out / "report.html", page)
    written.append(out / "report.html")
    return written
