"""One training run's directory, manifest and guarded training loop, in the order a stage uses them.

:class:`rlft.stage.skeleton.TrainingStage` calls these steps; a stage never
calls them itself.

1. :meth:`StageRun.check` — before anything loads: the output directory is
   free, or ``--resume`` names a run with a complete checkpoint.
2. :meth:`StageRun.begin` — after every other check passed (data, rewards,
   model, LoRA targets): the directory is claimed (``--overwrite`` empties it)
   and a manifest with ``status: running`` is written, so even a killed run
   says what it was.
3. :meth:`StageRun.train` — TRL's ``train()``, resuming when asked, with the
   :class:`~rlft.stage.training_guards.TrainingGuard`. A failing reward, a failed
   engine sync check (:mod:`rlft.training.sync_canary`) or a guard stop saves
   a checkpoint, marks the manifest and ends with one line (exit code 3).
4. :meth:`StageRun.finish` — the adapter/model, ``log_history.jsonl`` and the
   manifest with ``status: complete``; :meth:`StageRun.conclude` runs the
   greedy before/after check on held-out rows first (what every stage ends with).

Example:
    >>> from rlft.core.run_dir import RunArguments
    >>> StageRun("sft", {}, RunArguments(), None).status
    'new'
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from rlft.core.console import claim_run_log, open_run_log
from rlft.core.errors import RunStopped, UserError
from rlft.core.files import write_atomic
from rlft.core.loading import LoadOptions
from rlft.core.manifest import write_run_files
from rlft.core.models import base_model_id
from rlft.core.recipe import load_recipe_file, to_yaml
from rlft.core.run_dir import RunArguments, check_output_dir, claim_output_dir, complete_checkpoints
from rlft.core.runtime import is_main_process, log_deferred_warnings
from rlft.core.tool_setup import ToolSetup
from rlft.evaluation.closing import evaluate_stage
from rlft.stage import progress
from rlft.stage.greedy_eval import shown_key
from rlft.stage.model_card import write_model_card
from rlft.stage.training_guards import TrainingGuard, TrainingHalted

logger = logging.getLogger(__name__)


class StageRun:
    """One stage's run directory, manifest and guarded training loop."""

    def __init__(self, stage: str, recipe: dict[str, Any], run: RunArguments, model_args: Any,
                 settled: dict[str, Any] | None = None) -> None:
        self.stage, self.run, self.model_args = stage, run, model_args
        self.settled = settled if settled is not None else {}  # shared with StageArgs.settled; what the run changed from the recipe on this machine, and why
        self.recipe = {k: v for k, v in recipe.items() if k not in ("resume", "overwrite", "verbose")}  # not part of a rerun
        self.resume_from: str | None = None
        self.trainer: Any = None
        self.train_rows: Any = None
        self.guard = TrainingGuard()
        self.progress: Any = None
        self.status = "new"
        self.memory_plan: dict[str, Any] | None = None  # rlft.stage.memory_check's record, before the model loads

    def check(self, output_dir: str) -> None:
        """Refuse an occupied ``output_dir`` (before anything loads); find the checkpoint to resume."""
        self.resume_from = check_output_dir(output_dir, self.run, refuse=is_main_process())
        if self.resume_from:
            check_same_recipe(output_dir, self.recipe)
        if is_main_process():
            open_run_log(output_dir, resume=bool(self.resume_from))
        log_deferred_warnings()
        if self.resume_from:
            logger.info("resuming from %s", self.resume_from)

    def begin(self, trainer: Any, train_rows: Any) -> None:
        """Claim the directory and write the ``running`` manifest; every other check has passed."""
        self.trainer, self.train_rows = trainer, train_rows
        claim_output_dir(trainer.args.output_dir, self.run, is_main_process())
        claim_run_log()
        trainer.accelerator.wait_for_everyone()
        trainer.add_callback(self.guard)
        self.progress = progress.install(trainer, self.stage, self.run.verbose)
        trainer.args.logging_nan_inf_filter = False  # log a NaN loss as NaN, not as the mean of earlier losses
        self._record("running", {"resumed_from": self.resume_from} if self.resume_from else {})

    def train(self) -> None:
        """``trainer.train()``; a mid-step stop or a guard stop ends the run with a checkpoint and one line.

        A mid-step stop is any :class:`rlft.core.errors.RunStopped` (a failing
        reward, a rollout engine that no longer samples the trained policy).
        """
        trainer = self.trainer
        try:
            trainer.train(resume_from_checkpoint=self.resume_from)
        except RunStopped as err:
            self.end_progress()
            trainer._save_checkpoint(trainer.model, trial=None)  # the state after the last finished step
            self._record("failed", {"error": str(err)})
            raise TrainingHalted(f"{err}; saved {self._last_checkpoint()}: {err.advice}") from None
        finally:
            self.end_progress()  # an error then starts its own line
        if self.guard.halted:
            self._record("halted", {"error": self.guard.halted})
            raise TrainingHalted(
                f"{self.guard.halted}; saved {self._last_checkpoint()} (before that update): lower learning_rate "
                "or check the data, then rerun with --resume"
            )

    def end_progress(self) -> None:
        """Close the progress bar's line."""
        if self.progress is not None:
            self.progress.close()

    def finish(self, results: dict[str, Any]) -> dict[str, Any]:
        """Write the finished run's record; returns the manifest (``{}`` off the main process)."""
        if self.resume_from:
            results = {"resumed_from": self.resume_from, **results}
        return self._record("complete", results)

    def conclude(self, tokenizer: Any, test: Any, eval_args: Any, results: dict[str, Any],
                 reward_funcs: list, tools: ToolSetup | None = None) -> dict[str, Any]:
        """The greedy before/after check (when enabled), then :meth:`finish`.

        Call on the main process after the model is saved; the manifest's
        ``results["table"]`` holds the check's table when it ran. With several
        processes the main one runs it alone on its whole copy of the model
        (DDP, ZeRO-2; ZeRO-3, which splits the model, is refused at the start:
        :func:`rlft.stage.input_checks.check_closing_launch`).
        """
        trainer = self.trainer
        if eval_args.eval_before_after:
            results = {**results, **evaluate_stage(trainer.model, tokenizer, test, eval_args, self.model_args,
                                                   trainer.args.output_dir, reward_funcs, tools=tools)}
        return self.finish(results)

    def _record(self, status: str, results: dict[str, Any]) -> dict[str, Any]:
        self.status = status
        if not is_main_process():
            return {}
        if self.memory_plan:
            results = {"memory_plan": self.memory_plan, **results}
        return finish_run(self.trainer, self.stage, self.recipe, self.model_args, self.train_rows, results,
                          status=status, settled=self.settled)

    def _last_checkpoint(self) -> str:
        found = complete_checkpoints(self.trainer.args.output_dir)
        return str(found[-1]) if found else "no checkpoint"

