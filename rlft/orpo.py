"""ORPO stage: odds-ratio preference optimization on TRL's ``ORPOTrainer`` (``trl.experimental.orpo``).

    accelerate launch rlft/orpo.py recipes/orpo.yaml [--key value ...]
    python -m rlft.orpo recipes/orpo.yaml --max_steps 2
    rlft orpo recipes/orpo.yaml

ORPO needs no reference model: one loss teaches the chosen answer (SFT term)
and pushes the rejected one down (odds-ratio term, weighted by ``beta``), so
it can start from the base model directly instead of after an SFT stage.
Data and chaining as for DPO (:mod:`rlft.dpo`, :mod:`rlft.preference`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from rlft.errors import run_cli


def parse(argv: Sequence[str] | None):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rlft pins TRL and tests ORPO with it
    from trl.experimental.orpo import ORPOConfig

    from rlft.preference import parse_stage

    return parse_stage("orpo", argv, ORPOConfig)


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the ORPO stage; returns the manifest written to the output directory."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from rlft.preference import run_stage

    return run_stage("orpo", ORPOTrainer, argv, ORPOConfig)


if __name__ == "__main__":
    sys.exit(run_cli(main))
