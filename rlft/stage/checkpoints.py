"""Atomic checkpoints: a kill during a save never costs the previous checkpoint.

Each checkpoint is written under ``.partial-checkpoint-N`` (the run
directory's rules are in :mod:`rlft.core.run_dir`) and renamed to
``checkpoint-N`` once transformers has written all of it; resume only ever
sees complete checkpoints.

Stages get it through :func:`rlft.stage.trainers.stage_trainer`.

Example:
    >>> from transformers import Trainer
    >>> type("T", (AtomicCheckpoints, Trainer), {}).__mro__[1].__name__
    'AtomicCheckpoints'
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import rotate_checkpoints

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
        best = self.state.best_model_checkpoint  # type: ignore[attr-defined]
        moved_best = bool(best) and Path(best).parent == staging  # transformers saw the best in the staging dir
        if moved_best:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)  # type: ignore[attr-defined]
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
            if moved_best:  # the saved state names the renamed checkpoint, so a resumed run still protects it
                self.state.save_to_json(str(final / TRAINER_STATE_NAME))  # type: ignore[attr-defined]
            self._rotate(run_dir)
        self.accelerator.wait_for_everyone()  # type: ignore[attr-defined]

    def _rotate(self, run_dir: Path) -> None:
        rotate_checkpoints(output_dir=str(run_dir), save_total_limit=self.args.save_total_limit,  # type: ignore
                           best_model_checkpoint=self.state.best_model_checkpoint)  # type: ignore[attr-defined]
