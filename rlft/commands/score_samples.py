"""``rlft rewards``: score literal completions with a recipe's rewards, before spending compute.

    rlft rewards recipes/math.yaml --samples completions.jsonl
    python -m rlft.commands.score_samples recipes/math.yaml --samples completions.jsonl --reward_funcs '[accuracy]'

Reads only the recipe's reward keys (``reward_funcs``, ``reward_kwargs``,
``reward_weights``). Each line of the samples file is a JSON object with a
``completion`` (a string or chat messages) and the dataset columns the rewards
need (e.g. ``answer``). Prints, for each sample, the extracted answer, the
path that found it (``boxed``, ``hash``, ``tag``, ``sentence``, ``latex``,
``expression``, ``latex text``, ``last number`` or ``none``; see
:mod:`rewards.extraction`) and every reward's value, then the weighted total,
and a summary per reward. The extraction follows the recipe's ``accuracy``
settings (``fallback_last_number``, ``allow_multiple_boxed``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewards import RewardInputError, completion_text, contract
from rewards.extraction import find_answer
from rlft.core.arguments import RewardArguments
from rlft.core.errors import UserError, run_cli
from rlft.core.files import read_jsonl
from rlft.core.recipe import parse_recipe

REWARD_KEYS = {"reward_funcs", "reward_kwargs", "reward_weights"}


@dataclass
class CheckArguments:
    samples: str = field(default="", metadata={"help": "JSONL file: one {completion, <columns>} per line."})
    reward_weights: list[float] | None = field(default=None, metadata={"help": "One weight per reward (default 1)."})
    limit: int | None = field(default=None, metadata={"help": "Score only the first N samples."})


def read_samples(path: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The samples file as a list of dicts (one-line errors for a missing file or a bad line)."""
    if not path:
        raise UserError("give the completions to score with --samples FILE.jsonl")
    return read_jsonl(path, "samples file", "completion", limit, plural="samples")


def score_samples(funcs: list, weights: list[float], rows: list[dict[str, Any]],
                  extraction: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every reward's value for every sample, with the extracted answer, how it was found, and the weighted total.

    ``extraction``: ``find_answer``'s settings (the recipe's ``accuracy`` kwargs).
    """
    completions = [row["completion"] for row in rows]
    keys = sorted({k for row in rows for k in row if k != "completion"})
    columns = {k: [row.get(k) for row in rows] for k in keys}
    scores = {}
    for func in funcs:
        try:
            values = contract.call(func, columns.get("prompt") or [None] * len(rows), completions, columns)
        except RewardInputError as err:
            raise UserError(str(err)) from None
        if len(values) != len(rows):
            raise UserError(f"reward {func.__name__} returned {len(values)} values for {len(rows)} completions")
        scores[func.__name__] = values
    out = []
    for i, row in enumerate(rows):
        per = {name: values[i] for name, values in scores.items()}
        valid = [(w, v) for w, v in zip(weights, per.values()) if v is not None]
        total = sum(w * v for w, v in valid) if valid else None
        found = find_answer(row["completion"], **(extraction or {}))
        path, extracted = (found.path, found.stated) if found else ("none", None)
        out.append({"extracted": extracted, "found_by": path, "scores": per, "total": total})
    return out


def extraction_settings(reward_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The recipe's ``accuracy`` settings that decide what is extracted.

    Example:
        >>> extraction_settings({"accuracy": {"fallback_last_number": False, "timeout": 2}})
        {'fallback_last_number': False}
    """
    settings = (reward_kwargs or {}).get("accuracy", {})
    return {k: v for k, v in settings.items() if k in ("fallback_last_number", "allow_multiple_boxed")}


def format_report(rows: list[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    """One line per sample, then mean and None count per reward."""
    names = list(results[0]["scores"]) if results else []
    header = ["#", "completion", "extracted", "found by", *names, "total"]
    table = [header]
    for i, (row, res) in enumerate(zip(rows, results), 1):
        text = " ".join(completion_text(row["completion"]).split())
        text = text if len(text) <= 48 else "..." + text[-45:]
        cells = [_fmt(res["scores"][n]) for n in names]
        table.append([str(i), text, str(res["extracted"]), res["found_by"], *cells, _fmt(res["total"])])
    widths = [max(len(r[j]) for r in table) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.append("")
    for name in names:
        values = [r["scores"][name] for r in results]
        known = [v for v in values if v is not None]
        mean = sum(known) / len(known) if known else float("nan")
        lines.append(f"{name}: mean {mean:.3f} over {len(known)} samples, {len(values) - len(known)} None")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return "None" if value is None else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    (reward_args, check), _ = parse_recipe(
        [RewardArguments, CheckArguments], argv, prog="rlft rewards", file_keys_only=REWARD_KEYS
    )
    funcs = reward_args.build()
    weights = check.reward_weights or [1.0] * len(funcs)
    if len(weights) != len(funcs):
        raise UserError(f"reward_weights has {len(weights)} values for {len(funcs)} reward_funcs")
    rows = read_samples(check.samples, check.limit)
    results = score_samples(funcs, weights, rows, extraction_settings(reward_args.reward_kwargs))
    print(format_report(rows, results))
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
