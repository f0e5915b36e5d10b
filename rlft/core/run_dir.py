"""The run directory: no run overwrites another, killed runs resume, checkpoints are atomic.

- **Protection**: a stage refuses an ``output_dir`` that already holds files
  unless the recipe says ``--resume`` (continue that run) or ``--overwrite``
  (delete it and start over). The check runs before anything is loaded or
  written; the deletion only after every other check passed.
- **Resume**: ``--resume`` continues from the newest *complete* checkpoint
  (one with ``trainer_state.json``, which transformers writes last): model or
  adapter, optimizer, scheduler, RNG states, data position and global step,
  through ``Trainer.train(resume_from_checkpoint=...)``. The log history
  comes back with the checkpoint, so it stays continuous.
- **Atomic checkpoints** (:mod:`rlft.stage.checkpoints`): each checkpoint is
  written under ``.partial-checkpoint-N`` and renamed to ``checkpoint-N`` once
  complete. A kill during a save leaves the previous checkpoints intact and a
  ``.partial-*`` directory that resume ignores and :func:`claim_output_dir` deletes.

Every command that writes a run directory follows these rules: the training
stages, ``rlft eval`` and ``rlft pairs``.

Example:
    >>> import tempfile
    >>> check_output_dir(tempfile.mkdtemp(), RunArguments()) is None  # empty: a fresh run
    True
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlft.core.console import PENDING_NAME
from rlft.core.errors import UserError
from rlft.core.manifest import read_manifest

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
PARTIAL = ".partial-"
RUN_STATES = {  # the manifest's "status", as check_output_dir describes it
    "running": "an unfinished run (killed, or still running)",
    "complete": "a finished run",
    "halted": "a run halted by a training guard",
    "failed": "a run stopped by a failing reward",
}


@dataclass
class RunArguments:
    """What to do when ``output_dir`` already holds a run."""

    resume: bool = field(
        default=False, metadata={"help": "Continue the run in output_dir from its newest complete checkpoint."},
    )
    overwrite: bool = field(default=False, metadata={"help": "Delete what output_dir holds and start over."})
    verbose: bool = field(
        default=False,
        metadata={"help": "Print third-party output (vLLM's engine, TRL's completion tables, the trainer's metric "
                          "dicts) on the console too; it always goes to output_dir/run.log."},
    )
    memory_check: Literal["error", "warn", "off"] = field(
        default="error",
        metadata={"help": "Before the model loads, the run's peak memory is estimated (rlft plan); error: refuse a "
                          "run that does not fit the memory available now, naming a change that would; warn: say "
                          "so and run anyway; off: skip the check (the plan is still logged)."},
    )

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise UserError("resume and overwrite exclude each other: resume continues the run, overwrite deletes it")


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Checkpoints of a run that were written to the end, oldest first.

    Example:
        >>> complete_checkpoints("/nonexistent")
        []
    """
    path = Path(output_dir)
    if not path.is_dir():
        return []
    found = []
    for child in path.iterdir():
        match = CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").exists():
            found.append((int(match.group(1)), child))
    return [p for _, p in sorted(found)]


def check_output_dir(output_dir: str | Path, run: RunArguments, refuse: bool = True) -> str | None:
    """Refuse to clobber another run; return the checkpoint to resume from (``None``: a fresh start).

    Called before anything is loaded or written. In a multi-process launch
    only rank 0 refuses (``refuse``): the others could otherwise see the files
    rank 0 has just started writing; a refusal there ends the whole launch.
    """
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"output_dir {path} is a file; give a directory")
    # a run killed before it claimed the directory leaves only its pending log: nothing to protect
    entries = [p for p in path.iterdir() if not p.name.startswith(PARTIAL) and p.name != PENDING_NAME] \
        if path.is_dir() else []
    if run.resume:
        checkpoints = complete_checkpoints(path)
        if not checkpoints:
            raise UserError(
                f"nothing to resume in {path}: it has no complete checkpoint (one is written every save_steps); "
                "run without --resume to start"
            )
        return str(checkpoints[-1])
    if entries and not run.overwrite and refuse:
        raise UserError(
            f"output_dir {path} already holds {_describe(path, entries)}; pass --resume to continue it, --overwrite to "
            "replace it, or choose another output_dir"
        )
    return None


def _describe(path: Path, entries: list[Path]) -> str:
    status = read_manifest(path).get("status")
    if status in RUN_STATES:
        return RUN_STATES[status]
    if any(CHECKPOINT.match(p.name) for p in entries):
        return "an unfinished run (checkpoints, no manifest)"
    return f"{len(entries)} file(s) of something else"


def claim_output_dir(output_dir: str | Path, run: RunArguments, is_main: bool = True) -> None:
    """Make ``output_dir`` ready for this run: emptied for ``overwrite``, partial checkpoints removed.

    Called once every check has passed, just before training starts.
    """
    path = Path(output_dir)
    if not is_main:
        return
    if run.overwrite and path.is_dir():
        logger.warning("overwrite: deleting the previous contents of %s", path)
        for child in path.iterdir():
            if child.name == PENDING_NAME:  # this run's log, started when the directory was checked
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    for partial in path.glob(f"{PARTIAL}*"):
        logger.warning("removing %s, left by a run killed while saving", partial)
        shutil.rmtree(partial, ignore_errors=True)
