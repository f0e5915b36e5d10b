"""The greedy before/after check that ends every training stage.

The base and the trained model answer the first ``eval_samples`` held-out
prompts greedily (:func:`rlft.evaluation.generation.hf_completions`) and are
scored by the recipe's rewards through the one scorer,
:mod:`rlft.evaluation.scoring`, exactly as ``rlft eval`` scores: each
model's headline score with its 95 % interval, the change with its paired
interval, rendered by :func:`rlft.evaluation.report.format_table`. For a
LoRA run the "before" model is the trained model with its adapter disabled:
one model in memory, and exactly the base weights.

Example:
    >>> print(closing_text({"results": {"rollout": {"engine": "vllm", "sync": "merged"}}}, "runs/grpo"))
    rollouts: vllm engine, merged sync
    saved to runs/grpo
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from rlft.core.files import write_atomic
from rlft.core.manifest import MANIFEST
from rlft.core.models import load_model
from rlft.core.tool_setup import ToolSetup
from rlft.evaluation.generation import hf_completions
from rlft.evaluation.report import format_table
from rlft.evaluation.scoring import score_outputs, table_rows
from rlft.evaluation.tool_loop import answers_with_tools, tool_use_figures

logger = logging.getLogger(__name__)


def before_after(
    model: Any,
    tokenizer: Any,
    rows: Any,
    reward_funcs: list,
    base_model: Any | None = None,
    max_new_tokens: int = 96,
    batch_size: int = 16,
    chat_template_kwargs: dict | None = None,
    tools: ToolSetup | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score the base and the trained model on ``rows`` with ``reward_funcs``.

    ``model`` is the trained model. For a peft model the base is the same
    model with its adapter disabled; otherwise pass ``base_model``. Returns the
    table rows (:func:`rlft.evaluation.scoring.table_rows`) and per-prompt
    samples (prompt, answer, both outputs and their scores). With ``tools``
    (the tools, ``max_turns`` and the environment's ``episode(row)`` or
    ``None``) both models answer through the tool loop
    (:mod:`rlft.evaluation.tool_loop`), each in a fresh episode of the
    environment per prompt, which the ``environment`` reward then scores; each
    row gains ``tool_use`` and ``turns``, each sample both transcripts.
    """
    prompts = list(rows["prompt"])
    columns = {c: list(rows[c]) for c in rows.column_names}
    kwargs = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "chat_template_kwargs": chat_template_kwargs}
    transcripts: dict[str, list] = {}
    extra: dict[str, dict] = {}  # per model: the columns its answers are scored with besides the rows' own

    def answers(which: str, m: Any) -> list[str]:
        if tools is None:
            return hf_completions(m, tokenizer, prompts, **kwargs)

        out, transcripts[which], extra[which] = answers_with_tools(
            lambda texts: hf_completions(m, tokenizer, texts, **kwargs), tokenizer, prompts, columns, tools,
            chat_template_kwargs)
        return out

    if base_model is not None:
        before = answers("base", base_model)
    elif hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            before = answers("base", model)
    else:
        raise ValueError("full fine-tuning: pass base_model to compare against")
    after = answers("trained", model)
    scored = {name: score_outputs(out, prompts, {**columns, **extra.get(name, {})}, reward_funcs, tokenizer)
              for name, out in (("base", before), ("trained", after))}
    table = table_rows(scored)
    gold = [str(a) for a in columns.get("answer", [None] * len(prompts))]
    samples = [
        {"prompt": p, "answer": a, "base": b, "trained": t,
         "score_base": scored["base"]["scores"][i], "score_trained": scored["trained"]["scores"][i]}
        for i, (p, a, b, t) in enumerate(zip(prompts, gold, before, after, strict=True))
    ]
    for which, runs in transcripts.items():  # with tools: each answer's whole transcript, and the tool-use figures
        for sample, transcript in zip(samples, runs, strict=True):
            sample[f"transcript_{which}"] = transcript
    if transcripts:
        for row in table:
            row.update(tool_use_figures(transcripts[row["model"]]))
    return table, samples


