"""Greedy evaluation during training, and the best checkpoint kept.

Every ``eval_steps`` optimizer steps (and after the last) the current policy
answers the first ``eval_samples`` held-out prompts greedily and the recipe's
rewards score them through the one scorer
(:func:`rlft.evaluation.scoring.score_outputs`), exactly as the closing
check and ``rlft eval`` do. The figures are logged like any eval of
transformers' Trainer: ``eval_accuracy``, ``eval_<reward>``, ``eval_marked``
(share of marked answers), ``eval_tokens`` (mean length), ``eval_seconds``
(what the evaluation cost). TensorBoard shows them as ``eval/accuracy`` and
so on, and so does the run's ``log_history.jsonl``; each evaluation's answers
are in ``<output_dir>/evals/step-N.jsonl``.

transformers' own machinery does the rest, driven by rlft's keys:

- ``keep_best: eval/accuracy`` is ``metric_for_best_model`` (a name ending in
  ``loss`` is minimized, any other maximized); an evaluation that sets a new
  best also saves a checkpoint, so the best one always exists, and
  ``save_total_limit`` never deletes it;
- ``final_model: best`` is ``load_best_model_at_end``: the stage's saved model
  and its closing check are the best checkpoint's;
- ``early_stopping_patience: N`` adds transformers' ``EarlyStoppingCallback``.

With a vLLM rollout engine (GRPO), the engine is synced to the policy and
generates the answers (the sync the next step would have made anyway), so an
evaluation costs generation only; otherwise transformers ``generate`` does.
A stage with tools answers through the same tool loop as its closing check
(:func:`rlft.evaluation.tool_loop.answers_with_tools`, a fresh episode per
prompt with an environment) and also logs ``eval_tool_use`` (the share of
answers that called a tool) and ``eval_turns``.

Example:
    >>> metric_key("eval/accuracy"), greater_is_better("eval/loss")
    ('eval_accuracy', False)
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from rlft.core.errors import UserError
from rlft.core.files import write_atomic
from rlft.core.tool_setup import ToolSetup
from rlft.evaluation.generation import hf_completions
from rlft.evaluation.scoring import score_outputs
from rlft.stage.input_checks import check_eval_settings

logger = logging.getLogger(__name__)

PREFIX = "eval/"


def metric_key(name: str) -> str:
    """transformers' key for a logged eval metric: ``eval/accuracy`` -> ``eval_accuracy``."""
    return "eval_" + name[len(PREFIX):] if name.startswith(PREFIX) else name


def shown_key(key: str) -> str:
    """The name users see for a logged key: ``eval_accuracy`` -> ``eval/accuracy``; others unchanged.

    Example:
        >>> shown_key("eval_accuracy"), shown_key("loss")
        ('eval/accuracy', 'loss')
    """
    return PREFIX + key[len("eval_"):] if key.startswith("eval_") else key


def greater_is_better(name: str) -> bool:
    """transformers' rule: a metric whose name ends in ``loss`` is better lower."""
    return not name.endswith("loss")


@dataclass
class TrainingEvalArguments:
    """Evaluation during training and the best checkpoint (every training stage; ``eval_samples`` and the
    generation settings are the closing check's, :class:`rlft.core.arguments.EvalArguments`)."""

    eval_steps: int | None = field(
        default=None,
        metadata={"help": "Every N optimizer steps (and after the last), score the policy greedily on the same "
                          "eval_samples test prompts: eval/accuracy and each reward, in the logs and TensorBoard."},
    )
    keep_best: str | None = field(
        default=None,
        metadata={"help": "Keep the checkpoint with the best value of this eval metric (e.g. eval/accuracy; names "
                          "ending in loss are minimized) whatever save_total_limit deletes; needs eval_steps."},
    )
    final_model: Literal["last", "best"] = field(
        default="last", metadata={"help": "The stage's output: the last step's model, or the keep_best checkpoint's."},
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after N evaluations without a new keep_best value."},
    )

    def __post_init__(self) -> None:
        check_eval_settings(SimpleNamespace(**vars(self), save_strategy="steps"))  # the strategy: check_plan's


