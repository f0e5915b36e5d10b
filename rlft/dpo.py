"""DPO stage: direct preference optimization on TRL's ``DPOTrainer``.

    accelerate launch rlft/dpo.py recipes/dpo.yaml [--key value ...]
    python -m rlft.dpo recipes/dpo.yaml --max_steps 2
    rlft dpo recipes/dpo.yaml

The data has ``prompt``, ``chosen`` and ``rejected`` columns (chat messages
or plain text; a local file, a hub dataset, or ``pairs.jsonl`` from
``rlft pairs``). TRL's loss types pass through (``loss_type: [sigmoid]``,
``ipo``, ``robust``, ``hinge``, ...), as does ``beta``. LoRA by default: the
reference model is the policy with its adapter disabled, one copy of the
model in memory. ``model_name_or_path`` may be an earlier stage's run
directory (e.g. ``runs/sft``): that model is the starting point and the
reference (see :mod:`rlft.stage.preference` for how adapters stack).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import trl

from rlft.core.errors import run_cli
from rlft.core.models import load_model
from rlft.stage.preference import PreferenceStage


class DPO(PreferenceStage):
    name = "dpo"
    config = "trl:DPOConfig"

    def trainer_class(self) -> type:
        return trl.DPOTrainer

    def trainer_kwargs(self, args) -> dict:
        if args.model.use_peft:
            return {}  # the reference is the policy with its adapter disabled
        # Full fine-tuning: a frozen copy of the starting model (TRL's default would reload the raw base).
        return {"ref_model": load_model(args.model.model_name_or_path, args.model.dtype).eval()}


def parse(argv: Sequence[str] | None):
    return DPO().parse(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the DPO stage; returns the manifest written to the output directory."""
    stage = DPO()
    manifest = stage.run(argv)
    if manifest:
        # imported only now, after the recipe was parsed: rlft.evaluation.closing loads transformers
        from rlft.evaluation.closing import closing_text

        print(closing_text(manifest, stage.output_dir))
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
