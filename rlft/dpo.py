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
reference (see :mod:`rlft.preference` for how adapters stack).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rlft.errors import run_cli


def parse(argv: Sequence[str] | None):
    from trl import DPOConfig

    from rlft.preference import parse_stage

    return parse_stage("dpo", argv, DPOConfig)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the DPO stage; returns the manifest written to the output directory."""
    from trl import DPOConfig, DPOTrainer

    from rlft.preference import run_stage

    return run_stage("dpo", DPOTrainer, argv, DPOConfig)


if __name__ == "__main__":
    sys.exit(run_cli(main))
