"""The greedy before/after check that ends every training stage.

The base and the trained model answer the first ``eval_samples`` held-out
prompts greedily (:func:`rlft.evaluation.generation.hf_completions`) and are
scored by :func:`rlft.evaluation.scoring.score`. For a LoRA run the "before"
model is the trained model with its adapter disabled: one model in memory,
and exactly the base weights.

Example:
    >>> table = format_table([{"model": "base", "accuracy": 0.1, "n": 10, "mean_len": 30.0}])
    >>> "base" in table
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rlft.evaluation.generation import hf_completions
from rlft.evaluation.scoring import score

logger = logging.getLogger(__name__)


def before_after(
    model: Any,
    tokenizer: Any,
    rows: Any,
    base_model: Any | None = None,
    max_new_tokens: int = 96,
    batch_size: int = 16,
    chat_template_kwargs: dict | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score the base and the trained model on ``rows`` (``prompt`` + ``answer``).

    ``model`` is the trained model. For a peft model the base is the same
    model with its adapter disabled; otherwise pass ``base_model``. Returns the
    table rows and per-prompt samples (prompt, answer, both outputs).
    """
    prompts, answers = list(rows["prompt"]), [str(a) for a in rows["answer"]]
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "chat_template_kwargs": chat_template_kwargs}
    if base_model is not None:
        before = hf_completions(base_model, tokenizer, prompts, **kwargs)
    elif hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            before = hf_completions(model, tokenizer, prompts, **kwargs)
    else:
        raise ValueError("full fine-tuning: pass base_model to compare against")
    after = hf_completions(model, tokenizer, prompts, **kwargs)
    table = [{"model": "base", **score(before, answers)}, {"model": "trained", **score(after, answers)}]
    samples = [
        {"prompt": p, "answer": a, "base": b, "trained": t}
        for p, a, b, t in zip(prompts, answers, before, after, strict=True)
    ]
    return table, samples


def format_table(table: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of model, accuracy, n and mean completion length."""
    lines = [f"{'model':<10} {'accuracy':>9} {'n':>5} {'mean_len':>9}"]
    for row in table:
        lines.append(f"{row['model']:<10} {row['accuracy']:>8.1%} {row['n']:>5} {row['mean_len']:>9.1f}")
    return "\n".join(lines)


def evaluate_stage(model: Any, tokenizer: Any, test: Any, eval_args: Any, model_args: Any, output_dir: str) -> dict:
    """The before/after check that ends a stage: greedy, on the first ``eval_samples`` test rows.

    Writes ``before_after.jsonl`` (every prompt with both outputs) into
    ``output_dir`` and returns ``{"table": [...]}`` (``{}`` without an ``answer`` column).
    """
    import json

    from rlft.core.files import write_atomic

    if "answer" not in test.column_names:
        logger.warning("test split has no 'answer' column: skipping the before/after check")
        return {}
    rows = test.select(range(min(eval_args.eval_samples, len(test))))
    base = None
    if not hasattr(model, "disable_adapter"):  # full fine-tuning: load the starting point again
        from rlft.core.models import load_model

        base = load_model(model_args.model_name_or_path, model_args.dtype)
    table, samples = before_after(
        model, tokenizer, rows, base_model=base, max_new_tokens=eval_args.eval_max_new_tokens,
        batch_size=eval_args.eval_batch_size, chat_template_kwargs=model_args.chat_template_kwargs,
    )
    write_atomic(f"{output_dir}/before_after.jsonl", "".join(json.dumps(s) + "\n" for s in samples))
    return {"table": table}


def closing_text(manifest: dict[str, Any], output_dir: str) -> str:
    """What a stage prints when it ends: the before/after table (if the check ran), then where the run is.

    Example:
        >>> print(closing_text({"results": {}}, "runs/sft"))
        saved to runs/sft
    """
    table = manifest.get("results", {}).get("table")
    lines = [format_table(table)] if table else []
    return "\n".join([*lines, f"saved to {output_dir}"])
