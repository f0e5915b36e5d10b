"""Build the fast pre-check's key table of every training stage into the rlft cache.

``make setup`` runs it once; a stage also builds its own table the first
time it is run, so this only saves that first run's seconds
(:mod:`rlft.stage.key_table`):

    python -m rlft.commands.key_table
"""

from __future__ import annotations

import sys

from rlft.stage import key_table, registry


def main() -> None:
    for name in registry.names(is_stage=True):
        stage = registry.get(name).stage()
        key_table.table_for(stage)
        sys.stdout.write(f"{name}: {key_table.path_for(stage)}\n")


if __name__ == "__main__":
    main()