def evaluate_stage(model: Any, tokenizer: Any, test: Any, eval_args: Any, model_args: Any, output_dir: str,
                   reward_funcs: list, tools: ToolSetup | None = None) -> dict:
    """The before/after check that ends a stage: greedy, on the first ``eval_samples`` test rows.

    Writes ``before_after.jsonl`` (every prompt with both outputs) into
    ``output_dir`` and returns ``{"table": [...], "eval_device": "cuda:0"}`` (where the answers were
    generated). The rewards were checked on the test split before training
    (:func:`rlft.stage.input_checks.check_scoring`).
    """
    rows = test.select(range(min(eval_args.eval_samples, len(test))))
    base = None
    if not hasattr(model, "disable_adapter"):  # full fine-tuning: load the starting point again
        base = load_model(model_args.model_name_or_path, model_args.dtype, device=str(model.device))
    table, samples = before_after(
        model, tokenizer, rows, reward_funcs, base_model=base, max_new_tokens=eval_args.eval_max_new_tokens,
        batch_size=eval_args.eval_batch_size, chat_template_kwargs=model_args.chat_template_kwargs, tools=tools,
    )
    table[0]["model"] = start_label(model_args.model_name_or_path)
    write_atomic(f"{output_dir}/before_after.jsonl", "".join(json.dumps(s) + "\n" for s in samples))
    return {"table": table, "eval_device": str(model.device)}


def start_label(name_or_path: str) -> str:
    """The closing table's name for the model a stage started from: ``base``, or ``start`` for an earlier run.

    ``rlft eval``'s ``base`` is always the raw base model; a DPO stage on an SFT run is checked against the SFT
    model, which the table calls ``start``, not ``base``.

    Example:
        >>> start_label("bundled:smollm2-135m-instruct"), start_label("Qwen/Qwen3-0.6B")
        ('base', 'base')
    """
    path = Path(name_or_path).expanduser()
    earlier_run = path.is_dir() and ((path / MANIFEST).exists() or (path / "adapter_config.json").exists())
    return "start" if earlier_run else "base"


def closing_text(manifest: dict[str, Any], output_dir: str) -> str:
    """What a stage prints when it ends: the before/after table, what generated the rollouts, where the run is.

    Example:
        >>> print(closing_text({"results": {}}, "runs/sft"))
        saved to runs/sft
    """
    results = manifest.get("results", {})
    lines = [format_table(results["table"])] if results.get("table") else []
    rollout = results.get("rollout")
    if rollout:
        line = f"rollouts: {rollout['engine']} engine"
        if rollout.get("sync"):
            line += f", {rollout['sync']} sync"
        if rollout.get("fallback_from"):
            line += f" (fell back from {rollout['fallback_from']}: {rollout.get('fallback_reason', '?')})"
        lines.append(line)
    table = results.get("table") or []
    if table and "tool_use" in table[0]:
        lines.append(tool_use_line(table))
    lines.extend(during_training_lines(results.get("eval_during_training")))
    return "\n".join([*lines, f"saved to {output_dir}"])


def tool_use_line(rows: list[dict[str, Any]]) -> str:
    """How often each model called a tool, and its model turns per answer.

    Example:
        >>> tool_use_line([{"model": "base", "tool_use": 0.0, "turns": 1.0}, {"model": "sft", "tool_use": 0.5,
        ...                "turns": 1.5}])
        'with tools: base called one in 0% of its answers (1.00 turns), sft called one in 50% of its answers (1.50 turns)'
    """
    return "with tools: " + ", ".join(f"{r['model']} called one in {r['tool_use']:.0%} of its answers "
                                      f"({r['turns']:.2f} turns)" for r in rows)


def during_training_lines(during: dict[str, Any] | None) -> list[str]:
    """The closing lines about evaluation during training: how many, their cost, the best checkpoint.

    Example:
        >>> during_training_lines({"evals": 3, "eval_seconds_mean": 12.5, "best": {"metric": "eval/accuracy",
        ...     "value": 0.42, "step": 20, "checkpoint": "runs/x/checkpoint-20", "final_model": "best"}})
        ['evaluated during training: 3 times, 12.5 s each', 'best eval/accuracy: 0.42 at step 20 (runs/x/checkpoint-20), the saved model']
    """
    if not during:
        return []
    lines = [f"evaluated during training: {during['evals']} times, {during['eval_seconds_mean']} s each"]
    if during.get("stopped_early_at"):
        lines.append(f"stopped early at step {during['stopped_early_at']} (early_stopping_patience)")
    best = during.get("best")
    if best:
        kept = "the saved model" if best["final_model"] == "best" else "kept; the saved model is the last step's"
        lines.append(f"best {best['metric']}: {best['value']:.4g} at step {best['step']} ({best['checkpoint']}), {kept}")
    return lines
