"""The evaluation loop behind ``rlft eval``: generate, score, compare against the base, report.

Example:
    >>> general_by_category([{"category": "facts"}, {"category": "facts"}], [True, False])
    {'facts': 0.5, 'all': 0.5}
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def general_by_category(items: list[dict[str, Any]], passed: list[bool]) -> dict[str, float]:
    """Pass rate per suite category, then over all items."""
    out: dict[str, list[bool]] = {}
    for item, ok in zip(items, passed, strict=True):
        out.setdefault(item["category"], []).append(ok)
    rates = {cat: sum(v) / len(v) for cat, v in out.items()}
    rates["all"] = sum(passed) / len(passed) if passed else 0.0
    return rates


def _text(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else prompt[-1]["content"]


def _run_models(names: list[str], base_dir: str, prompts: list[Any], answers: list[str], general: list[dict],
                eval_args: Any, args: Any, accuracy: Any, tokenizer: Any) -> tuple[dict[str, dict], str]:
    """Every model's outputs and per-prompt scores (one engine for all of them)."""
    from rlft import models, scoring, suite
    from rlft.metrics import pass_at_k

    gen = scoring.Generator(args.engine, base_dir, tokenizer, eval_args.eval_max_new_tokens,
                            eval_args.eval_batch_size, args.seed, args.vllm_gpu_memory_utilization, args.vllm_dtype)
    per_model: dict[str, dict] = {}
    try:
        for name in names:
            logger.info("evaluating %s", name)
            gen.load(models.load_model(base_dir if name == "base" else name))
            outs = gen.generate(prompts + [g["prompt"] for g in general])
            task_out, general_out = outs[:len(prompts)], outs[len(prompts):]
            scores, formatted = scoring.score_task(task_out, answers, accuracy)
            result = {"outputs": task_out, "scores": scores, "formatted": formatted, "general_out": general_out,
                      "general_pass": [suite.check(item, o) for item, o in zip(general, general_out)]}
            if args.pass_k_samples:
                n = args.pass_k_samples
                sampled = gen.generate(prompts, samples=n, temperature=args.pass_k_temperature, seed=args.seed)
                correct = [sum(s > 0 for s in accuracy(sampled[i * n:(i + 1) * n], answer=[a] * n))
                           for i, a in enumerate(answers)]
                result["pass_at_k"] = {f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct) / len(correct)
                                       for k in args.pass_k if k <= n}
            per_model[name] = result
            gen.model = None
    finally:
        engine = gen.engine
        gen.close()
    return per_model, engine


def _rows(names: list[str], per_model: dict[str, dict], general: list[dict], args: Any, tokenizer: Any) -> list[dict]:
    from rlft import scoring
    from rlft.metrics import bootstrap_mean, paired_bootstrap

    base = per_model.get("base")
    rows = []
    for name in names:
        m = per_model[name]
        row = scoring.summarize(name, m["scores"], m["formatted"], m["outputs"], tokenizer)
        own = bootstrap_mean(m["scores"], args.bootstrap_resamples, args.seed)
        row.update(low=own["low"], high=own["high"], **m.get("pass_at_k", {}))
        if base is not None and name != "base":
            diff = paired_bootstrap(base["scores"], m["scores"], args.bootstrap_resamples, args.seed)
            row.update(diff=diff["diff"], diff_low=diff["low"], diff_high=diff["high"])
        if general:
            row["general"] = sum(m["general_pass"]) / len(general)
        rows.append(row)
    if args.sweep:  # the best checkpoint is often not the last
        candidates = [r for r in rows if r["model"] != "base"]
        max(candidates, key=lambda r: r["accuracy"])["best"] = True
    return rows


def _samples(names: list[str], per_model: dict[str, dict], prompts: list, answers: list, general: list) -> str:
    lines = []
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        outputs = {n: {"text": per_model[n]["outputs"][i], "score": per_model[n]["scores"][i],
                       "format": per_model[n]["formatted"][i]} for n in names}
        lines.append({"id": f"task-{i:04d}", "set": "task", "prompt": _text(prompt), "answer": answer,
                      "outputs": outputs})
    for i, item in enumerate(general):
        outputs = {n: {"text": per_model[n]["general_out"][i], "pass": per_model[n]["general_pass"][i]} for n in names}
        lines.append({"id": f"general-{i:03d}", "set": "general", "category": item["category"],
                      "prompt": _text(item["prompt"]), "check": item["check"], "accept": item["accept"],
                      "outputs": outputs})
    return "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines)


def evaluate(names: list[str], base_dir: str, test: Any, eval_args: Any, args: Any, accuracy: Any,
             recipe: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``names`` on ``test`` (+ the general suite); write the report into ``args.output_dir``."""
    from rlft import models, suite
    from rlft.manifest import write_atomic
    from rlft.report import format_table, write_reports
    from rlft.run_dir import RunArguments, claim_output_dir

    out = Path(args.output_dir)
    tokenizer = models.load_tokenizer(base_dir)
    general = suite.rows() if args.general_suite else []
    prompts, answers = list(test["prompt"]), [str(a) for a in test["answer"]]
    per_model, engine = _run_models(names, base_dir, prompts, answers, general, eval_args, args, accuracy, tokenizer)
    rows = _rows(names, per_model, general, args, tokenizer)
    by_category = {n: general_by_category(general, per_model[n]["general_pass"]) for n in names} if general else {}

    claim_output_dir(out, RunArguments(overwrite=args.overwrite))
    write_atomic(out / "samples.jsonl", _samples(names, per_model, prompts, answers, general))
    histories = {}
    for name in names:
        log = Path(name) / "log_history.jsonl"
        if log.exists():
            histories[name] = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    meta = {"summary": f"{len(prompts)} held-out prompts, greedy, engine {engine}; models: {', '.join(names)}",
            "engine": engine, "base_model": base_dir, "recipe": recipe}
    write_reports(out, rows, by_category, histories, meta)
    results = {"models": rows, "general": by_category, "engine": engine, "table": format_table(rows)}
    write_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results
