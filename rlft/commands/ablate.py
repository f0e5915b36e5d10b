"""rlft ablate: a grid of recipe overrides x seeds, each cell an ordinary run, then one table with intervals.

    rlft ablate recipes/math.yaml --grid learning_rate=1e-4,3e-4 lora_r=8,16 --seeds 1 2 3 --out runs/ablate
    rlft ablate ... --print-commands       # one command per cell, for a SLURM array or any job queue
    rlft ablate ... --cell 3               # run one cell (what each printed command does)
    rlft ablate --collect runs/ablate      # the result from whatever cells have finished

Each cell (one setting of the grid, one seed) runs the recipe's stage as its
own process into ``<out>/<setting>/seed-<n>``, with the setting's keys and
``--seed`` on the command line (``--set key=value`` adds overrides to every
cell). A rerun skips finished cells and resumes an interrupted one from its
last complete checkpoint; the plan is kept in ``<out>/ablation.json``, and
an ``--out`` holding another plan is refused. Every cell's recipe is parsed
before the first one runs, so a typo costs nothing.

The result (:mod:`rlft.evaluation.ablation`): per setting, mean accuracy over
seeds of the closing check's greedy scores, the gain over the base, and the
paired change against ``--baseline`` (default: each key's first value), each
with a 95 % bootstrap interval over seeds and prompts, and the wall time per
run; ``results.json``, ``report.md`` and ``report.html`` with the plots.

Example:
    >>> split_values("lr=1e-4,3e-4")
    ('lr', ['1e-4', '3e-4'])
    >>> split_values("reward_funcs=[accuracy, format],[accuracy]")
    ('reward_funcs', ['[accuracy, format]', '[accuracy]'])
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import logging
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlft.commands.memory_ahead import check_ahead
from rlft.commands.pipeline import as_flags, check_parses, completed, run_step
from rlft.core.errors import UserError, run_cli
from rlft.core.files import write_atomic
from rlft.core.run_dir import complete_checkpoints
from rlft.core.runtime import setup_logging
from rlft.stage import registry

logger = logging.getLogger("rlft.commands.ablate")

PLAN = "ablation.json"


def split_values(text: str) -> tuple[str, list[str]]:
    """``key=v1,v2``: the key and its values (commas inside ``[]`` or ``{}`` belong to a value)."""
    key, sep, rest = text.partition("=")
    if not sep or not key or not rest:
        raise UserError(f"--grid {text!r}: write KEY=VALUE1,VALUE2 (e.g. learning_rate=1e-4,3e-4)")
    values, depth, current = [], 0, ""
    for char in rest:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if any(not v for v in values) or len(set(values)) != len(values):
        raise UserError(f"--grid {text!r}: every value must be given once and be non-empty")
    return key, values


def setting_name(setting: dict[str, str]) -> str:
    """A setting as one name, also its folder: ``learning_rate=1e-4,lora_r=8``."""
    return ",".join(f"{k}={v}" for k, v in setting.items())


def folder(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)


def stage_of(recipe: str) -> str:
    """The stage a recipe is for, from its opening command line (``# accelerate launch rlft/grpo.py ...``)."""
    stages = "|".join(map(re.escape, registry.names(ablate=True)))
    head = Path(recipe).read_text().splitlines()[:3]
    for line in head:
        found = re.search(rf"rlft/({stages})\.py|rlft ({stages}) ", line)
        if found:
            return found.group(1) or found.group(2)
    raise UserError(f"{recipe}: cannot tell its stage from its first lines; pass --stage "
                    f"{'|'.join(registry.names(ablate=True))}")


def stage_recipe(argv: list[str], command: str, guess: Any = None) -> tuple[Any, list[str]]:
    """``RECIPE [--stage NAME] [--key value ...]``: the training stage's registry entry and the argv without
    ``--stage`` (``rlft plan``, ``rlft check``). Without ``--stage`` the recipe's first lines name it
    (:func:`stage_of`), or ``guess(recipe)`` does.
    """
    stage = None
    if "--stage" in argv:
        at = argv.index("--stage")
        stage, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    if not Path(argv[0]).is_file():
        raise UserError(f"recipe file not found: {argv[0]}")
    entry = registry.get(stage or (guess or stage_of)(argv[0]))
    if not entry.is_stage:
        raise UserError(f"rlft {command} takes a training stage's recipe; {entry.name} is a command")
    return entry, argv


def make_plan(args: argparse.Namespace) -> dict[str, Any]:
    """The cells of the grid (settings in grid order, then seeds), with the baseline and common overrides."""
    if not Path(args.recipe).is_file():
        raise UserError(f"recipe file not found: {args.recipe}")
    grid = dict(split_values(g) for g in args.grid)
    fixed = dict(split_values(s) for s in args.set)
    for key, values in fixed.items():
        if len(values) != 1 or key in grid:
            raise UserError(f"--set {key}: give one value, for a key that is not in --grid")
    if {"seed", "output_dir"} & (set(grid) | set(fixed)):
        raise UserError("seed and output_dir are set per cell by rlft ablate (--seeds, --out)")
    settings = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    baseline = dict(split_values(b) for b in args.baseline.split(";")) if args.baseline else {}
    baseline = {k: v[0] for k, v in baseline.items()} if baseline else settings[0]
    if baseline not in settings:
        raise UserError(f"--baseline {setting_name(baseline)} is not a setting of the grid "
                        f"({', '.join(setting_name(s) for s in settings)})")
    cells = [{"setting": setting_name(s), "overrides": s, "seed": seed,
              "dir": str(Path(args.out) / folder(setting_name(s)) / f"seed-{seed}")}
             for s in settings for seed in args.seeds]
    return {"recipe": args.recipe, "stage": args.stage or stage_of(args.recipe), "grid": grid, "seeds": args.seeds,
            "set": {k: v[0] for k, v in fixed.items()}, "baseline": setting_name(baseline), "cells": cells}


def save_or_check_plan(plan: dict[str, Any], out: Path) -> None:
    """Write the plan on the first run; a later run into the same ``--out`` must ask for the same grid."""
    path = out / PLAN
    if path.is_file():
        old = json.loads(path.read_text())
        if {k: old.get(k) for k in plan} != plan:
            grid = " ".join(f"{k}={','.join(v)}" for k, v in (old.get("grid") or {}).items())
            raise UserError(f"{out} holds another ablation ({grid}, seeds {old.get('seeds')}); choose another "
                            "--out, or delete it to start over")
        return

    out.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(plan, indent=2) + "\n")


