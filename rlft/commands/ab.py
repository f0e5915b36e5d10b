"""Blind A/B rating: a static page that hides which model wrote what, and the tally that unblinds it.

    rlft ab runs/eval/samples.jsonl --models base runs/math --out runs/ab [--n 40] [--seed 0]
    (open runs/ab/index.html, rate, press "Export ratings": ratings.json)
    rlft ab-tally runs/ab/secret.json ratings.json

For each prompt the page shows every model's output under labels (A, B, ...)
shuffled per prompt; the rater picks the best, or a tie. The label -> model
mapping is written only to ``secret.json`` beside the page, never into it.
``ab-tally`` reads the exported ratings with the secret and prints each
model's win rate (ties count half) with a 95 % bootstrap interval. This is
how to judge tone or voice, where no verifier exists.

Example:
    >>> labels(3)
    ['A', 'B', 'C']
"""

from __future__ import annotations

import argparse
import html
import json
import random
import string
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlft.core.errors import UserError, run_cli
from rlft.core.files import write_atomic
from rlft.evaluation.metrics import bootstrap_mean


def labels(k: int) -> list[str]:
    """The blind labels for ``k`` models."""
    return list(string.ascii_uppercase[:k])


def build(samples: list[dict[str, Any]], models: list[str], n: int | None, seed: int) -> tuple[list[dict], dict]:
    """Pick the prompts and shuffle labels per prompt; returns (page items, secret)."""
    usable = [s for s in samples if all(m in s.get("outputs", {}) for m in models)]
    if not usable:
        raise UserError(f"no sample has outputs from all of {', '.join(models)}; check --models against the file")
    rng = random.Random(seed)
    chosen = rng.sample(usable, n) if n and n < len(usable) else usable
    items, secret = [], {}
    for i, sample in enumerate(chosen):
        order = rng.sample(models, len(models))
        item_id = f"q{i:03d}"
        items.append({"id": item_id, "prompt": sample["prompt"],
                      "outputs": [{"label": lab, "text": sample["outputs"][m]["text"]}
                                  for lab, m in zip(labels(len(models)), order)]})
        secret[item_id] = {"source": sample.get("id"), **dict(zip(labels(len(models)), order))}
    return items, {"models": models, "seed": seed, "items": secret}


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Blind A/B rating</title>
<style>body{{font-family:sans-serif;max-width:70em;margin:2em auto}}.item{{border:1px solid #ccc;padding:1em;margin:1em 0}}
.outs{{display:flex;gap:1em}}.out{{flex:1;background:#f6f6f6;padding:.5em;white-space:pre-wrap}}
button.on{{background:#3a7;color:#fff}}</style></head><body>
<h1>Blind A/B rating</h1><p>For each prompt pick the best answer, or a tie. Labels are shuffled per prompt.</p>
<p id="progress"></p>{items}
<button id="export">Export ratings</button>
<textarea id="ratings" rows="8" cols="80" readonly></textarea>
<script>
const ratings = {{}};
const total = {total};
function update() {{
  document.getElementById("progress").textContent = Object.keys(ratings).length + " / " + total + " rated";
}}
document.querySelectorAll("button.choice").forEach(b => b.addEventListener("click", () => {{
  ratings[b.dataset.item] = b.dataset.choice;
  document.querySelectorAll(`button.choice[data-item="${{b.dataset.item}}"]`).forEach(o => o.classList.remove("on"));
  b.classList.add("on");
  update();
}}));
document.getElementById("export").addEventListener("click", () => {{
  const text = JSON.stringify({{ratings: Object.entries(ratings).map(([id, choice]) => ({{id, choice}}))}}, null, 1);
  document.getElementById("ratings").value = text;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], {{type: "application/json"}}));
  a.download = "ratings.json";
  a.click();
}});
update();
</script></body></html>
"""


def render(items: list[dict[str, Any]]) -> str:
    """The self-contained rating page (no model names in it)."""
    blocks = []
    for item in items:
        outs = "".join(f'<div class="out"><b>{o["label"]}</b>\n{html.escape(o["text"])}</div>' for o in item["outputs"])
        choices = [o["label"] for o in item["outputs"]] + ["tie"]
        buttons = "".join(f'<button class="choice" data-item="{item["id"]}" data-choice="{c}">{c}</button>'
                          for c in choices)
        blocks.append(f'<div class="item" id="{item["id"]}"><p><b>{html.escape(item["prompt"])}</b></p>'
                      f'<div class="outs">{outs}</div><p>{buttons}</p></div>')
    return PAGE.format(items="".join(blocks), total=len(items))


def tally(secret: dict[str, Any], ratings: list[dict[str, str]], resamples: int = 2000,
          seed: int = 0) -> dict[str, dict[str, float]]:
    """Unblind ``ratings``; each model's win rate (a win scores 1, a tie 1/k each) with a bootstrap interval.

    Example:
        >>> secret = {"models": ["x", "y"], "items": {"q0": {"A": "x", "B": "y"}, "q1": {"A": "y", "B": "x"}}}
        >>> tally(secret, [{"id": "q0", "choice": "A"}, {"id": "q1", "choice": "B"}], resamples=50)["x"]["win_rate"]
        1.0
    """
    models = secret["models"]
    per_item: list[dict[str, float]] = []
    for rating in ratings:
        mapping = secret["items"].get(rating["id"])
        if mapping is None:
            raise UserError(f"rating for unknown item {rating['id']!r}: ratings and secret.json do not belong together")
        choice = rating["choice"]
        if choice == "tie":
            per_item.append({m: 1 / len(models) for m in models})
        elif choice in mapping:
            per_item.append({m: float(mapping[choice] == m) for m in models})
        else:
            raise UserError(f"rating {rating['id']!r} has choice {choice!r}; expected one of the labels or tie")
    if not per_item:
        raise UserError("no ratings to tally")

    out = {}
    for i, model in enumerate(models):
        interval = bootstrap_mean([row[model] for row in per_item], resamples, seed + i)
        out[model] = {"win_rate": interval["mean"], "low": interval["low"], "high": interval["high"],
                      "n": len(per_item)}
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    """``rlft ab``: write ``index.html`` and ``secret.json`` for blind rating."""
    parser = argparse.ArgumentParser(prog="rlft ab", description=__doc__.splitlines()[0])
    parser.add_argument("samples", help="samples.jsonl from rlft eval (prompt + outputs per model)")
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out", default="runs/ab")
    parser.add_argument("--n", type=int, default=None, help="rate this many prompts (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    path = Path(args.samples)
    if not path.exists():
        raise UserError(f"samples file not found: {path}")
    if len(args.models) < 2:
        raise UserError("--models needs at least two models to compare")
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    items, secret = build(samples, args.models, args.n, args.seed)
    out = Path(args.out)
    write_atomic(out / "index.html", render(items))
    write_atomic(out / "secret.json", json.dumps(secret, indent=2) + "\n")
    print(f"rate {len(items)} prompts in {out / 'index.html'}; keep {out / 'secret.json'} away from raters")
    return secret


def tally_main(argv: Sequence[str] | None = None) -> dict:
    """``rlft ab-tally secret.json ratings.json``: unblind and print win rates."""
    parser = argparse.ArgumentParser(prog="rlft ab-tally", description="Unblind A/B ratings; print win rates.")
    parser.add_argument("secret")
    parser.add_argument("ratings")
    args = parser.parse_args(argv)
    for name in (args.secret, args.ratings):
        if not Path(name).exists():
            raise UserError(f"file not found: {name}")
    secret = json.loads(Path(args.secret).read_text())
    ratings = json.loads(Path(args.ratings).read_text())
    result = tally(secret, ratings["ratings"] if isinstance(ratings, dict) else ratings)
    print(f"{'model':<30} {'win rate':>8}   95% CI        n")
    for model, r in result.items():
        print(f"{model[-30:]:<30} {r['win_rate']:>8.1%}   [{r['low']:.2f}, {r['high']:.2f}]  {r['n']}")
    return result


if __name__ == "__main__":
    sys.exit(run_cli(main))