#: Keys a resumed run may change: where it writes and what it logs, not what it trains.
RESUMABLE_CHANGES = frozenset(["output_dir", "logging_steps", "logging_first_step", "logging_strategy", "logging_dir", "report_to", "log_level", "log_level_replica", "log_completions", "num_completions_to_print", "disable_tqdm", "run_name", "memory_check", "dataloader_num_workers"])


def check_same_recipe(output_dir: str, recipe: dict[str, Any]) -> None:
    """Refuse, in one line naming the keys, a ``--resume`` whose recipe differs from the one the run started with
    (its ``recipe.yaml``) in anything but :data:`RESUMABLE_CHANGES`: the checkpoint's optimizer, schedule and
    data order belong to that recipe.

    Example:
        >>> import tempfile
        >>> run = tempfile.mkdtemp()
        >>> _ = open(f"{run}/recipe.yaml", "w").write("max_steps: 10\\nlearning_rate: 0.001\\n")
        >>> check_same_recipe(run, {"max_steps": 20, "learning_rate": 0.001, "logging_steps": 5})
        Traceback (most recent call last):
        ...
        rlft.core.errors.UserError: --resume with a changed recipe: max_steps (10 when the run started, now 20); resume with the recipe it started with, or start a new run (--overwrite, or another output_dir)
    """
    path = Path(output_dir) / "recipe.yaml"
    if not path.is_file():  # a run killed before it claimed the directory: nothing recorded to compare
        return
    before = load_recipe_file(path) or {}
    now = yaml.safe_load(to_yaml(recipe)) or {}  # through the same dump and load as the recorded one
    changed = [key for key in sorted((set(before) | set(now)) - RESUMABLE_CHANGES) if before.get(key) != now.get(key)]
    if changed:
        words = ", ".join(f"{key} ({before.get(key, 'unset')} when the run started, now {now.get(key, 'unset')})"
                          for key in changed)
        raise UserError(f"--resume with a changed recipe: {words}; resume with the recipe it started with, or "
                        "start a new run (--overwrite, or another output_dir)")


def launch_info(accelerator: Any) -> dict[str, Any]:
    """How the run was launched: distributed type, process count, DeepSpeed ZeRO stage."""
    info: dict[str, Any] = {
        "distributed_type": str(getattr(accelerator.distributed_type, "value", accelerator.distributed_type)),
        "num_processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "mixed_precision": str(accelerator.mixed_precision),
    }
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    if plugin is not None:
        info["zero_stage"] = plugin.zero_stage
    return info


def finish_run(trainer: Any, stage: str, recipe: dict[str, Any], model_args: Any, train: Any,
               results: dict[str, Any], status: str = "complete", settled: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    """Write ``log_history.jsonl``, ``recipe.yaml``, the manifest and (finished) the model card (rank 0 only)."""
    output_dir = trainer.args.output_dir

    write_atomic(Path(output_dir) / "log_history.jsonl",  # eval_accuracy as eval/accuracy, as TensorBoard shows it
                 "".join(json.dumps({shown_key(k): v for k, v in e.items()}, default=str) + "\n"
                         for e in trainer.state.log_history))

    manifest = write_run_files(
        output_dir, stage, recipe, trainer.args.seed, base_model_id(model_args.model_name_or_path),
        data_fingerprint=getattr(train, "_fingerprint", None), results=results,
        launch=launch_info(trainer.accelerator), status=status,
        load_options=LoadOptions.from_args(model_args, trainer.args).record(), settled=settled,
    )
    if status == "complete":
        write_model_card(output_dir, manifest)  # replaces the generic card TRL's save_model wrote
    return manifest
