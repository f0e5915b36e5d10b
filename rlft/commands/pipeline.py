"""One command for a chain of stages, then one evaluation of every stage's model.

    rlft pipeline recipes/pipeline.yaml [--overwrite]
    make pipeline

The recipe lists ``stages`` in order, each with the stage's own recipe and
overrides; ``@name`` in an override means that stage's output directory
(``model_name_or_path: "@sft"``, ``dataset_name: "@pairs/pairs.jsonl"``).
Each stage runs as its own process (``python -m rlft.<stage>``), with its
output in ``<output_dir>/<name>``, so one stage's memory is gone before the
next starts. Then ``rlft eval`` compares the listed models on the same
held-out split with the same verifier, and the pipeline prints the wall
time of every stage next to the evaluation table.

Rerunning skips stages whose directory already holds a complete run, and
resumes an interrupted stage from its last complete checkpoint (a failed
or interrupted pipeline continues where it stopped); ``--overwrite`` starts
every stage over.

Example:
    >>> substitute({"model_name_or_path": "@sft", "x": ["@pairs/p.jsonl", 1]}, "runs/p")
    {'model_name_or_path': 'runs/p/sft', 'x': ['runs/p/pairs/p.jsonl', 1]}
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlft.commands.memory_ahead import check_ahead
from rlft.core.errors import UserError, one_line, run_cli
from rlft.core.files import write_atomic
from rlft.core.manifest import read_manifest
from rlft.core.recipe import parse_recipe
from rlft.core.run_dir import complete_checkpoints
from rlft.core.runtime import discard_deferred_warnings, setup_logging
from rlft.stage import registry

logger = logging.getLogger("rlft.commands.pipeline")


def module_of(spec_stage: str) -> str:
    """The module a pipeline stage runs as ``python -m``: a registry entry that ``rlft pipeline`` can chain."""
    return registry.get(spec_stage).module


@dataclass
class PipelineArguments:
    """The stages to chain and the evaluation that ends the pipeline."""

    output_dir: str = field(default="runs/pipeline", metadata={"help": "Each stage writes <output_dir>/<name>."})
    stages: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "name: {recipe: path, stage: a stage rlft pipeline chains (default: name), "
                          "overrides: {...}}"},
    )
    evaluation: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "{recipe: path, models: [base, '@sft', ...], overrides: {...}}"},
    )
    overwrite: bool = field(default=False, metadata={"help": "Run every stage again from scratch."})

    def __post_init__(self) -> None:
        if not self.stages:
            raise UserError("pipeline has no stages; list them under stages: (name: {recipe: ..., overrides: ...})")
        for name, spec in self.stages.items():
            kind = spec.get("stage", name)
            if kind not in registry.names(pipeline=True):
                raise UserError(f"pipeline stage {name!r}: unknown stage {kind!r}; use one of "
                                f"{', '.join(registry.names(pipeline=True))}")
            unknown = set(spec) - {"stage", "recipe", "overrides"}
            if unknown:
                raise UserError(f"pipeline stage {name!r}: unknown key(s) {', '.join(sorted(unknown))} "
                                "(a stage has recipe, stage and overrides)")
            if not Path(spec.get("recipe", "")).is_file():
                raise UserError(f"pipeline stage {name!r}: recipe file not found: {spec.get('recipe')!r}")
        if self.evaluation and not Path(self.evaluation.get("recipe", "")).is_file():
            raise UserError(f"pipeline evaluation: recipe file not found: {self.evaluation.get('recipe')!r}")


def substitute(value: Any, output_dir: str) -> Any:
    """``@name`` -> ``<output_dir>/name`` in strings, lists and mappings."""
    if isinstance(value, str):
        return re.sub(r"^@", f"{output_dir}/", value)
    if isinstance(value, list):
        return [substitute(v, output_dir) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, output_dir) for k, v in value.items()}
    return value


def references(value: Any) -> list[str]:
    """The ``@name`` strings in ``value`` (strings, lists and mappings), as :func:`substitute` finds them.

    Example:
        >>> references({"model_name_or_path": "@sft", "models": ["base", "@dpo"], "max_steps": 3})
        ['@sft', '@dpo']
    """
    if isinstance(value, str):
        return [value] if value.startswith("@") else []
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [ref for item in items for ref in references(item)]


def as_flags(overrides: dict[str, Any]) -> list[str]:
    """``{key: value}`` as ``--key value`` (lists and mappings as JSON, which the recipe parser reads).

    Example:
        >>> as_flags({"max_steps": 5, "models": ["base", "runs/a"]})
        ['--max_steps', '5', '--models', '["base", "runs/a"]']
    """
    flags = []
    for key, value in overrides.items():
        text = json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)
        flags += [f"--{key}", text]
    return flags


def run_step(name: str, module: str, recipe: str, flags: list[str]) -> float:
    """Run one stage as ``python -m module``; returns its wall seconds (one-line error if it fails)."""
    cmd = [sys.executable, "-m", module, recipe, *flags]
    logger.info("stage %s: %s", name, " ".join(cmd[2:]))
    start = time.monotonic()
    code = subprocess.call(cmd)
    if code != 0:
        raise UserError(f"stage {name} {how_it_ended(code)}; finished stages are kept: "
                        "fix the cause and rerun the same command to continue")
    return time.monotonic() - start


def how_it_ended(code: int) -> str:
    """A failed child's exit, in words: a signal leaves no message of its own, so say which and who sends it.

    Example:
        >>> how_it_ended(2)
        'failed (exit code 2; its messages are above)'
        >>> how_it_ended(-9)[:62]
        'was killed by SIGKILL before it could say why (on Linux the ou'
    """
    if code >= 0:
        return f"failed (exit code {code}; its messages are above)"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    why = (" (on Linux the out-of-memory killer sends it: `dmesg | tail` says whether it did; fewer completions per "
           "micro-batch, per_device_train_batch_size, need less memory)" if name == "SIGKILL" else "")
    return f"was killed by {name} before it could say why{why}"


def completed(run_dir: Path) -> bool:
    """True when ``run_dir`` holds a finished stage (manifest status ``complete``)."""
    return read_manifest(run_dir).get("status") == "complete"


def parse(argv: Sequence[str] | None):
    return parse_recipe([PipelineArguments], argv, prog="rlft pipeline")


def check_stages(args: PipelineArguments) -> None:
    """Parse every stage's recipe with its overrides before anything runs: a typo fails now, not after SFT."""
    steps = [(name, module_of(spec.get("stage", name)), spec["recipe"], spec.get("overrides") or {})
             for name, spec in args.stages.items()]
    if args.evaluation:
        spec = args.evaluation
        steps.append(("evaluation", "rlft.eval", spec["recipe"],
                      {**(spec.get("overrides") or {}), "models": spec.get("models") or ["base"]}))
    check_parses([(f"pipeline stage {name!r}", importlib.import_module(module).parse,
                   [recipe, *as_flags(substitute(overrides, args.output_dir))])
                  for name, module, recipe, overrides in steps])


