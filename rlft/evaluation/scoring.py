"""The one scorer: every score rlft reports comes from the recipe's rewards, through :func:`score_outputs`.

The closing before/after check of every stage, ``rlft eval`` (and
``--sweep``), and the benchmarks score greedy outputs here, with the recipe's
``reward_funcs`` and their ``reward_kwargs`` — the same callables training
used — and :func:`table_rows` turns the scores into the rows that
:func:`rlft.evaluation.report.format_table` renders. The columns:

- the **headline** (``accuracy`` when the recipe has it, else its first
  reward): the mean reward over the prompts every model could be scored on,
  with a 95 % bootstrap interval over prompts; ``None`` ("cannot verify",
  e.g. an unparseable gold) leaves the prompt out for every model instead of
  counting as wrong;
- **vs base**: the paired change against the base on the same prompts, with
  its paired bootstrap interval;
- **marked**: the share of outputs that state their final answer with a
  marker (``\\boxed{}``, ``####``, ``<answer>``, "the answer is") — the rest
  are scored by their last number when ``fallback_last_number`` is on;
- **tokens**: mean output length in tokens of the model's tokenizer;
- **n**: prompts scored.

Example:
    >>> import rewards
    >>> scored = score_outputs(["The answer is \\\\boxed{4}.", "5"], ["2+2?", "2+3?"], {"answer": ["4", "4"]},
    ...                        [rewards.resolve("accuracy")])
    >>> scored["scores"], scored["marked"]
    ([1.0, 0.0], [True, False])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rewards import contract
from rewards.verifiers import find_answer
from rlft.evaluation.metrics import bootstrap_mean, paired_bootstrap

HEADLINE_DEFAULT = "accuracy"


def headline(reward_funcs: Sequence[Callable]) -> str:
    """The reward whose mean is the table's first column: ``accuracy`` if present, else the first.

    Example:
        >>> import rewards
        >>> headline([rewards.resolve("tag_count"), rewards.resolve("accuracy")])
        'accuracy'
    """
    names = [getattr(f, "__name__", "reward") for f in reward_funcs]
    if not names:
        raise ValueError("scoring needs at least one reward function")
    return HEADLINE_DEFAULT if HEADLINE_DEFAULT in names else names[0]


def score_outputs(outputs: Sequence[str], prompts: Sequence[Any], columns: dict[str, Sequence[Any]],
                  reward_funcs: Sequence[Callable], tokenizer: Any = None, state: Any = None) -> dict[str, Any]:
    """Per-prompt scores of ``outputs``: the headline reward, every reward, marked answers, token lengths.

    ``columns`` are the rows' dataset columns (``answer``, ...), passed to
    each reward as keyword arguments the way TRL passes them in training
    (:func:`rewards.contract.call`: chat completions for chat prompts,
    ``prompts``, ``completion_ids`` from ``tokenizer``, ``trainer_state``:
    ``state``, the trainer's during training, else a fresh one). Returns ``{"headline", "scores", "rewards", "marked",
    "tokens"}``; ``scores`` holds ``None`` where the headline reward could not
    verify; ``tokens`` is empty without a tokenizer.

    Example:
        >>> import rewards
        >>> score_outputs(["x = 2", "2"], ["?", "?"], {"answer": ["2", "3"]},
        ...               [rewards.resolve("accuracy")])["rewards"]
        {'accuracy': [1.0, 0.0]}
    """
    ids = [tokenizer(o, add_special_tokens=False)["input_ids"] for o in outputs] if tokenizer else None
    per_reward: dict[str, list[float | None]] = {}
    for func in reward_funcs:
        name = getattr(func, "__name__", "reward")
        values = contract.call(func, prompts, outputs, columns, completion_ids=ids, state=state)
        if len(values) != len(outputs):
            raise ValueError(f"reward {name} returned {len(values)} scores for {len(outputs)} outputs")
        per_reward[name] = [None if v is None else float(v) for v in values]
    main = headline(reward_funcs)
    lengths = [len(i) for i in ids] if ids else []
    return {"headline": main, "scores": per_reward[main], "rewards": per_reward,
            "marked": [bool(found and found.marked) for found in (find_answer(o) for o in outputs)],
            "tokens": lengths}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def table_rows(scored: dict[str, dict[str, Any]], base: str | None = "base", resamples: int = 2000,
               seed: int = 0, previous: bool = False) -> list[dict[str, Any]]:
    """One row per model (in ``scored``'s order): headline mean with its interval, paired change vs ``base``.

    ``previous=True`` adds each model's paired change against the model
    before it (``prev``, ``prev_diff``, ``prev_low``, ``prev_high``).

    Only prompts every model could be scored on count (a ``None`` anywhere
    leaves that prompt out for all), so the models are compared on the same
    prompts.

    Example:
        >>> rows = table_rows({"base": {"headline": "accuracy", "scores": [0.0, 1.0, None],
        ...                              "marked": [True, True, False], "tokens": [3, 5, 4]},
        ...                     "trained": {"headline": "accuracy", "scores": [1.0, 1.0, None],
        ...                                 "marked": [True, True, True], "tokens": [2, 2, 2]}})
        >>> [(r["model"], r["accuracy"], r["n"], r["marked"]) for r in rows]
        [('base', 0.5, 2, 1.0), ('trained', 1.0, 2, 1.0)]
        >>> rows[1]["diff"]
        0.5
    """
    if not scored:
        return []
    n_all = len(next(iter(scored.values()))["scores"])
    keep = [i for i in range(n_all) if all(m["scores"][i] is not None for m in scored.values())]
    rows = []
    for name, m in scored.items():
        scores = [m["scores"][i] for i in keep]
        # the headline is kept under "accuracy" whatever the reward is called; "metric" names it
        row: dict[str, Any] = {"model": name, "metric": m["headline"], "accuracy": _mean(scores), "n": len(keep),
                               "n_unverified": n_all - len(keep), "marked": _mean([m["marked"][i] for i in keep])}
        if m.get("tokens"):
            row["mean_tokens"] = _mean([m["tokens"][i] for i in keep])
        for reward, values in m.get("rewards", {}).items():
            known = [v for v in values if v is not None]
            row[f"rewards/{reward}"] = _mean(known)
        if scores:
            own = bootstrap_mean(scores, resamples, seed)
            row.update(low=own["low"], high=own["high"])
        if base is not None and name != base and base in scored and scores:
            diff = paired_bootstrap([scored[base]["scores"][i] for i in keep], scores, resamples, seed)
            row.update(diff=diff["diff"], diff_low=diff["low"], diff_high=diff["high"])
        if previous and rows and scores:
            before = rows[-1]["model"]
            diff = paired_bootstrap([scored[before]["scores"][i] for i in keep], scores, resamples, seed)
            row.update(prev=before, prev_diff=diff["diff"], prev_low=diff["low"], prev_high=diff["high"])
        rows.append(row)
    return rows