@dataclass
class EvalPlan:
    """What one evaluation during training does: which rows, scored by which rewards, generated how."""

    rows: Any
    reward_funcs: list
    tokenizer: Any
    max_new_tokens: int
    batch_size: int
    chat_template_kwargs: dict | None = None
    tools: ToolSetup | None = None  # (tools, max_turns, episode or None): answer through the tool loop

    def metrics(self) -> list[str]:
        """The metric names an evaluation logs (what ``keep_best`` may name)."""
        names = [getattr(f, "__name__", "reward") for f in self.reward_funcs]
        return [PREFIX + n for n in (*names, "marked", "tokens", *(("tool_use", "turns") if self.tools else ()))]

    def answers(self, complete: Any) -> tuple[list[str], list | None, dict]:
        """Greedy answers from ``complete(texts or prompts)``: ``(answers, transcripts or None, extra columns)``."""
        prompts = list(self.rows["prompt"])
        if self.tools is None:
            return complete(prompts), None, {}
        from rlft.evaluation.tool_loop import answers_with_tools

        columns = {c: list(self.rows[c]) for c in self.rows.column_names}
        return answers_with_tools(complete, self.tokenizer, prompts, columns, self.tools, self.chat_template_kwargs)


def scored_outputs(outputs: list[str], plan: EvalPlan, extra: dict | None = None, state: Any = None
                   ) -> dict[str, Any]:
    """``outputs`` scored by the plan's rewards (:func:`rlft.evaluation.scoring.score_outputs`).

    ``extra`` adds columns (an environment's episodes, for its reward); ``state`` is the trainer's, which
    the rewards get as ``trainer_state``, as in training.
    """
    prompts = list(plan.rows["prompt"])
    columns = {c: list(plan.rows[c]) for c in plan.rows.column_names}
    return score_outputs(outputs, prompts, {**columns, **(extra or {})}, plan.reward_funcs, plan.tokenizer,
                         state=state)


def eval_figures(scored: dict[str, Any]) -> dict[str, float]:
    """The logged figures for one evaluation's scored outputs (without ``eval_seconds``).

    Each reward's mean leaves out the prompts it could not verify (``None``).

    Example:
        >>> import rewards
        >>> from datasets import Dataset
        >>> rows = Dataset.from_list([{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?", "answer": "5"}])
        >>> plan = EvalPlan(rows, [rewards.resolve("accuracy")], None, 8, 2)
        >>> eval_figures(scored_outputs(["\\\\boxed{2}", "4"], plan))
        {'eval_accuracy': 0.5, 'eval_marked': 0.5, 'eval_n': 2}
    """
    n = len(scored["marked"])
    figures: dict[str, float] = {}
    for name, values in scored["rewards"].items():
        known = [v for v in values if v is not None]
        figures[metric_key(PREFIX + name)] = sum(known) / len(known) if known else 0.0
    figures["eval_marked"] = sum(scored["marked"]) / n
    if scored["tokens"]:
        figures["eval_tokens"] = sum(scored["tokens"]) / n
    figures["eval_n"] = n
    return figures


def write_samples(path: Path, plan: EvalPlan, outputs: list[str], scored: dict[str, Any],
                  transcripts: list | None = None) -> None:
    """One evaluation's answers, a JSON line per prompt: prompt, gold answer, output, each reward's score
    (and with tools the whole transcript)."""
    lines = []
    for i, (prompt, answer, output) in enumerate(zip(plan.rows["prompt"], plan.rows["answer"], outputs, strict=True)):
        scores = {name: values[i] for name, values in scored["rewards"].items()}
        line = {"prompt": prompt, "answer": answer, "output": output, "scores": scores}
        if transcripts is not None:
            line["transcript"] = transcripts[i]
        lines.append(json.dumps(line) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(lines))


class GreedyEvaluation:
    """Trainer mixin: ``evaluate()`` is a greedy, reward-scored pass over held-out prompts.

    Inactive (transformers' ``evaluate``) until :func:`attach` gives it a plan.
    A trainer may define ``engine_completions(prompts, max_new_tokens)``
    returning the completions from its rollout engine (or ``None`` to use
    transformers ``generate``).
    """

    _eval_plan: EvalPlan | None = None
    eval_seconds: list[float]

    def evaluate(self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval") -> dict:
        plan = self._eval_plan
        if plan is None:
            return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)  # type: ignore[misc]
        began = time.perf_counter()
        model = self.model  # type: ignore[attr-defined]
        was_training = model.training
        model.eval()  # also makes TRL's log() take its (empty) eval metrics, not the pending training ones
        try:
            outputs, transcripts, extra = plan.answers(self._greedy_completions)
            scored = scored_outputs(outputs, plan, extra, state=self.state)  # type: ignore[attr-defined]
            metrics = eval_figures(scored)
            if transcripts is not None:
                from rlft.evaluation.tool_loop import tool_use_figures

                metrics.update({metric_key(PREFIX + k): v for k, v in tool_use_figures(transcripts).items()})
            if self.args.should_save:  # type: ignore[attr-defined]
                step = self.state.global_step  # type: ignore[attr-defined]
                write_samples(Path(self.args.output_dir) / "evals" / f"step-{step}.jsonl",  # type: ignore
                              plan, outputs, scored, transcripts)
            seconds = time.perf_counter() - began
            metrics["eval_seconds"] = round(seconds, 3)
            self.eval_seconds.append(seconds)
            self.log(metrics)  # type: ignore[attr-defined]
        finally:
            model.train(was_training)
        self.control = self.callback_handler.on_evaluate(  # type: ignore[attr-defined]
            self.args, self.state, self.control, metrics  # type: ignore[attr-defined]
        )
        return metrics

    def _greedy_completions(self, prompts: list) -> list[str]:
        """Greedy completions by the current policy: the rollout engine's when it has one, else ``generate``."""
        plan = self._eval_plan
        via_engine = getattr(self, "engine_completions", None)
        outputs = via_engine(prompts, plan.max_new_tokens) if via_engine is not None else None
        if outputs is None:
            policy = self.accelerator.unwrap_model(self.model)  # type: ignore[attr-defined]
            outputs = hf_completions(policy, plan.tokenizer, prompts, max_new_tokens=plan.max_new_tokens,
                                     batch_size=plan.batch_size, chat_template_kwargs=plan.chat_template_kwargs)
        return outputs

    def _determine_best_metric(self, metrics: dict[str, float], trial: Any) -> bool:
        is_new_best = super()._determine_best_metric(metrics, trial)  # type: ignore[misc]
        if is_new_best and self._eval_plan is not None:
            self.control.should_save = True  # type: ignore[attr-defined]  # the best always has a checkpoint
        return is_new_best


