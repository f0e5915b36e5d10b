"""Greedy generation and the before/after check that ends every stage.

Scores are computed with the same verifier the rewards use
(:func:`rewards.extract_answer` / :func:`rewards.is_equivalent`, batched), so a stage's
closing table and its training signal cannot drift apart. For a LoRA run the
"before" model is the trained model with its adapter disabled: one model in
memory, and exactly the base weights.

Example:
    >>> table = format_table([{"model": "base", "accuracy": 0.1, "n": 10, "mean_len": 30.0}])
    >>> "base" in table
    True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from rewards.verifiers import equivalent_batch, extract_answer, gold_answer

logger = logging.getLogger(__name__)


def render_prompts(tokenizer: Any, prompts: Sequence[Any], chat_template_kwargs: dict | None = None) -> list[str]:
    """Chat prompts through the tokenizer's template (plain strings pass through)."""
    out = []
    for prompt in prompts:
        if isinstance(prompt, str):
            out.append(prompt)
        else:
            out.append(tokenizer.apply_chat_template(
                prompt, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
            ))
    return out


def greedy_completions(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Any],
    max_new_tokens: int = 96,
    batch_size: int = 16,
    chat_template_kwargs: dict | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Greedy (deterministic) completions for ``prompts``, batched with left padding.

    With ``temperature > 0``, ``samples`` sampled completions per prompt
    instead (seeded per batch, so reruns agree), flat and prompt-major.

    Example:
        >>> greedy_completions(model, tok, [[{"role": "user", "content": "Hi"}]])  # doctest: +SKIP
        ['Hello! How can I help you today?']
    """
    import torch

    texts = render_prompts(tokenizer, prompts, chat_template_kwargs)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    results: list[str] = []
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                texts[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
            ).to(model.device)
            sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            if temperature > 0:
                torch.manual_seed(seed + start)
                sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0,
                            "num_return_sequences": samples}
            with torch.inference_mode():
                out = model.generate(
                    **batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling,
                )  # [B * samples, T_prompt + T_new]
            new = out[:, batch["input_ids"].shape[1]:]  # [B * samples, T_new]
            results.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
            logger.info("generate: %d/%d prompts", min(start + batch_size, len(texts)), len(texts))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return results


def score(completions: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """Accuracy (verifier-equivalent final answer) and mean length in characters.

    Example:
        >>> score(["The answer is 4.", "5"], ["4", "4"])["accuracy"]
        0.5
    """
    pairs = [(extract_answer(c), gold_answer(a)) for c, a in zip(completions, answers, strict=True)]
    correct = [verdict is True for verdict in equivalent_batch(pairs)]
    n = len(correct)
    return {
        "accuracy": sum(correct) / n if n else 0.0,
        "n": n,
        "mean_len": sum(len(c) for c in completions) / n if n else 0.0,
    }


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
        before = greedy_completions(base_model, tokenizer, prompts, **kwargs)
    elif hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            before = greedy_completions(model, tokenizer, prompts, **kwargs)
    else:
        raise ValueError("full fine-tuning: pass base_model to compare against")
    after = greedy_completions(model, tokenizer, prompts, **kwargs)
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

    from rlft.manifest import write_atomic

    if "answer" not in test.column_names:
        logger.warning("test split has no 'answer' column: skipping the before/after check")
        return {}
    rows = test.select(range(min(eval_args.eval_samples, len(test))))
    base = None
    if not hasattr(model, "disable_adapter"):  # full fine-tuning: load the starting point again
        from rlft.models import load_model

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
