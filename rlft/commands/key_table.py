"""Regenerate ``rlft/stage/key_table.json``, the fast pre-check's table of every stage's recipe keys.

Run it after changing an argument dataclass or upgrading TRL/transformers
(``tests/test_key_table.py`` fails until the committed table matches):

    python -m rlft.commands.key_table
"""

from __future__ import annotations

import json
import sys

from rlft.dpo import DPO
from rlft.grpo import GRPO
from rlft.orpo import ORPO
from rlft.sft import SFT
from rlft.stage.key_table import TABLE, generate

STAGES = {"sft": SFT(), "dpo": DPO(), "orpo": ORPO(), "grpo": GRPO()}


def table_text() -> str:
    """The table as it is written to disk (stable key order)."""
    return json.dumps(generate(STAGES), indent=1, sort_keys=True) + "\n"


def main() -> None:
    TABLE.write_text(table_text())
    sys.stdout.write(f"wrote {TABLE}\n")


if __name__ == "__main__":
    main()