def check_plan(during: TrainingEvalArguments, test: Any, reward_funcs: list, cfg: Any,
               tools: ToolSetup | None = None) -> None:
    """Refuse, in one line, an evaluation during training that cannot run on this data, rewards or saving."""
    if not during.eval_steps:
        return
    check_eval_settings(SimpleNamespace(**vars(during), save_strategy=cfg.save_strategy))
    if during.keep_best:
        names = EvalPlan(test, reward_funcs, None, 1, 1, tools=tools).metrics()
        if during.keep_best not in names:
            raise UserError(f"keep_best: {during.keep_best} is not logged by this run's evaluation; "
                            f"choose one of {', '.join(names)}")


def attach(trainer: Any, during: TrainingEvalArguments, eval_args: Any, test: Any, reward_funcs: list,
           tokenizer: Any, chat_template_kwargs: dict | None, tools: ToolSetup | None = None) -> None:
    """Turn on evaluation during training (``eval_steps``) and the best checkpoint (``keep_best``) for ``trainer``.

    ``trainer`` must have :class:`GreedyEvaluation` among its bases
    (:func:`rlft.stage.trainers.stage_trainer`); ``eval_args`` (the closing
    check's :class:`rlft.core.arguments.EvalArguments`) says how many test
    prompts and how long the answers. transformers' own arguments are set
    after the trainer is built, since it would otherwise ask for an
    evaluation dataset that rlft does not give it.
    """
    from transformers import EarlyStoppingCallback
    from transformers.trainer_utils import IntervalStrategy

    trainer.eval_seconds = []
    if not during.eval_steps:
        return
    check_plan(during, test, reward_funcs, trainer.args, tools)
    rows = test.select(range(min(eval_args.eval_samples, len(test))))
    trainer._eval_plan = EvalPlan(rows, reward_funcs, tokenizer, eval_args.eval_max_new_tokens,
                                  eval_args.eval_batch_size, chat_template_kwargs, tools)
    cfg = trainer.args
    cfg.eval_strategy = IntervalStrategy.STEPS
    cfg.eval_steps = during.eval_steps
    if during.keep_best:
        cfg.metric_for_best_model = metric_key(during.keep_best)
        cfg.greater_is_better = greater_is_better(during.keep_best)
        cfg.load_best_model_at_end = during.final_model == "best"
    if during.early_stopping_patience:
        trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=during.early_stopping_patience))


def summary(trainer: Any, during: TrainingEvalArguments) -> dict[str, Any]:
    """What the manifest records of the evaluations: how many, their cost, the best checkpoint.

    ``{}`` when there was no evaluation during training.
    """
    if not during.eval_steps:
        return {}
    seconds = getattr(trainer, "eval_seconds", [])
    state = trainer.state
    out: dict[str, Any] = {"evals": sum(1 for e in state.log_history if "eval_seconds" in e),
                           "eval_seconds_mean": round(sum(seconds) / len(seconds), 2) if seconds else None}
    if during.keep_best and state.best_global_step:
        out["best"] = {"metric": during.keep_best, "value": state.best_metric, "step": state.best_global_step,
                       "checkpoint": state.best_model_checkpoint, "final_model": during.final_model}
    if trainer.control.should_training_stop and state.global_step < state.max_steps:
        out["stopped_early_at"] = state.global_step
    return out