def cell_flags(plan: dict[str, Any], cell: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in {**plan["set"], **cell["overrides"]}.items():
        flags += as_flags({key: value})
    return [*flags, "--seed", str(cell["seed"]), "--output_dir", cell["dir"]]


def check_cells(plan: dict[str, Any]) -> None:
    """Parse every cell's recipe with its overrides before any runs (a typo in the grid fails now)."""
    parse = importlib.import_module(registry.get(plan["stage"]).module).parse
    # one cell per setting: seeds change nothing a parse checks
    check_parses([(f"cell {cell['setting']}", parse, [plan["recipe"], *cell_flags(plan, cell)])
                  for cell in plan["cells"][::len(plan["seeds"])]])


def check_cell_memory(plan: dict[str, Any], indices: Sequence[int]) -> None:
    """The memory plan of each setting among ``indices`` with a cell still to run, before the first runs
    (one plan per setting: seeds change no shape)."""
    if not registry.get(plan["stage"]).is_stage:
        return
    first = {}  # setting: its first unfinished cell
    for index in indices:
        cell = plan["cells"][index]
        if not completed(Path(cell["dir"])):
            first.setdefault(cell["setting"], cell)
    check_ahead([(f"cell {setting}", plan["stage"], [plan["recipe"], *cell_flags(plan, cell)])
                 for setting, cell in first.items()])


def run_cell(plan: dict[str, Any], index: int) -> bool:
    """Run (or resume, or skip when finished) one cell; returns whether it finished."""
    cell = plan["cells"][index]
    run_dir = Path(cell["dir"])
    if completed(run_dir):
        logger.info("cell %d (%s, seed %d): finished earlier; skipping", index, cell["setting"], cell["seed"])
        return True
    flags = cell_flags(plan, cell)
    if run_dir.exists():  # an interrupted cell: resume from its checkpoint, else start it again
        flags.append("--resume" if complete_checkpoints(run_dir) else "--overwrite")
    timing = run_dir / "ablate_cell.json"
    before = json.loads(timing.read_text()) if timing.is_file() else {"seconds": 0.0, "runs": 0}
    logger.info("cell %d of %d: %s, seed %d", index + 1, len(plan["cells"]), cell["setting"], cell["seed"])
    try:
        seconds = run_step(f"{cell['setting']} seed {cell['seed']}", f"rlft.{plan['stage']}", plan["recipe"], flags)
        ok = True
    except UserError as err:
        logger.warning("%s", err)
        seconds, ok = None, False
    if run_dir.is_dir() and seconds is not None:
        write_atomic(timing, json.dumps({"seconds": round(before["seconds"] + seconds, 1),
                                         "runs": before["runs"] + 1}) + "\n")
    return ok


def collect(out: Path) -> tuple[str, dict[str, Any]]:
    """Build the result from the finished cells of the plan in ``out``; returns the table and ``results.json``."""
    from rlft.evaluation.ablation import read_cell, summarize, write_result

    if not (out / PLAN).is_file():
        raise UserError(f"{out} holds no ablation ({PLAN} not found)")
    plan = json.loads((out / PLAN).read_text())
    cells: dict[str, dict[int, Any]] = {}
    missing = []
    for cell in plan["cells"]:
        cells.setdefault(cell["setting"], {})
        found = read_cell(Path(cell["dir"]))
        if found is None:
            missing.append(f"{cell['setting']} seed {cell['seed']}")
        else:
            cells[cell["setting"]][cell["seed"]] = found
    if not any(cells.values()):
        raise UserError(f"no cell of {out} has finished yet ({len(missing)} planned)")
    rows = summarize(cells, plan["baseline"])
    meta = {k: plan[k] for k in ("recipe", "stage", "grid", "seeds", "set", "baseline")}
    meta["missing"] = missing
    table = write_result(out, rows, cells, meta)
    return table, {**meta, "rows": rows}


def commands(plan: dict[str, Any], argv: Sequence[str]) -> list[str]:
    """One shell command per cell: this command with ``--cell N`` (each resumes or skips like a rerun)."""
    base = [a for a in argv if a != "--print-commands"]
    return [shlex.join(["rlft", "ablate", *base, "--cell", str(i)]) for i in range(len(plan["cells"]))]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2, as every rlft command
        raise UserError(f"rlft ablate: {message} (rlft ablate --help shows the usage)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rlft ablate", description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", nargs="?", help="the recipe every cell runs")
    p.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2", help="a recipe key and its values")
    p.add_argument("--seeds", nargs="+", type=int, default=[42], help="one run per seed for each setting")
    p.add_argument("--out", default="runs/ablate", help="the ablation's directory")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides for every cell")
    p.add_argument("--baseline", help="the setting others are compared with, KEY=V;KEY=V (default: first values)")
    p.add_argument("--stage", choices=registry.names(ablate=True), help="the recipe's stage (default: from its first line)")
    p.add_argument("--cell", type=int, help="run only this cell (0-based), as the printed commands do")
    p.add_argument("--print-commands", action="store_true", help="print one command per cell and exit")
    p.add_argument("--collect", metavar="DIR", help="build the result from the finished cells in DIR and exit")
    return p


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any] | None]:
    """The command line and the plan it asks for (``None`` with ``--collect``); one-line errors.

    Example:
        >>> args, plan = parse(["recipes/math.yaml", "--grid", "lora_r=8,16", "--seeds", "1", "2"])
        >>> len(plan["cells"]), plan["baseline"]
        (4, 'lora_r=8')
    """
    args = parser().parse_args(list(argv))
    if args.collect:
        return args, None
    if not args.recipe or not args.grid:
        raise UserError("rlft ablate needs a recipe and --grid KEY=V1,V2 (or --collect DIR)")
    plan = make_plan(args)
    if args.cell is not None and not 0 <= args.cell < len(plan["cells"]):
        raise UserError(f"--cell {args.cell}: this grid has cells 0 to {len(plan['cells']) - 1}")
    return args, plan


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, plan = parse(argv)
    setup_logging("info")
    if plan is None:
        table, _ = collect(Path(args.collect))
        print(table)
        return 0
    check_cells(plan)
    out = Path(args.out)
    indices = [args.cell] if args.cell is not None else range(len(plan["cells"]))
    if not args.print_commands:
        check_cell_memory(plan, indices)  # before the grid's folder is made: a refused grid leaves nothing
    save_or_check_plan(plan, out)
    if args.print_commands:
        print("\n".join(commands(plan, argv)))
        return 0
    failed = [i for i in indices if not run_cell(plan, i)]
    if args.cell is not None:
        return 1 if failed else 0
    table, _ = collect(out)
    print(table)
    print(f"report: {out / 'report.html'}")
    if failed:
        sys.stderr.write(f"{len(failed)} cell(s) failed (their messages are above); rerun the same command to "
                         "retry them, finished cells are kept\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
