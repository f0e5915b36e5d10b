"""``rlft plan RECIPE [--key value ...]``: a run's peak memory, part by part, before anything trains.

    rlft plan recipes/tools/grpo.yaml
    rlft plan recipes/math.yaml --per_device_train_batch_size 64

The recipe is parsed and settled as its stage would (``--stage`` when its
first lines do not say which), its data loaded and checked, its tokenizer
read; the model's shape comes from its ``config.json``. Nothing loads the
weights. Prints the plan's parts and what the machine has; when it does not
fit, the change that would. Exit 0 when it fits, 1 when it does not,
2 for a bad recipe.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rlft.commands.ablate import stage_recipe
from rlft.commands.memory_ahead import plan_of
from rlft.core.errors import run_cli
from rlft.stage.memory_plan import Plan, cheaper, gb


def table(plan: Plan, stage: str, recipe: str) -> str:
    """The plan as the command prints it: one row per part, then the peak against what is available.

    Example:
        >>> from rlft.stage.memory_plan import GB, ModelShape, Workload, estimate
        >>> shape = ModelShape(params=10**8, layers=12, hidden=512, intermediate=2048, kv_dim=512, vocab=32000)
        >>> print(table(estimate(shape, Workload(sequences=4, tokens=128), 8 * GB), "sft", "r.yaml").splitlines()[0])
        memory plan of rlft sft r.yaml (one training process)
    """
    work = plan.workload
    lines = [f"memory plan of rlft {stage} {recipe} (one training process)",
             (f"  micro-batch {work.sequences} rows x {work.tokens} tokens, {work.precision}, gradient checkpointing "
              f"{'on' if work.gradient_checkpointing else 'off'}"), ""]
    lines += [f"  {part.name:<12} {gb(part.bytes):>9}   {part.why}" for part in plan.parts]
    lines += [f"  {'peak':<12} {gb(plan.peak):>9}   the parts + 10 % for the allocator",
              f"  {'available':<12} {gb(plan.available):>9}   free memory on this machine now", ""]
    if plan.fits:
        lines.append(f"fits ({gb(plan.available - plan.peak)} to spare)")
    else:
        lines.append(f"does not fit: {cheaper(plan)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1])
        return 0 if argv else 2
    entry, argv = stage_recipe(argv, "plan")
    recipe, stage = argv[0], entry.name
    args, plan = plan_of(stage, argv)
    if plan is None:
        print("memory plan: not made for CUDA runs (its figures are measured for CPU memory)")
        return 0
    print(table(plan, stage, recipe))
    chosen = [f"{key}: {str(change['value']).lower()}" for key, change in args.settled.items()
              if change["why"].startswith("auto")]
    if chosen:
        print(f"auto chose {', '.join(chosen)}")
    return 0 if plan.fits else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
