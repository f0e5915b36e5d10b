"""Atomic checkpoints: a kill during a save never costs the previous checkpoint.

Each checkpoint is written under ``.partial-checkpoint-N`` (the run
directory's rules are in :mod:`rlft.core.run_dir`) and renamed to
``checkpoint-N`` once transformers has written all of it; resume only ever
sees complete checkpoints.

Example:
    >>> from transformers import Trainer
    >>> with_atomic_checkpoints(Trainer).__name__
    'AtomicTrainer'
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any

from rlft.core.run_dir import PARTIAL


class AtomicCheckpoints:
    """Trainer mixin: checkpoints are written under ``.partial-checkpoint-N``, then renamed into place.

    Put it first among the bases: ``class MyTrainer(AtomicCheckpoints, SFTTrainer)``.
    """

    _staging_dir: str | None = None

    def _get_output_dir(self, trial: Any) -> str:
        return self._staging_dir or super()._get_output_dir(trial)  # type: ignore[misc]

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = Path(super()._get_output_dir(trial))  # type: ignore[misc]
        name = f"checkpoint-{self.state.global_step}"  # type: ignore[attr-defined]
        staging = run_dir / f"{PARTIAL}{name}"
        main = self.args.should_save  # type: ignore[attr-defined]
        if main:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]
        self._staging_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
        finally:
            self._staging_dir = None
        self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]
        if main:
            final = run_dir / name
            if final.exists():  # the same step saved again: swap, never a moment without a copy
                stale = run_dir / f"{PARTIAL}stale-{name}"
                os.replace(final, stale)
                os.replace(staging / name, final)
                shutil.rmtree(stale)
            else:
                os.replace(staging / name, final)
            staging.rmdir()
            self._rotate(run_dir)
        self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]

    def _rotate(self, run_dir: Path) -> None:
        from transformers.trainer_utils import rotate_checkpoints

        rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,  # type: ignore
                           best_model_checkpoint=self.state.best_model_checkpoint)  # type: ignore[attr-defined]


@functools.cache
def with_atomic_checkpoints(trainer_cls: type) -> type:
    """``trainer_cls`` with :class:`AtomicCheckpoints` in front (one subclass per trainer class)."""
    return type(f"Atomic{trainer_cls.__name__}", (AtomicCheckpoints, trainer_cls), {})
