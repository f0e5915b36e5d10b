"""ORPO stage: odds-ratio preference optimization on TRL's ``ORPOTrainer`` (``trl.experimental.orpo``).

    accelerate launch rlft/orpo.py recipes/orpo.yaml [--key value ...]
    python -m rlft.orpo recipes/orpo.yaml --max_steps 2
    rlft orpo recipes/orpo.yaml

ORPO needs no reference model: one loss teaches the chosen answer (SFT term)
and pushes the rejected one down (odds-ratio term, weighted by ``beta``), so
it can start from the base model directly instead of after an SFT stage.
Data and chaining as for DPO (:mod:`rlft.dpo`, :mod:`rlft.stage.preference`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from rlft.core.errors import run_cli
from rlft.stage.preference import PreferenceStage


class ORPO(PreferenceStage):
    name = "orpo"
    config = "trl.experimental.orpo:ORPOConfig"

    def config_class(self) -> type:
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rlft pins TRL and tests ORPO with it
        return super().config_class()

    def trainer_class(self) -> type:
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer


def parse(argv: Sequence[str] | None):
    return ORPO().parse(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the ORPO stage; returns the manifest written to the output directory."""
    stage = ORPO()
    manifest = stage.run(argv)
    if manifest:
        # imported only now, after the recipe was parsed: rlft.evaluation.closing loads transformers
        from rlft.evaluation.closing import closing_text

        print(closing_text(manifest, stage.output_dir))
    return manifest


if __name__ == "__main__":
    sys.exit(run_cli(main))
