"""rlft's progress bar for a training stage: step, loss, reward and accuracy where the stage logs them, and the ETA.

It replaces the trainer's own bar and its printed metric dicts (those go to
the run log, and stay in ``log_history.jsonl`` and TensorBoard; with
``--verbose`` the trainer prints them as before).

Example:
    >>> postfix({"loss": 0.0312, "reward": 0.41, "rewards/accuracy/mean": 0.375})
    'loss 0.0312 · reward 0.410 · accuracy 37.5%'
    >>> postfix({"loss": 1.25, "mean_token_accuracy": 0.62, "eval_accuracy": 0.4})
    'loss 1.25 · token accuracy 62.0% · eval accuracy 40.0%'
"""

from __future__ import annotations

import logging
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

# Outside rlft's namespace on purpose: the console shows only warnings from it, the run log everything.
metrics_log = logging.getLogger("trainer.metrics")

# (log key, label, format): the first keys a stage logs are shown, in this order.
SHOWN = (
    ("loss", "loss", "{:.3g}"),
    ("reward", "reward", "{:.3f}"),
    ("rewards/accuracy/mean", "accuracy", "{:.1%}"),
    ("rewards/accuracies", "pair accuracy", "{:.1%}"),
    ("mean_token_accuracy", "token accuracy", "{:.1%}"),
    ("eval_accuracy", "eval accuracy", "{:.1%}"),
)


def postfix(logs: dict[str, Any]) -> str:
    """The bar's text for one log entry."""
    parts = []
    for key, label, form in SHOWN:
        value = logs.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {form.format(value)}")
    return " · ".join(parts)


class ProgressBar(TrainerCallback):
    """One line, updated in place, on the main process: ``grpo  12/30 [03:55<05:53, loss 0.03 · reward 0.41]``."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.bar: Any = None
        self.shown: dict[str, Any] = {}  # the latest value of each shown key: an eval log keeps the training figures

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not args.disable_tqdm:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.stage, unit="step",
                            dynamic_ncols=True, bar_format="{desc} {n_fmt}/{total_fmt} {bar} [{elapsed}<{remaining}"
                            "{postfix}]")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero:
            metrics_log.info("step %d: %s", state.global_step, logs)
        self.shown.update({key: (logs or {})[key] for key, _, _ in SHOWN if key in (logs or {})})
        text = postfix(self.shown)
        if self.bar is not None and text:
            self.bar.set_postfix_str(text, refresh=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        """End the bar's line (also when training stopped with an error, so the error starts a line)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def install(trainer: Any, stage: str, verbose: bool) -> ProgressBar | None:
    """Swap the trainer's bar and printed metric dicts for :class:`ProgressBar`; ``verbose`` keeps the trainer's."""
    if verbose:
        return None

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    bar = ProgressBar(stage)
    trainer.add_callback(bar)
    return bar