def check_parses(runs: Sequence[tuple[str, Any, list[str]]]) -> None:
    """Parse each ``(label, parse, argv)`` of runs that are to come; the first error, prefixed by its label.

    The notes a parse queues (renamed keys) are dropped here: each run logs its own when it starts.
    """
    try:
        for label, parse, argv in runs:
            try:
                parse(argv)
            except UserError as err:
                raise UserError(f"{label}: {one_line(str(err))}") from None
    finally:
        discard_deferred_warnings()


def to_run(args: PipelineArguments) -> list[str]:
    """The stages this run of the pipeline trains: all with ``overwrite``, else those without a complete run."""
    return [name for name in args.stages if args.overwrite or not completed(Path(args.output_dir) / name)]


def check_memory(args: PipelineArguments) -> None:
    """Every stage still to train, planned before the first one starts (:func:`check_ahead`).

    A stage whose model is an earlier stage of this run (``@sft``) is planned
    on that stage's model: training keeps the shape (adapters are merged). A
    stage that reads another output still to come (a dataset) is planned when
    its turn comes.
    """
    pending, models, runs = to_run(args), {}, []
    for name, spec in args.stages.items():
        overrides = dict(spec.get("overrides") or {})
        source = str(overrides.get("model_name_or_path", ""))
        if source.startswith("@") and source[1:] in pending:
            overrides["model_name_or_path"] = models.get(source[1:], source)
        later = [ref for ref in references(overrides) if ref[1:] in pending]
        entry = registry.get(spec.get("stage", name))
        argv = [spec["recipe"], *as_flags(substitute(overrides, args.output_dir))]
        parts, _ = importlib.import_module(entry.module).parse(argv)
        models[name] = next(p.model_name_or_path for p in parts if hasattr(p, "model_name_or_path"))
        if name not in pending or not entry.is_stage:
            continue
        if later:
            logger.info("stage %s: memory planned when it starts (it reads %s, still to come)", name, later[0])
            continue
        runs.append((f"pipeline stage {name!r}", entry.name, [*argv, "--output_dir", f"{args.output_dir}/{name}"]))
    check_ahead(runs)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the pipeline; returns its summary (also written to ``<output_dir>/pipeline.json``)."""
    (args,), _ = parse(argv)
    setup_logging("info")
    check_stages(args)
    check_memory(args)
    out = args.output_dir
    summary: dict[str, Any] = {"stages": {}}
    for name, spec in args.stages.items():
        run_dir = Path(out) / name
        if completed(run_dir) and not args.overwrite:
            logger.info("stage %s: %s already holds a complete run; skipping", name, run_dir)
            summary["stages"][name] = {"seconds": None, "skipped": True}
            continue
        flags = as_flags(substitute(spec.get("overrides") or {}, out)) + ["--output_dir", str(run_dir)]
        if args.overwrite:
            flags.append("--overwrite")
        elif run_dir.exists():  # an unfinished stage of this pipeline: resume from its checkpoint, else redo it
            flags.append("--resume" if complete_checkpoints(run_dir) else "--overwrite")
        seconds = run_step(name, module_of(spec.get("stage", name)), spec["recipe"], flags)
        summary["stages"][name] = {"seconds": round(seconds, 1)}
    if args.evaluation:
        spec = args.evaluation
        overrides = {**(spec.get("overrides") or {}), "models": spec.get("models") or ["base"]}
        flags = as_flags(substitute(overrides, out)) + ["--output_dir", f"{out}/eval", "--overwrite"]
        seconds = run_step("eval", "rlft.eval", spec["recipe"], flags)
        summary["stages"]["eval"] = {"seconds": round(seconds, 1)}
        summary["evaluation"] = json.loads(Path(f"{out}/eval/results.json").read_text())
    write_atomic(Path(out) / "pipeline.json", json.dumps(summary, indent=2))
    print(format_summary(summary))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Wall time per stage, then each model's accuracy and change from the base.

    Example:
        >>> print(format_summary({"stages": {"sft": {"seconds": 61.0}, "dpo": {"seconds": None, "skipped": True}}}))
        stage   wall time
        sft     1m01s
        dpo     skipped (already complete)
    """
    lines = ["stage   wall time"]
    for name, info in summary["stages"].items():
        if info.get("skipped"):
            lines.append(f"{name:<7} skipped (already complete)")
        else:
            minutes, seconds = divmod(round(info["seconds"]), 60)
            lines.append(f"{name:<7} {minutes}m{seconds:02d}s")
    table = (summary.get("evaluation") or {}).get("table")
    if table:
        lines += ["", table]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run_cli(main))
