"""The evaluation behind ``rlft eval``: which models, generate, score, compare against the base, report.

``--models`` names models as everywhere in rlft (hub id, directory, stage
output, ``bundled:...``); ``base`` means the base model of the first adapter
in the list, or the recipe's ``model_name_or_path`` when there is none.
``--sweep <run dir>`` adds the base, every complete checkpoint of the run
and its final output.

Example:
    >>> general_by_category([{"category": "facts"}, {"category": "facts"}], [True, False])
    {'facts': 0.5, 'all': 0.5}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlft.core import models
from rlft.core.accelerator import generation_device
from rlft.core.arguments import BUNDLED_DEFAULT
from rlft.core.errors import UserError
from rlft.core.files import write_atomic
from rlft.core.models import resolve_model
from rlft.core.run_dir import RunArguments, claim_output_dir, complete_checkpoints
from rlft.core.tool_setup import ToolSetup
from rlft.evaluation import suite
from rlft.evaluation.generation import CompletionEngine
from rlft.evaluation.metrics import pass_at_k
from rlft.evaluation.scoring import headline, score_outputs, table_rows
from rlft.rollout.vllm_runtime import engine_dtype

logger = logging.getLogger(__name__)


@dataclass
class EvalRunArguments:
    """What ``rlft eval`` compares and where its report goes."""

    models: list[str] = field(default_factory=list, metadata={"help": "Models: base, run dirs, hub ids, paths."})
    model_name_or_path: str = field(
        default=BUNDLED_DEFAULT,
        metadata={"help": "What 'base' means when no adapter is among the models (with one, its base)."},
    )
    sweep: str | None = field(default=None, metadata={"help": "A run dir: evaluate base + every checkpoint."})
    output_dir: str = field(default="runs/eval", metadata={"help": "Where the report goes."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an earlier report in output_dir."})
    engine: Literal["vllm", "hf"] = field(
        default="vllm", metadata={"help": "vllm (HF fallback) or hf; the same option as GRPO's engine."},
    )
    general_suite: bool = field(default=True, metadata={"help": "Also run the general-skills (forgetting) suite."})
    pass_k_samples: int = field(default=0, metadata={"help": "n samples per prompt for pass@k (0: off)."})
    pass_k: list[int] = field(default_factory=lambda: [1], metadata={"help": "k values for pass@k."})
    pass_k_temperature: float = field(default=0.8, metadata={"help": "Sampling temperature for pass@k."})
    paired_previous: bool = field(
        default=False, metadata={"help": "Also each model's paired change against the model listed before it "
                                         "(base, SFT, GRPO: what each stage added), with its interval."},
    )
    bootstrap_resamples: int = field(default=2000, metadata={"help": "Resamples for the 95% intervals."})
    seed: int = field(default=42, metadata={"help": "Seed for data, sampling and the bootstrap."})
    vllm_gpu_memory_utilization: float = field(default=0.2, metadata={"help": "vLLM memory share (RAM on CPU)."})
    vllm_dtype: Literal["auto", "bfloat16", "float16", "float32"] = field(
        default="auto", metadata={"help": "Evaluation dtype (both engines); auto: float32, or bf16 where fast "
                                          "when reproducible is false."},
    )
    reproducible: bool = field(
        default=True, metadata={"help": "Greedy text byte-identical on rerun (float32); false allows faster bf16."},
    )
    chat_template_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "Passed to apply_chat_template, e.g. {enable_thinking: false} for Qwen3."},
    )

    def __post_init__(self) -> None:
        if self.reproducible and self.vllm_dtype in ("bfloat16", "float16"):
            raise UserError(f"vllm_dtype: {self.vllm_dtype} does not give byte-identical greedy text on rerun; "
                            "set reproducible: false to allow it")




def gather_list(argv: Sequence[str], key: str) -> list[str]:
    """``--models a b c`` (several values after one flag) as the ``--models [a, b, c]`` the parser takes.

    Example:
        >>> gather_list(["r.yaml", "--models", "base", "runs/a", "--seed", "1"], "--models")
        ['r.yaml', '--models', '["base", "runs/a"]', '--seed', '1']
    """
    argv = list(argv)
    if key not in argv:
        return argv
    start = argv.index(key) + 1
    end = start
    while end < len(argv) and not argv[end].startswith("--"):
        end += 1
    if end - start == 1 and argv[start].startswith("["):
        return argv
    return [*argv[:start], json.dumps(argv[start:end]), *argv[end:]]


def expand_models(names: list[str], sweep: str | None) -> list[str]:
    """The models to evaluate, in order: ``--sweep`` adds base, checkpoints and the final output."""
    out = list(names)
    if sweep:
        if not Path(sweep).is_dir():
            raise UserError(f"--sweep: run directory not found: {sweep}")
        checkpoints = [str(p) for p in complete_checkpoints(sweep)]
        if not checkpoints:
            raise UserError(f"--sweep: {sweep} has no complete checkpoints (set save_steps when training)")
        final = [sweep] if (Path(sweep) / "adapter_config.json").exists() or (Path(sweep) / "config.json").exists() \
            else []
        out = (["base"] if "base" not in out else []) + out + [c for c in checkpoints + final if c not in out]
    if not out:
        raise UserError("no models to evaluate: give --models base <run dir> ... or --sweep <run dir>")
    return out


def base_of(models: list[str], default: str) -> str:
    """The base model directory or hub id: the first adapter's base in ``models``, else ``default``'s.

    Example:
        >>> base_of(["base", "HuggingFaceTB/SmolLM2-135M-Instruct"], "Qwen/Qwen3-0.6B")
        'Qwen/Qwen3-0.6B'
    """
    for name in models:
        if name != "base":
            resolved = resolve_model(name)
            if resolved.adapters:
                return resolved.base
    return resolve_model(default).base


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


def _answers(gen: Any, tokenizer: Any, prompts: list, columns: dict, general: list[dict], tools: Any,
             args: Any) -> tuple[dict[str, Any], list[str]]:
    """Greedy answers: to the task (``outputs``; with tools also ``transcripts`` and the scoring columns they
    add, ``extra``) and to the general suite (always without tools)."""
    asked = [g["prompt"] for g in general]
    if tools is None:  # one call for both, so batches are as they always were
        outs = gen.generate(prompts + asked)
        return {"outputs": outs[:len(prompts)], "extra": {}}, outs[len(prompts):]
    from rlft.evaluation.tool_loop import answers_with_tools

    out, transcripts, extra = answers_with_tools(gen.generate, tokenizer, prompts, columns, tools,
                                                 args.chat_template_kwargs)
    return {"outputs": out, "transcripts": transcripts, "extra": extra}, gen.generate(asked) if asked else []


def _run_models(names: list[str], base_dir: str, test: Any, general: list[dict], eval_args: Any, args: Any,
                reward_funcs: list, tokenizer: Any, tools: Any = None) -> tuple[dict[str, dict], str]:
    """Every model's outputs and per-prompt scores (one engine for all of them); with ``tools``
    the task prompts are answered through the tool loop, the general suite without."""
    prompts = list(test["prompt"])
    columns = {c: list(test[c]) for c in test.column_names}
    main = next(f for f in reward_funcs if getattr(f, "__name__", "") == headline(reward_funcs))
    dtype = eval_dtype(args)
    gen = CompletionEngine(args.engine, base_dir, tokenizer, eval_args.eval_max_new_tokens,
                           eval_args.eval_batch_size, args.seed, args.vllm_gpu_memory_utilization,
                           dtype, args.chat_template_kwargs)
    per_model: dict[str, dict] = {}
    try:
        for name in names:
            logger.info("evaluating %s", name)
            gen.load(models.load_model(base_dir if name == "base" else name, dtype, device=generation_device()))
            task, general_out = _answers(gen, tokenizer, prompts, columns, general, tools, args)
            result = {**task, **score_outputs(task["outputs"], prompts, {**columns, **task.pop("extra")},
                                              reward_funcs, tokenizer),
                      "general_out": general_out,
                      "general_pass": [suite.check(item, o) for item, o in zip(general, general_out)]}
            if args.pass_k_samples:
                n = args.pass_k_samples
                sampled = gen.generate(prompts, samples=n, temperature=args.pass_k_temperature, seed=args.seed)
                correct = []
                for i in range(len(prompts)):  # through the one scorer, so rewards get what training gives them
                    rows = {c: [v[i]] * n for c, v in columns.items()}
                    values = score_outputs(sampled[i * n:(i + 1) * n], [prompts[i]] * n, rows, [main])["scores"]
                    correct.append(sum((v or 0) > 0 for v in values))
                result["pass_at_k"] = {f"pass@{k}": sum(pass_at_k(n, c, k) for c in correct) / len(correct)
                                       for k in args.pass_k if k <= n}
            per_model[name] = result
            gen.model = None
    finally:
        engine = gen.describe()
        gen.close()
    return per_model, engine


def eval_dtype(args: Any) -> str:
    """The evaluation engine's dtype: ``auto`` is float32 unless ``reproducible: false`` allows bf16.

    On a Xeon with AMX, bf16 greedy text was reported to change between two
    runs of the same command (5 of the first 44 prompts, issue #22); float32
    reproduces byte for byte (``tests/test_eval.py``). So reproducible
    evaluation, the default, runs the engine in float32.

    Example:
        >>> eval_dtype(EvalRunArguments())
        'float32'
    """
    if args.vllm_dtype != "auto":
        return args.vllm_dtype
    if args.reproducible:
        return "float32"

    return engine_dtype("auto", prefer_bf16=True)


def _rows(names: list[str], per_model: dict[str, dict], general: list[dict], args: Any) -> list[dict]:
    rows = table_rows({n: per_model[n] for n in names}, base="base" if "base" in per_model else None,
                      resamples=args.bootstrap_resamples, seed=args.seed, previous=args.paired_previous)
    for row in rows:
        m = per_model[row["model"]]
        row.update(m.get("pass_at_k", {}))
        if "transcripts" in m:
            from rlft.evaluation.tool_loop import tool_use_figures

            row.update(tool_use_figures(m["transcripts"]))
        if general:
            row["general"] = sum(m["general_pass"]) / len(general)
    if args.sweep:  # the best checkpoint is often not the last
        candidates = [r for r in rows if r["model"] != "base"]
        max(candidates, key=lambda r: r["accuracy"])["best"] = True
    return rows


def _samples(names: list[str], per_model: dict[str, dict], prompts: list, answers: list, general: list) -> str:
    lines = []
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        outputs = {n: {"text": per_model[n]["outputs"][i], "score": per_model[n]["scores"][i],
                       "marked": per_model[n]["marked"][i],
                       "rewards": {r: v[i] for r, v in per_model[n]["rewards"].items()},
                       **({"transcript": per_model[n]["transcripts"][i]} if "transcripts" in per_model[n] else {})}
                   for n in names}
        lines.append({"id": f"task-{i:04d}", "set": "task", "prompt": _text(prompt), "answer": answer,
                      "outputs": outputs})
    for i, item in enumerate(general):
        outputs = {n: {"text": per_model[n]["general_out"][i], "pass": per_model[n]["general_pass"][i]} for n in names}
        lines.append({"id": f"general-{i:03d}", "set": "general", "category": item["category"],
                      "prompt": _text(item["prompt"]), "check": item["check"], "accept": item["accept"],
                      "outputs": outputs})
    return "".join(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n" for line in lines)


def evaluate(names: list[str], base_dir: str, test: Any, eval_args: Any, args: Any, reward_funcs: list,
             recipe: dict[str, Any], tools: ToolSetup | None = None,
             tokenizer: Any = None) -> dict[str, Any]:
    """Evaluate ``names`` on ``test`` (+ the general suite); write the report into ``args.output_dir``.

    With ``tools`` (``(tools, max_turns, episode or None)``,
    :func:`rlft.tools.environments.tool_setup`) every model answers the task
    through the tool loop; ``tokenizer`` (default: the base's) must then
    render tools (:func:`rlft.tools.chat.enable_tool_calls`).
    """
    from rlft.evaluation.report import format_table, write_reports

    out = Path(args.output_dir)
    tokenizer = tokenizer or models.load_tokenizer(base_dir)
    general = suite.rows() if args.general_suite else []
    prompts, answers = list(test["prompt"]), [str(a) for a in test["answer"]]
    per_model, engine = _run_models(names, base_dir, test, general, eval_args, args, reward_funcs, tokenizer, tools)
    rows = _rows(names, per_model, general, args)
    by_category = {n: general_by_category(general, per_model[n]["general_pass"]) for n in names} if general else {}

    claim_output_dir(out, RunArguments(overwrite=args.overwrite))
    write_atomic(out / "samples.jsonl", _samples(names, per_model, prompts, answers, general))
    histories = {}
    for name in names:
        log = Path(name) / "log_history.jsonl"
        if log.exists():
            histories[name] = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    repro = "byte-reproducible" if engine["dtype"] == "float32" else f"{engine['dtype']}: not byte-reproducible"
    meta = {"summary": f"{len(prompts)} held-out prompts, greedy ({repro}), engine {engine['engine']}; "
                       f"models: {', '.join(names)}",
            "engine": engine, "base_model": base_dir, "recipe": recipe}
    write_reports(out, rows, by_category, histories, meta)
    table = format_table(rows)
    if tools is not None:
        from rlft.evaluation.closing import tool_use_line

        table += "\n" + tool_use_line(rows)
    results = {"models": rows, "general": by_category, "engine": engine, "table": table}
    write_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
    return results
